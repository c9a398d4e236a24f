"""Router storage: one lifecycle document per appeal, with a version for optimistic concurrency."""

from __future__ import annotations

from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from zhkh_contracts import Appeal, AppealAssigned


class RouterRepository:
    def __init__(self, db: AsyncDatabase) -> None:
        self.appeals = db["router_appeals"]

    async def ensure_indexes(self) -> None:
        await self.appeals.create_index("house_key")
        await self.appeals.create_index([("party_id", 1), ("status", 1)])

    async def create(self, appeal: Appeal, assigned: AppealAssigned, session: Any) -> None:
        await self.appeals.insert_one(
            {
                "_id": str(appeal.appeal_id),
                "registration_number": appeal.registration_number,
                "house_key": appeal.house_key,
                "category": appeal.category.value,
                "status": "assigned",
                "party_id": assigned.party_id,
                "party_kind": assigned.party_kind.value,
                "assigned_at": assigned.assigned_at,
                "version": 1,
            },
            session=session,
        )

    async def get(self, appeal_id: str) -> dict[str, Any] | None:
        return await self.appeals.find_one({"_id": appeal_id})
