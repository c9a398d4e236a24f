"""Intake storage on MongoDB: appeals (unique per channel + source id and per registration number),
per-year registration counters, and one small document per (house, category) with its open mass
incident. Every query is by ``_id`` or by an indexed field (see ``ensure_indexes``)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pymongo import ASCENDING, DESCENDING, ReturnDocument
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

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
             "submission_digest": 1},
        )


class MongoAppeals:
    """Registered appeals on one transaction (the ``Appeals`` port)."""

    RECENT_LIMIT = 1000
    _RECENT_FIELDS = {"registration_number": 1, "applicant_key": 1, "registered_at": 1}

    def __init__(self, col: Any, session: AsyncClientSession | None) -> None:
        self.col, self.session = col, session

    async def submission(self, channel: Channel, source_id: str) -> Submitted | None:
        """By the unique (channel, source_id) index."""
        doc = await self.col.find_one(
            {"channel": channel.value, "source_id": source_id}, {"submission_digest": 1}, session=self.session
        )
        return Submitted(uuid.UUID(doc["_id"]), doc.get("submission_digest")) if doc else None

    def _recent(self, doc: dict[str, Any]) -> RecentAppeal:
        return RecentAppeal(uuid.UUID(doc["_id"]), doc["registration_number"], doc.get("applicant_key"), doc["registered_at"])

    async def latest_of_applicant(self, house_key: str, category: Category, who: str, since: datetime) -> RecentAppeal | None:
        """By the (house_key, category, applicant_key, registered_at) index."""
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
        cursor = self.col.find(
            {"house_key": house_key, "category": category.value, "registered_at": {"$gte": since}},
            self._RECENT_FIELDS,
            sort=[("registered_at", DESCENDING)],
            limit=self.RECENT_LIMIT,
            session=self.session,
        )
        return [self._recent(d) async for d in cursor]

    async def insert(self, appeal: Appeal, applicant_key: str | None, digest: str) -> None:
        """A taken (channel, source_id) or number means a concurrent registration committed first:
        a TransientError, so the record is retried and then finds it (``submission``)."""
        doc = appeal.model_dump(mode="json")
        doc["_id"] = doc.pop("appeal_id")
        doc["registered_at"] = appeal.registered_at  # a BSON date, for the windowed queries
        doc["applicant_key"] = applicant_key
        doc["submission_digest"] = digest
        try:
            await self.col.insert_one(doc, session=self.session)
        except DuplicateKeyError as exc:
            raise TransientError("appeal registered concurrently (channel + source_id or number taken)") from exc

    async def set_incident(self, appeal_ids: list[uuid.UUID], incident_id: uuid.UUID) -> None:
        """By ``_id``."""
        if appeal_ids:
            await self.col.update_many(
                {"_id": {"$in": [str(a) for a in appeal_ids]}}, {"$set": {"incident_id": str(incident_id)}},
                session=self.session,
            )


class MongoCounters:
    """Per-year registration counters on one transaction (the ``Counters`` port)."""

    def __init__(self, col: Any, session: AsyncClientSession | None) -> None:
        self.col, self.session = col, session

    async def next(self, year: int) -> int:
        """One ``$inc`` with upsert that returns the new value (no read after the write). It is in
        the registering transaction, so a rolled-back registration gives its number back and two
        concurrent ones conflict on the counter (one retries): numbers stay unique. SecantusDB's
        find_one_and_update scans the collection; this one holds one document per year."""
        doc = await self.col.find_one_and_update(
            {"_id": f"registration:{year}"}, {"$inc": {"seq": 1}},
            upsert=True, return_document=ReturnDocument.AFTER, session=self.session,
        )
        return int(doc["seq"])


class MongoIncidents:
    """The open incident per (house, category) on one transaction (the ``Incidents`` port)."""

    def __init__(self, col: Any, session: AsyncClientSession | None) -> None:
        self.col, self.session = col, session

    async def load(self, house_key: str, category: Category) -> IncidentState:
        key = incident_key(house_key, category)
        doc = await self.col.find_one({"_id": key}, session=self.session)
        if doc is None:
            return IncidentState(key=key)
        return IncidentState(
            key=key,
            incident_id=uuid.UUID(doc["incident_id"]) if doc.get("incident_id") else None,
            last_at=doc.get("last_at"),
        )

    async def save(self, state: IncidentState) -> None:
        """Written on every registration, so concurrent registrations for the same house and
        category conflict (one retries) and incident counting never misses an appeal."""
        body = {"incident_id": str(state.incident_id) if state.incident_id else None, "last_at": state.last_at}
        try:
            await self.col.replace_one({"_id": state.key}, body, upsert=True, session=self.session)
        except DuplicateKeyError as exc:  # two first appeals for this house+category at once
            raise TransientError("concurrent first appeal for this house and category") from exc
