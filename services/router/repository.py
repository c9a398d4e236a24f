"""Router storage: one lifecycle document per appeal (with a version for optimistic concurrency) and
the directory (parties, districts, houses)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from pymongo import ASCENDING, AsyncMongoClient, UpdateOne
from pymongo.asynchronous.database import AsyncDatabase

from zhkh_contracts import AppealStatus, Category, PartyKind
from zhkh_runtime.errors import TransientError
from zhkh_runtime.mongo import aware

from .directory import Directory, District, House, Party
from .history import APPLIED, HistoryEntry
from .lifecycle import AppealState

SINGLETON_KINDS = [PartyKind.CITY_DEPARTMENT.value, PartyKind.HOUSING_INSPECTION.value]
CLOSED = [AppealStatus.CLOSED.value, AppealStatus.WITHDRAWN.value]


def _state_doc(s: AppealState) -> dict[str, Any]:
    return {
        "_id": str(s.appeal_id),
        "registration_number": s.number,
        "house_key": s.house_key,
        "category": s.category.value,
        "status": s.status.value,
        "version": s.version,
        "party_id": s.party_id,
        "party_kind": s.party_kind.value if s.party_kind else None,
        "level": s.level,
        "bounces": list(s.bounces),
        "extension_used": s.extension_used,
        "incident_id": str(s.incident_id) if s.incident_id else None,
        "emergency": s.emergency,
        "district_id": s.district_id,
        "open": s.status.value not in CLOSED,
        "answered_at": s.answered_at,
        "asked_at": s.asked_at,
        "closed_at": s.closed_at,
        "closed_reason": s.closed_reason,
    }


def _state(d: dict[str, Any]) -> AppealState:
    return AppealState(
        appeal_id=uuid.UUID(d["_id"]),
        number=d["registration_number"],
        house_key=d["house_key"],
        category=Category(d["category"]),
        status=AppealStatus(d["status"]),
        version=d["version"],
        party_id=d.get("party_id"),
        party_kind=PartyKind(d["party_kind"]) if d.get("party_kind") else None,
        level=d.get("level", 0),
        bounces=tuple(d.get("bounces", ())),
        extension_used=d.get("extension_used", False),
        incident_id=uuid.UUID(d["incident_id"]) if d.get("incident_id") else None,
        district_id=d.get("district_id"),
        emergency=d.get("emergency", False),
        answered_at=aware(d.get("answered_at")),
        asked_at=aware(d.get("asked_at")),
        closed_at=aware(d.get("closed_at")),
        closed_reason=d.get("closed_reason"),
    )


class RouterRepository:
    def __init__(self, db: AsyncDatabase, client: AsyncMongoClient | None = None) -> None:
        self.client = client
        self.appeals = db["router_appeals"]
        self.parties = db["router_parties"]
        self.districts = db["router_districts"]
        self.houses = db["router_houses"]
        self.meta = db["router_meta"]
        self.details = db["router_appeal_details"]
        self.history_col = db["appeal_history"]

    async def ensure_indexes(self) -> None:
        await self.history_col.create_index([("appeal_id", ASCENDING), ("at", ASCENDING)])
        await self.appeals.create_index("registration_number", unique=True)
        await self.appeals.create_index([("house_key", ASCENDING), ("open", ASCENDING)])
        await self.appeals.create_index([("party_id", ASCENDING), ("status", ASCENDING)])
        await self.appeals.create_index("incident_id")
        await self.appeals.create_index([("status", ASCENDING), ("answered_at", ASCENDING)])  # closing the loop
        await self.parties.create_index("kind")
        # lifecycle documents from before deadline_generation existed (set_deadline filters on it)
        await self.appeals.update_many({"deadline_generation": {"$exists": False}}, {"$set": {"deadline_generation": 0}})

    def appeals_in(self, session: Any) -> MongoAppeals:
        return MongoAppeals(self.appeals, session, self.details)

    def history_in(self, session: Any) -> MongoHistory:
        return MongoHistory(self.history_col, session)

    async def history(self, appeal_id: uuid.UUID | str, limit: int = 100) -> list[HistoryEntry]:
        """An appeal's audit trail, oldest first (no personal data: router.history)."""
        return await MongoHistory(self.history_col, None).history(appeal_id, limit)

    async def load_directory(self) -> Directory:
        """The whole directory, for the router's in-memory cache."""
        def strip(doc: dict[str, Any]) -> dict[str, Any]:
            return {k: v for k, v in doc.items() if k not in ("_id",)}

        return Directory(
            parties={d["_id"]: Party.model_validate(strip(d)) async for d in self.parties.find({})},
            districts={d["_id"]: District.model_validate(strip(d)) async for d in self.districts.find({})},
            houses={d["_id"]: House.model_validate(strip(d)) async for d in self.houses.find({})},
        )

    async def directory_stamp(self) -> Any:
        doc = await self.meta.find_one({"_id": "directory"})
        return doc.get("stamp") if doc else None

    async def replace_directory(self, d: Directory) -> None:
        """All or nothing: the whole directory is replaced in one transaction."""
        assert self.client is not None
        async with self.client.start_session() as session, await session.start_transaction():
            for col in (self.parties, self.districts, self.houses):
                await col.delete_many({}, session=session)
            for col, items, key in (
                (self.parties, d.parties.values(), "party_id"),
                (self.districts, d.districts.values(), "district_id"),
                (self.houses, d.houses.values(), "house_key"),
            ):
                docs = [{"_id": getattr(i, key), **i.model_dump(mode="json")} for i in items]
                if docs:
                    await col.insert_many(docs, session=session)
            # a new stamp tells every router's cache to reload (DirectoryCache)
            await self.meta.replace_one({"_id": "directory"}, {"_id": "directory", "stamp": uuid.uuid4().hex,
                                                               "imported_at": datetime.now(UTC)},
                                        upsert=True, session=session)

    async def directory_counts(self) -> dict[str, int]:
        return {
            "parties": await self.parties.count_documents({}),
            "districts": await self.districts.count_documents({}),
            "houses": await self.houses.count_documents({}),
        }

    # ---- read side ---------------------------------------------------------------------------

    async def by_number(self, number: str) -> dict[str, Any] | None:
        return await self.appeals.find_one({"registration_number": number})

    async def find(self, query: dict[str, Any], limit: int) -> list[dict[str, Any]]:
        return await self.appeals.find(query).sort("registration_number", 1).limit(limit).to_list()


class MongoAppeals:
    """The lifecycle documents on one transaction (the router's ``Appeals`` port). States read or
    written in the unit are kept (identity map); saves and deadlines are buffered and written with
    one ``bulk_write`` per batch (``flush``), each save still a compare-and-set on the version."""

    def __init__(self, col: Any, session: Any, details: Any = None) -> None:
        self.col, self.session, self.details_col = col, session, details
        self.details_pending: dict[str, dict[str, Any]] = {}
        self.states: dict[str, AppealState | None] = {}
        self.saves: dict[str, tuple[AppealState, int]] = {}  # appeal id -> (state, version it was read at)
        self.deadlines: dict[str, dict[str, Any]] = {}
        self.stored_due: dict[str, dict[str, Any] | None] = {}  # the stored deadline of each document read

    def _keep(self, doc: dict[str, Any]) -> AppealState:
        self.stored_due[doc["_id"]] = doc.get("deadline")
        return _state(doc)

    async def load(self, appeal_id: uuid.UUID | str) -> AppealState | None:
        key = str(appeal_id)
        if key not in self.states:
            doc = await self.col.find_one({"_id": key}, session=self.session)
            self.states[key] = self._keep(doc) if doc else None
        return self.states[key]

    async def due_at(self, appeal_id: uuid.UUID | str) -> datetime | None:
        """The buffered plan if this unit has one, else the stored deadline (read with the state)."""
        key = str(appeal_id)
        if key not in self.stored_due:
            doc = await self.col.find_one({"_id": key}, {"deadline": 1}, session=self.session)
            self.stored_due[key] = doc.get("deadline") if doc else None
        stored, buffered = self.stored_due[key], self.deadlines.get(key)
        newest = max((d for d in (stored, buffered) if d), key=lambda d: d["generation"], default=None)
        due = newest["due_at"] if newest else None
        return aware(due)

    async def members(self, incident_id: uuid.UUID) -> list[AppealState]:
        cursor = self.col.find({"incident_id": str(incident_id)}, session=self.session).sort("registration_number", 1)
        stored = {d["_id"]: self._keep(d) async for d in cursor}
        for key, st in self.states.items():  # this unit's own changes win
            if st is not None and st.incident_id == incident_id:
                stored[key] = st
            elif key in stored:
                stored.pop(key)
        return sorted(stored.values(), key=lambda s: s.number)

    async def create(self, state: AppealState) -> bool:
        """Insert the first state; False if the appeal is already known (a replayed registration)."""
        key = str(state.appeal_id)
        if self.states.get(key) is not None:
            return False
        now = datetime.now(UTC)
        res = await self.col.update_one(
            {"_id": key},
            {"$setOnInsert": {**_state_doc(state), "deadline_generation": 0, "created_at": now, "updated_at": now}},
            upsert=True,
            session=self.session,
        )
        if res.upserted_id is None:
            return False
        self.states[key] = state
        return True

    async def keep_details(self, appeal_id: uuid.UUID, details: dict[str, Any]) -> None:
        """Personal data and the access code's hash, kept apart from the lifecycle documents (only
        the parties' and staff API read them; a retention job can purge them alone)."""
        self.details_pending.setdefault(str(appeal_id), details)  # written in bulk by flush

    async def save(self, state: AppealState, expected_version: int) -> None:
        """Compare-and-set on the version: a concurrent change makes the flush fail and the batch
        retry on the fresh state, so two transitions are never both applied to the same version."""
        key = str(state.appeal_id)
        first = self.saves.get(key)
        self.saves[key] = (state, first[1] if first else expected_version)
        self.states[key] = state

    async def set_deadline(self, appeal_id: uuid.UUID, generation: int, due_at: datetime, regime: str, tz: str) -> None:
        """Only a newer plan replaces the stored one (a replay must not move the deadline back). The
        filter is the _id plus a plain comparison (an $or made the embedded database scan the
        collection: 140 ms a call at 20k appeals)."""
        key = str(appeal_id)
        cur = self.deadlines.get(key)
        if cur is None or cur["generation"] < generation:
            self.deadlines[key] = {"generation": generation, "due_at": due_at, "regime": regime, "timezone": tz}

    async def flush(self) -> None:
        ops: list[Any] = []
        now = datetime.now(UTC)
        for key, (state, version) in self.saves.items():
            doc = _state_doc(state)
            doc.pop("_id")
            ops.append(UpdateOne({"_id": key, "version": version}, {"$set": {**doc, "updated_at": now}}))
        if ops:
            res = await self.col.bulk_write(ops, ordered=True, session=self.session)
            if res.matched_count != len(ops):
                raise TransientError(f"version conflict on {len(ops) - res.matched_count} appeal(s)")
        deadline_ops = [
            UpdateOne({"_id": key, "deadline_generation": {"$lt": d["generation"]}},
                      {"$set": {"deadline_generation": d["generation"], "deadline": d}})
            for key, d in self.deadlines.items()
        ]
        if deadline_ops:
            await self.col.bulk_write(deadline_ops, ordered=False, session=self.session)
        if self.details_pending:
            await self.details_col.bulk_write(
                [UpdateOne({"_id": key}, {"$setOnInsert": d}, upsert=True) for key, d in self.details_pending.items()],
                ordered=False, session=self.session)
        for key, d in self.deadlines.items():  # what is stored now, for a later read in this unit
            if key in self.stored_due and (self.stored_due[key] or {}).get("generation", 0) < d["generation"]:
                self.stored_due[key] = d
        self.saves, self.deadlines, self.details_pending = {}, {}, {}


def _history_doc(e: HistoryEntry) -> dict[str, Any]:
    return {
        "_id": e.id, "appeal_id": str(e.appeal_id), "at": e.at, "action": e.action, "outcome": e.outcome,
        "rank": 0 if e.outcome == APPLIED else 1, "actor": e.actor, "actor_subject": e.actor_subject, "via": e.via,
        "cause_event_id": str(e.cause_event_id), "status": e.status, "from_status": e.from_status,
        "version": e.version, "party_id": e.party_id, "code": e.code,
    }


def _history_entry(d: dict[str, Any]) -> HistoryEntry:
    at = d["at"]
    return HistoryEntry(
        appeal_id=uuid.UUID(d["appeal_id"]), at=aware(at), action=d["action"],
        outcome=d["outcome"], actor=d.get("actor"), actor_subject=d.get("actor_subject"), via=d.get("via", ""),
        cause_event_id=uuid.UUID(d["cause_event_id"]), status=d.get("status"), version=d["version"],
        from_status=d.get("from_status"), party_id=d.get("party_id"), code=d.get("code"),
    )


class MongoHistory:
    """The audit trail on one transaction: entries buffered, written with the batch's state in one
    ``bulk_write`` of upserts keyed by (appeal, cause event), so a redelivery adds nothing."""

    def __init__(self, col: Any, session: Any) -> None:
        self.col, self.session = col, session
        self.pending: dict[str, HistoryEntry] = {}

    async def add(self, entry: HistoryEntry) -> None:
        self.pending.setdefault(entry.id, entry)

    async def history(self, appeal_id: uuid.UUID | str, limit: int = 100) -> list[HistoryEntry]:
        cursor = self.col.find({"appeal_id": str(appeal_id)}, session=self.session).sort(
            [("version", ASCENDING), ("rank", ASCENDING), ("at", ASCENDING)]).limit(limit)
        return [_history_entry(d) async for d in cursor]

    async def flush(self) -> None:
        if self.pending:
            ops = [UpdateOne({"_id": key}, {"$setOnInsert": _history_doc(e)}, upsert=True) for key, e in self.pending.items()]
            await self.col.bulk_write(ops, ordered=False, session=self.session)
        self.pending = {}


class DirectoryCache:
    """The directory held in memory: routing reads no database. Reloaded when an import stamps a
    new version (checked at most every ``check_s`` seconds, so an import takes effect that soon)."""

    def __init__(self, repo: RouterRepository, check_s: float = 5.0, clock: Any = None) -> None:
        import time

        self.repo = repo
        self.check_s = check_s
        self.clock = clock or time.monotonic
        self.directory = Directory()
        self.stamp: Any = object()
        self.checked_at = float("-inf")

    async def current(self) -> Directory:
        now = self.clock()
        if now - self.checked_at >= self.check_s:
            self.checked_at = now
            stamp = await self.repo.directory_stamp()
            if stamp != self.stamp:
                self.directory = await self.repo.load_directory()
                self.stamp = stamp
        return self.directory
