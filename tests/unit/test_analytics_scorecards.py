"""Party scorecards: the read model's histories and the per-party, per-month figures."""

from __future__ import annotations

import csv
import io
import uuid
from datetime import UTC, datetime, timedelta

from analytics import readmodel as rm
from analytics.scorecards import COLUMNS, scorecards, scorecards_csv
from tests.unit.test_analytics import T0, appeal, planned
from zhkh_contracts import (
    AppealAnswered,
    AppealAssigned,
    AppealStatus,
    AppealStatusChanged,
    AssignmentCause,
    PartyKind,
)

S = AppealStatus
TZ = "Asia/Yekaterinburg"
NOW = T0 + timedelta(days=60)


class Life:
    """One appeal's lifecycle as the router would publish it, folded into its read-model document."""

    def __init__(self, at: datetime = T0, party: str = "uk-1") -> None:
        a = appeal(at=at).model_copy(update={"appeal_id": uuid.uuid4()})
        self.aid, self.at, self.version, self.status, self.party = a.appeal_id, at, 0, S.REGISTERED, None
        self.events: list[tuple] = [(rm.apply_registered, a)]
        self.assign(party, AssignmentCause.RULE, "assign", at + timedelta(minutes=1))

    def move(self, to: AppealStatus, action: str, at: datetime) -> None:
        self.version += 1
        self.events.append((rm.apply_status, AppealStatusChanged(
            appeal_id=self.aid, registration_number="N", from_status=self.status, to_status=to, action=action,
            party_id=self.party, version=self.version, changed_at=at)))
        self.status = to

    def assign(self, party: str, cause: AssignmentCause, action: str, at: datetime) -> None:
        self.events.append((rm.apply_assigned, AppealAssigned(
            appeal_id=self.aid, registration_number="N", party_id=party, party_kind=PartyKind.MANAGING_ORGANISATION,
            reason="r", assigned_at=at, cause=cause, previous_party_id=self.party)))
        self.party = party
        self.move(S.ASSIGNED, action, at)

    def answer(self, hours: float) -> None:
        at = self.at + timedelta(hours=hours)
        self.events.append((rm.apply_answered, AppealAnswered(appeal_id=self.aid, registration_number="N",
                                                              party_id=self.party, text="Ответ", answered_at=at)))
        self.move(S.ANSWERED, "answer", at)

    def doc(self, twice: bool = False, reverse: bool = False) -> dict:
        d = None
        evs = list(reversed(self.events)) if reverse else self.events
        for fold, e in (evs * 2 if twice else evs):
            d = fold(d, e)
        return d


def lives() -> list[Life]:
    """January (Yekaterinburg): uk-1 bounces one to uk-2 and answers two (2 h, 11 h; one satisfied, one
    reopened and answered again); uk-2 answers the bounced one 32 h after its registration and is escalated from another
    to adm. February: one appeal at uk-1 overdue."""
    a = Life()
    a.answer(2)
    a.move(S.CLOSED, "rate", T0 + timedelta(hours=3))
    b = Life(T0 + timedelta(hours=1))
    b.answer(11)
    b.move(S.REOPENED, "rate", T0 + timedelta(hours=20))
    b.answer(40)  # a second answer: not the first
    c = Life(T0 + timedelta(hours=2))
    c.assign("uk-2", AssignmentCause.REROUTE, "reject_not_responsible", T0 + timedelta(hours=3))
    c.answer(32)
    d = Life(T0 + timedelta(hours=3), party="uk-2")
    d.move(S.IN_PROGRESS, "accept", T0 + timedelta(hours=4))
    d.assign("adm", AssignmentCause.ESCALATION, "deadline_expired", T0 + timedelta(days=10))
    e = Life(datetime(2026, 2, 1, 10, tzinfo=UTC))
    e.events.append((rm.apply_planned, planned(datetime(2026, 2, 5, tzinfo=UTC))))
    return [a, b, c, d, e]


def by_key(rows: list[dict]) -> dict[tuple[str, str], dict]:
    return {(r["month"], r["party_id"]): r for r in rows}


def test_figures_per_party_and_month():
    rows = by_key(scorecards([x.doc() for x in lives()], TZ, NOW))
    assert list(rows) == [("2026-01", "adm"), ("2026-01", "uk-1"), ("2026-01", "uk-2"), ("2026-02", "uk-1")]
    uk1 = rows[("2026-01", "uk-1")]
    assert uk1 == {"month": "2026-01", "party_id": "uk-1", "assigned": 3, "answered": 2,
                   "median_hours_to_answer": 6.5, "current": 2, "overdue": 0, "overdue_share": 0.0,
                   "bounces": 1, "escalations": 0, "reopened": 1, "reopen_rate": 0.5,
                   "satisfied": 1, "unsatisfied": 1, "satisfaction": 0.5}
    uk2 = rows[("2026-01", "uk-2")]
    assert (uk2["assigned"], uk2["answered"], uk2["median_hours_to_answer"], uk2["current"]) == (2, 1, 32.0, 1)
    assert (uk2["bounces"], uk2["escalations"], uk2["satisfaction"], uk2["reopen_rate"]) == (0, 1, None, 0.0)
    adm = rows[("2026-01", "adm")]
    assert (adm["assigned"], adm["answered"], adm["median_hours_to_answer"], adm["reopen_rate"]) == (1, 0, None, None)
    feb = rows[("2026-02", "uk-1")]
    assert (feb["assigned"], feb["current"], feb["overdue"], feb["overdue_share"]) == (1, 1, 1, 1.0)


def test_redelivered_and_reordered_events_count_once():
    for x in lives():
        assert x.doc(twice=True) == x.doc()  # every history entry once, the document unchanged
    ls = lives()
    assert scorecards([x.doc(twice=True) for x in ls], TZ, NOW) == scorecards([x.doc() for x in ls], TZ, NOW)
    assert scorecards([x.doc(reverse=True) for x in ls], TZ, NOW) == scorecards([x.doc() for x in ls], TZ, NOW)


def test_a_bounce_is_counted_once_whatever_the_new_assignment_cause():
    # the first bounce to the fallback queue (no party found) is cause fallback: still a bounce
    x = Life()
    x.assign("fallback:operators", AssignmentCause.FALLBACK, "reject_not_responsible", T0 + timedelta(hours=1))
    rows = by_key(scorecards([x.doc()], TZ, NOW))
    assert rows[("2026-01", "uk-1")]["bounces"] == 1
    assert rows[("2026-01", "fallback:operators")]["bounces"] == 0
    # an operator's reassignment is not a bounce
    y = Life()
    y.assign("uk-3", AssignmentCause.OPERATOR, "operator_assign", T0 + timedelta(hours=1))
    assert by_key(scorecards([y.doc()], TZ, NOW))[("2026-01", "uk-1")]["bounces"] == 0


def test_the_month_is_the_registration_month_in_the_report_zone():
    x = Life(datetime(2026, 1, 31, 20, tzinfo=UTC))  # 1 February 01:00 in Yekaterinburg
    assert [r["month"] for r in scorecards([x.doc()], TZ, NOW)] == ["2026-02"]
    assert [r["month"] for r in scorecards([x.doc()], "UTC", NOW)] == ["2026-01"]


def test_csv_has_the_columns_and_empty_cells_for_null_ratios():
    text = scorecards_csv(scorecards([x.doc() for x in lives()], TZ, NOW))
    rows = list(csv.DictReader(io.StringIO(text)))
    assert tuple(rows[0]) == COLUMNS and len(rows) == 4 and text.count("\r\n") == 5
    assert rows[0]["party_id"] == "adm" and rows[0]["median_hours_to_answer"] == "" and rows[0]["assigned"] == "1"
