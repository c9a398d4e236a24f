"""The router's ports: what its handlers may touch, and their MongoDB and in-memory adapters."""

from __future__ import annotations

import copy
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from zhkh_runtime.engine import Message

from .directory import Directory
from .history import HistoryEntry
from .lifecycle import AppealState
from .repository import DirectoryCache, MongoAppeals, MongoHistory


class Appeals(Protocol):
    async def load(self, appeal_id: uuid.UUID | str) -> AppealState | None: ...

    async def members(self, incident_id: uuid.UUID) -> list[AppealState]: ...

    async def create(self, state: AppealState) -> bool: ...

    async def save(self, state: AppealState, expected_version: int) -> None: ...

    async def set_deadline(self, appeal_id: uuid.UUID, generation: int, due_at: datetime, regime: str, tz: str) -> None: ...

    async def due_at(self, appeal_id: uuid.UUID | str) -> datetime | None:
        """The latest planned deadline kept for the appeal (None: none planned yet)."""
        ...

    async def keep_details(self, appeal_id: uuid.UUID, details: dict[str, Any]) -> None:
        """What the parties' API shows the assigned party (text, address, contacts) and the access
        code's hash; written once, at registration."""
        ...


class History(Protocol):
    """The audit trail (router.history): appended in the unit of work, read oldest first."""

    async def add(self, entry: HistoryEntry) -> None: ...

    async def history(self, appeal_id: uuid.UUID | str, limit: int = 100) -> list[HistoryEntry]: ...


class RouterUoW(Protocol):
    message: Message
    appeals: Appeals
    history: History

    async def directory(self) -> Directory: ...


class MongoRouterUoW:
    def __init__(self, appeals: MongoAppeals, cache: DirectoryCache, history: MongoHistory) -> None:
        self.appeals = appeals
        self.history = history
        self._cache = cache

    async def directory(self) -> Directory:
        return await self._cache.current()

    async def flush(self) -> None:
        """The batch's buffered writes (called by the runtime before the markers are written)."""
        await self.appeals.flush()
        await self.history.flush()


# ---- in memory, for fast tests of behaviour -------------------------------------------------------


@dataclass
class MemoryAppeals:
    states: dict[str, AppealState] = field(default_factory=dict)
    deadlines: dict[str, dict[str, Any]] = field(default_factory=dict)
    details: dict[str, dict[str, Any]] = field(default_factory=dict)

    async def keep_details(self, appeal_id: uuid.UUID, details: dict[str, Any]) -> None:
        self.details.setdefault(str(appeal_id), details)

    async def load(self, appeal_id: uuid.UUID | str) -> AppealState | None:
        return self.states.get(str(appeal_id))

    async def members(self, incident_id: uuid.UUID) -> list[AppealState]:
        return sorted((s for s in self.states.values() if s.incident_id == incident_id), key=lambda s: s.number)

    async def create(self, state: AppealState) -> bool:
        if str(state.appeal_id) in self.states or any(s.number == state.number for s in self.states.values()):
            return False
        self.states[str(state.appeal_id)] = state
        return True

    async def save(self, state: AppealState, expected_version: int) -> None:
        from zhkh_runtime.errors import TransientError

        cur = self.states.get(str(state.appeal_id))
        if cur is None or cur.version != expected_version:
            raise TransientError("version conflict")
        self.states[str(state.appeal_id)] = state

    async def set_deadline(self, appeal_id: uuid.UUID, generation: int, due_at: datetime, regime: str, tz: str) -> None:
        cur = self.deadlines.get(str(appeal_id))
        if str(appeal_id) in self.states and (cur is None or cur["generation"] < generation):
            self.deadlines[str(appeal_id)] = {"generation": generation, "due_at": due_at, "regime": regime, "timezone": tz}

    async def due_at(self, appeal_id: uuid.UUID | str) -> datetime | None:
        d = self.deadlines.get(str(appeal_id))
        return d["due_at"] if d else None


@dataclass
class MemoryHistory:
    entries: dict[str, HistoryEntry] = field(default_factory=dict)

    async def add(self, entry: HistoryEntry) -> None:
        self.entries.setdefault(entry.id, entry)  # a redelivered cause adds nothing

    async def history(self, appeal_id: uuid.UUID | str, limit: int = 100) -> list[HistoryEntry]:
        mine = [e for e in self.entries.values() if str(e.appeal_id) == str(appeal_id)]
        return sorted(mine, key=lambda e: e.order)[:limit]


class MemoryRouterUoW:
    """The router's unit of work in memory; snapshot/restore give MemoryTracking its rollback."""

    def __init__(self, directory: Directory | None = None) -> None:
        self.appeals = MemoryAppeals()
        self.history = MemoryHistory()
        self._directory = directory or Directory()

    async def directory(self) -> Directory:
        return self._directory

    def snapshot(self) -> Any:
        return copy.deepcopy((self.appeals, self.history))

    def restore(self, snap: Any) -> None:
        self.appeals, self.history = snap
