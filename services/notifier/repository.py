"""Notifier storage: appeal facts, the current deadline per appeal, the alert schedule, deliveries.

``NotifierRepository`` owns the collections and indexes and is the loops' store (scanner and
delivery, no transaction). ``MongoFacts``, ``MongoSchedule`` and ``MongoDeliveries`` are the
handlers' ports on one transaction's session (wired in ``uow.MongoNotifierUoW``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import bson
from pymongo import ASCENDING, InsertOne, ReplaceOne, UpdateMany, UpdateOne
from pymongo.asynchronous.database import AsyncDatabase


def _once(doc: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Insert unless the id exists: an upsert that only sets on insert, so a repeat is no error (a
    duplicate-key error would abort the surrounding transaction). The filter and the update."""
    return {"_id": doc["_id"]}, {"$setOnInsert": {k: v for k, v in doc.items() if k != "_id"}}


async def _queue_once(col: Any, doc: dict[str, Any], session: Any) -> None:
    await col.update_one(*_once(doc), upsert=True, session=session)


class NotifierRepository:
    def __init__(self, db: AsyncDatabase) -> None:
        self.facts_col = db["notifier_appeals"]
        self.deadlines = db["notifier_deadlines"]
        self.alerts = db["notifier_alerts"]
        self.deliveries = db["notifier_deliveries"]
        self.letters = db["notifier_letters"]  # paper answer letters (letters.py): personal data, kept apart

    async def ensure_indexes(self) -> None:
        await self.alerts.create_index([("state", ASCENDING), ("alert_at", ASCENDING)])
        await self.alerts.create_index([("appeal_id", ASCENDING), ("state", ASCENDING)])
        await self.deliveries.create_index([("state", ASCENDING), ("not_before", ASCENDING)])

    # ---- the loops' store (NotifierStore) ---------------------------------------------------------

    async def due_alerts(self, now: datetime, limit: int) -> list[dict[str, Any]]:
        cursor = self.alerts.find({"state": "pending", "alert_at": {"$lte": now}}).sort("alert_at", 1).limit(limit)
        return await cursor.to_list()

    async def mark_sent(self, alert_id: str, now: datetime) -> None:
        # update_one, not find_one_and_update: SecantusDB's findAndModify scans the collection
        # (178 ms against 3 ms at 10k alerts, measured), and the document is not needed back.
        await self.alerts.update_one({"_id": alert_id, "state": "pending"}, {"$set": {"state": "sent", "sent_at": now}})

    async def queue_delivery(self, doc: dict[str, Any]) -> None:
        await _queue_once(self.deliveries, doc, None)  # queued already (a resent alert): one delivery per id

    async def due_deliveries(self, now: datetime, limit: int) -> list[dict[str, Any]]:
        cursor = self.deliveries.find({"state": "pending", "not_before": {"$lte": now}}).sort("not_before", 1).limit(limit)
        return await cursor.to_list()

    async def retry_delivery(self, delivery_id: str, attempts: int, at: datetime) -> None:
        await self.deliveries.update_one({"_id": delivery_id}, {"$set": {"attempts": attempts, "not_before": at}})

    async def finish_delivery(self, delivery_id: str, state: str, attempts: int, at: datetime, reason: str | None = None) -> None:
        # done (sent or failed): the access code of a "registered" notice is not kept
        await self.deliveries.update_one(
            {"_id": delivery_id},
            {"$set": {"state": state, "attempts": attempts, "finished_at": at, "reason": reason}, "$unset": {"access_code": ""}},
        )

    # ---- reads for tests and operators -------------------------------------------------------------

    async def deadline(self, appeal_id: Any) -> dict[str, Any] | None:
        return await self.deadlines.find_one({"_id": str(appeal_id)})

    async def pending_count(self) -> int:
        return await self.alerts.count_documents({"state": "pending"})


# ---- the handlers' ports on one transaction: an identity map, writes in bulk at flush ----------
#
# Each port keeps what the batch read or wrote (served from memory afterwards, as the database would
# give it back: the stored BSON decoded with the collection's codec, so milliseconds and UTC) and
# buffers its writes; ``flush`` (called by MongoTracking before the markers) writes them with one
# bulk_write per collection. Every handler in the batch sees what the ones before it wrote.


def _as_stored(col: Any, doc: dict[str, Any]) -> dict[str, Any]:
    """``doc`` as a read would return it after writing it (datetimes to the millisecond, tz as the client's)."""
    return bson.decode(bson.encode(doc), codec_options=col.codec_options)


class MongoFacts:
    def __init__(self, col: Any, session: Any) -> None:
        self.col, self.session = col, session
        self.docs: dict[str, dict[str, Any] | None] = {}
        self.dirty: list[str] = []  # ids to replace, in the order first saved

    async def save(self, doc: dict[str, Any]) -> None:
        if doc["_id"] not in self.dirty:
            self.dirty.append(doc["_id"])
        self.docs[doc["_id"]] = _as_stored(self.col, doc)

    async def prefetch(self, appeal_ids: list[str]) -> None:
        """The batch's appeals' facts in one query (by _id)."""
        missing = [i for i in dict.fromkeys(appeal_ids) if i not in self.docs]
        if missing:
            found = {d["_id"]: d async for d in self.col.find({"_id": {"$in": missing}}, session=self.session)}
            for i in missing:
                self.docs[i] = found.get(i)

    async def get(self, appeal_id: str) -> dict[str, Any] | None:
        if appeal_id not in self.docs:
            self.docs[appeal_id] = await self.col.find_one({"_id": appeal_id}, session=self.session)
        doc = self.docs[appeal_id]
        return dict(doc) if doc is not None else None

    async def flush(self) -> None:
        if self.dirty:
            await self.col.bulk_write([ReplaceOne({"_id": i}, self.docs[i], upsert=True) for i in self.dirty],
                                      ordered=False, session=self.session)
            self.dirty.clear()


class MongoSchedule:
    """Deadlines through the identity map; alerts as buffered inserts and cancellations.

    A cancellation (a replan, a stop) marks the alerts this batch is about to insert for that appeal
    as cancelled in the buffer, and cancels the appeal's pending alerts already stored with one
    ``UpdateMany`` for every such appeal together, written before the inserts: so an alert inserted
    and cancelled in one batch is stored cancelled, as if each event had its own transaction."""

    def __init__(self, deadlines: Any, alerts: Any, session: Any) -> None:
        self.deadlines, self.alerts, self.session = deadlines, alerts, session
        self.docs: dict[str, dict[str, Any] | None] = {}
        self.dirty: list[str] = []  # deadline ids to replace (docs holds them)
        self.stops: list[str] = []  # deadline ids never read: stopped by an update of their status
        self.inserts: list[dict[str, Any]] = []  # alerts to insert, in order
        self.cancel: list[str] = []  # appeals whose stored pending alerts are cancelled
        self.fresh: set[str] = set()  # appeals with no stored alerts (no stored deadline)

    async def prefetch(self, appeal_ids: list[str]) -> None:
        """The batch's appeals' deadlines in one query (by _id), read as ``current`` would."""
        missing = [i for i in dict.fromkeys(appeal_ids) if i not in self.docs and i not in self.stops]
        if missing:
            found = {d["_id"]: d async for d in self.deadlines.find({"_id": {"$in": missing}}, session=self.session)}
            for i in missing:
                if found.get(i) is None:  # alerts are written only with their deadline: none stored either
                    self.fresh.add(i)
                self.docs[i] = found.get(i)

    async def current(self, appeal_id: str) -> dict[str, Any] | None:
        if appeal_id not in self.docs:
            doc = await self.deadlines.find_one({"_id": appeal_id}, session=self.session)
            if doc is None:  # alerts are written only with their deadline: none stored either
                self.fresh.add(appeal_id)
            elif appeal_id in self.stops:  # stopped earlier in this batch, before anything read it
                doc["status"] = "stopped"
                self.stops.remove(appeal_id)
                self._touch(appeal_id)
            self.docs[appeal_id] = doc
        doc = self.docs[appeal_id]
        return dict(doc) if doc is not None else None

    def _touch(self, appeal_id: str) -> None:
        if appeal_id not in self.dirty:
            self.dirty.append(appeal_id)

    def _cancel_pending(self, appeal_id: str) -> None:
        for a in self.inserts:
            if a["appeal_id"] == appeal_id and a["state"] == "pending":
                a["state"] = "cancelled"
        if appeal_id not in self.fresh and appeal_id not in self.cancel:
            self.cancel.append(appeal_id)

    async def plan(self, deadline: dict[str, Any], alerts: list[dict[str, Any]], replaces: bool) -> None:
        aid = deadline["_id"]
        if replaces:  # a first plan has no pending alerts to cancel: no write for it
            self._cancel_pending(aid)
        else:
            self.fresh.add(aid)
        self.stops = [i for i in self.stops if i != aid]  # replaced whole
        self.docs[aid] = _as_stored(self.deadlines, deadline)
        self._touch(aid)
        self.inserts += [dict(a) for a in alerts]  # a repeated id fails at flush, as it did when inserted at once

    async def stop(self, appeal_id: str) -> None:
        self._cancel_pending(appeal_id)
        if appeal_id in self.docs:
            doc = self.docs[appeal_id]
            if doc is not None:
                doc["status"] = "stopped"
                self._touch(appeal_id)
        elif appeal_id not in self.stops:
            self.stops.append(appeal_id)

    async def flush(self) -> None:
        deadlines = [ReplaceOne({"_id": i}, self.docs[i], upsert=True) for i in self.dirty]
        deadlines += [UpdateOne({"_id": i}, {"$set": {"status": "stopped"}}) for i in self.stops]
        if deadlines:
            await self.deadlines.bulk_write(deadlines, ordered=False, session=self.session)
        alerts: list[Any] = []
        if self.cancel:  # before the inserts: only alerts stored by earlier batches are pending there
            alerts.append(UpdateMany({"appeal_id": {"$in": self.cancel}, "state": "pending"},
                                     {"$set": {"state": "cancelled"}}))
        alerts += [InsertOne(a) for a in self.inserts]
        if alerts:
            await self.alerts.bulk_write(alerts, ordered=True, session=self.session)
        self.dirty, self.stops, self.inserts, self.cancel = [], [], [], []
        self.fresh.clear()  # their alerts are stored now


class MongoInsertOnce:
    """A port on one transaction that inserts documents once per id (``_once``), buffered until ``flush``:
    a repeat in this batch or one stored already changes nothing (the letters of the print queue)."""

    def __init__(self, col: Any, session: Any) -> None:
        self.col, self.session = col, session
        self.queued: dict[str, dict[str, Any]] = {}

    async def queue(self, doc: dict[str, Any]) -> None:
        self.queued.setdefault(doc["_id"], dict(doc))  # once per id, in this batch as in the database

    async def flush(self) -> None:
        if self.queued:
            await self.col.bulk_write([UpdateOne(*_once(d), upsert=True) for d in self.queued.values()], ordered=False,
                                      session=self.session)
            self.queued.clear()


class MongoDeliveries(MongoInsertOnce):
    """Deliveries: inserted once per id, and rescheduled (quiet hours moved) while not tried yet."""

    def __init__(self, col: Any, session: Any) -> None:
        super().__init__(col, session)
        self.rescheduled: dict[str, datetime] = {}

    async def reschedule(self, delivery_id: str, not_before: datetime) -> None:
        d = self.queued.get(delivery_id)
        if d is not None:  # queued in this batch: not written yet
            d["not_before"] = not_before
        else:
            self.rescheduled[delivery_id] = not_before

    async def flush(self) -> None:
        await super().flush()
        if self.rescheduled:
            await self.col.bulk_write([UpdateOne({"_id": k, "state": "pending", "attempts": 0}, {"$set": {"not_before": at}})
                                       for k, at in self.rescheduled.items()], ordered=False, session=self.session)
            self.rescheduled.clear()
