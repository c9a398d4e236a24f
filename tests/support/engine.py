"""Drive the runtime's engine without a broker: envelopes in as consumer records, published
records collected. With MemoryTracking and a service's in-memory unit of work it runs in
microseconds; with MongoTracking it is the real transaction path."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

from zhkh_contracts import REGISTRY, Envelope, EventData, RawAppealSubmitted, Topics, from_kafka, owners, source_of, to_kafka
from zhkh_runtime.engine import Emitter, Engine, Handlers, MemoryPublisher
from zhkh_runtime.settings import RuntimeSettings

_offsets = itertools.count()


@dataclass
class Rec:
    """A consumer record as aiokafka hands it over (the fields the engine reads)."""

    value: bytes | None
    headers: list[tuple[str, bytes | None]]
    key: bytes | None = b"k"
    topic: str = "t"
    partition: int = 0
    offset: int = field(default_factory=lambda: next(_offsets))


def topic_of(data: EventData, topics: Topics | None = None) -> str:
    """The catalog's topic for an event (a raw submission: its channel's)."""
    topics = topics or Topics()
    if isinstance(data, RawAppealSubmitted):
        return topics.raw(data.channel)
    return next(spec.name for spec in topics.catalog() if type(data) in spec.events)


def rec(env: Envelope[Any], topic: str | None = None) -> Rec:
    """A consumer record of ``env`` on ``topic`` (default: the catalog's topic for its type)."""
    key, value, headers = to_kafka(env)
    return Rec(value, [(k, v.encode()) for k, v in headers.items()], key, topic or topic_of(env.data))


def owner_source(data: EventData) -> str:
    """The source an event of this type is trusted from: its (first) owning service's."""
    return source_of(owners(data.EVENT_TYPE)[0])


def owned(data: EventData, **kw: Any) -> Envelope[Any]:
    """``Envelope.new`` with the source of the type's owner unless ``source=`` says otherwise."""
    kw.setdefault("source", owner_source(data))
    return Envelope.new(data, **kw)


def envelope(data: EventData, key: str | None = None, **kw: Any) -> Envelope[Any]:
    from zhkh_runtime.engine import partition_key

    kw.setdefault("source", owner_source(data))
    return Envelope.new(data, appeal_id=key or partition_key(data), **kw)


async def _no_sleep(_: float) -> None:
    return None


def make_engine(service: str, handlers: Handlers, tracking: Any, clock: Any = None, **kw: Any) -> tuple[Engine, MemoryPublisher]:
    pub = MemoryPublisher()
    settings = RuntimeSettings(service_name=service, retry_attempts=kw.pop("retry_attempts", 5))
    emitter = Emitter(service, Topics(), clock) if clock else Emitter(service, Topics())
    return Engine(settings, handlers, tracking, pub, emitter, retry_sleep=_no_sleep, **kw), pub


def events(pub: MemoryPublisher) -> list[EventData]:
    return [decoded(r).data for r in pub.records]


def decoded(r: Any) -> Envelope[Any]:
    return from_kafka(r.value, [(k, v.encode()) for k, v in r.headers.items()], REGISTRY)
