"""Router logic. No broker imports here.

Foundation scope (issue #2): every registered appeal gets a lifecycle record and is assigned.
The directory of responsible parties and the routing rules are issue #4; until then no rule
matches, so every appeal goes to the documented fallback queue, where operators route by hand.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from zhkh_contracts import AppealAssigned, AppealRegistered, Envelope, PartyKind
from zhkh_runtime.mongo import IdempotencyGuard
from zhkh_runtime.records import OutboundRecord

from .repository import RouterRepository

SOURCE = "/zhkh-appeals/router"


class RouterService:
    def __init__(
        self,
        repo: RouterRepository,
        guard: IdempotencyGuard,
        lifecycle_topic: str,
        fallback_queue_id: str,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.repo = repo
        self.guard = guard
        self.lifecycle_topic = lifecycle_topic
        self.fallback_queue_id = fallback_queue_id
        self.clock = clock

    async def on_registered(self, env: Envelope[AppealRegistered]) -> list[OutboundRecord]:
        appeal = env.data.appeal

        async def work(session: object) -> list[OutboundRecord]:
            now = self.clock()
            assigned = AppealAssigned(
                appeal_id=appeal.appeal_id,
                registration_number=appeal.registration_number,
                party_id=self.fallback_queue_id,
                party_kind=PartyKind.FALLBACK_QUEUE,
                reason="no_routing_rules",
                assigned_at=now,
            )
            out = Envelope.new(
                assigned, source=SOURCE, appeal_id=env.appeal_id, correlation_id=env.correlation_id, occurred_at=now
            )
            await self.repo.create(appeal, assigned, session)
            return [OutboundRecord.of(self.lifecycle_topic, out)]

        return await self.guard.run(str(env.id), work)
