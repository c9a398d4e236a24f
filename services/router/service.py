"""Router logic: route registered appeals and apply actions to the lifecycle.

Handlers only decide: ``(event, uow) -> [events]``. The runtime runs them in one transaction with
the processed-event marker and publishes what they return. Every state write is a compare-and-set
on the appeal's version: a concurrent change aborts this one, which is retried on the fresh state
(and may then be refused), so the outcome never depends on two writers both succeeding.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from zhkh_contracts import (
    ACTION_CLASSES,
    ActionBase,
    AppealJoinedIncident,
    AppealRegistered,
    AppealStatus,
    AppealTransitionRejected,
    AssignmentCause,
    CitizenComplained,
    DeadlineExpired,
    DeadlinePlanned,
    EventData,
    OperatorAssigned,
    PartyRejectedNotResponsible,
)
from zhkh_runtime import access_codes
from prometheus_client import Counter

from zhkh_runtime.engine import Handlers, Message

from .directory import context_of
from .history import APPLIED, REFUSED, HistoryEntry
from .lifecycle import FORBIDDEN, ROUTER, AppealState, Refusal, Step, Transition, apply, assign
from .rules import Context, Decision, RoutingRules, escalate, level_of, route
from .uow import RouterUoW

NEEDS_ROUTING = (PartyRejectedNotResponsible, CitizenComplained, DeadlineExpired, OperatorAssigned)
ACTION_NAMES = tuple(cls.EVENT_TYPE.split(".")[-2] for cls in ACTION_CLASSES)

FORBIDDEN_TOTAL = Counter(
    "zhkh_router_forbidden_total", "Actions refused because their actor may not take them on that appeal", ["action"]
)
for _name in ACTION_NAMES:  # every series exists from the start (a rate over a missing series is empty)
    FORBIDDEN_TOTAL.labels(_name)


def details_of(e: AppealRegistered) -> dict[str, Any]:
    """What the assigned party and staff see through the API, and the access code only as a hash."""
    a = e.appeal
    return {
        "text": a.text,
        "channel": a.channel.value,
        "registered_at": a.registered_at,
        "address": a.address.model_dump(mode="json"),
        "applicant": a.applicant.model_dump(mode="json"),
        "attachments": [x.model_dump(mode="json") for x in a.attachments],
        "access_code_hash": e.access_code_hash or (access_codes.hash_code(e.access_code) if e.access_code else None),
    }


class RouterService:
    def __init__(
        self,
        rules: RoutingRules,
        fallback_queue_id: str,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        close_after: timedelta = timedelta(days=5),
        reopen_window: timedelta = timedelta(days=30),
    ) -> None:
        self.rules = rules
        self.fallback_queue_id = fallback_queue_id
        self.clock = clock
        self.close_after = close_after
        self.reopen_window = reopen_window

    def handlers(self) -> Handlers:
        h = Handlers()
        h.on(AppealRegistered)(self.on_registered)
        h.on(AppealJoinedIncident)(self.on_joined)
        h.on(DeadlinePlanned)(self.on_deadline)
        h.on(*ACTION_CLASSES)(self.on_action)
        return h

    async def on_registered(self, e: AppealRegistered, uow: RouterUoW) -> list[EventData]:
        a = e.appeal
        now = self.clock()
        ctx = context_of(await uow.directory(), a.house_key)
        state = AppealState(
            appeal_id=a.appeal_id, number=a.registration_number, house_key=a.house_key, category=a.category,
            status=AppealStatus.REGISTERED, incident_id=a.incident_id, emergency=a.emergency,
            district_id=ctx.house.district_id if ctx.house else None,
        )
        d = route(self.rules, ctx, a.category)
        d = Decision(d.party, d.reason, d.cause, level_of(self.rules, d.party.kind if d.party else None))
        t = assign(state, d, self.fallback_queue_id, "assign", now, uow.message.id,
                   supervisor_id=self._supervisor(ctx, a.category, d))
        if not await uow.appeals.create(t.state):
            return []  # already routed (the registration was replayed with another event id)
        await uow.appeals.keep_details(a.appeal_id, details_of(e))
        await uow.history.add(self._entry(uow.message, state, "assign", now, ROUTER, None, t))
        return t.events

    @staticmethod
    def _entry(msg: Message, before: AppealState, action: str, now: datetime, actor: str | None,
               subject: str | None, result: Transition | Refusal) -> HistoryEntry:
        """The audit trail's entry for one action on one appeal (router.history: no personal data)."""
        after = result.state if isinstance(result, Transition) else before
        return HistoryEntry(
            appeal_id=before.appeal_id, at=now, action=action,
            outcome=APPLIED if isinstance(result, Transition) else REFUSED, actor=actor, actor_subject=subject,
            via=msg.source, cause_event_id=msg.id, status=after.status.value, version=after.version,
            from_status=before.status.value, party_id=after.party_id,
            code=result.code if isinstance(result, Refusal) else None,
        )

    def _supervisor(self, ctx: Context, category: Any, d: Decision) -> str | None:
        """The next level above the decided party for this house (alerts go there too)."""
        up = escalate(self.rules, ctx, category, d.party.kind if d.party else None, "supervisor")
        return up.party.party_id if up and up.party else None

    async def on_joined(self, e: AppealJoinedIncident, uow: RouterUoW) -> list[EventData]:
        """Mark the appeal as a member: actions on the incident then apply to it as well."""
        state = await uow.appeals.load(e.appeal_id)
        if state is None:
            return [self._refused(uow.message, str(e.appeal_id), "join_incident", None, Refusal("unknown_appeal"))]
        if state.incident_id == e.incident_id:
            return []
        member = replace(state, incident_id=e.incident_id, version=state.version + 1)
        t = await self._follow_incident(member, uow)
        await uow.appeals.save(t.state if t else member, state.version)
        if t is None:
            return []
        await uow.history.add(self._entry(uow.message, member, "join_incident", self.clock(), ROUTER, None, t))
        return t.events

    async def _follow_incident(self, member: AppealState, uow: RouterUoW) -> Transition | None:
        """A new member not yet taken up by its party goes where the incident's other open members are
        (they were moved together, e.g. re-routed or escalated, before it joined): cause ``incident``."""
        if member.status is not AppealStatus.ASSIGNED or member.incident_id is None:
            return None
        others = [m for m in await uow.appeals.members(member.incident_id)
                  if m.appeal_id != member.appeal_id and m.status in (AppealStatus.ASSIGNED, AppealStatus.IN_PROGRESS)]
        lead = others[0] if others else None
        if lead is None or not lead.party_id or lead.party_id == member.party_id:
            return None
        directory = await uow.directory()
        party = directory.parties.get(lead.party_id)
        if party is None:
            return None
        ctx = context_of(directory, member.house_key)
        d = Decision(party, "incident", AssignmentCause.INCIDENT, lead.level)
        return assign(member, d, self.fallback_queue_id, "join_incident", self.clock(), uow.message.id,
                      supervisor_id=self._supervisor(ctx, member.category, d))

    async def on_deadline(self, e: DeadlinePlanned, uow: RouterUoW) -> list[EventData]:
        """Keep the notifier's latest deadline for the read API (not a lifecycle transition)."""
        await uow.appeals.set_deadline(e.appeal_id, e.generation, e.due_at, e.regime, e.party_timezone)
        return []

    def _refused(self, msg: Message, key: str, action: str, status: AppealStatus | None, r: Refusal) -> AppealTransitionRejected:
        return AppealTransitionRejected(
            appeal_id=key, action=action, status=status, code=r.code, detail=r.detail, cause_event_id=msg.id
        )

    async def on_action(self, action: ActionBase, uow: RouterUoW) -> list[EventData]:
        name = action.EVENT_TYPE.split(".")[-2]
        now = self.clock()
        if action.incident_id is not None:
            targets = await uow.appeals.members(action.incident_id)
            if not targets:
                return [self._refused(uow.message, action.key, name, None, Refusal("unknown_incident"))]
        else:
            state = await uow.appeals.load(action.appeal_id)
            if state is None:
                return [self._refused(uow.message, action.key, name, None, Refusal("unknown_appeal"))]
            targets = [state]
        out: list[EventData] = []
        for state in targets:
            result = await self._apply(state, action, now, uow)
            await uow.history.add(self._entry(uow.message, state, name, now, action.actor, action.actor_subject, result))
            if isinstance(result, Refusal):
                if result.code == FORBIDDEN:
                    FORBIDDEN_TOTAL.labels(name if name in ACTION_NAMES else "other").inc()
                out.append(self._refused(uow.message, str(state.appeal_id), name, state.status, result))
                continue
            await uow.appeals.save(result.state, state.version)
            out += result.events
        return out

    async def _apply(self, state: AppealState, action: ActionBase, now: datetime, uow: RouterUoW) -> Transition | Refusal:
        directory = await uow.directory()
        ctx = context_of(directory, state.house_key) if isinstance(action, NEEDS_ROUTING) else Context(None, None)

        def operator_decision(party_id: str) -> Decision | None:
            party = directory.parties.get(party_id)
            if party is None:
                return None
            return Decision(party, "operator", AssignmentCause.OPERATOR, level_of(self.rules, party.kind))

        passed = False
        if isinstance(action, CitizenComplained):  # allowed too once the deadline passed without an answer
            due = await uow.appeals.due_at(state.appeal_id)
            passed = due is not None and due <= now
        return apply(Step(
            state, action.actor, now, uow.message.id,
            reroute=lambda s, exclude: route(self.rules, ctx, s.category, exclude),
            escalate=lambda s, reason: escalate(self.rules, ctx, s.category, s.party_kind, reason),
            fallback_id=self.fallback_queue_id,
            operator_decision=operator_decision,
            supervisor=lambda d: self._supervisor(ctx, state.category, d),
            deadline_passed=passed, close_after=self.close_after, reopen_window=self.reopen_window,
        ), action)
