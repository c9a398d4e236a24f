"""intake's ports: what its handler may touch, and their MongoDB and in-memory adapters."""

from __future__ import annotations

import copy
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from zhkh_contracts import Appeal, Category, Channel, RawAppealSubmitted
from zhkh_runtime.engine import Message
from zhkh_runtime.errors import TransientError

from .repository import IntakeRepository, MongoAppeals, MongoCounters, MongoIncidents, incident_key
from .service import IncidentState, RecentAppeal, Submitted


class Appeals(Protocol):
    async def submission(self, channel: Channel, source_id: str) -> Submitted | None: ...

    async def latest_of_applicant(self, house_key: str, category: Category, who: str, since: datetime) -> RecentAppeal | None: ...

    async def recent(self, house_key: str, category: Category, since: datetime) -> list[RecentAppeal]: ...

    async def insert(self, appeal: Appeal, applicant_key: str | None, digest: str,
                     access_code_hash: str | None = None) -> None: ...

    async def set_incident(self, appeal_ids: list[uuid.UUID], incident_id: uuid.UUID) -> None: ...


class Counters(Protocol):
    async def next(self, year: int) -> int: ...


class Incidents(Protocol):
    async def load(self, house_key: str, category: Category) -> IncidentState: ...

    async def save(self, state: IncidentState) -> None: ...


class IntakeUoW(Protocol):
    message: Message
    appeals: Appeals
    counters: Counters
    incidents: Incidents


class MongoIntakeUoW:
    """The ports on one MongoDB transaction (``session``); built by the engine per transaction."""

    def __init__(self, repo: IntakeRepository, session: Any) -> None:
        self.appeals = MongoAppeals(repo.appeals, session)
        self.counters = MongoCounters(repo.counters, session)
        self.incidents = MongoIncidents(repo.incidents, session)

    async def prefetch(self, events: list[Any]) -> None:
        """Called by the runtime with a batch's events: which submissions are known, in one query."""
        await self.appeals.prefetch_submissions(
            [(e.channel, e.source_id) for e in events if isinstance(e, RawAppealSubmitted)])

    async def flush(self) -> None:
        """The batch's buffered writes (called by the runtime before the markers are written)."""
        await self.counters.flush()
        await self.appeals.flush()
        await self.incidents.flush()


# ---- in memory, for fast tests of behaviour -------------------------------------------------------


@dataclass
class StoredAppeal:
    appeal: Appeal
    applicant_key: str | None
    digest: str | None
    access_code_hash: str | None = None


@dataclass
class MemoryAppeals:
    """The same unique constraints as the collection's indexes: (channel, source_id), number."""

    by_id: dict[uuid.UUID, StoredAppeal] = field(default_factory=dict)

    async def submission(self, channel: Channel, source_id: str) -> Submitted | None:
        for s in self.by_id.values():
            if (s.appeal.channel, s.appeal.source_id) == (channel, source_id):
                return Submitted(s.appeal.appeal_id, s.digest)
        return None

    def _window(self, house_key: str, category: Category, since: datetime) -> list[RecentAppeal]:
        found = [s for s in self.by_id.values()
                 if s.appeal.house_key == house_key and s.appeal.category == category and s.appeal.registered_at >= since]
        found.sort(key=lambda s: s.appeal.registered_at, reverse=True)
        return [RecentAppeal(s.appeal.appeal_id, s.appeal.registration_number, s.applicant_key, s.appeal.registered_at)
                for s in found]

    async def latest_of_applicant(self, house_key: str, category: Category, who: str, since: datetime) -> RecentAppeal | None:
        return next((r for r in self._window(house_key, category, since) if r.applicant_key == who), None)

    async def recent(self, house_key: str, category: Category, since: datetime) -> list[RecentAppeal]:
        return self._window(house_key, category, since)[: MongoAppeals.RECENT_LIMIT]

    async def insert(self, appeal: Appeal, applicant_key: str | None, digest: str,
                     access_code_hash: str | None = None) -> None:
        a = appeal
        if any((s.appeal.channel, s.appeal.source_id) == (a.channel, a.source_id)
               or s.appeal.registration_number == a.registration_number for s in self.by_id.values()):
            raise TransientError("appeal registered concurrently (channel + source_id or number taken)")
        self.by_id[a.appeal_id] = StoredAppeal(a, applicant_key, digest, access_code_hash)

    async def set_incident(self, appeal_ids: list[uuid.UUID], incident_id: uuid.UUID) -> None:
        for a in appeal_ids:
            s = self.by_id[a]
            s.appeal = s.appeal.model_copy(update={"incident_id": incident_id})


@dataclass
class MemoryCounters:
    seq: dict[int, int] = field(default_factory=dict)

    async def next(self, year: int) -> int:
        self.seq[year] = self.seq.get(year, 0) + 1
        return self.seq[year]


@dataclass
class MemoryIncidents:
    states: dict[str, tuple[uuid.UUID | None, datetime | None]] = field(default_factory=dict)

    async def load(self, house_key: str, category: Category) -> IncidentState:
        key = incident_key(house_key, category)
        incident_id, last_at = self.states.get(key, (None, None))
        return IncidentState(key, incident_id, last_at)

    async def save(self, state: IncidentState) -> None:
        self.states[state.key] = (state.incident_id, state.last_at)


class MemoryIntakeUoW:
    """intake's unit of work in memory; snapshot/restore give MemoryTracking its rollback."""

    message: Message

    def __init__(self) -> None:
        self.appeals = MemoryAppeals()
        self.counters = MemoryCounters()
        self.incidents = MemoryIncidents()

    def snapshot(self) -> Any:
        return copy.deepcopy((self.appeals, self.counters, self.incidents))

    def restore(self, snap: Any) -> None:
        self.appeals, self.counters, self.incidents = snap
