"""What every write of the router's HTTP API shares (the appeals, the outage register, the control cards):
one event id per (principal, ``Idempotency-Key``) and publishing it, or a 503 the caller retries.

A write claims its key in ``router_api_requests`` (TTL ``ZHKH_IDEMPOTENCY_TTL_S``, index made by the appeals
API): the first request stores a digest of what it asked for and gets an event id derived from the key; a
repeat with the same request gets the same event id (so it republishes the very same event, which the
router applies once) and the first request's time; the same key with another request is refused 422
``idempotency_key_reused``. Each API claims in its own ``scope``, so one key used on two APIs is two keys."""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

import structlog
from pymongo.errors import DuplicateKeyError

from zhkh_runtime.app import ServiceRuntime
from zhkh_runtime.engine import Emit
from zhkh_runtime.http import Problem
from zhkh_runtime.mongo import aware

log = structlog.get_logger(__name__)
T = TypeVar("T")
REUSED_RU = "Этот ключ Idempotency-Key уже использован для другого запроса."


class ApiWrites:
    def __init__(self, rt: ServiceRuntime, namespace: uuid.UUID, scope: str = "", wait_s: float = 2.0) -> None:
        self.rt, self.namespace, self.scope, self.wait_s = rt, namespace, scope, wait_s
        self.requests = rt.db["router_api_requests"]

    async def claim(self, principal: str, key: str, request: Any) -> tuple[uuid.UUID, datetime]:
        """The event id and time of (principal, key) for ``request`` (anything JSON-serialisable that
        names what was asked: the action, its target and body)."""
        rid = hashlib.sha256(f"{self.scope}{principal}\n{key}".encode()).hexdigest()
        digest = hashlib.sha256(json.dumps(request, sort_keys=True, default=str).encode()).hexdigest()
        event_id = uuid.uuid5(self.namespace, rid)
        now = datetime.now(UTC)
        try:
            await self.requests.insert_one({"_id": rid, "digest": digest, "event_id": str(event_id), "created_at": now})
        except DuplicateKeyError:
            prev = await self.requests.find_one({"_id": rid})
            if prev is not None and prev.get("digest") != digest:
                raise Problem(422, "idempotency_key_reused", REUSED_RU, ["Idempotency-Key"]) from None
            if prev is not None:
                now = aware(prev["created_at"])
        return event_id, now.replace(microsecond=(now.microsecond // 1000) * 1000)  # as MongoDB keeps it

    async def publish(self, out: list[Emit], action: str) -> None:
        """Publish the write's events; a broker that does not take them is a 503 (retry with the same key)."""
        try:
            await self.rt.publisher.publish(self.rt.emitter.records(out))
        except Exception as exc:  # noqa: BLE001 - the caller retries with the same key
            log.warning("api_publish_failed", action=action, error_type=type(exc).__name__)
            raise Problem(503, "unavailable") from None

    async def outcome(self, lookup: Callable[[], Awaitable[T | None]]) -> T | None:
        """The router's outcome of a published write, as ``lookup`` finds it (a history, log or card entry),
        polled for up to ``wait_s`` (``ZHKH_API_WAIT_S``); None: not decided yet (the API answers accepted)."""
        deadline = time.monotonic() + self.wait_s
        while True:
            found = await lookup()
            if found is not None or time.monotonic() >= deadline:
                return found
            await asyncio.sleep(0.05)
