"""What the launcher's demos share: publish a raw submission as a channel would and follow what happens
to it on the lifecycle topic (the events of its correlation id)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from zhkh_contracts import REGISTRY, Envelope, RawAppealSubmitted, from_kafka

from . import samples


async def publish_and_follow(cfg: Any, raw: RawAppealSubmitted, timeout: float,
                             on_sent: Callable[[str], None] | None = None) -> AsyncIterator[Envelope[Any]]:
    """Publish ``raw`` on its channel's raw topic, then yield the lifecycle events it causes, in order,
    until the caller stops (use ``contextlib.aclosing``) or ``timeout`` seconds have passed. ``on_sent`` gets
    the topic once the broker has taken the record."""
    topic, key, value, headers = samples.raw_record(raw, topics=cfg.topics)
    correlation = dict(headers)["ce_correlationid"].decode()
    consumer = AIOKafkaConsumer(cfg.topics.lifecycle, **cfg.kafka_client(), auto_offset_reset="latest",
                                enable_auto_commit=False, group_id=None)
    await consumer.start()
    producer = AIOKafkaProducer(**cfg.kafka_client(), acks="all", enable_idempotence=True)
    await producer.start()
    try:
        await asyncio.sleep(0.5)  # let the consumer take its 'latest' positions before we publish
        await producer.send_and_wait(topic, value=value, key=key, headers=headers)
        if on_sent is not None:
            on_sent(topic)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for records in (await consumer.getmany(timeout_ms=1000)).values():
                for rec in records:
                    env = from_kafka(rec.value, rec.headers, REGISTRY)
                    if str(env.correlation_id) == correlation:
                        yield env
    finally:
        await producer.stop()
        await consumer.stop()
