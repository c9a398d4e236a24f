"""A lease in MongoDB: one replica at a time runs a background loop.

``leases`` holds ``{_id: <service>:<loop>, holder, expires_at}``. ``acquire()`` takes the lease
when it is free or expired, or renews it when this replica holds it, in one conditional upsert: when
another live holder has it, the filter matches nothing and the upsert's insert collides with the
existing ``_id`` (DuplicateKeyError), which means "not ours". A holder that dies stops renewing,
and another replica takes over once ``ttl_s`` has passed; ``release()`` on shutdown hands it over at
once. The work under a lease is itself idempotent (derived event ids, TransportGUIDs), so the short
overlap a paused holder could cause repeats nothing visible.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import structlog
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

log = structlog.get_logger(__name__)


class Lease:
    COLLECTION = "leases"

    def __init__(self, db: AsyncDatabase, name: str, ttl_s: float, holder: str | None = None,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.col = db[self.COLLECTION]
        self.name = name
        self.ttl_s = ttl_s
        self.holder = holder or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.clock = clock
        self.held = False
        self.renewed_at: datetime | None = None

    async def acquire(self) -> bool:
        """True while this replica holds the lease. A held lease is renewed only once a third of
        its time has passed (a loop that runs every second writes every few seconds, not each round)."""
        now = self.clock()
        if self.held and self.renewed_at is not None and now - self.renewed_at < timedelta(seconds=self.ttl_s / 3):
            return True
        try:
            await self.col.update_one(
                {"_id": self.name, "$or": [{"holder": self.holder}, {"expires_at": {"$lt": now}}]},
                {"$set": {"holder": self.holder, "expires_at": now + timedelta(seconds=self.ttl_s), "renewed_at": now}},
                upsert=True,
            )
            got = True
        except DuplicateKeyError:
            got = False
        if got != self.held:
            log.info("lease_taken" if got else "lease_lost", lease=self.name)
        self.held = got
        self.renewed_at = now if got else None
        return got

    async def release(self) -> None:
        if self.held:
            await self.col.delete_one({"_id": self.name, "holder": self.holder})
            self.held = False
