"""Intake storage: appeals (unique per channel + source id), registration counters, and one
document per (house, category) holding recent appeals and the open mass incident."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pymongo import ASCENDING, DESCENDING, ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from zhkh_contracts import Appeal, Category, Channel
from zhkh_runtime.errors import TransientError
from zhkh_runtime.records import OutboundRecord

from .service import AlreadyRegistered, IncidentState, RecentAppeal


class IntakeRepository:
    RECENT_LIMIT = 1000
    _RECENT_FIELDS = {"registration_number": 1, "applicant_key": 1, "registered_at": 1}
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
        await self.appeals.create_index("incident_id")

    async def next_sequence(self, year: int, session: Any) -> int:
        doc = await self.counters.find_one_and_update(
            {"_id": f"registration:{year}"},
            {"$inc": {"seq": 1}},
            upsert=True,
            return_document=ReturnDocument.AFTER,
            session=session,
        )
        return int(doc["seq"])

    async def registered_records(self, channel: Channel, source_id: str, session: Any) -> list[OutboundRecord] | None:
        doc = await self.appeals.find_one(
            {"channel": channel.value, "source_id": source_id}, {"registered_records": 1}, session=session
        )
        return [OutboundRecord.from_doc(d) for d in doc["registered_records"]] if doc else None

    async def insert(self, appeal: Appeal, who: str | None, records: list[OutboundRecord], session: Any) -> None:
        """Raises AlreadyRegistered when (channel, source_id) is taken (the unique index decides)."""
        doc = appeal.model_dump(mode="json")
        doc["_id"] = doc.pop("appeal_id")
        doc["registered_at"] = appeal.registered_at  # a BSON date, for the windowed queries
        doc["applicant_key"] = who
        doc["registered_records"] = [r.to_doc() for r in records]
        try:
            await self.appeals.insert_one(doc, session=session)
        except DuplicateKeyError as exc:
            raise AlreadyRegistered from exc

    def _recent(self, doc: dict[str, Any]) -> RecentAppeal:
        return RecentAppeal(uuid.UUID(doc["_id"]), doc["registration_number"], doc.get("applicant_key"), doc["registered_at"])

    async def latest_of_applicant(
        self, house_key: str, category: Category, who: str, since: datetime, session: Any
    ) -> RecentAppeal | None:
        doc = await self.appeals.find_one(
            {"house_key": house_key, "category": category.value, "applicant_key": who, "registered_at": {"$gte": since}},
            self._RECENT_FIELDS,
            sort=[("registered_at", DESCENDING)],
            session=session,
        )
        return self._recent(doc) if doc else None

    async def recent(self, house_key: str, category: Category, since: datetime, session: Any) -> list[RecentAppeal]:
        """Earlier appeals for this house and category since ``since`` (at most RECENT_LIMIT, newest)."""
        cursor = self.appeals.find(
            {"house_key": house_key, "category": category.value, "registered_at": {"$gte": since}},
            self._RECENT_FIELDS,
            sort=[("registered_at", DESCENDING)],
            limit=self.RECENT_LIMIT,
            session=session,
        )
        return [self._recent(d) async for d in cursor]

    async def load_incident_state(self, house_key: str, category: Category, session: Any) -> IncidentState:
        key = f"{house_key}|{category.value}"
        doc = await self.incidents.find_one({"_id": key}, session=session)
        if doc is None:
            return IncidentState(key=key)
        return IncidentState(
            key=key,
            incident_id=uuid.UUID(doc["incident_id"]) if doc.get("incident_id") else None,
            last_at=doc.get("last_at"),
        )

    async def save_incident_state(self, state: IncidentState, session: Any) -> None:
        """Written on every registration, so concurrent registrations for the same house and
        category conflict (one retries) and incident counting never misses an appeal."""
        body = {"incident_id": str(state.incident_id) if state.incident_id else None, "last_at": state.last_at}
        try:
            await self.incidents.replace_one({"_id": state.key}, body, upsert=True, session=session)
        except DuplicateKeyError as exc:  # two first appeals for this house+category at once
            raise TransientError("concurrent first appeal for this house and category") from exc

    async def set_incident(self, appeal_ids: list[uuid.UUID], incident_id: uuid.UUID | None, session: Any) -> None:
        if appeal_ids:
            await self.appeals.update_many(
                {"_id": {"$in": [str(a) for a in appeal_ids]}},
                {"$set": {"incident_id": str(incident_id)}},
                session=session,
            )

    async def find_by_source(self, channel: Channel, source_id: str) -> dict[str, Any] | None:
        return await self.appeals.find_one(
            {"channel": channel.value, "source_id": source_id},
            {"registration_number": 1, "registered_at": 1, "category": 1, "emergency": 1, "incident_id": 1},
        )
