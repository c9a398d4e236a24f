"""The appeal lifecycle as an explicit state machine (no I/O here).

    registered ──assign──► assigned ──accept──► in_progress ──answer──► answered ──rate ok──► closed
                              ▲  │                  │                      │
                              │  └───answer─────────┼──────────────────────┤ rate not ok
                              │                     │                      ▼
         reject "not ours" ───┤ (re-route; second bounce escalates)     reopened ──answer──► answered
         deadline expired ────┤ (escalate)                                 │
         citizen complaint ───┘ (escalate, from answered / reopened)       │
    withdraw: any open status ──► withdrawn          extension: once, status unchanged

Transitions not in the table are refused with a code (``illegal_transition``, ``not_current_party``,
``extension_used``, ``not_an_operator``, ``escalation_exhausted``), never applied silently.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

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


def _status(
    state: AppealState, to: AppealStatus, action: str, now: datetime, cause: uuid.UUID | None, party_id: str | None = None
) -> AppealStatusChanged:
    return AppealStatusChanged(
        appeal_id=state.appeal_id, registration_number=state.number, from_status=state.status, to_status=to,
        action=action, party_id=party_id or state.party_id, version=state.version + 1, changed_at=now,
        cause_event_id=cause,
    )


def assign(state: AppealState, d: Decision, fallback_id: str, action: str, now: datetime, cause: uuid.UUID | None,
           timezone: str | None = None, supervisor_id: str | None = None) -> Transition:
    """Put the appeal with the decided party (or the fallback queue) in status ``assigned``."""
    party_id = d.party.party_id if d.party else fallback_id
    kind = d.party.kind if d.party else PartyKind.FALLBACK_QUEUE
    assigned = AppealAssigned(
        appeal_id=state.appeal_id, registration_number=state.number, party_id=party_id, party_kind=kind,
        reason=d.reason, assigned_at=now, cause=d.cause, level=d.level, previous_party_id=state.party_id,
        party_timezone=d.party.timezone if d.party else timezone, supervisor_party_id=supervisor_id,
        district_id=state.district_id,
    )
    changed = _status(state, S.ASSIGNED, action, now, cause, party_id)
    new = replace(state, status=S.ASSIGNED, party_id=party_id, party_kind=kind, level=d.level, version=state.version + 1)
    return Transition(new, [assigned, changed])


def apply(
    state: AppealState,
    action: EventData,
    actor: str,
    now: datetime,
    cause: uuid.UUID,
    reroute: Reroute,
    escalate: Escalate,
    fallback_id: str,
    operator_decision: Callable[[str], Decision | None] | None = None,
    supervisor: Callable[[Decision], str | None] | None = None,
) -> Transition | Refusal:
    st = state.status

    def supervisor_of(d: Decision) -> str | None:
        return supervisor(d) if supervisor else None

    def is_party() -> bool:
        return actor == state.party_id

    def move(to: AppealStatus, name: str, extra: list[EventData] | None = None, **changes: Any) -> Transition:
        ev = _status(state, to, name, now, cause)
        return Transition(replace(state, status=to, version=state.version + 1, **changes), [*(extra or []), ev])

    def escalated(reason: str, name: str) -> Transition | Refusal:
        d = escalate(state, reason)
        if d is None:
            return Refusal("escalation_exhausted", f"no level above {state.party_kind}")
        return assign(state, d, fallback_id, name, now, cause, supervisor_id=supervisor_of(d))

    if isinstance(action, CitizenWithdrew):
        if st not in OPEN:
            return Refusal("illegal_transition", f"withdraw from {st.value}")
        return move(S.WITHDRAWN, "withdraw")

    if isinstance(action, OperatorAssigned):
        if not actor.startswith("operator:"):
            return Refusal("not_an_operator", actor)
        if st not in OPEN:
            return Refusal("illegal_transition", f"operator_assign from {st.value}")
        d = operator_decision(action.party_id) if operator_decision else None
        if d is None:
            return Refusal("unknown_party", action.party_id)
        return assign(state, d, fallback_id, "operator_assign", now, cause, supervisor_id=supervisor_of(d))

    if isinstance(action, PartyAccepted | PartyAnswered | PartyRejectedNotResponsible | PartyRequestedExtension):
        if not is_party():
            return Refusal("not_current_party", f"{actor} is not the assigned party")

    if isinstance(action, PartyAccepted):
        if st is not S.ASSIGNED:
            return Refusal("illegal_transition", f"accept from {st.value}")
        return move(S.IN_PROGRESS, "accept")

    if isinstance(action, PartyAnswered):
        if st not in WORKING:
            return Refusal("illegal_transition", f"answer from {st.value}")
        answer = AppealAnswered(
            appeal_id=state.appeal_id, registration_number=state.number, party_id=state.party_id or "",
            text=action.text, attachments=action.attachments, answered_at=now,
        )
        return move(S.ANSWERED, "answer", [answer])

    if isinstance(action, PartyRejectedNotResponsible):
        if st not in (S.ASSIGNED, S.IN_PROGRESS):
            return Refusal("illegal_transition", f"reject from {st.value}")
        bounced = replace(state, bounces=(*state.bounces, actor))
        if len(bounced.bounces) >= 2:
            d = escalate(bounced, "second_bounce")
            if d is None:
                return Refusal("escalation_exhausted", "second bounce at the top of the chain")
            return assign(bounced, d, fallback_id, "reject_not_responsible", now, cause, supervisor_id=supervisor_of(d))
        d = reroute(bounced, frozenset(bounced.bounces))
        d = Decision(d.party, d.reason, AssignmentCause.REROUTE if d.party else AssignmentCause.FALLBACK, d.level)
        return assign(bounced, d, fallback_id, "reject_not_responsible", now, cause, supervisor_id=supervisor_of(d))

    if isinstance(action, PartyRequestedExtension):
        if st not in WORKING:
            return Refusal("illegal_transition", f"extension from {st.value}")
        if state.extension_used:
            return Refusal("extension_used", "the deadline can be extended once")
        ext = AppealExtended(
            appeal_id=state.appeal_id, registration_number=state.number, party_id=state.party_id or "",
            days=action.days, reason=action.reason, extended_at=now,
        )
        return Transition(replace(state, extension_used=True, version=state.version + 1), [ext])

    if isinstance(action, CitizenRatedAnswer):
        if st is not S.ANSWERED:
            return Refusal("illegal_transition", f"rate from {st.value}")
        return move(S.CLOSED if action.satisfied else S.REOPENED, "rate")

    if isinstance(action, CitizenComplained):
        if st not in (S.ANSWERED, S.REOPENED):
            return Refusal("illegal_transition", f"complain from {st.value}")
        return escalated("citizen_complaint", "complain")

    if isinstance(action, DeadlineExpired):
        if st not in WORKING:
            return Refusal("illegal_transition", f"deadline_expired in {st.value}")
        return escalated("deadline_expired", "deadline_expired")

    return Refusal("unknown_action", action.EVENT_TYPE)
