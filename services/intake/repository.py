"""Intake storage on MongoDB: appeals (unique per channel + source id and per registration number),
per-year registration counters, and one small document per (house, category) with its open mass
incident. Every query is by ``_id`` or by an indexed field (see ``ensure_indexes``)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pymongo import ASCENDING, DESCENDING, ReplaceOne, ReturnDocument
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError, DuplicateKeyError

from zhkh_contracts import Appeal, Category, Channel
from zhkh_runtime.errors import TransientError

from .service import IncidentState, RecentAppeal, Submitted


def incident_key(house_key: str, category: Category) -> str:
    return f"{house_key}|{category.value}"


class IntakeRepository:
    """The collections, their indexes, and the ingress's status lookup (outside any transaction)."""

    def __init__(self, db: AsyncDatabase) -> None:
        self.appeals = db["intake_appeals"]
        self.counters = db["intake_counters"]
        self.incidents = db["intake_incident_state"]

    async def ensure_indexes(self) -> None:
        await self.appeals.create_index([("channel", ASCENDING), ("source_id", ASCENDING)], unique=True)
        await self.appeals.create_index("registration_number", unique=True)
        await self.appeals.create_index([("house_key", ASCENDING), ("category", ASCENDING), ("registered_at", DESCENDING)])
        await self.appeals.create_index(
            [("house_key", ASCENDING), ("category", ASCENDING), ("applicant_key", ASCENDING), ("registered_at", DESCENDING)]
        )

    async def find_by_source(self, channel: Channel, source_id: str) -> dict[str, Any] | None:
        return await self.appeals.find_one(
            {"channel": channel.value, "source_id": source_id},
            {"registration_number": 1, "registered_at": 1, "category": 1, "emergency": 1, "incident_id": 1,
             "submission_digest": 1, "access_code_hash": 1},
        )


class MongoAppeals:
    """Registered appeals on one transaction (the ``Appeals`` port). Inserts are buffered and
    written with one ``insert_many`` per batch (``flush``); every read also sees the appeals
    registered earlier in the same batch, so duplicates and incidents link within a batch too."""

    RECENT_LIMIT = 1000
    _RECENT_FIELDS = {"registration_number": 1, "applicant_key": 1, "registered_at": 1}

    def __init__(self, col: Any, session: AsyncClientSession | None) -> None:
        self.col, self.session = col, session
        self.pending: list[dict[str, Any]] = []  # inserted in this unit, not yet written
        self.marked: dict[str, str] = {}  # appeal id -> incident id, for appeals already stored
        self.known: dict[tuple[str, str], Submitted | None] = {}  # (channel, source_id) read ahead
        # (house, category) -> (since, newest-first appeals stored since then, whether cut at RECENT_LIMIT)
        self.windows: dict[tuple[str, str], tuple[datetime, list[RecentAppeal], bool]] = {}

    async def prefetch_submissions(self, keys: list[tuple[Channel, str]]) -> None:
        """Which of a batch's (channel, source_id) are registered, in one query per channel (a
        partition batch comes from one raw topic: one channel), by the unique index."""
        by_channel: dict[str, list[str]] = {}
        for ch, sid in keys:
            if (ch.value, sid) not in self.known:
                by_channel.setdefault(ch.value, []).append(sid)
        for ch, sids in by_channel.items():
            for sid in sids:
                self.known[(ch, sid)] = None
            cursor = self.col.find({"channel": ch, "source_id": {"$in": sids}}, {"source_id": 1, "submission_digest": 1},
                                   session=self.session)
            async for d in cursor:
                self.known[(ch, d["source_id"])] = Submitted(uuid.UUID(d["_id"]), d.get("submission_digest"))

    async def submission(self, channel: Channel, source_id: str) -> Submitted | None:
        """By the unique (channel, source_id) index."""
        for d in self.pending:
            if (d["channel"], d["source_id"]) == (channel.value, source_id):
                return Submitted(uuid.UUID(d["_id"]), d["submission_digest"])
        if (channel.value, source_id) in self.known:
            return self.known[(channel.value, source_id)]
        doc = await self.col.find_one(
            {"channel": channel.value, "source_id": source_id}, {"submission_digest": 1}, session=self.session
        )
        return Submitted(uuid.UUID(doc["_id"]), doc.get("submission_digest")) if doc else None

    def _recent(self, doc: dict[str, Any]) -> RecentAppeal:
        return RecentAppeal(uuid.UUID(doc["_id"]), doc["registration_number"], doc.get("applicant_key"), doc["registered_at"])

    def _pending(self, house_key: str, category: Category, since: datetime, who: str | None = None) -> list[RecentAppeal]:
        return [self._recent(d) for d in self.pending
                if d["house_key"] == house_key and d["category"] == category.value and d["registered_at"] >= since
                and (who is None or d["applicant_key"] == who)]

    async def _window(self, house_key: str, category: Category, since: datetime) -> tuple[list[RecentAppeal], bool]:
        """Stored appeals of (house, category) since ``since``, newest first, and whether the list
        may be incomplete (cut at RECENT_LIMIT). One query per (house, category) and batch: the
        duplicate check (72 h) and the incident window (24 h) share it."""
        key = (house_key, category.value)
        cached = self.windows.get(key)
        if cached is None or cached[0] > since:
            cursor = self.col.find(
                {"house_key": house_key, "category": category.value, "registered_at": {"$gte": since}},
                self._RECENT_FIELDS,
                sort=[("registered_at", DESCENDING)],
                limit=self.RECENT_LIMIT,
                session=self.session,
            )
            found = [self._recent(d) async for d in cursor]
            cached = (since, found, len(found) >= self.RECENT_LIMIT)
            self.windows[key] = cached
        _, found, cut = cached
        inside = [r for r in found if r.at >= since]
        return inside, cut and (not found or found[-1].at > since)

    async def latest_of_applicant(self, house_key: str, category: Category, who: str, since: datetime) -> RecentAppeal | None:
        """From the (house, category) window; by the (house_key, category, applicant_key,
        registered_at) index when the window was cut short."""
        mine = self._pending(house_key, category, since, who)
        if mine:
            return max(mine, key=lambda r: r.at)
        stored, cut = await self._window(house_key, category, since)
        hit = next((r for r in stored if r.applicant_key == who), None)
        if hit is not None or not cut:
            return hit
        doc = await self.col.find_one(
            {"house_key": house_key, "category": category.value, "applicant_key": who, "registered_at": {"$gte": since}},
            self._RECENT_FIELDS,
            sort=[("registered_at", DESCENDING)],
            session=self.session,
        )
        return self._recent(doc) if doc else None

    async def recent(self, house_key: str, category: Category, since: datetime) -> list[RecentAppeal]:
        """Earlier appeals for this house and category since ``since`` (at most RECENT_LIMIT, newest
        first), by the (house_key, category, registered_at) index."""
        stored, _ = await self._window(house_key, category, since)
        return sorted(self._pending(house_key, category, since) + stored, key=lambda r: r.at, reverse=True)[: self.RECENT_LIMIT]

    async def insert(self, appeal: Appeal, applicant_key: str | None, digest: str,
                     access_code_hash: str | None = None) -> None:
        doc = appeal.model_dump(mode="json")
        doc["_id"] = doc.pop("appeal_id")
        doc["registered_at"] = appeal.registered_at  # a BSON date, for the windowed queries
        doc["applicant_key"] = applicant_key
        doc["submission_digest"] = digest
        doc["access_code_hash"] = access_code_hash  # never the code itself (zhkh_runtime.access_codes)
        self.pending.append(doc)

    async def set_incident(self, appeal_ids: list[uuid.UUID], incident_id: uuid.UUID) -> None:
        ids = {str(a) for a in appeal_ids}
        for d in self.pending:
            if d["_id"] in ids:
                d["incident_id"] = str(incident_id)
                ids.discard(d["_id"])
        for a in ids:
            self.marked[a] = str(incident_id)

    async def flush(self) -> None:
        """One insert_many for the batch's appeals, one update per incident for stored ones. A taken
        (channel, source_id) or number means a concurrent registration committed first: a
        TransientError, so the records are retried one by one and then find it (``submission``)."""
        if self.pending:
            try:
                await self.col.insert_many(self.pending, ordered=True, session=self.session)
            except (DuplicateKeyError, BulkWriteError) as exc:
                raise TransientError("appeal registered concurrently (channel + source_id or number taken)") from exc
            self.pending = []
        by_incident: dict[str, list[str]] = {}
        for a, inc in self.marked.items():
            by_incident.setdefault(inc, []).append(a)
        for inc, ids in by_incident.items():
            await self.col.update_many({"_id": {"$in": ids}}, {"$set": {"incident_id": inc}}, session=self.session)
        self.marked = {}


class MongoCounters:
    """Per-year registration counters on one transaction (the ``Counters`` port): the first number
    of a batch is one ``$inc`` that returns the new value; the rest of the batch's numbers follow it
    in memory and ``flush`` adds them with one ``$inc``. In the registering transaction, so a rolled
    back batch gives its numbers back and concurrent registrations conflict on the counter (one
    retries): numbers stay unique. (SecantusDB's find_one_and_update scans the collection; it holds
    one document per year.)"""

    def __init__(self, col: Any, session: AsyncClientSession | None) -> None:
        self.col, self.session = col, session
        self.last: dict[int, int] = {}
        self.owed: dict[int, int] = {}

    async def next(self, year: int) -> int:
        if year in self.last:
            self.last[year] += 1
            self.owed[year] = self.owed.get(year, 0) + 1
            return self.last[year]
        doc = await self.col.find_one_and_update(
            {"_id": f"registration:{year}"}, {"$inc": {"seq": 1}},
            upsert=True, return_document=ReturnDocument.AFTER, session=self.session,
        )
        self.last[year] = int(doc["seq"])
        return self.last[year]

    async def flush(self) -> None:
        for year, n in self.owed.items():
            await self.col.update_one({"_id": f"registration:{year}"}, {"$inc": {"seq": n}}, session=self.session)
        self.owed = {}


class MongoIncidents:
    """The open incident per (house, category) on one transaction (the ``Incidents`` port): read
    once per batch and key, written once per batch and key (``flush``)."""

    def __init__(self, col: Any, session: AsyncClientSession | None) -> None:
        self.col, self.session = col, session
        self.states: dict[str, IncidentState] = {}
        self.dirty: set[str] = set()

    async def load(self, house_key: str, category: Category) -> IncidentState:
        key = incident_key(house_key, category)
        if key in self.states:
            return self.states[key]
        doc = await self.col.find_one({"_id": key}, session=self.session)
        state = IncidentState(key=key) if doc is None else IncidentState(
            key=key,
            incident_id=uuid.UUID(doc["incident_id"]) if doc.get("incident_id") else None,
            last_at=doc.get("last_at"),
        )
        self.states[key] = state
        return state

    async def save(self, state: IncidentState) -> None:
        self.states[state.key] = state
        self.dirty.add(state.key)

    async def flush(self) -> None:
        """Written on every registration, so concurrent registrations for the same house and
        category conflict (one retries) and incident counting never misses an appeal."""
        if not self.dirty:
            return
        ops = []
        for key in sorted(self.dirty):
            st = self.states[key]
            body = {"incident_id": str(st.incident_id) if st.incident_id else None, "last_at": st.last_at}
            ops.append(ReplaceOne({"_id": key}, body, upsert=True))
        try:
            await self.col.bulk_write(ops, ordered=True, session=self.session)
        except (DuplicateKeyError, BulkWriteError) as exc:  # two first appeals for this house+category at once
            raise TransientError("concurrent first appeal for this house and category") from exc
        self.dirty = set()
