"""Intake storage: appeals (unique per channel + source id), registration counters, and one
document per (house, category) holding recent appeals and the open mass incident."""

from __future__ import annotations

import uuid
from typing import Any

from pymongo import ASCENDING, ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from zhkh_contracts import Appeal, Category, Channel
from zhkh_runtime.errors import TransientError
from zhkh_runtime.records import OutboundRecord

from .service import HouseTopic, RecentAppeal


class IntakeRepository:
    def __init__(self, db: AsyncDatabase) -> None:
        self.appeals = db["intake_appeals"]
        self.counters = db["intake_counters"]
        self.house_topics = db["intake_house_topics"]

    async def ensure_indexes(self) -> None:
        await self.appeals.create_index([("channel", ASCENDING), ("source_id", ASCENDING)], unique=True)
        await self.appeals.create_index("registration_number", unique=True)
        await self.appeals.create_index([("house_key", ASCENDING), ("category", ASCENDING)])
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

    async def insert(self, appeal: Appeal, records: list[OutboundRecord], session: Any) -> None:
        doc = appeal.model_dump(mode="json")
        doc["_id"] = doc.pop("appeal_id")
        doc["registered_records"] = [r.to_doc() for r in records]
        try:
            await self.appeals.insert_one(doc, session=session)
        except DuplicateKeyError as exc:
            # A concurrent registration of the same (channel, source_id): retrying finds it.
            raise TransientError("concurrent registration of the same submission") from exc

    async def load_house_topic(self, house_key: str, category: Category, session: Any) -> HouseTopic:
        key = f"{house_key}|{category.value}"
        doc = await self.house_topics.find_one({"_id": key}, session=session)
        if doc is None:
            return HouseTopic(key=key)
        return HouseTopic(
            key=key,
            recent=[
                RecentAppeal(uuid.UUID(r["appeal_id"]), r["number"], r.get("applicant_key"), r["at"])
                for r in doc.get("recent", [])
            ],
            incident_id=uuid.UUID(doc["incident_id"]) if doc.get("incident_id") else None,
            incident_last_at=doc.get("incident_last_at"),
        )

    async def save_house_topic(self, state: HouseTopic, session: Any) -> None:
        """Writing the document makes concurrent registrations for the same house and category
        conflict (one retries), so incident counting never misses an appeal."""
        body = {
            "recent": [
                {"appeal_id": str(r.appeal_id), "number": r.number, "applicant_key": r.applicant_key, "at": r.at}
                for r in state.recent
            ],
            "incident_id": str(state.incident_id) if state.incident_id else None,
            "incident_last_at": state.incident_last_at,
        }
        try:
            await self.house_topics.replace_one({"_id": state.key}, body, upsert=True, session=session)
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
