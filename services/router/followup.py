"""Closing the loop (issue contact-centre): an answer nobody rates must not keep the appeal open for
ever. The router's own timer finds answered appeals unrated for ``ask_after`` and publishes a
``FollowUpDue`` "ask" (the lifecycle then emits ``AppealRatingRequested``, the notifier asks the citizen
once whether the problem is solved); ``close_after`` later, still without a reply, a "close" (the
appeal is closed with reason ``no_reply``; ГИС ЖКХ then gets ``Executed``). The citizen may still
reopen it within the reopen window (services/router/lifecycle.py ``rate``/``complain``).

The timer only proposes: it publishes actions on the actions topic (source the router, actor
``service:router``) and the lifecycle handlers decide on the state they hold, in order with every
other action. Event ids are derived from the appeal and the time being acted on, so the rounds of
several replicas, or a round repeated after a crash, publish the same events and apply once."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from zhkh_contracts import FollowUpDue
from zhkh_runtime.engine import Emit
from zhkh_runtime.mongo import aware

from .lifecycle import ROUTER

FOLLOW_UP_NS = uuid.UUID("0c7d3c2e-6a4f-4f0e-9b1e-7c2f1d3a5b60")
Publish = Callable[[list[Emit]], Awaitable[None]]


class FollowUps:
    def __init__(self, appeals: Any, publish: Publish, ask_after: timedelta, close_after: timedelta,
                 batch: int = 200, clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.appeals, self.publish = appeals, publish
        self.ask_after, self.close_after = ask_after, close_after
        self.batch, self.clock = batch, clock

    async def round(self) -> int:
        """One look: every answered appeal due a question or a closing gets its action. Returns how
        many were published (a full batch means more may be due)."""
        now = self.clock()
        out: list[Emit] = []
        ask = self.appeals.find({"status": "answered", "asked_at": None, "answered_at": {"$lte": now - self.ask_after}},
                                {"_id": 1, "answered_at": 1}).limit(self.batch)
        async for d in ask:
            out.append(self._emit(d["_id"], "ask", d["answered_at"]))
        close = self.appeals.find({"status": "answered", "asked_at": {"$lte": now - self.close_after}},
                                  {"_id": 1, "asked_at": 1}).limit(self.batch)
        async for d in close:
            out.append(self._emit(d["_id"], "close", d["asked_at"]))
        if out:
            await self.publish(out)
        return len(out)

    def _emit(self, appeal_id: str, step: str, since: datetime) -> Emit:
        at = aware(since)
        event_id = uuid.uuid5(FOLLOW_UP_NS, f"{appeal_id}:{step}:{at.isoformat()}")
        return Emit(FollowUpDue(appeal_id=uuid.UUID(appeal_id), actor=ROUTER, step=step), event_id=event_id)
