"""The appeal lifecycle as an explicit state machine (no I/O here).

    registered ──assign──► assigned ──accept──► in_progress ──answer──► answered ──rate ok──► closed
                              ▲  │                  │                      │
                              │  └───answer─────────┼──────────────────────┤ rate not ok
                              │                     │                      ▼
         reject "not ours" ───┤ (re-route; second bounce escalates)     reopened ──answer──► answered
         deadline expired ────┤ (escalate)                                 │
         citizen complaint ───┘ (escalate, from answered / reopened, or from       │
                                 assigned / in_progress once the deadline passed)
    withdraw: any open status ──► withdrawn          extension: once, status unchanged

Transitions not in the table are refused with a code (``illegal_transition``, ``extension_used``,
``escalation_exhausted``, ...), never applied silently. Before any of that, the actor must be allowed
to act on this appeal (:func:`allowed`, else ``forbidden``). Actors are ``<role>:<id>``:

    accept, answer, reject_not_responsible, request_extension   party:<the appeal's current party id>
    operator_assign                                             operator:<subject> | admin:<subject>
    rate, complain                                              citizen:<this appeal's id>
    withdraw                                                    citizen:<this appeal's id> | service:gis_sync
    deadline_expired                                            service:notifier

The router's HTTP API sets the actor from the authenticated principal (a citizen's after checking the
appeal's access code); the engine accepts those actions only from the router's source and
DeadlineExpired only from the notifier's (forged_source), so the actor cannot be self-declared.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from zhkh_contracts import (
    AppealProgressUpdated,
    AppealRatingRequested,
    FollowUpDue,
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
    EventData,
    OperatorAssigned,
    PartyAccepted,
    PartyAnswered,
    PartyKind,
    PartyRejectedNotResponsible,
    PartyRequestedExtension,
)

from .rules import Decision

S = AppealStatus
OPEN = frozenset({S.ASSIGNED, S.IN_PROGRESS, S.ANSWERED, S.REOPENED, S.REGISTERED})
WORKING = frozenset({S.ASSIGNED, S.IN_PROGRESS, S.REOPENED})


@dataclass(frozen=True)
class AppealState:
    appeal_id: uuid.UUID
    number: str
    house_key: str
    category: Category
    status: AppealStatus
    version: int = 0
    party_id: str | None = None
    party_kind: PartyKind | None = None
    level: int = 0
    bounces: tuple[str, ...] = ()
    extension_used: bool = False
    incident_id: uuid.UUID | None = None
    emergency: bool = False
    district_id: str | None = None  # of the appeal's house, from the directory at registration
    answered_at: datetime | None = None  # the latest answer (closing the loop times from it)
    asked_at: datetime | None = None  # the citizen was asked to rate it (FollowUpDue "ask")
    closed_at: datetime | None = None
    closed_reason: str | None = None  # rated | no_reply


@dataclass(frozen=True)
class Transition:
    state: AppealState
    events: list[EventData] = field(default_factory=list)


@dataclass(frozen=True)
class Refusal:
    code: str
    detail: str = ""


# A router decides where an appeal goes: (state, cause-of-routing) -> Decision. The service binds it
# to the directory; the state machine only says when routing or escalation must happen.
Reroute = Callable[[AppealState, frozenset[str]], Decision]
Escalate = Callable[[AppealState, str], Decision | None]


ROUTER = "service:router"
NO_REPLY = "no_reply"
NO_REPLY_ACTION = "close_without_reply"
"""The actor of the router's own changes (the first assignment of a registered appeal)."""


def _status(
    state: AppealState, to: AppealStatus, action: str, now: datetime, cause: uuid.UUID | None, party_id: str | None = None,
    actor: str | None = None,
) -> AppealStatusChanged:
    return AppealStatusChanged(
        appeal_id=state.appeal_id, registration_number=state.number, from_status=state.status, to_status=to,
        action=action, party_id=party_id or state.party_id, version=state.version + 1, changed_at=now,
        cause_event_id=cause, actor=actor,
    )


def assign(state: AppealState, d: Decision, fallback_id: str, action: str, now: datetime, cause: uuid.UUID | None,
           timezone: str | None = None, supervisor_id: str | None = None, actor: str = ROUTER) -> Transition:
    """Put the appeal with the decided party (or the fallback queue) in status ``assigned``."""
    party_id = d.party.party_id if d.party else fallback_id
    kind = d.party.kind if d.party else PartyKind.FALLBACK_QUEUE
    assigned = AppealAssigned(
        appeal_id=state.appeal_id, registration_number=state.number, party_id=party_id, party_kind=kind,
        reason=d.reason, assigned_at=now, cause=d.cause, level=d.level, previous_party_id=state.party_id,
        party_timezone=d.party.timezone if d.party else timezone, supervisor_party_id=supervisor_id,
        district_id=state.district_id, party_name=d.party.name if d.party else None,
    )
    changed = _status(state, S.ASSIGNED, action, now, cause, party_id, actor)
    new = replace(state, status=S.ASSIGNED, party_id=party_id, party_kind=kind, level=d.level, version=state.version + 1)
    return Transition(new, [assigned, changed])


@dataclass(frozen=True)
class Step:
    """Everything one transition may need: the state, who acts, when, why, and how to route."""

    state: AppealState
    actor: str
    now: datetime
    cause: uuid.UUID
    reroute: Reroute
    escalate: Escalate
    fallback_id: str
    operator_decision: Callable[[str], Decision | None] | None = None
    supervisor: Callable[[Decision], str | None] | None = None
    deadline_passed: bool = False
    """The appeal's latest planned deadline (the notifier's, kept by the router) is in the past."""
    reopen_window: timedelta = timedelta(days=30)
    """An appeal closed without the citizen's reply may be reopened (unsatisfied rating, complaint) this long."""
    close_after: timedelta = timedelta(days=5)
    """After the citizen was asked to rate, the appeal is closed without a reply this long later."""

    def reopenable(self) -> bool:
        st = self.state
        return (st.status is S.CLOSED and st.closed_reason == NO_REPLY and st.closed_at is not None
                and self.now <= st.closed_at + self.reopen_window)

    def is_party(self) -> bool:
        return self.state.party_id is not None and self.actor == f"party:{self.state.party_id}"

    def is_citizen(self) -> bool:
        return self.actor == f"citizen:{self.state.appeal_id}"

    def role(self) -> str:
        return self.actor.split(":", 1)[0] if ":" in self.actor else ""

    def move(self, to: AppealStatus, name: str, extra: list[EventData] | None = None, **changes: Any) -> Transition:
        ev = _status(self.state, to, name, self.now, self.cause, actor=self.actor)
        return Transition(replace(self.state, status=to, version=self.state.version + 1, **changes), [*(extra or []), ev])

    def assign(self, state: AppealState, d: Decision, name: str) -> Transition:
        sup = self.supervisor(d) if self.supervisor else None
        return assign(state, d, self.fallback_id, name, self.now, self.cause, supervisor_id=sup, actor=self.actor)

    def escalated(self, reason: str, name: str) -> Transition | Refusal:
        d = self.escalate(self.state, reason)
        if d is None:
            return Refusal("escalation_exhausted", f"no level above {self.state.party_kind}")
        return self.assign(self.state, d, name)


# ---- one function per action ----------------------------------------------------------------------


def withdraw(s: Step, action: CitizenWithdrew) -> Transition | Refusal:
    if s.state.status not in OPEN:
        return Refusal("illegal_transition", f"withdraw from {s.state.status.value}")
    return s.move(S.WITHDRAWN, "withdraw")


def operator_assign(s: Step, action: OperatorAssigned) -> Transition | Refusal:
    if s.state.status not in OPEN:
        return Refusal("illegal_transition", f"operator_assign from {s.state.status.value}")
    d = s.operator_decision(action.party_id) if s.operator_decision else None
    if d is None:
        return Refusal("unknown_party", action.party_id)
    return s.assign(s.state, d, "operator_assign")


def accept(s: Step, action: PartyAccepted) -> Transition | Refusal:
    if s.state.status is not S.ASSIGNED:
        return Refusal("illegal_transition", f"accept from {s.state.status.value}")
    return s.move(S.IN_PROGRESS, "accept")


def answer(s: Step, action: PartyAnswered) -> Transition | Refusal:
    st = s.state
    if st.status not in WORKING:
        return Refusal("illegal_transition", f"answer from {st.status.value}")
    answered = AppealAnswered(
        appeal_id=st.appeal_id, registration_number=st.number, party_id=st.party_id or "",
        text=action.text, attachments=action.attachments, answered_at=s.now,
    )
    return s.move(S.ANSWERED, "answer", [answered], answered_at=s.now, asked_at=None)


def reject_not_responsible(s: Step, action: PartyRejectedNotResponsible) -> Transition | Refusal:
    if s.state.status not in (S.ASSIGNED, S.IN_PROGRESS):
        return Refusal("illegal_transition", f"reject from {s.state.status.value}")
    bounced = replace(s.state, bounces=(*s.state.bounces, s.state.party_id or ""))  # the actor is this party
    if len(bounced.bounces) >= 2:
        d = s.escalate(bounced, "second_bounce")
        if d is None:
            return Refusal("escalation_exhausted", "second bounce at the top of the chain")
        return s.assign(bounced, d, "reject_not_responsible")
    d = s.reroute(bounced, frozenset(bounced.bounces))
    d = Decision(d.party, d.reason, AssignmentCause.REROUTE if d.party else AssignmentCause.FALLBACK, d.level)
    return s.assign(bounced, d, "reject_not_responsible")


def request_extension(s: Step, action: PartyRequestedExtension) -> Transition | Refusal:
    st = s.state
    if st.status not in WORKING:
        return Refusal("illegal_transition", f"extension from {st.status.value}")
    if st.extension_used:
        return Refusal("extension_used", "the deadline can be extended once")
    ext = AppealExtended(
        appeal_id=st.appeal_id, registration_number=st.number, party_id=st.party_id or "",
        days=action.days, reason=action.reason, extended_at=s.now,
    )
    return Transition(replace(st, extension_used=True, version=st.version + 1), [ext])


def post_update(s: Step, action: PartyPostedUpdate) -> Transition | Refusal:
    """An interim update for the citizen: the status and the version stay as they are."""
    st = s.state
    if st.status not in WORKING:
        return Refusal("illegal_transition", f"post_update in {st.status.value}")
    update = AppealProgressUpdated(appeal_id=st.appeal_id, registration_number=st.number, party_id=st.party_id or "",
                                   text=action.text, updated_at=s.now)
    return Transition(st, [update])


def rate(s: Step, action: CitizenRatedAnswer) -> Transition | Refusal:
    """On the answer; or, unsatisfied, on an appeal closed without a reply, within the reopen window."""
    if s.state.status is not S.ANSWERED and not (s.reopenable() and not action.satisfied):
        return Refusal("illegal_transition", f"rate from {s.state.status.value}")
    if action.satisfied:
        return s.move(S.CLOSED, "rate", closed_at=s.now, closed_reason="rated")
    return s.move(S.REOPENED, "rate", closed_at=None, closed_reason=None)


def follow_up(s: Step, action: FollowUpDue) -> Transition | Refusal:
    """Closing the loop on an answer nobody rated: ask the citizen once, then close without a reply."""
    st = s.state
    if st.status is not S.ANSWERED:
        return Refusal("illegal_transition", f"follow_up in {st.status.value}")
    if action.step == "ask":
        if st.asked_at is not None:
            return Refusal("already_asked", "the citizen was asked once already")
        ask = AppealRatingRequested(appeal_id=st.appeal_id, registration_number=st.number, party_id=st.party_id or "",
                                    requested_at=s.now, close_after_days=s.close_after.total_seconds() / 86400,
                                    reopen_window_days=s.reopen_window.total_seconds() / 86400)
        return Transition(replace(st, asked_at=s.now), [ask])
    if st.asked_at is None or s.now < st.asked_at + s.close_after:
        return Refusal("not_due", "closing without a reply comes only after the citizen was asked and had time")
    return s.move(S.CLOSED, NO_REPLY_ACTION, closed_at=s.now, closed_reason=NO_REPLY)


def complain(s: Step, action: CitizenComplained) -> Transition | Refusal:
    """After an unsatisfactory answer, when the deadline passed without an answer, or within the reopen
    window after the appeal was closed without the citizen's reply."""
    overdue = s.deadline_passed and s.state.status in (S.ASSIGNED, S.IN_PROGRESS)
    if s.state.status not in (S.ANSWERED, S.REOPENED) and not overdue and not s.reopenable():
        return Refusal("illegal_transition", f"complain from {s.state.status.value}")
    return s.escalated("citizen_complaint", "complain")


def deadline_expired(s: Step, action: DeadlineExpired) -> Transition | Refusal:
    if s.state.status not in WORKING:
        return Refusal("illegal_transition", f"deadline_expired in {s.state.status.value}")
    return s.escalated("deadline_expired", "deadline_expired")


TRANSITIONS: dict[type[EventData], Callable[[Step, Any], Transition | Refusal]] = {
    CitizenWithdrew: withdraw,
    OperatorAssigned: operator_assign,
    PartyAccepted: accept,
    PartyAnswered: answer,
    PartyRejectedNotResponsible: reject_not_responsible,
    PartyRequestedExtension: request_extension,
    PartyPostedUpdate: post_update,
    FollowUpDue: follow_up,
    CitizenRatedAnswer: rate,
    CitizenComplained: complain,
    DeadlineExpired: deadline_expired,
}
PARTY_ACTIONS = (PartyAccepted, PartyAnswered, PartyRejectedNotResponsible, PartyRequestedExtension, PartyPostedUpdate)
OPERATOR_ROLES = frozenset({"operator", "admin"})
NOTIFIER = "service:notifier"
GIS_SYNC = "service:gis_sync"
FORBIDDEN = "forbidden"


def allowed(step: Step, action: EventData) -> bool:
    """Whether ``step.actor`` may take ``action`` on ``step.state`` (the table in the module docstring)."""
    if isinstance(action, PARTY_ACTIONS):
        return step.is_party()
    if isinstance(action, OperatorAssigned):
        return step.role() in OPERATOR_ROLES and len(step.actor) > len(step.role()) + 1
    if isinstance(action, (CitizenRatedAnswer, CitizenComplained)):
        return step.is_citizen()
    if isinstance(action, CitizenWithdrew):
        return step.is_citizen() or step.actor == GIS_SYNC
    if isinstance(action, DeadlineExpired):
        return step.actor == NOTIFIER
    if isinstance(action, FollowUpDue):
        return step.actor == ROUTER
    return False


def apply(step: Step, action: EventData) -> Transition | Refusal:
    """The transition for ``action`` on ``step.state``, or why it is refused (``forbidden`` before
    anything else, whatever the state)."""
    fn = TRANSITIONS.get(type(action))
    if fn is None:
        return Refusal("unknown_action", action.EVENT_TYPE)
    if not allowed(step, action):
        return Refusal(FORBIDDEN, "this actor may not take this action on this appeal")
    return fn(step, action)
