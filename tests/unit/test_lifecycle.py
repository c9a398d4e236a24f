"""The lifecycle state machine: every allowed transition, and refusals for the rest."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from router.directory import Party
from router.lifecycle import AppealState, Refusal, Step, Transition, apply, assign
from router.rules import Decision
from zhkh_contracts import (
    AppealAnswered,
    AppealAssigned,
    AppealExtended,
    AppealStatus,
    AppealStatusChanged,
    AssignmentCause,
    Category,
    CitizenComplained,
    CitizenRatedAnswer,
    CitizenWithdrew,
    DeadlineExpired,
    OperatorAssigned,
    PartyAccepted,
    PartyAnswered,
    PartyKind,
    PartyRejectedNotResponsible,
    PartyRequestedExtension,
)

S = AppealStatus
NOW = datetime(2026, 11, 24, 9, tzinfo=UTC)
AID = uuid.uuid4()
UK = Party(party_id="uk", kind=PartyKind.MANAGING_ORGANISATION, name="УК")
RSO = Party(party_id="rso", kind=PartyKind.RESOURCE_SUPPLIER, name="РСО")
ADM = Party(party_id="adm", kind=PartyKind.DISTRICT_ADMINISTRATION, name="Адм")


def state(status=S.ASSIGNED, party=UK, **kw):  # noqa: ANN001, ANN003, ANN201
    return AppealState(appeal_id=AID, number="ZH-2026-0000001", house_key="fias:x", category=Category.HEATING,
                       status=status, version=3, party_id=party.party_id, party_kind=party.kind, **kw)


def reroute(s, exclude):  # noqa: ANN001, ANN201
    return Decision(RSO, "house_services_to_supplier", AssignmentCause.RULE) if "rso" not in exclude else Decision(None, "no_other_party", AssignmentCause.FALLBACK)


def escalate(s, reason):  # noqa: ANN001, ANN201
    return None if s.party_kind is PartyKind.DISTRICT_ADMINISTRATION else Decision(ADM, reason, AssignmentCause.ESCALATION, 1)


def run(s, action, actor="uk"):  # noqa: ANN001, ANN201
    def op(pid: str):  # noqa: ANN202
        return Decision(RSO, "operator", AssignmentCause.OPERATOR) if pid == "rso" else None

    return apply(Step(s, actor, NOW, uuid.uuid4(), reroute, escalate, "fallback:ops", op), action)


def status_of(t: Transition) -> AppealStatusChanged:
    return next(e for e in t.events if isinstance(e, AppealStatusChanged))


def test_initial_assignment():
    s = AppealState(appeal_id=AID, number="N", house_key="k", category=Category.HEATING, status=S.REGISTERED)
    t = assign(s, Decision(UK, "rule", AssignmentCause.RULE), "fallback:ops", "assign", NOW, None)
    assigned = next(e for e in t.events if isinstance(e, AppealAssigned))
    assert (t.state.status, t.state.party_id, t.state.version) == (S.ASSIGNED, "uk", 1)
    assert (assigned.party_id, status_of(t).from_status, status_of(t).to_status) == ("uk", S.REGISTERED, S.ASSIGNED)
    fb = assign(s, Decision(None, "unknown_house", AssignmentCause.FALLBACK), "fallback:ops", "assign", NOW, None)
    assert (fb.state.party_id, fb.state.party_kind) == ("fallback:ops", PartyKind.FALLBACK_QUEUE)


@pytest.mark.parametrize(
    ("start", "action", "actor", "end"),
    [
        (S.ASSIGNED, PartyAccepted(appeal_id=AID, actor="uk"), "uk", S.IN_PROGRESS),
        (S.IN_PROGRESS, PartyAnswered(appeal_id=AID, actor="uk", text="Готово"), "uk", S.ANSWERED),
        (S.ASSIGNED, PartyAnswered(appeal_id=AID, actor="uk", text="Готово"), "uk", S.ANSWERED),
        (S.REOPENED, PartyAnswered(appeal_id=AID, actor="uk", text="Ещё раз"), "uk", S.ANSWERED),
        (S.ANSWERED, CitizenRatedAnswer(appeal_id=AID, actor="citizen", satisfied=True), "citizen", S.CLOSED),
        (S.ANSWERED, CitizenRatedAnswer(appeal_id=AID, actor="citizen", satisfied=False), "citizen", S.REOPENED),
        (S.IN_PROGRESS, CitizenWithdrew(appeal_id=AID, actor="citizen"), "citizen", S.WITHDRAWN),
        (S.ANSWERED, CitizenWithdrew(appeal_id=AID, actor="citizen"), "citizen", S.WITHDRAWN),
    ],
)
def test_allowed_transitions(start, action, actor, end):
    t = run(state(start), action, actor)
    assert isinstance(t, Transition), t
    assert (t.state.status, t.state.version) == (end, 4)
    assert (status_of(t).from_status, status_of(t).to_status, status_of(t).version) == (start, end, 4)
    if isinstance(action, PartyAnswered):
        assert any(isinstance(e, AppealAnswered) and e.text == action.text for e in t.events)


@pytest.mark.parametrize(
    ("start", "action", "actor", "code"),
    [
        (S.IN_PROGRESS, PartyAccepted(appeal_id=AID, actor="uk"), "uk", "illegal_transition"),
        (S.ASSIGNED, PartyAccepted(appeal_id=AID, actor="rso"), "rso", "not_current_party"),
        (S.ASSIGNED, CitizenRatedAnswer(appeal_id=AID, actor="citizen", satisfied=True), "citizen", "illegal_transition"),
        (S.CLOSED, CitizenWithdrew(appeal_id=AID, actor="citizen"), "citizen", "illegal_transition"),
        (S.ASSIGNED, CitizenComplained(appeal_id=AID, actor="citizen"), "citizen", "illegal_transition"),
        (S.ANSWERED, DeadlineExpired(appeal_id=AID, actor="notifier", deadline=NOW), "notifier", "illegal_transition"),
        (S.ANSWERED, PartyRejectedNotResponsible(appeal_id=AID, actor="uk"), "uk", "illegal_transition"),
        (S.ASSIGNED, OperatorAssigned(appeal_id=AID, actor="citizen", party_id="rso"), "citizen", "not_an_operator"),
        (S.ASSIGNED, OperatorAssigned(appeal_id=AID, actor="operator:1", party_id="nobody"), "operator:1", "unknown_party"),
    ],
)
def test_refused_transitions_change_nothing(start, action, actor, code):
    r = run(state(start), action, actor)
    assert isinstance(r, Refusal) and r.code == code


def test_extension_once_without_status_change():
    t = run(state(S.IN_PROGRESS), PartyRequestedExtension(appeal_id=AID, actor="uk", days=30, reason="запчасти"))
    assert isinstance(t, Transition) and t.state.extension_used and t.state.status is S.IN_PROGRESS
    assert [type(e) for e in t.events] == [AppealExtended]
    again = run(t.state, PartyRequestedExtension(appeal_id=AID, actor="uk", days=5, reason="ещё"))
    assert isinstance(again, Refusal) and again.code == "extension_used"


def test_first_bounce_reroutes_second_escalates():
    first = run(state(S.ASSIGNED), PartyRejectedNotResponsible(appeal_id=AID, actor="uk"))
    a1 = next(e for e in first.events if isinstance(e, AppealAssigned))
    assert (a1.party_id, a1.cause, a1.previous_party_id) == ("rso", AssignmentCause.REROUTE, "uk")
    second = run(first.state, PartyRejectedNotResponsible(appeal_id=AID, actor="rso"), "rso")
    a2 = next(e for e in second.events if isinstance(e, AppealAssigned))
    assert (a2.party_id, a2.cause, a2.reason, a2.level) == ("adm", AssignmentCause.ESCALATION, "second_bounce", 1)
    assert second.state.bounces == ("uk", "rso")


@pytest.mark.parametrize(
    ("start", "action", "reason"),
    [
        (S.IN_PROGRESS, DeadlineExpired(appeal_id=AID, actor="notifier", deadline=NOW), "deadline_expired"),
        (S.REOPENED, CitizenComplained(appeal_id=AID, actor="citizen"), "citizen_complaint"),
        (S.ANSWERED, CitizenComplained(appeal_id=AID, actor="citizen"), "citizen_complaint"),
    ],
)
def test_escalations(start, action, reason):
    t = run(state(start), action, action.actor)
    a = next(e for e in t.events if isinstance(e, AppealAssigned))
    assert (t.state.status, a.party_id, a.reason, a.level, a.cause) == (S.ASSIGNED, "adm", reason, 1, AssignmentCause.ESCALATION)


def test_escalation_at_the_top_is_refused():
    r = run(state(S.IN_PROGRESS, party=ADM), DeadlineExpired(appeal_id=AID, actor="notifier", deadline=NOW), "notifier")
    assert isinstance(r, Refusal) and r.code == "escalation_exhausted"


def test_operator_routes_by_hand():
    t = run(state(S.ASSIGNED), OperatorAssigned(appeal_id=AID, actor="operator:7", party_id="rso"), "operator:7")
    a = next(e for e in t.events if isinstance(e, AppealAssigned))
    assert (a.party_id, a.cause) == ("rso", AssignmentCause.OPERATOR)
