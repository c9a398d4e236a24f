"""Reconciliation: compare what ГИС confirmed with what exportAppeal shows now; repair drift by
sending the step again under a new TransportGUID, and take withdrawals made in ГИС back to the
router (CitizenWithdrew on the actions topic)."""

from __future__ import annotations

import uuid
from typing import Any

import structlog

from zhkh_contracts import CitizenWithdrew
from zhkh_runtime.engine import Emit

from . import metrics
from .mapping import ANSWER, action_payload, transport_guid
from .outcomes import Clock, SyncConfig, queue_item, utc_now
from .ports import Doc, GisStore, Publish
from .pull import Exporter

log = structlog.get_logger(__name__)


class Reconciler:
    def __init__(self, store: GisStore, exporter: Exporter, publish: Publish, config: SyncConfig,
                 clock: Clock = utc_now) -> None:
        self.store, self.exporter, self.publish, self.cfg, self.clock = store, exporter, publish, config, clock

    async def reconcile(self, limit: int = 1000) -> dict[str, int]:
        links = await self.store.open_links(limit)
        busy = await self.store.has_active([ln["_id"] for ln in links])
        links = [ln for ln in links if ln["_id"] not in busy]
        counts = {"checked": 0, "repaired": 0, "withdrawn": 0}
        if not links:
            return counts
        by_guid = {ln["appeal_guid"]: ln for ln in links}
        appeals = await self.exporter.export(
            "reconcile_export", lambda: self.exporter.client.submit_export(appeal_guids=list(by_guid))
        )
        for appeal in appeals:
            link = by_guid.get(str(appeal["AppealGUID"]))
            if link is None:
                continue
            counts["checked"] += 1
            if appeal.get("AppealStatus") == "Withdrawn":
                # Mark first (so the withdrawal's status change is not mirrored back as
                # AnswerIsNotRequired), publish, then close: a crash in between publishes again
                # next round, under the same event id.
                await self.store.update_link(link["_id"], {"withdrawn_in_gis": True})
                await self.publish([withdrawn(link)])
                await self.store.update_link(link["_id"], {"closed": True})
                counts["withdrawn"] += 1
                continue
            repairs = drift(link, appeal)
            if repairs:
                await self._enqueue_repairs(link, repairs)
                counts["repaired"] += len(repairs)
        metrics.DRIFT_REPAIRED.inc(counts["repaired"])
        return counts

    async def _enqueue_repairs(self, link: Doc, kinds: list[str]) -> None:
        confirmed = link.get("confirmed") or {}
        async with self.store.transaction() as tx:
            fresh = await tx.link(link["_id"])
            if fresh is None:
                return
            repair_no = int(fresh.get("repairs", 0)) + 1
            cause = f"repair:{fresh['_id']}:{repair_no}"
            items = []
            for n, kind in enumerate(kinds):
                tg = transport_guid(cause, n)
                answerer = confirmed.get("performer") or fresh.get("performer") or self.cfg.default_answerer
                if kind == ANSWER:
                    payload = action_payload(kind, confirmed.get("answerer") or answerer,
                                             text=confirmed["answer_text"], answer_transport_guid=transport_guid(cause, n, "answer"))
                else:
                    payload = action_payload(kind, answerer)
                items.append(queue_item(fresh, tg, kind, payload, cause, self.clock(), repair=True))
            await tx.enqueue(fresh, items)
            await tx.update_link(fresh["_id"], {"repairs": repair_no})
        log.warning("gis_drift_repair", appeal_id=link["_id"], actions=kinds)


def drift(link: Doc, appeal: dict[str, Any]) -> list[str]:
    """Which confirmed steps exportAppeal no longer shows."""
    confirmed = link.get("confirmed") or {}
    out: list[str] = []
    if confirmed.get("performer") and str(appeal.get("AnswererGUID") or "") != confirmed["performer"]:
        out.append("Performer")
    if confirmed.get("answer_sent"):
        sent = any((h.get("Answer") or {}).get("AnswerIsSent") for h in appeal.get("AppealHistory") or ())
        if not sent:
            out.append(ANSWER)
    if confirmed.get("executed") and appeal.get("AppealStatus") != "Executed":
        out.append("Executed")
    return out


def withdrawn(link: Doc) -> Emit:
    return Emit(
        CitizenWithdrew(appeal_id=uuid.UUID(link["_id"]), actor="service:gis_sync"),
        event_id=uuid.uuid5(uuid.UUID(link["appeal_guid"]), "withdrawn"),
        correlation_id=uuid.UUID(link["correlation_id"]) if link.get("correlation_id") else None,
    )
