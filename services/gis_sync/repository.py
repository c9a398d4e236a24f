"""gis_sync storage.

* ``gis_links``: one document per appeal that came from ГИС ЖКХ (``_id`` = our appeal id): its
  AppealGUID, the next queue sequence number, what we asked ГИС for, and what ГИС confirmed
  (``confirmed.*``; reconciliation compares that with exportAppeal).
* ``gis_queue``: the actions to mirror (``_id`` = TransportGUID), ordered per appeal by ``seq``;
  ``state`` pending -> submitted (MessageGUID stored) -> done | failed.
* ``gis_pulled``: every AppealGUID handed to intake (``_id`` = AppealGUID).
* ``gis_cursor``: the pull high-water mark and an export request in flight.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterable
from datetime import datetime
from typing import Any

from pymongo import ASCENDING, AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

ACTIVE = ("pending", "submitted")


class GisRepository:
    """The storage behind ports.GisStore; ``bound(session)`` is the same on one transaction."""

    def __init__(self, db: AsyncDatabase, client: AsyncMongoClient | None = None, session: Any = None) -> None:
        self.db, self.client, self.session = db, client, session
        self.links = db["gis_links"]
        self.queue = db["gis_queue"]
        self.pulled_col = db["gis_pulled"]
        self.cursor = db["gis_cursor"]

    def bound(self, session: Any) -> GisRepository:
        return GisRepository(self.db, self.client, session)

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[GisRepository]:
        assert self.client is not None
        async with self.client.start_session() as session, await session.start_transaction():
            yield self.bound(session)

    async def ensure_indexes(self) -> None:
        await self.queue.create_index([("state", ASCENDING), ("appeal_id", ASCENDING), ("seq", ASCENDING)])
        await self.queue.create_index([("appeal_id", ASCENDING), ("seq", ASCENDING)], unique=True)
        await self.links.create_index([("appeal_guid", ASCENDING)])

    # ---- links ------------------------------------------------------------------------------------

    async def create_link(self, doc: dict[str, Any]) -> bool:
        """False if the link exists (an upsert, not an insert: a duplicate key inside a transaction
        would abort it)."""
        res = await self.links.update_one({"_id": doc["_id"]}, {"$setOnInsert": doc}, upsert=True, session=self.session)
        return res.upserted_id is not None

    async def link(self, appeal_id: str) -> dict[str, Any] | None:
        return await self.links.find_one({"_id": appeal_id}, session=self.session)

    async def update_link(self, appeal_id: str, changes: dict[str, Any]) -> None:
        if changes:
            await self.links.update_one({"_id": appeal_id}, {"$set": changes}, session=self.session)

    async def open_links(self, limit: int) -> list[dict[str, Any]]:
        """Links ГIS has not closed yet (reconciliation candidates)."""
        cursor = self.links.find({"closed": {"$ne": True}}).limit(limit)
        return await cursor.to_list()

    # ---- queue ------------------------------------------------------------------------------------

    async def enqueue(self, link: dict[str, Any], items: list[dict[str, Any]]) -> None:
        """Append items to the appeal's queue; seq continues from the link's next_seq (same transaction)."""
        if not items:
            return
        seq = int(link.get("next_seq", 0))
        for item in items:
            item["seq"] = seq
            seq += 1
        await self.queue.insert_many(items, session=self.session)
        await self.links.update_one({"_id": link["_id"]}, {"$set": {"next_seq": seq}}, session=self.session)
        link["next_seq"] = seq

    async def active_items(self, limit: int) -> list[dict[str, Any]]:
        cursor = self.queue.find({"state": {"$in": list(ACTIVE)}}).sort([("appeal_id", 1), ("seq", 1)]).limit(limit)
        return await cursor.to_list()

    async def has_active(self, appeal_ids: Iterable[str]) -> set[str]:
        cursor = self.queue.find({"state": {"$in": list(ACTIVE)}, "appeal_id": {"$in": list(appeal_ids)}}, {"appeal_id": 1})
        return {d["appeal_id"] async for d in cursor}

    async def set_items(self, ids: Iterable[str], changes: dict[str, Any], expect_state: str | None = None) -> None:
        ids = list(ids)
        if not ids:
            return
        flt: dict[str, Any] = {"_id": {"$in": ids}}
        if expect_state:
            flt["state"] = expect_state
        await self.queue.update_many(flt, {"$set": changes})

    async def set_item(self, item_id: str, changes: dict[str, Any]) -> None:
        await self.queue.update_one({"_id": item_id}, {"$set": changes})

    async def items_of(self, appeal_id: str) -> list[dict[str, Any]]:
        return await self.queue.find({"appeal_id": appeal_id}).sort("seq", 1).to_list()

    async def count_by_state(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for state in ("pending", "submitted", "done", "failed"):
            out[state] = await self.queue.count_documents({"state": state})
        return out

    # ---- pull -------------------------------------------------------------------------------------

    async def pulled(self, guid: str) -> dict[str, Any] | None:
        return await self.pulled_col.find_one({"_id": guid})

    async def mark_pulled(self, guid: str, doc: dict[str, Any]) -> None:
        await self.pulled_col.update_one({"_id": guid}, {"$set": doc}, upsert=True)

    async def cursor_doc(self, name: str) -> dict[str, Any]:
        return await self.cursor.find_one({"_id": name}) or {"_id": name}

    async def save_cursor(self, name: str, changes: dict[str, Any], now: datetime) -> None:
        await self.cursor.update_one({"_id": name}, {"$set": {**changes, "updated_at": now}}, upsert=True)


class MongoGisUoW:
    """The consumer's unit of work: the links and the queue on the engine's transaction."""

    def __init__(self, links: GisRepository) -> None:
        self.links = links


class MemoryLinks:
    """Links and the queue in memory (fast tests of behaviour); ``snapshot``/``restore`` give the
    in-memory tracking its rollback."""

    def __init__(self) -> None:
        self.links: dict[str, dict[str, Any]] = {}
        self.queue: list[dict[str, Any]] = []

    async def link(self, appeal_id: str) -> dict[str, Any] | None:
        doc = self.links.get(appeal_id)
        return dict(doc) if doc is not None else None

    async def create_link(self, doc: dict[str, Any]) -> bool:
        if doc["_id"] in self.links:
            return False
        self.links[doc["_id"]] = dict(doc)
        return True

    async def update_link(self, appeal_id: str, changes: dict[str, Any]) -> None:
        if appeal_id in self.links and changes:
            self.links[appeal_id].update(changes)

    async def enqueue(self, link: dict[str, Any], items: list[dict[str, Any]]) -> None:
        if not items:
            return
        seq = int(self.links[link["_id"]].get("next_seq", 0))
        for item in items:
            if any(q["_id"] == item["_id"] for q in self.queue):
                raise ValueError(f"duplicate TransportGUID {item['_id']}")
            self.queue.append({**item, "seq": seq})
            seq += 1
        self.links[link["_id"]]["next_seq"] = seq
        link["next_seq"] = seq


class MemoryGisUoW:
    def __init__(self) -> None:
        self.links = MemoryLinks()

    def snapshot(self) -> Any:
        import copy

        return copy.deepcopy(self.links)

    def restore(self, snap: Any) -> None:
        self.links = snap
