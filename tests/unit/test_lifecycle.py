"""The lifecycle state machine: every allowed transition, and refusals for the rest."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from router.directory import Party
from router.lifecycle import AppealState, Refusal, Step, Transition, apply, assign
from router.rules import Decision
from zhkh_contracts import (
    AppealRatingRequested,
    FollowUpDue,
    AppealProgressUpdated,
    PartyPostedUpdate,
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
PUK, PRSO, CIT, NOTIFIER, GIS = "party:uk", "party:rso", f"citizen:{AID}", "service:notifier", "service:gis_sync"


def state(status=S.ASSIGNED, party=UK, **kw):  # noqa: ANN001, ANN003, ANN201
    return AppealState(appeal_id=AID, number="ZH-2026-0000001", house_key="fias:x", category=Category.HEATING,
                       status=status, version=3, party_id=party.party_id, party_kind=party.kind, **kw)


def reroute(s, exclude):  # noqa: ANN001, ANN201
    return Decision(RSO, "house_services_to_supplier", AssignmentCause.RULE) if "rso" not in exclude else Decision(None, "no_other_party", AssignmentCause.FALLBACK)


def escalate(s, reason):  # noqa: ANN001, ANN201
    return None if s.party_kind is PartyKind.DISTRICT_ADMINISTRATION else Decision(ADM, reason, AssignmentCause.ESCALATION, 1)


def run(s, action, actor=PUK, now=NOW):  # noqa: ANN001, ANN201
    def op(pid: str):  # noqa: ANN202
        return Decision(RSO, "operator", AssignmentCause.OPERATOR) if pid == "rso" else None

    return apply(Step(s, actor, now, uuid.uuid4(), reroute, escalate, "fallback:ops", op,
                      close_after=timedelta(days=5), reopen_window=timedelta(days=30)), action)


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
    assert (assigned.party_name, next(e for e in fb.events if isinstance(e, AppealAssigned)).party_name) == ("УК", None)


@pytest.mark.parametrize(
    ("start", "action", "actor", "end"),
    [
        (S.ASSIGNED, PartyAccepted(appeal_id=AID, actor=PUK), PUK, S.IN_PROGRESS),
        (S.IN_PROGRESS, PartyAnswered(appeal_id=AID, actor=PUK, text="Готово"), PUK, S.ANSWERED),
        (S.ASSIGNED, PartyAnswered(appeal_id=AID, actor=PUK, text="Готово"), PUK, S.ANSWERED),
        (S.REOPENED, PartyAnswered(appeal_id=AID, actor=PUK, text="Ещё раз"), PUK, S.ANSWERED),
        (S.ANSWERED, CitizenRatedAnswer(appeal_id=AID, actor=CIT, satisfied=True), CIT, S.CLOSED),
        (S.ANSWERED, CitizenRatedAnswer(appeal_id=AID, actor=CIT, satisfied=False), CIT, S.REOPENED),
        (S.IN_PROGRESS, CitizenWithdrew(appeal_id=AID, actor=CIT), CIT, S.WITHDRAWN),
        (S.ANSWERED, CitizenWithdrew(appeal_id=AID, actor=CIT), CIT, S.WITHDRAWN),
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
        (S.IN_PROGRESS, PartyAccepted(appeal_id=AID, actor=PUK), PUK, "illegal_transition"),
        (S.ASSIGNED, PartyAccepted(appeal_id=AID, actor=PRSO), PRSO, "forbidden"),
        (S.ASSIGNED, CitizenRatedAnswer(appeal_id=AID, actor=CIT, satisfied=True), CIT, "illegal_transition"),
        (S.CLOSED, CitizenWithdrew(appeal_id=AID, actor=CIT), CIT, "illegal_transition"),
        (S.ASSIGNED, CitizenComplained(appeal_id=AID, actor=CIT), CIT, "illegal_transition"),
        (S.ANSWERED, DeadlineExpired(appeal_id=AID, actor=NOTIFIER, deadline=NOW), NOTIFIER, "illegal_transition"),
        (S.ANSWERED, PartyRejectedNotResponsible(appeal_id=AID, actor=PUK), PUK, "illegal_transition"),
        (S.ASSIGNED, OperatorAssigned(appeal_id=AID, actor=CIT, party_id="rso"), CIT, "forbidden"),
        (S.ASSIGNED, OperatorAssigned(appeal_id=AID, actor="operator:1", party_id="nobody"), "operator:1", "unknown_party"),
    ],
)
def test_refused_transitions_change_nothing(start, action, actor, code):
    r = run(state(start), action, actor)
    assert isinstance(r, Refusal) and r.code == code


def test_extension_once_without_status_change():
    t = run(state(S.IN_PROGRESS), PartyRequestedExtension(appeal_id=AID, actor=PUK, days=30, reason="запчасти"))
    assert isinstance(t, Transition) and t.state.extension_used and t.state.status is S.IN_PROGRESS
    assert [type(e) for e in t.events] == [AppealExtended]
    again = run(t.state, PartyRequestedExtension(appeal_id=AID, actor=PUK, days=5, reason="ещё"))
    assert isinstance(again, Refusal) and again.code == "extension_used"


def test_first_bounce_reroutes_second_escalates():
    first = run(state(S.ASSIGNED), PartyRejectedNotResponsible(appeal_id=AID, actor=PUK))
    a1 = next(e for e in first.events if isinstance(e, AppealAssigned))
    assert (a1.party_id, a1.cause, a1.previous_party_id, a1.party_name) == ("rso", AssignmentCause.REROUTE, "uk", "РСО")
    second = run(first.state, PartyRejectedNotResponsible(appeal_id=AID, actor=PRSO), PRSO)
    a2 = next(e for e in second.events if isinstance(e, AppealAssigned))
    assert (a2.party_id, a2.cause, a2.reason, a2.level) == ("adm", AssignmentCause.ESCALATION, "second_bounce", 1)
    assert second.state.bounces == ("uk", "rso")


@pytest.mark.parametrize(
    ("start", "action", "reason"),
    [
        (S.IN_PROGRESS, DeadlineExpired(appeal_id=AID, actor=NOTIFIER, deadline=NOW), "deadline_expired"),
        (S.REOPENED, CitizenComplained(appeal_id=AID, actor=CIT), "citizen_complaint"),
        (S.ANSWERED, CitizenComplained(appeal_id=AID, actor=CIT), "citizen_complaint"),
    ],
)
def test_escalations(start, action, reason):
    t = run(state(start), action, action.actor)
    a = next(e for e in t.events if isinstance(e, AppealAssigned))
    assert (t.state.status, a.party_id, a.reason, a.level, a.cause) == (S.ASSIGNED, "adm", reason, 1, AssignmentCause.ESCALATION)


@pytest.mark.parametrize("start", [S.ASSIGNED, S.IN_PROGRESS])
def test_a_complaint_once_the_deadline_passed_without_an_answer_escalates(start):
    def step(passed: bool, actor: str = CIT) -> Step:
        return Step(state(start), actor, NOW, uuid.uuid4(), reroute, escalate, "fallback:ops", deadline_passed=passed)

    t = apply(step(True), CitizenComplained(appeal_id=AID, actor=CIT))
    a = next(e for e in t.events if isinstance(e, AppealAssigned))
    assert (t.state.status, a.party_id, a.reason, a.cause) == (
        S.ASSIGNED, "adm", "citizen_complaint", AssignmentCause.ESCALATION)
    assert status_of(t).action == "complain"
    before = apply(step(False), CitizenComplained(appeal_id=AID, actor=CIT))
    assert isinstance(before, Refusal) and before.code == "illegal_transition"  # not yet: the term still runs
    other = f"citizen:{uuid.uuid4()}"  # the authorisation rule is unchanged: only this appeal's citizen
    assert apply(step(True, other), CitizenComplained(appeal_id=AID, actor=other)).code == "forbidden"
    assert apply(step(True, PUK), CitizenComplained(appeal_id=AID, actor=PUK)).code == "forbidden"
    closed = Step(state(S.CLOSED), CIT, NOW, uuid.uuid4(), reroute, escalate, "fallback:ops", deadline_passed=True)
    assert apply(closed, CitizenComplained(appeal_id=AID, actor=CIT)).code == "illegal_transition"


def test_escalation_at_the_top_is_refused():
    r = run(state(S.IN_PROGRESS, party=ADM), DeadlineExpired(appeal_id=AID, actor=NOTIFIER, deadline=NOW), NOTIFIER)
    assert isinstance(r, Refusal) and r.code == "escalation_exhausted"


def test_an_interim_update_tells_the_citizen_and_changes_nothing():
    for start in (S.ASSIGNED, S.IN_PROGRESS, S.REOPENED):
        t = run(state(start), PartyPostedUpdate(appeal_id=AID, actor=PUK, text="Ждём запчасть до пятницы"), PUK)
        assert isinstance(t, Transition) and t.state == state(start)
        (update,) = t.events
        assert isinstance(update, AppealProgressUpdated) and (update.text, update.party_id) == ("Ждём запчасть до пятницы", "uk")
    for start in (S.ANSWERED, S.CLOSED, S.WITHDRAWN):
        r = run(state(start), PartyPostedUpdate(appeal_id=AID, actor=PUK, text="x"), PUK)
        assert isinstance(r, Refusal) and r.code == "illegal_transition"


# ---- closing the loop --------------------------------------------------------------------------------

ROUTER = "service:router"


def test_an_unrated_answer_is_asked_about_once_then_closed_without_a_reply_then_reopenable():
    answered = run(state(S.IN_PROGRESS), PartyAnswered(appeal_id=AID, actor=PUK, text="Сделано"))
    assert answered.state.answered_at == NOW and answered.state.asked_at is None
    asked = run(answered.state, FollowUpDue(appeal_id=AID, actor=ROUTER, step="ask"), ROUTER)
    (question,) = asked.events
    assert isinstance(question, AppealRatingRequested) and (question.close_after_days, question.reopen_window_days) == (5, 30)
    assert asked.state.status is S.ANSWERED and asked.state.asked_at == NOW and asked.state.version == answered.state.version
    again = run(asked.state, FollowUpDue(appeal_id=AID, actor=ROUTER, step="ask"), ROUTER)
    assert isinstance(again, Refusal) and again.code == "already_asked"
    early = run(asked.state, FollowUpDue(appeal_id=AID, actor=ROUTER, step="close"), ROUTER, now=NOW + timedelta(days=4))
    assert isinstance(early, Refusal) and early.code == "not_due"
    closed = run(asked.state, FollowUpDue(appeal_id=AID, actor=ROUTER, step="close"), ROUTER, now=NOW + timedelta(days=5))
    assert (closed.state.status, closed.state.closed_reason, status_of(closed).action) == (S.CLOSED, "no_reply",
                                                                                            "close_without_reply")
    # within the window the citizen may still reopen (unsatisfied rating) or complain; after it, not
    later = NOW + timedelta(days=20)
    reopened = run(closed.state, CitizenRatedAnswer(appeal_id=AID, actor=CIT, satisfied=False), CIT, now=later)
    assert reopened.state.status is S.REOPENED and reopened.state.closed_reason is None
    assert isinstance(run(closed.state, CitizenComplained(appeal_id=AID, actor=CIT), CIT, now=later), Transition)
    satisfied = run(closed.state, CitizenRatedAnswer(appeal_id=AID, actor=CIT, satisfied=True), CIT, now=later)
    assert isinstance(satisfied, Refusal)
    too_late = NOW + timedelta(days=36)
    assert run(closed.state, CitizenRatedAnswer(appeal_id=AID, actor=CIT, satisfied=False), CIT, now=too_late).code == \
        "illegal_transition"
    # a closing after the citizen's own rating is not reopenable this way
    rated = run(answered.state, CitizenRatedAnswer(appeal_id=AID, actor=CIT, satisfied=True), CIT)
    assert rated.state.closed_reason == "rated"
    assert isinstance(run(rated.state, CitizenComplained(appeal_id=AID, actor=CIT), CIT, now=later), Refusal)


def test_only_the_router_itself_follows_up_and_only_on_an_answer():
    for actor in (PUK, CIT, "operator:x", NOTIFIER, "service:routerx"):
        r = run(state(S.ANSWERED), FollowUpDue(appeal_id=AID, actor=actor, step="close"), actor)
        assert isinstance(r, Refusal) and r.code == "forbidden", actor
    r = run(state(S.IN_PROGRESS), FollowUpDue(appeal_id=AID, actor=ROUTER, step="ask"), ROUTER)
    assert isinstance(r, Refusal) and r.code == "illegal_transition"


def test_operator_routes_by_hand():
    t = run(state(S.ASSIGNED), OperatorAssigned(appeal_id=AID, actor="operator:7", party_id="rso"), "operator:7")
    a = next(e for e in t.events if isinstance(e, AppealAssigned))
    assert (a.party_id, a.cause) == ("rso", AssignmentCause.OPERATOR)


# ---- authorisation: per action, who may take it (everyone else: forbidden, nothing changes) ----------

OTHER_CITIZEN = f"citizen:{uuid.uuid4()}"
EVERYONE = [PUK, PRSO, "uk", "party:", "party:uk:x", CIT, OTHER_CITIZEN, "citizen", "operator:ivanova", "admin:root",
            "operator:", "inspector:gzhi-1", "analyst:a", NOTIFIER, GIS, "service:router", "notifier", "gis", ""]
# (start status, action, the actors allowed: each one applies the action; everyone else is refused forbidden)
MATRIX = [
    (S.ASSIGNED, PartyAccepted(appeal_id=AID, actor=PUK), {PUK}),
    (S.IN_PROGRESS, PartyAnswered(appeal_id=AID, actor=PUK, text="Готово"), {PUK}),
    (S.ASSIGNED, PartyRejectedNotResponsible(appeal_id=AID, actor=PUK), {PUK}),
    (S.IN_PROGRESS, PartyRequestedExtension(appeal_id=AID, actor=PUK, days=5, reason="запчасти"), {PUK}),
    (S.IN_PROGRESS, PartyPostedUpdate(appeal_id=AID, actor=PUK, text="Ждём запчасть"), {PUK}),
    (S.ASSIGNED, OperatorAssigned(appeal_id=AID, actor="operator:ivanova", party_id="rso"), {"operator:ivanova", "admin:root"}),
    (S.ANSWERED, CitizenRatedAnswer(appeal_id=AID, actor=CIT, satisfied=True), {CIT}),
    (S.ANSWERED, CitizenComplained(appeal_id=AID, actor=CIT), {CIT}),
    (S.IN_PROGRESS, CitizenWithdrew(appeal_id=AID, actor=CIT), {CIT, GIS}),
    (S.IN_PROGRESS, DeadlineExpired(appeal_id=AID, actor=NOTIFIER, deadline=NOW), {NOTIFIER}),
    (S.ANSWERED, FollowUpDue(appeal_id=AID, actor="service:router", step="ask"), {"service:router"}),
]


@pytest.mark.parametrize(("start", "action", "allowed"), MATRIX, ids=[type(m[1]).__name__ for m in MATRIX])
def test_each_action_is_applied_only_for_its_allowed_actors(start, action, allowed):
    for actor in EVERYONE:
        r = run(state(start), action.model_copy(update={"actor": actor}), actor)
        if actor in allowed:
            assert isinstance(r, Transition), (actor, r)
            changed = [e for e in r.events if isinstance(e, AppealStatusChanged)]
            assert all(e.actor == actor for e in changed)  # status changes carry who caused them
        else:
            assert isinstance(r, Refusal) and r.code == "forbidden", (actor, r)


def test_forbidden_comes_before_the_state_machine_and_a_party_acts_only_while_assigned():
    # a refusal for the wrong actor does not depend on whether the transition would be legal
    assert run(state(S.CLOSED), PartyAccepted(appeal_id=AID, actor=PRSO), PRSO).code == "forbidden"
    # once the appeal moved to another party, the first one may no longer act on it
    moved = run(state(S.ASSIGNED), PartyRejectedNotResponsible(appeal_id=AID, actor=PUK))
    assert isinstance(moved, Transition) and moved.state.party_id == "rso"
    assert run(moved.state, PartyAnswered(appeal_id=AID, actor=PUK, text="x"), PUK).code == "forbidden"
    assert isinstance(run(moved.state, PartyAnswered(appeal_id=AID, actor=PRSO, text="x"), PRSO), Transition)


def test_the_routers_own_assignment_is_by_service_router():
    s = AppealState(appeal_id=AID, number="N", house_key="k", category=Category.HEATING, status=S.REGISTERED)
    t = assign(s, Decision(UK, "rule", AssignmentCause.RULE), "fallback:ops", "assign", NOW, None)
    assert status_of(t).actor == "service:router"
