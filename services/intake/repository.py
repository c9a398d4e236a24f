"""Intake storage: appeals (unique per channel + source id) and registration counters."""

from __future__ import annotations

from typing import Any

from pymongo import ASCENDING, ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from zhkh_contracts import Appeal, Channel
from zhkh_runtime.errors import TransientError
from zhkh_runtime.records import OutboundRecord


class IntakeRepository:
    def __init__(self, db: AsyncDatabase) -> None:
        self.appeals = db["intake_appeals"]
        self.counters = db["intake_counters"]

    async def ensure_indexes(self) -> None:
        await self.appeals.create_index([("channel", ASCENDING), ("source_id", ASCENDING)], unique=True)
        await self.appeals.create_index("registration_number", unique=True)
        await self.appeals.create_index("house_key")

    async def next_sequence(self, year: int, session: Any) -> int:
        doc = await self.counters.find_one_and_update(
            {"_id": f"registration:{year}"},
            {"$inc": {"seq": 1}},
            upsert=True,
            return_document=ReturnDocument.AFTER,
            session=session,
        )
        return int(doc["seq"])

    async def registered_record(self, channel: Channel, source_id: str, session: Any) -> OutboundRecord | None:
        doc = await self.appeals.find_one(
            {"channel": channel.value, "source_id": source_id}, {"registered_record": 1}, session=session
        )
        return OutboundRecord.from_doc(doc["registered_record"]) if doc else None

    async def insert(self, appeal: Appeal, registered: OutboundRecord, session: Any) -> None:
        doc = appeal.model_dump(mode="json")
        doc["_id"] = doc.pop("appeal_id")
        doc["registered_record"] = registered.to_doc()
        try:
            await self.appeals.insert_one(doc, session=session)
        except DuplicateKeyError as exc:
            # A concurrent registration of the same (channel, source_id): retrying finds it.
            raise TransientError("concurrent registration of the same submission") from exc

    async def get_by_number(self, number: str) -> dict[str, Any] | None:
        return await self.appeals.find_one({"registration_number": number})
