"""Notifier storage: appeal facts, the current deadline per appeal, the alert schedule, deliveries.

``NotifierRepository`` owns the collections and indexes and is the loops' store (scanner and
delivery, no transaction). ``MongoFacts``, ``MongoSchedule`` and ``MongoDeliveries`` are the
handlers' ports on one transaction's session (wired in ``uow.MongoNotifierUoW``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pymongo import ASCENDING
from pymongo.asynchronous.database import AsyncDatabase


async def _queue_once(col: Any, doc: dict[str, Any], session: Any) -> None:
    """Insert unless the id exists: an upsert that only sets on insert, so a repeat is no error (a
    duplicate-key error would abort the surrounding transaction)."""
    body = {k: v for k, v in doc.items() if k != "_id"}
    await col.update_one({"_id": doc["_id"]}, {"$setOnInsert": body}, upsert=True, session=session)


class NotifierRepository:
    def __init__(self, db: AsyncDatabase) -> None:
        self.facts_col = db["notifier_appeals"]
        self.deadlines = db["notifier_deadlines"]
        self.alerts = db["notifier_alerts"]
        self.deliveries = db["notifier_deliveries"]

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
        await self.deliveries.update_one(
            {"_id": delivery_id}, {"$set": {"state": state, "attempts": attempts, "finished_at": at, "reason": reason}}
        )

    # ---- reads for tests and operators -------------------------------------------------------------

    async def deadline(self, appeal_id: Any) -> dict[str, Any] | None:
        return await self.deadlines.find_one({"_id": str(appeal_id)})

    async def pending_count(self) -> int:
        return await self.alerts.count_documents({"state": "pending"})


# ---- the handlers' ports on one transaction -------------------------------------------------------


class MongoFacts:
    def __init__(self, col: Any, session: Any) -> None:
        self.col, self.session = col, session

    async def save(self, doc: dict[str, Any]) -> None:
        await self.col.replace_one({"_id": doc["_id"]}, doc, upsert=True, session=self.session)

    async def get(self, appeal_id: str) -> dict[str, Any] | None:
        return await self.col.find_one({"_id": appeal_id}, session=self.session)


class MongoSchedule:
    def __init__(self, deadlines: Any, alerts: Any, session: Any) -> None:
        self.deadlines, self.alerts, self.session = deadlines, alerts, session

    async def current(self, appeal_id: str) -> dict[str, Any] | None:
        return await self.deadlines.find_one({"_id": appeal_id}, session=self.session)

    async def plan(self, deadline: dict[str, Any], alerts: list[dict[str, Any]], replaces: bool) -> None:
        if replaces:  # a first plan has no pending alerts to cancel: no write for it
            await self.alerts.update_many(
                {"appeal_id": deadline["_id"], "state": "pending"}, {"$set": {"state": "cancelled"}}, session=self.session
            )
        await self.deadlines.replace_one({"_id": deadline["_id"]}, deadline, upsert=True, session=self.session)
        if alerts:
            await self.alerts.insert_many(alerts, session=self.session)

    async def stop(self, appeal_id: str) -> None:
        await self.alerts.update_many(
            {"appeal_id": appeal_id, "state": "pending"}, {"$set": {"state": "cancelled"}}, session=self.session
        )
        await self.deadlines.update_one({"_id": appeal_id}, {"$set": {"status": "stopped"}}, session=self.session)


class MongoDeliveries:
    def __init__(self, col: Any, session: Any) -> None:
        self.col, self.session = col, session

    async def queue(self, doc: dict[str, Any]) -> None:
        await _queue_once(self.col, doc, self.session)
