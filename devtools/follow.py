"""What the launcher's demos share: read the lifecycle topic (from now, or from the start), publish a raw
submission as a channel would and follow what happens to it, and poll an HTTP read until it shows what
a step waits for."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from zhkh_contracts import REGISTRY, Envelope, RawAppealSubmitted, from_kafka

from . import samples

T = TypeVar("T")


async def lifecycle(cfg: Any, timeout: float, *, from_start: bool = False,
                    positioned: Callable[[], Awaitable[None]] | None = None
                    ) -> AsyncIterator[tuple[float, Envelope[Any]]]:
    """Yield (broker time in epoch seconds, event) of the lifecycle topic's records, from its start or
    from now, until the caller stops (use ``contextlib.aclosing``) or ``timeout`` seconds have passed.
    ``positioned`` is awaited once the consumer has started, before the first read."""
    consumer = AIOKafkaConsumer(cfg.topics.lifecycle, **cfg.kafka_client(),
                                auto_offset_reset="earliest" if from_start else "latest",
                                enable_auto_commit=False, group_id=None)
    await consumer.start()
    try:
        if positioned is not None:
            await positioned()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for records in (await consumer.getmany(timeout_ms=1000)).values():
                for rec in records:
                    yield rec.timestamp / 1000, from_kafka(rec.value, rec.headers, REGISTRY)
    finally:
        await consumer.stop()


async def publish_and_follow(cfg: Any, raw: RawAppealSubmitted, timeout: float,
                             on_sent: Callable[[str], None] | None = None) -> AsyncIterator[Envelope[Any]]:
    """Publish ``raw`` on its channel's raw topic, then yield the lifecycle events it causes, in order,
    until the caller stops (use ``contextlib.aclosing``) or ``timeout`` seconds have passed. ``on_sent`` gets
    the topic once the broker has taken the record."""
    topic, key, value, headers = samples.raw_record(raw, topics=cfg.topics)
    correlation = dict(headers)["ce_correlationid"].decode()

    async def publish() -> None:
        await asyncio.sleep(0.5)  # let the consumer take its 'latest' positions before we publish
        producer = AIOKafkaProducer(**cfg.kafka_client(), acks="all", enable_idempotence=True)
        await producer.start()
        try:
            await producer.send_and_wait(topic, value=value, key=key, headers=headers)
        finally:
            await producer.stop()
        if on_sent is not None:
            on_sent(topic)

    async with contextlib.aclosing(lifecycle(cfg, timeout, positioned=publish)) as events:
        async for _, env in events:
            if str(env.correlation_id) == correlation:
                yield env


async def poll(read: Callable[[], Awaitable[T]], done: Callable[[T], bool], timeout: float,
               every: float = 0.3) -> T:
    """Call ``read`` until ``done`` says its answer shows what the step waits for, or ``timeout`` seconds
    have passed; the last answer either way (the read models follow the topics a moment behind)."""
    deadline = time.monotonic() + timeout
    while True:
        got = await read()
        if done(got) or time.monotonic() >= deadline:
            return got
        await asyncio.sleep(every)
