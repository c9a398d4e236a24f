"""Drive the runtime's engine without a broker: envelopes in as consumer records, published
records collected. With MemoryTracking and a service's in-memory unit of work it runs in
microseconds; with MongoTracking it is the real transaction path."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

from zhkh_contracts import REGISTRY, Envelope, EventData, Topics, from_kafka, to_kafka
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


def rec(env: Envelope[Any], topic: str = "t") -> Rec:
    key, value, headers = to_kafka(env)
    return Rec(value, [(k, v.encode()) for k, v in headers.items()], key, topic)


def envelope(data: EventData, key: str | None = None, **kw: Any) -> Envelope[Any]:
    from zhkh_runtime.engine import partition_key

    return Envelope.new(data, source="/test", appeal_id=key or partition_key(data), **kw)


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
