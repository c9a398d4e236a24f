"""Analytics storage: ``analytics_appeals``, one document per appeal (house-level facts only)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from pymongo import ASCENDING, DESCENDING
from pymongo.asynchronous.database import AsyncDatabase

from . import consultations as cs
from .readmodel import FIELDS

PROJECTION = {f: 1 for f in FIELDS}


class AnalyticsRepository:
    def __init__(self, db: AsyncDatabase) -> None:
        self.appeals = db["analytics_appeals"]
        self.consultations = db["analytics_consultations"]

    async def ensure_indexes(self) -> None:
        # every report filters on the registration time, optionally by district or channel first
        await self.appeals.create_index([("registered_at", ASCENDING)])
        await self.appeals.create_index([("district_id", ASCENDING), ("registered_at", ASCENDING)])
        await self.appeals.create_index([("channel", ASCENDING), ("registered_at", ASCENDING)])
        await self.appeals.create_index([("house_key", ASCENDING), ("registered_at", DESCENDING)])
        await self.consultations.create_index([("recorded_at", ASCENDING)])

    async def aggregate(self, pipeline: list[dict[str, Any]]) -> list[dict[str, Any]]:
        cursor = await self.appeals.aggregate(pipeline)
        return await cursor.to_list()

    async def consultation_counts(self, match: dict[str, Any]) -> list[dict[str, Any]]:
        cursor = await self.consultations.aggregate([{"$match": match}, cs.PIPELINE_GROUP])
        return await cursor.to_list()

    async def consultation_rows(self, match: dict[str, Any], batch: int = 1000) -> AsyncIterator[dict[str, Any]]:
        async for d in self.consultations.find(match, batch_size=batch).sort([("recorded_at", 1), ("_id", 1)]):
            yield d

    async def rows(self, match: dict[str, Any], projection: dict[str, Any], batch: int = 1000,
                   limit: int = 0, newest_first: bool = False) -> AsyncIterator[dict[str, Any]]:
        """Matching documents in registration order, ``projection`` fields only, read in batches."""
        order = -1 if newest_first else 1
        cursor = self.appeals.find(match, projection, batch_size=batch).sort([("registered_at", order), ("_id", order)])
        if limit:
            cursor = cursor.limit(limit)
        async for d in cursor:
            yield d
