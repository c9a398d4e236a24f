"""The analytics unit of work: the read model, with one bulk write per batch (MongoDB) or a dict."""

from __future__ import annotations

import copy
from typing import Any, Protocol

from pymongo import ReplaceOne

from zhkh_runtime.engine import Message

from .repository import PROJECTION


class ReadModel(Protocol):
    async def get(self, appeal_id: str) -> dict[str, Any] | None: ...

    def put(self, doc: dict[str, Any]) -> None: ...


class AnalyticsUoW(Protocol):
    message: Message
    appeals: ReadModel
    consultations: ReadModel


class MongoReadModel:
    """Documents read once per batch and kept (identity map); written together by ``flush``."""

    def __init__(self, col: Any, session: Any, projection: dict[str, Any] | None = PROJECTION) -> None:
        self.col, self.session, self.projection = col, session, projection
        self.docs: dict[str, dict[str, Any] | None] = {}
        self.dirty: set[str] = set()

    async def get(self, appeal_id: str) -> dict[str, Any] | None:
        if appeal_id not in self.docs:
            self.docs[appeal_id] = await self.col.find_one({"_id": appeal_id}, self.projection, session=self.session)
        return self.docs[appeal_id]

    def put(self, doc: dict[str, Any]) -> None:
        self.docs[doc["_id"]] = doc
        self.dirty.add(doc["_id"])

    async def flush(self) -> None:
        if self.dirty:
            # replace_one, not find_one_and_update: SecantusDB's findAndModify scans the collection
            await self.col.bulk_write([ReplaceOne({"_id": i}, self.docs[i], upsert=True) for i in sorted(self.dirty)],
                                      ordered=False, session=self.session)
            self.dirty.clear()


class MongoAnalyticsUoW:
    def __init__(self, col: Any, session: Any, consultations: Any = None) -> None:
        self.appeals = MongoReadModel(col, session)
        # consultations (ConsultationRecorded/Converted): their own collection, whole documents
        self.consultations = MongoReadModel(consultations, session, None) if consultations is not None else None

    async def flush(self) -> None:
        await self.appeals.flush()
        if self.consultations is not None:
            await self.consultations.flush()


class MemoryReadModel:
    def __init__(self) -> None:
        self.docs: dict[str, dict[str, Any]] = {}

    async def get(self, appeal_id: str) -> dict[str, Any] | None:
        return self.docs.get(appeal_id)

    def put(self, doc: dict[str, Any]) -> None:
        self.docs[doc["_id"]] = doc


class MemoryAnalyticsUoW:
    def __init__(self) -> None:
        self.appeals = MemoryReadModel()
        self.consultations = MemoryReadModel()

    def snapshot(self) -> Any:
        return copy.deepcopy((self.appeals.docs, self.consultations.docs))

    def restore(self, snap: Any) -> None:
        self.appeals.docs, self.consultations.docs = snap
