"""The notifier's ports: what its handlers and loops may touch, and their MongoDB and in-memory adapters.

Handlers get a :class:`NotifierUoW` (one transaction, opened by the runtime): the appeal's facts, its
deadline schedule and the delivery queue. The scanner and delivery loops get a :class:`NotifierStore`
(no transaction: every write there is idempotent on its own). Documents are plain dicts in their
stored shape; the service never sees a session or pymongo.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from zhkh_runtime.engine import Message, partition_key

from .letters import Letters, MemoryLetters
from .repository import MongoDeliveries, MongoFacts, MongoInsertOnce, MongoSchedule, NotifierRepository

Doc = dict[str, Any]


class Facts(Protocol):
    """What the notifier keeps of a registered appeal (category, emergency, channel, contacts)."""

    async def save(self, doc: Doc) -> None: ...

    async def get(self, appeal_id: str) -> Doc | None: ...


class Schedule(Protocol):
    """The current deadline of an appeal and its alerts."""

    async def current(self, appeal_id: str) -> Doc | None: ...

    async def plan(self, deadline: Doc, alerts: list[Doc], replaces: bool) -> None:
        """Store ``deadline`` (a new generation) with its pending ``alerts``; ``replaces``: an earlier
        plan exists, whose pending alerts are cancelled first."""

    async def stop(self, appeal_id: str) -> None: ...


class Deliveries(Protocol):
    async def queue(self, doc: Doc) -> None:
        """Queue a delivery once per id (queuing the same id again changes nothing)."""

    async def reschedule(self, delivery_id: str, not_before: datetime) -> None:
        """A delivery not tried yet is held until ``not_before`` instead (nothing if it was tried or sent)."""


class NotifierUoW(Protocol):
    message: Message
    facts: Facts
    schedule: Schedule
    deliveries: Deliveries
    letters: Letters


class NotifierStore(Protocol):
    """What the scanner and the delivery loop read and write (outside any transaction)."""

    async def due_alerts(self, now: datetime, limit: int) -> list[Doc]: ...

    async def mark_sent(self, alert_id: str, now: datetime) -> None: ...

    async def queue_delivery(self, doc: Doc) -> None: ...

    async def due_deliveries(self, now: datetime, limit: int) -> list[Doc]: ...

    async def retry_delivery(self, delivery_id: str, attempts: int, at: datetime) -> None: ...

    async def finish_delivery(self, delivery_id: str, state: str, attempts: int, at: datetime,
                              reason: str | None = None) -> None: ...


class MongoNotifierUoW:
    """The ports on one MongoDB transaction (``session``), for the runtime's MongoTracking: reads
    kept for the batch (identity map), writes buffered and written in bulk by :meth:`flush`, which
    MongoTracking calls before the processed markers, inside the same transaction."""

    def __init__(self, repo: NotifierRepository, session: Any) -> None:
        self.facts = MongoFacts(repo.facts_col, session)
        self.schedule = MongoSchedule(repo.deadlines, repo.alerts, session)
        self.deliveries = MongoDeliveries(repo.deliveries, session)
        self.letters = MongoInsertOnce(repo.letters, session)

    async def prefetch(self, events: list[Any]) -> None:
        """Called by the runtime with a batch's events: their appeals' facts and deadlines, two queries."""
        ids = [partition_key(e) for e in events]
        await self.facts.prefetch(ids)
        await self.schedule.prefetch(ids)

    async def flush(self) -> None:
        """At most one bulk write per collection (two for the alerts: cancellations, then inserts)."""
        await self.facts.flush()
        await self.schedule.flush()
        await self.deliveries.flush()
        await self.letters.flush()


# ---- in memory, for fast tests of behaviour -------------------------------------------------------


@dataclass
class MemoryNotifierStore:
    """Every collection in dicts: the handlers' ports (through :class:`MemoryNotifierUoW`) and the
    loops' store on the same data, so a test drives events, scans and deliveries together."""

    facts: dict[str, Doc] = field(default_factory=dict)
    deadlines: dict[str, Doc] = field(default_factory=dict)
    alerts: dict[str, Doc] = field(default_factory=dict)
    deliveries: dict[str, Doc] = field(default_factory=dict)
    letters: dict[str, Doc] = field(default_factory=dict)

    async def due_alerts(self, now: datetime, limit: int) -> list[Doc]:
        due = [a for a in self.alerts.values() if a["state"] == "pending" and a["alert_at"] <= now]
        return [dict(a) for a in sorted(due, key=lambda a: a["alert_at"])[:limit]]

    async def mark_sent(self, alert_id: str, now: datetime) -> None:
        a = self.alerts.get(alert_id)
        if a is not None and a["state"] == "pending":
            a.update(state="sent", sent_at=now)

    async def queue_delivery(self, doc: Doc) -> None:
        self.deliveries.setdefault(doc["_id"], dict(doc))

    async def due_deliveries(self, now: datetime, limit: int) -> list[Doc]:
        due = [d for d in self.deliveries.values() if d["state"] == "pending" and d["not_before"] <= now]
        return [dict(d) for d in sorted(due, key=lambda d: d["not_before"])[:limit]]

    async def retry_delivery(self, delivery_id: str, attempts: int, at: datetime) -> None:
        self.deliveries[delivery_id].update(attempts=attempts, not_before=at)

    async def finish_delivery(self, delivery_id: str, state: str, attempts: int, at: datetime,
                              reason: str | None = None) -> None:
        self.deliveries[delivery_id].update(state=state, attempts=attempts, finished_at=at, reason=reason)
        self.deliveries[delivery_id].pop("access_code", None)

    def pending_alerts(self, appeal_id: str) -> list[Doc]:
        return [a for a in self.alerts.values() if a["appeal_id"] == appeal_id and a["state"] == "pending"]


class _MemoryFacts:
    def __init__(self, store: MemoryNotifierStore) -> None:
        self.store = store

    async def save(self, doc: Doc) -> None:
        self.store.facts[doc["_id"]] = dict(doc)

    async def get(self, appeal_id: str) -> Doc | None:
        doc = self.store.facts.get(appeal_id)
        return dict(doc) if doc else None


class _MemorySchedule:
    def __init__(self, store: MemoryNotifierStore) -> None:
        self.store = store

    async def current(self, appeal_id: str) -> Doc | None:
        doc = self.store.deadlines.get(appeal_id)
        return dict(doc) if doc else None

    async def plan(self, deadline: Doc, alerts: list[Doc], replaces: bool) -> None:
        if replaces:
            for a in self.store.pending_alerts(deadline["_id"]):
                a["state"] = "cancelled"
        self.store.deadlines[deadline["_id"]] = dict(deadline)
        for a in alerts:
            if a["_id"] in self.store.alerts:
                raise KeyError(f"duplicate alert {a['_id']}")  # as the unique _id would refuse it
            self.store.alerts[a["_id"]] = dict(a)

    async def stop(self, appeal_id: str) -> None:
        for a in self.store.pending_alerts(appeal_id):
            a["state"] = "cancelled"
        if appeal_id in self.store.deadlines:
            self.store.deadlines[appeal_id]["status"] = "stopped"


class _MemoryDeliveries:
    def __init__(self, store: MemoryNotifierStore) -> None:
        self.store = store

    async def queue(self, doc: Doc) -> None:
        await self.store.queue_delivery(doc)

    async def reschedule(self, delivery_id: str, not_before: datetime) -> None:
        d = self.store.deliveries.get(delivery_id)
        if d is not None and d["state"] == "pending" and d["attempts"] == 0:
            d["not_before"] = not_before


class MemoryNotifierUoW:
    """The handlers' ports on a :class:`MemoryNotifierStore`; snapshot/restore give MemoryTracking
    its rollback (restored in place, so the loops keep seeing the same store)."""

    def __init__(self, store: MemoryNotifierStore | None = None) -> None:
        self.store = store or MemoryNotifierStore()
        self.facts = _MemoryFacts(self.store)
        self.schedule = _MemorySchedule(self.store)
        self.deliveries = _MemoryDeliveries(self.store)
        self.letters = MemoryLetters(self.store)

    def snapshot(self) -> Any:
        return copy.deepcopy(self.store.__dict__)

    def restore(self, snap: Any) -> None:
        self.store.__dict__.update(snap)
