"""MongoDB access (PyMongo's async API) and the engine's processed markers with their outbox."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

from pymongo import AsyncMongoClient
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError, DuplicateKeyError

from .engine import AlreadyProcessed, Marker
from .records import OutboundRecord
from .settings import RuntimeSettings


MaybeTime = TypeVar("MaybeTime", datetime, datetime | None)


def aware(v: MaybeTime) -> MaybeTime:
    """A time read back from MongoDB, in UTC. The services' clients are ``tz_aware`` (``make_mongo``);
    a document read through another client (a test's, an operator's script) or a fake store may hold a
    naive value, which MongoDB means as UTC."""
    return v.replace(tzinfo=UTC) if v is not None and v.tzinfo is None else v


def redact_uri(uri: str) -> str:
    """The URI without its password (for a log line or a printout): mongodb://user:***@host/..."""
    scheme, sep, rest = uri.partition("://")
    if not sep:
        return uri
    authority, slash, tail = rest.partition("/")
    userinfo, at, hosts = authority.rpartition("@")
    if not at or ":" not in userinfo:
        return uri
    return f"{scheme}://{userinfo.split(':', 1)[0]}:***@{hosts}{slash}{tail}"


def mongo_kwargs(settings: RuntimeSettings) -> dict[str, Any]:
    """TLS options of the MongoDB client: a CA file and/or a client certificate+key file turn TLS on
    (credentials and other options come in the URI, ZHKH_MONGO_URI)."""
    kwargs: dict[str, Any] = {}
    if settings.mongo_tls_ca_file:
        kwargs.update(tls=True, tlsCAFile=settings.mongo_tls_ca_file)
    if settings.mongo_tls_cert_key_file:
        kwargs.update(tls=True, tlsCertificateKeyFile=settings.mongo_tls_cert_key_file)
    return kwargs


def make_mongo(settings: RuntimeSettings) -> AsyncMongoClient:
    return AsyncMongoClient(settings.mongo_uri.get_secret_value(), tz_aware=True, serverSelectionTimeoutMS=10_000,
                            appname=f"zhkh-{settings.service_name}", **mongo_kwargs(settings))


class MongoTracking:
    """The engine's Tracking on MongoDB: a transaction around the service's unit of work, and the
    processed markers (``processed_events``: ``_id`` = ``<consumer>:<event id>``, the body's digest
    and the outbox) written in one ``insert_many`` at the end of the batch."""

    COLLECTION = "processed_events"

    def __init__(self, client: AsyncMongoClient, db: AsyncDatabase, make_uow: Callable[[AsyncClientSession | None], Any]) -> None:
        self.client = client
        self.col = db[self.COLLECTION]
        self.make_uow = make_uow

    async def find(self, marker_id: str) -> Marker | None:
        doc = await self.col.find_one({"_id": marker_id})
        if doc is None:
            return None
        return Marker(doc["_id"], doc.get("digest", ""), [OutboundRecord.from_doc(d) for d in doc.get("outbox", [])])

    @contextlib.asynccontextmanager
    async def unit(self) -> AsyncIterator[_MongoUnit]:
        async with self.client.start_session() as session, await session.start_transaction():
            yield _MongoUnit(self.make_uow(session), self.col, session)


class _MongoUnit:
    def __init__(self, uow: Any, col: Any, session: AsyncClientSession) -> None:
        self.uow, self.col, self.session = uow, col, session

    async def add_markers(self, markers: list[Marker]) -> None:
        flush = getattr(self.uow, "flush", None)
        if flush is not None:  # repositories that buffer writes for one bulk write per batch
            await flush()
        now = datetime.now(UTC)
        consumer = markers[0].id.split(":", 1)[0] if markers else ""
        try:
            await self.col.insert_many(
                [{"_id": m.id, "consumer": consumer, "processed_at": now, "digest": m.digest,
                  "outbox": [r.to_doc() for r in m.outbox]} for m in markers],
                ordered=True, session=self.session,
            )
        except (DuplicateKeyError, BulkWriteError) as exc:
            if isinstance(exc, BulkWriteError) and not all(e.get("code") == 11000 for e in exc.details.get("writeErrors", [])):
                raise
            raise AlreadyProcessed(markers[0].id) from exc
