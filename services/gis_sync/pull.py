"""Pull: new appeals from ГИС ЖКХ into intake's ГИС channel (a loop), and the export helper that
reconciliation shares.

exportAppeal by creation date from the stored high-water mark (minus an overlap) to today; each
AppealGUID not seen before becomes one RawAppealSubmitted. Its receive time is stored before it
is published, so a crash in between republishes the very same event (same id, same body), which
intake registers once.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from datetime import date, timedelta
from typing import Any

import structlog

from zhkh_runtime.engine import Emit
from zhkh_runtime.errors import TransientError

from . import metrics
from .mapping import raw_from_export
from .outcomes import GIS_TZ, NO_OBJECTS, Clock, SyncConfig, utc_now
from .ports import GisApi, GisFault, GisStore, Publish, StateResult

log = structlog.get_logger(__name__)
SKIP_STATUSES = ("Withdrawn", "Executed")


class Exporter:
    """One exportAppeal at a time per cursor: the MessageGUID is stored first, so a restart polls
    the same request instead of asking again."""

    def __init__(self, store: GisStore, client: GisApi, config: SyncConfig, clock: Clock = utc_now,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        self.store, self.client, self.cfg, self.clock, self.sleep = store, client, config, clock, sleep

    async def _await_state(self, message_guid: str) -> StateResult:
        """Poll getState until RequestState 3, at most ``stuck_after_s``."""
        started = self.clock()
        while True:
            state = await self.client.get_state(message_guid)
            if state.done:
                return state
            if (self.clock() - started).total_seconds() > self.cfg.stuck_after_s:
                raise TransientError(f"export {message_guid} still in RequestState {state.state}")
            await self.sleep(self.cfg.poll_interval_s)

    async def export(self, cursor_name: str, submit: Callable[[], Awaitable[str]]) -> list[dict[str, Any]]:
        cur = await self.store.cursor_doc(cursor_name)
        message_guid = cur.get("message_guid")
        if not message_guid:
            message_guid = await submit()
            await self.store.save_cursor(cursor_name, {"message_guid": message_guid}, self.clock())
        try:
            state = await self._await_state(message_guid)
        except TransientError:
            await self.store.save_cursor(cursor_name, {"message_guid": None}, self.clock())  # ask again next round
            raise
        await self.store.save_cursor(cursor_name, {"message_guid": None}, self.clock())
        if state.error is not None:
            if state.error.code == NO_OBJECTS:
                return []
            raise GisFault(state.error.code, state.error.description)
        return list(state.appeals)


class Puller:
    def __init__(self, store: GisStore, exporter: Exporter, publish: Publish, config: SyncConfig,
                 clock: Clock = utc_now) -> None:
        self.store, self.exporter, self.publish, self.cfg, self.clock = store, exporter, publish, config, clock

    async def pull(self) -> int:
        """Export appeals created since the high-water mark (minus an overlap) and hand each new
        AppealGUID to intake once. Returns how many were published."""
        cur = await self.store.cursor_doc("pull")
        today = self.clock().astimezone(GIS_TZ).date()
        hwm = date.fromisoformat(cur["hwm"]) if cur.get("hwm") else today - timedelta(days=self.cfg.pull_initial_days)
        start = hwm - timedelta(days=self.cfg.pull_overlap_days)
        appeals = await self.exporter.export("pull_export", lambda: self.exporter.client.submit_export(start=start, end=today))
        metrics.REQUESTS.labels("exportAppeal", "ok").inc()
        published = 0
        newest = hwm
        for appeal in appeals:
            guid = str(appeal["AppealGUID"])
            created = appeal.get("AppealCreateDate")
            if isinstance(created, date) and created > newest:
                newest = created
            seen = await self.store.pulled(guid)
            if seen is not None and seen.get("published", True):  # older documents have no flag: published
                continue
            status = appeal.get("AppealStatus")
            if seen is None and (status in SKIP_STATUSES or appeal.get("Redirected") or appeal.get("RedirectedIsNotHCS")):
                await self.store.mark_pulled(guid, {"skipped": status or "redirected", "at": self.clock()})
                continue
            received_at = seen["received_at"] if seen else self.clock()
            if seen is None:
                await self.store.mark_pulled(guid, {"received_at": received_at, "published": False})
            raw = raw_from_export(appeal, received_at=received_at)
            event_id = uuid.uuid5(uuid.UUID(guid), "pulled")
            await self.publish([Emit(raw, event_id=event_id)])
            await self.store.mark_pulled(guid, {"number": str(appeal["AppealNumber"]), "at": self.clock(), "published": True})
            metrics.PULLED.inc()
            published += 1
            log.info("gis_pulled", gis_appeal_guid=guid, event_id=str(event_id))
        await self.store.save_cursor("pull", {"hwm": newest.isoformat()}, self.clock())
        return published
