"""MongoDB storage of the outage register: ``router_outages`` (one document per outage, versioned),
``router_outage_log`` (every applied or refused outage event, by event id: what the API waits for) and
``router_outage_links`` (which appeals an outage concerns, and how they were linked). No personal data."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from pymongo import ASCENDING, UpdateOne
from pymongo.asynchronous.database import AsyncDatabase

from zhkh_contracts import OutageKind, OutageResource
from zhkh_runtime.engine import Message
from zhkh_runtime.errors import TransientError
from zhkh_runtime.mongo import aware

from .outages import Outcome, OutageState, Resident
from .uow import MongoRouterUoW


def state_doc(s: OutageState) -> dict[str, Any]:
    return {
        "_id": str(s.outage_id), "resource": s.resource.value, "kind": s.kind.value, "house_keys": list(s.house_keys),
        "district_id": s.district_id, "starts_at": s.starts_at, "expected_restore_at": s.expected_restore_at,
        "party_id": s.party_id, "registered_at": s.registered_at, "registered_by": s.registered_by, "ref": s.ref,
        "restored_at": s.restored_at, "active": s.active, "version": s.version, "changes": list(s.changes),
    }


def state_of(d: dict[str, Any]) -> OutageState:
    return OutageState(
        outage_id=uuid.UUID(d["_id"]), resource=OutageResource(d["resource"]), kind=OutageKind(d["kind"]),
        house_keys=tuple(d.get("house_keys", ())), district_id=d.get("district_id"),
        starts_at=aware(d["starts_at"]), expected_restore_at=aware(d["expected_restore_at"]),  # type: ignore[arg-type]
        party_id=d["party_id"], registered_at=aware(d["registered_at"]),  # type: ignore[arg-type]
        registered_by=d.get("registered_by", ""), ref=d.get("ref"), restored_at=aware(d.get("restored_at")),
        version=d.get("version", 1),
        changes=tuple({**c, "at": aware(c["at"]), "from": aware(c["from"]), "to": aware(c["to"])}
                      for c in d.get("changes", ())),
    )


class OutageRepository:
    """The collections, their indexes, and the reads of the API (outside any transaction)."""

    def __init__(self, db: AsyncDatabase) -> None:
        self.outages = db["router_outages"]
        self.log = db["router_outage_log"]
        self.links = db["router_outage_links"]
        self.appeals = db["router_appeals"]

    async def ensure_indexes(self) -> None:
        await self.outages.create_index([("resource", ASCENDING), ("house_keys", ASCENDING), ("active", ASCENDING)])
        await self.outages.create_index([("resource", ASCENDING), ("district_id", ASCENDING), ("active", ASCENDING)])
        await self.outages.create_index([("party_id", ASCENDING), ("active", ASCENDING)])
        await self.outages.create_index("starts_at")
        await self.log.create_index([("outage_id", ASCENDING), ("at", ASCENDING)])
        await self.links.create_index("outage_id")
        await self.appeals.create_index([("category", ASCENDING), ("district_id", ASCENDING)])

    def in_session(self, session: Any) -> MongoOutages:
        return MongoOutages(self, session)

    async def get(self, outage_id: str) -> OutageState | None:
        d = await self.outages.find_one({"_id": outage_id})
        return state_of(d) if d else None

    async def find(self, query: dict[str, Any], limit: int) -> list[OutageState]:
        cursor = self.outages.find(query).sort([("starts_at", -1), ("_id", 1)]).limit(limit)
        return [state_of(d) async for d in cursor]

    async def entry(self, event_id: str) -> dict[str, Any] | None:
        return await self.log.find_one({"_id": event_id}, {"_id": 0})

    async def entries(self, outage_id: str, limit: int = 200) -> list[dict[str, Any]]:
        return await self.log.find({"outage_id": outage_id}, {"_id": 0}).sort("at", 1).limit(limit).to_list()

    async def linked_count(self, outage_id: str) -> int:
        return await self.links.count_documents({"outage_id": outage_id})


class MongoOutages:
    """The ``Outages`` port on one transaction (writes go straight to the session: an outage event is
    one per batch item and rare next to appeals, so no bulk buffering)."""

    def __init__(self, repo: OutageRepository, session: Any) -> None:
        self.repo, self.session = repo, session

    async def load(self, outage_id: uuid.UUID) -> OutageState | None:
        d = await self.repo.outages.find_one({"_id": str(outage_id)}, session=self.session)
        return state_of(d) if d else None

    async def save(self, state: OutageState, expected_version: int) -> None:
        doc = state_doc(state)
        key = doc.pop("_id")
        now = datetime.now(UTC)
        if expected_version == 0:
            res = await self.repo.outages.update_one({"_id": key}, {"$setOnInsert": {**doc, "updated_at": now}},
                                                     upsert=True, session=self.session)
            if res.upserted_id is None:
                raise TransientError("outage registered concurrently")
            return
        res = await self.repo.outages.update_one({"_id": key, "version": expected_version},
                                                 {"$set": {**doc, "updated_at": now}}, session=self.session)
        if res.matched_count != 1:
            raise TransientError("version conflict on an outage")

    async def in_force(self, house_key: str | None, district_id: str | None, resource: OutageResource,
                       at: datetime) -> list[OutageState]:
        where: list[dict[str, Any]] = []
        if house_key:
            where.append({"house_keys": house_key})
        if district_id:
            where.append({"district_id": district_id})
        if not where:
            return []
        found: dict[str, OutageState] = {}
        for w in where:  # one indexed query per branch (an $or made the embedded database scan)
            async for d in self.repo.outages.find({"resource": resource.value, "active": True, **w},
                                                  session=self.session):
                s = state_of(d)
                if s.in_force(at):
                    found[d["_id"]] = s
        return sorted(found.values(), key=lambda s: s.starts_at)

    async def residents(self, s: OutageState, answered_since: datetime) -> list[Resident]:
        where: list[dict[str, Any]] = []
        if s.house_keys:
            where.append({"house_key": {"$in": list(s.house_keys)}})
        if s.district_id:
            where.append({"district_id": s.district_id})
        found: dict[str, Resident] = {}
        for w in where:
            base = {"category": s.resource.value, **w}
            for cond in ({"open": True}, {"status": "closed", "answered_at": {"$gte": answered_since}}):
                async for d in self.repo.appeals.find({**base, **cond}, {"registration_number": 1},
                                                      session=self.session):
                    found[d["_id"]] = Resident(uuid.UUID(d["_id"]), d["registration_number"])
        return sorted(found.values(), key=lambda r: r.number)

    async def link(self, outage_id: uuid.UUID, appeal_ids: Iterable[uuid.UUID], how: str, at: datetime) -> None:
        ops = [UpdateOne({"_id": f"{outage_id}:{a}"},
                         {"$setOnInsert": {"outage_id": str(outage_id), "appeal_id": str(a), "how": how, "at": at}},
                         upsert=True) for a in appeal_ids]
        if ops:  # one round trip for every resident of an outage
            await self.repo.links.bulk_write(ops, ordered=False, session=self.session)

    async def log(self, cause: Message, outage_id: uuid.UUID, action: str, actor: str, at: datetime,
                  result: Outcome) -> None:
        await self.repo.log.update_one(
            {"_id": str(cause.id)},
            {"$setOnInsert": {"outage_id": str(outage_id), "action": action, "actor": actor, "at": at,
                              "outcome": result.outcome, "code": result.code, "via": cause.source,
                              "cause_event_id": str(cause.id)}},
            upsert=True, session=self.session)


class MongoOutageUoW(MongoRouterUoW):
    """The router's unit of work with the outage register on the same transaction."""

    def __init__(self, *args: Any, outages: MongoOutages) -> None:
        super().__init__(*args)
        self.outages = outages
