"""Analytics logic: fold lifecycle events into the read model, answer reports. No broker imports.

Each handler folds its event into the appeal's document (``readmodel``) on the unit of work; the
engine commits the whole batch's documents (one bulk write) with its processed-event markers in one
transaction, so a redelivered event changes nothing. The analytics service publishes nothing.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import structlog

from zhkh_contracts import (
    AppealAnswered,
    AppealAssigned,
    AppealRegistered,
    AppealStatusChanged,
    ConsultationConverted,
    ConsultationRecorded,
    DeadlineAlert,
    DeadlinePlanned,
    EventData,
)
from zhkh_runtime.csvfile import BOM, csv_text
from zhkh_runtime.engine import Handlers

from . import consultations as cs
from . import readmodel as rm
from . import scorecards as sc
from .uow import AnalyticsUoW
from .report import CSV_COLUMNS, CSV_PROJECTION, Filters, csv_row, shape_summary, summary_pipeline

log = structlog.get_logger(__name__)
Apply = Callable[[dict[str, Any] | None, Any], dict[str, Any]]


class AnalyticsService:
    def __init__(self, repo: Any,  # AnalyticsRepository, for the reports
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.repo, self.clock = repo, clock

    # ---- events: each folds into the appeal's read-model document -----------------------------

    def handlers(self) -> Handlers:
        h = Handlers()
        h.on(AppealRegistered)(self.on_registered)
        h.on(AppealAssigned)(self.on_assigned)
        h.on(DeadlinePlanned)(self.on_planned)
        h.on(AppealAnswered)(self.on_answered)
        h.on(AppealStatusChanged)(self.on_status)
        h.on(DeadlineAlert)(self.on_alert)
        h.on(ConsultationRecorded)(self.on_consultation)
        h.on(ConsultationConverted)(self.on_consultation)
        return h

    @staticmethod
    async def _fold(uow: AnalyticsUoW, appeal_id: str, apply: Apply, fact: Any) -> list[EventData]:
        uow.appeals.put(apply(await uow.appeals.get(appeal_id), fact))
        return []

    async def on_registered(self, e: AppealRegistered, uow: AnalyticsUoW) -> list[EventData]:
        return await self._fold(uow, str(e.appeal.appeal_id), rm.apply_registered, e.appeal)

    async def on_assigned(self, e: AppealAssigned, uow: AnalyticsUoW) -> list[EventData]:
        return await self._fold(uow, str(e.appeal_id), rm.apply_assigned, e)

    async def on_planned(self, e: DeadlinePlanned, uow: AnalyticsUoW) -> list[EventData]:
        return await self._fold(uow, str(e.appeal_id), rm.apply_planned, e)

    async def on_answered(self, e: AppealAnswered, uow: AnalyticsUoW) -> list[EventData]:
        return await self._fold(uow, str(e.appeal_id), rm.apply_answered, e)

    async def on_status(self, e: AppealStatusChanged, uow: AnalyticsUoW) -> list[EventData]:
        return await self._fold(uow, str(e.appeal_id), rm.apply_status, e)

    async def on_alert(self, e: DeadlineAlert, uow: AnalyticsUoW) -> list[EventData]:
        if e.threshold != rm.OVERDUE_THRESHOLD:
            return []  # 50%, 80%, 1wd: nothing to count
        return await self._fold(uow, str(e.appeal_id), rm.apply_alert, e)

    async def on_consultation(self, e: ConsultationRecorded | ConsultationConverted,
                              uow: AnalyticsUoW) -> list[EventData]:
        apply = cs.apply_recorded if isinstance(e, ConsultationRecorded) else cs.apply_converted
        cid = str(e.consultation_id)
        uow.consultations.put(apply(await uow.consultations.get(cid), e))
        return []

    # ---- reports ----------------------------------------------------------------------------

    async def summary(self, filters: Filters) -> dict[str, Any]:
        now = self.clock()
        facet = await self.repo.aggregate(summary_pipeline(filters.match(), now))
        body = shape_summary(facet[0] if facet else None, filters, now)
        body["consultations"] = await self.consultations(filters)
        return body

    async def consultations(self, filters: Filters) -> dict[str, Any]:
        """Consultations recorded in the period (and channel): by topic and channel, first-contact share,
        converted into appeals (``consultations``)."""
        m = cs.match(filters)
        return cs.shape(await self.repo.consultation_counts(m) if m is not None else [])

    async def consultations_csv(self, filters: Filters, batch: int = 1000) -> AsyncIterator[bytes]:
        """One row per consultation (no personal data, no text): BOM and header first."""
        m = cs.match(filters)
        docs = self.repo.consultation_rows(m, batch) if m is not None else None
        async for chunk in _csv_chunks(cs.CSV_COLUMNS, docs, cs.csv_row, batch):
            yield chunk

    async def parties(self, filters: Filters, tz: str) -> dict[str, Any]:
        """Per-party scorecards by registration month (``scorecards``), over the filtered appeals."""
        now = self.clock()
        docs = [d async for d in self.repo.rows(filters.match(), sc.PROJECTION)]
        return {"parties": sc.scorecards(docs, tz, now), "period": filters.period(), "generated_at": now.isoformat()}

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
        docs = self.repo.rows(filters.match(), CSV_PROJECTION, batch)
        async for chunk in _csv_chunks(CSV_COLUMNS, docs, lambda d: csv_row(d, now), batch):
            yield chunk


async def _csv_chunks(header: Sequence[str], docs: AsyncIterator[dict[str, Any]] | None,
                      row: Callable[[dict[str, Any]], list[str]], batch: int) -> AsyncIterator[bytes]:
    """A streamed CSV download: the BOM and the header, then ``batch`` rows per chunk."""
    yield (BOM + csv_text([], header)).encode("utf-8")
    if docs is None:  # nothing can match
        return
    rows: list[list[str]] = []
    async for d in docs:
        rows.append(row(d))
        if len(rows) >= batch:
            yield csv_text(rows).encode("utf-8")
            rows = []
    if rows:
        yield csv_text(rows).encode("utf-8")


def _iso(v: datetime | None) -> str | None:
    return v.astimezone(UTC).isoformat() if v else None
