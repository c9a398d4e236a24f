"""Analytics logic: fold lifecycle events into the read model, answer reports. No broker imports.

Each handler reads the appeal's document, applies the event (``readmodel``) and writes it back
inside the IdempotencyGuard's transaction, so the processed-event marker and the read-model change
commit together: a redelivered event changes nothing. The analytics service publishes nothing.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any

import structlog

from zhkh_contracts import (
    AppealAnswered,
    AppealAssigned,
    AppealRegistered,
    AppealStatusChanged,
    DeadlineAlert,
    DeadlinePlanned,
    Envelope,
)
from zhkh_runtime.mongo import IdempotencyGuard
from zhkh_runtime.records import OutboundRecord

from . import readmodel as rm
from .report import BOM, CSV_PROJECTION, Filters, csv_lines, csv_row, shape_summary, summary_pipeline

log = structlog.get_logger(__name__)
Apply = Callable[[dict[str, Any] | None, Any], dict[str, Any]]


class AnalyticsService:
    def __init__(self, repo: Any, guard: IdempotencyGuard,  # repo: AnalyticsRepository
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.repo, self.guard, self.clock = repo, guard, clock

    # ---- events -----------------------------------------------------------------------------

    async def _fold(self, env: Envelope[Any], appeal_id: str, apply: Apply, fact: Any) -> list[OutboundRecord]:
        async def work(session: Any) -> list[OutboundRecord]:
            doc = await self.repo.get(appeal_id, session)
            await self.repo.save(apply(doc, fact), session)
            return []

        return await self.guard.run(str(env.id), work)

    async def on_registered(self, env: Envelope[AppealRegistered]) -> list[OutboundRecord]:
        a = env.data.appeal
        return await self._fold(env, str(a.appeal_id), rm.apply_registered, a)

    async def on_assigned(self, env: Envelope[AppealAssigned]) -> list[OutboundRecord]:
        return await self._fold(env, str(env.data.appeal_id), rm.apply_assigned, env.data)

    async def on_planned(self, env: Envelope[DeadlinePlanned]) -> list[OutboundRecord]:
        return await self._fold(env, str(env.data.appeal_id), rm.apply_planned, env.data)

    async def on_answered(self, env: Envelope[AppealAnswered]) -> list[OutboundRecord]:
        return await self._fold(env, str(env.data.appeal_id), rm.apply_answered, env.data)

    async def on_status(self, env: Envelope[AppealStatusChanged]) -> list[OutboundRecord]:
        return await self._fold(env, str(env.data.appeal_id), rm.apply_status, env.data)

    async def on_alert(self, env: Envelope[DeadlineAlert]) -> list[OutboundRecord]:
        if env.data.threshold != rm.OVERDUE_THRESHOLD:
            return []  # 50%, 80%, 1wd: nothing to count
        return await self._fold(env, str(env.data.appeal_id), rm.apply_alert, env.data)

    # ---- reports ----------------------------------------------------------------------------

    async def summary(self, filters: Filters) -> dict[str, Any]:
        now = self.clock()
        facet = await self.repo.aggregate(summary_pipeline(filters.match(), now))
        return shape_summary(facet[0] if facet else None, filters, now)

    async def house_appeals(self, filters: Filters, limit: int = 100) -> list[dict[str, Any]]:
        """The latest appeals of one house (house-level fields only), newest first."""
        now = self.clock()
        out = [d async for d in self.repo.rows(filters.match(), CSV_PROJECTION, batch=limit, limit=limit,
                                               newest_first=True)]
        return [
            {"registration_number": d.get("registration_number"), "channel": d.get("channel"),
             "category": d.get("category"), "status": d.get("status"), "party_id": d.get("party_id"),
             "registered_at": _iso(d.get("registered_at")), "due_at": _iso(d.get("due_at")),
             "answered_at": _iso(d.get("answered_at")), "overdue": rm.is_overdue(d, now)}
            for d in out
        ]

    async def export_csv(self, filters: Filters, batch: int = 1000) -> AsyncIterator[bytes]:
        """The CSV export in chunks: BOM and header first, then ``batch`` rows per chunk."""
        now = self.clock()
        yield (BOM + csv_lines([], header=True)).encode("utf-8")
        rows: list[list[str]] = []
        async for d in self.repo.rows(filters.match(), CSV_PROJECTION, batch):
            rows.append(csv_row(d, now))
            if len(rows) >= batch:
                yield csv_lines(rows).encode("utf-8")
                rows = []
        if rows:
            yield csv_lines(rows).encode("utf-8")


def _iso(v: datetime | None) -> str | None:
    return v.astimezone(UTC).isoformat() if v else None
