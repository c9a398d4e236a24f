"""Mass-incident detection and duplicate linking (pure logic of intake.service.link)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from intake.service import IncidentState, RecentAppeal, link

T0 = datetime(2026, 11, 23, 8, tzinfo=UTC)
INC, N = timedelta(hours=24), 3


def appeal(who: str | None, minutes: float) -> RecentAppeal:
    return RecentAppeal(uuid.uuid4(), f"ZH-2026-{int(minutes):07d}", who, T0 + timedelta(minutes=minutes))


def test_the_given_earlier_appeal_of_the_same_applicant_is_the_duplicate():
    earlier, new = appeal("a", 0), appeal("a", 60)
    assert link(IncidentState("k"), new, earlier, [earlier], INC, N).duplicate_of is earlier
    assert link(IncidentState("k"), appeal(None, 61), None, [earlier], INC, N).duplicate_of is None


def test_incident_opens_at_threshold_of_distinct_applicants_with_all_members_in_order():
    a1, a1again, b = appeal("a", 0), appeal("a", 5), appeal("b", 10)
    s = IncidentState("k")
    assert link(s, b, None, [a1again, a1], INC, N).incident_id is None  # two distinct applicants only
    c = appeal("c", 20)
    r = link(s, c, None, [b, a1again, a1], INC, N)  # newest first, as the repository returns them
    assert r.opened and r.incident_id is not None and s.incident_id == r.incident_id
    assert [m.appeal_id for m in r.members] == [a1.appeal_id, a1again.appeal_id, b.appeal_id, c.appeal_id]


def test_appeals_outside_the_window_do_not_count():
    old = [appeal("x", 0), appeal("y", 1)]
    r = link(IncidentState("k"), appeal("z", 25 * 60), None, old, INC, N)
    assert r.incident_id is None


def test_later_appeals_join_the_open_incident_until_it_goes_quiet():
    s = IncidentState("k")
    prior = [appeal("a", 0), appeal("b", 1)]
    opened = link(s, appeal("c", 2), None, prior, INC, N)
    late = link(s, appeal("d", 600), None, [], INC, N)
    assert (late.incident_id, late.opened, len(late.members)) == (opened.incident_id, False, 1)
    quiet = link(s, appeal("e", 600 + 25 * 60), None, [], INC, N)  # a day of silence
    assert quiet.incident_id is None


def test_anonymous_reports_count_as_distinct_applicants():
    prior = [appeal(None, 0), appeal(None, 1)]
    assert link(IncidentState("k"), appeal(None, 2), None, prior, INC, N).opened
