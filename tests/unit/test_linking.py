"""Duplicate linking and mass-incident detection (pure logic of intake.service.link)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from intake.service import HouseTopic, RecentAppeal, link

T0 = datetime(2026, 11, 23, 8, tzinfo=UTC)
DUP, INC, N = timedelta(hours=72), timedelta(hours=24), 3


def appeal(who: str | None, minutes: float) -> RecentAppeal:
    return RecentAppeal(uuid.uuid4(), f"ZH-2026-{int(minutes):07d}", who, T0 + timedelta(minutes=minutes))


def test_same_applicant_within_window_is_linked_to_latest_earlier_appeal():
    s = HouseTopic("k")
    first, second, third = appeal("a", 0), appeal("a", 60), appeal("a", 120)
    assert link(s, first, DUP, INC, N).duplicate_of is None
    assert link(s, second, DUP, INC, N).duplicate_of is first
    assert link(s, third, DUP, INC, N).duplicate_of is second


def test_outside_the_window_or_anonymous_is_not_a_duplicate():
    s = HouseTopic("k")
    link(s, appeal("a", 0), DUP, INC, N)
    assert link(s, appeal("a", 73 * 60), DUP, INC, N).duplicate_of is None
    s2 = HouseTopic("k2")
    link(s2, appeal(None, 0), DUP, INC, N)
    assert link(s2, appeal(None, 1), DUP, INC, N).duplicate_of is None


def test_incident_opens_at_threshold_of_distinct_applicants_with_all_members():
    s = HouseTopic("k")
    a1, a1again, b, c = appeal("a", 0), appeal("a", 5), appeal("b", 10), appeal("c", 20)
    for x in (a1, a1again, b):
        r = link(s, x, DUP, INC, N)
        assert r.incident_id is None  # two distinct applicants only
    r = link(s, c, DUP, INC, N)
    assert r.opened and r.incident_id is not None
    assert [m.appeal_id for m in r.members] == [a1.appeal_id, a1again.appeal_id, b.appeal_id, c.appeal_id]


def test_later_appeals_join_the_open_incident_until_it_goes_quiet():
    s = HouseTopic("k")
    for who, m in (("a", 0), ("b", 1), ("c", 2)):
        r = link(s, appeal(who, m), DUP, INC, N)
    incident = r.incident_id
    late = link(s, appeal("d", 600), DUP, INC, N)
    assert (late.incident_id, late.opened, len(late.members)) == (incident, False, 1)
    # a day of silence: the next report does not join the old incident
    quiet = link(s, appeal("e", 600 + 25 * 60), DUP, INC, N)
    assert quiet.incident_id is None


def test_anonymous_reports_count_as_distinct_applicants():
    s = HouseTopic("k")
    results = [link(s, appeal(None, m), DUP, INC, N) for m in range(3)]
    assert results[-1].opened


def test_history_is_pruned_and_bounded():
    s = HouseTopic("k")
    for m in range(0, 5 * 24 * 60, 60):  # one per hour for five days, same applicant
        link(s, appeal("a", m), DUP, INC, 10**6)
    assert all(T0 + timedelta(minutes=4 * 24 * 60) - r.at <= DUP + timedelta(hours=24) for r in s.recent)
    assert len(s.recent) <= HouseTopic.MAX_RECENT
