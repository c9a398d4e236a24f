"""Router logic: route registered appeals and apply actions to the lifecycle. No broker imports.

Every change happens in one transaction with the processed-event marker (IdempotencyGuard), and
every state write is a compare-and-set on the appeal's version: a concurrent change aborts this
one, which is retried on the fresh state (and may then be refused), so the outcome never depends
on two writers both succeeding.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from zhkh_contracts import (
    ActionBase,
    AppealJoinedIncident,
    AppealRegistered,
    AppealStatus,
    AppealTransitionRejected,
    AssignmentCause,
    Envelope,
    EventData,
    OperatorAssigned,
    PartyRejectedNotResponsible,
    CitizenComplained,
    DeadlineExpired,
    DeadlinePlanned,
)
from zhkh_runtime.mongo import IdempotencyGuard
from zhkh_runtime.records import OutboundRecord

from .lifecycle import AppealState, Refusal, Transition, apply, assign
from .rules import Context, Decision, RoutingRules, escalate, level_of, route

SOURCE = "/zhkh-appeals/router"
NEEDS_ROUTING = (PartyRejectedNotResponsible, CitizenComplained, DeadlineExpired)


class RouterService:
    def __init__(
        self,
        repo: Any,  # RouterRepository
        guard: IdempotencyGuard,
        lifecycle_topic: str,
        rules: RoutingRules,
        fallback_queue_id: str,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.repo = repo
        self.guard = guard
        self.lifecycle_topic = lifecycle_topic
        self.rules = rules
        self.fallback_queue_id = fallback_queue_id
        self.clock = clock

    def _records(self, events: list[EventData], key: str, env: Envelope[Any], now: datetime) -> list[OutboundRecord]:
        return [
            OutboundRecord.of(
                self.lifecycle_topic,
                Envelope.new(e, source=SOURCE, appeal_id=key, correlation_id=env.correlation_id, occurred_at=now),
            )
            for e in events
        ]

    async def on_registered(self, env: Envelope[AppealRegistered]) -> list[OutboundRecord]:
        a = env.data.appeal

        async def work(session: Any) -> list[OutboundRecord]:
            now = self.clock()
            ctx = await self.repo.context(a.house_key, session)
            state = AppealState(
                appeal_id=a.appeal_id, number=a.registration_number, house_key=a.house_key, category=a.category,
                status=AppealStatus.REGISTERED, incident_id=a.incident_id, emergency=a.emergency,
                district_id=ctx.house.district_id if ctx.house else None,
            )
            d = route(self.rules, ctx, a.category)
            d = Decision(d.party, d.reason, d.cause, level_of(self.rules, d.party.kind if d.party else None))
            t = assign(state, d, self.fallback_queue_id, "assign", now, env.id, supervisor_id=self._supervisor(ctx, a.category, d))
            if not await self.repo.create(t.state, session):
                return []  # already routed (the registration was replayed with another event id)
            return self._records(t.events, str(a.appeal_id), env, now)

        return await self.guard.run(str(env.id), work)

    def _supervisor(self, ctx: Context, category: Any, d: Decision) -> str | None:
        """The next level above the decided party for this house (alerts go there too)."""
        up = escalate(self.rules, ctx, category, d.party.kind if d.party else None, "supervisor")
        return up.party.party_id if up and up.party else None

    async def on_joined(self, env: Envelope[AppealJoinedIncident]) -> list[OutboundRecord]:
        """Mark the appeal as a member: actions on the incident then apply to it as well."""
        j = env.data

        async def work(session: Any) -> list[OutboundRecord]:
            state = await self.repo.load(j.appeal_id, session)
            if state is None:
                return self._refused(env, str(j.appeal_id), "join_incident", None, Refusal("unknown_appeal"))
            if state.incident_id != j.incident_id:
                await self.repo.save(replace(state, incident_id=j.incident_id, version=state.version + 1), state.version, session)
            return []

        return await self.guard.run(str(env.id), work)

    async def on_deadline(self, env: Envelope[DeadlinePlanned]) -> list[OutboundRecord]:
        """Keep the notifier's latest deadline for the read API (not a lifecycle transition)."""
        p = env.data

        async def work(session: Any) -> list[OutboundRecord]:
            await self.repo.set_deadline(p.appeal_id, p.generation, p.due_at, p.regime, p.party_timezone, session)
            return []

        return await self.guard.run(str(env.id), work)

    def _refused(self, env: Envelope[Any], key: str, action: str, status: AppealStatus | None, r: Refusal) -> list[OutboundRecord]:
        ev = AppealTransitionRejected(
            appeal_id=key, action=action, status=status, code=r.code, detail=r.detail, cause_event_id=env.id
        )
        return self._records([ev], key, env, self.clock())

    async def on_action(self, env: Envelope[ActionBase]) -> list[OutboundRecord]:
        action = env.data
        name = action.EVENT_TYPE.split(".")[-2]

        async def work(session: Any) -> list[OutboundRecord]:
            now = self.clock()
            if action.incident_id is not None:
                targets = await self.repo.members(action.incident_id, session)
                if not targets:
                    return self._refused(env, action.key, name, None, Refusal("unknown_incident"))
            else:
                state = await self.repo.load(action.appeal_id, session)
                if state is None:
                    return self._refused(env, action.key, name, None, Refusal("unknown_appeal"))
                targets = [state]
            out: list[OutboundRecord] = []
            for state in targets:
                result = await self._apply(state, action, now, env.id, session)
                key = str(state.appeal_id)
                if isinstance(result, Refusal):
                    out += self._refused(env, key, name, state.status, result)
                    continue
                await self.repo.save(result.state, state.version, session)
                out += self._records(result.events, key, env, now)
            return out

        return await self.guard.run(str(env.id), work)

    async def _apply(self, state: AppealState, action: ActionBase, now: datetime, cause: uuid.UUID, session: Any) -> Transition | Refusal:
        routing = isinstance(action, (*NEEDS_ROUTING, OperatorAssigned))
        ctx = await self.repo.context(state.house_key, session) if routing else Context(None, None)

        def reroute(s: AppealState, exclude: frozenset[str]) -> Decision:
            return route(self.rules, ctx, s.category, exclude)

        def escalate_(s: AppealState, reason: str) -> Decision | None:
            return escalate(self.rules, ctx, s.category, s.party_kind, reason)

        operator_party = None
        if isinstance(action, OperatorAssigned):
            operator_party = await self.repo.party(action.party_id, session)

        def operator_decision(party_id: str) -> Decision | None:
            if operator_party is None:
                return None
            return Decision(operator_party, "operator", AssignmentCause.OPERATOR, level_of(self.rules, operator_party.kind))

        def supervisor(d: Decision) -> str | None:
            return self._supervisor(ctx, state.category, d)

        return apply(state, action, action.actor, now, cause, reroute, escalate_, self.fallback_queue_id,
                     operator_decision, supervisor)
