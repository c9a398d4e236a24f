"""Test helpers over the real broker: produce raw records, read a topic until a condition holds."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from faststream.asgi import AsgiFastStream


async def produce(bootstrap: str, topic: str, value: bytes | None, key: bytes | None = None,
                  headers: list[tuple[str, bytes]] | None = None) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(topic, value=value, key=key, headers=headers or [])
    finally:
        await producer.stop()


class TopicReader:
    """Reads a topic from the beginning (no group), accumulating records."""

    def __init__(self, bootstrap: str, *topics: str) -> None:
        self.consumer = AIOKafkaConsumer(*topics, bootstrap_servers=bootstrap, group_id=None,
                                         auto_offset_reset="earliest", enable_auto_commit=False)
        self.records: list[Any] = []

    async def __aenter__(self) -> TopicReader:
        await self.consumer.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.consumer.stop()

    async def wait_for(self, done: Callable[[list[Any]], bool], timeout: float = 30.0) -> list[Any]:
        deadline = time.monotonic() + timeout
        while not done(self.records):
            if time.monotonic() > deadline:
                raise TimeoutError(f"condition not met in {timeout}s; have {len(self.records)} records")
            batch = await self.consumer.getmany(timeout_ms=300)
            for recs in batch.values():
                self.records.extend(recs)
        return self.records

    async def settle(self, seconds: float = 2.0) -> list[Any]:
        """Keep reading for a while (to show nothing more arrives)."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            batch = await self.consumer.getmany(timeout_ms=200)
            for recs in batch.values():
                self.records.extend(recs)
        return self.records


async def committed(bootstrap: str, group: str, topic: str, partition: int) -> int | None:
    c = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    await c.start()
    try:
        return await c.committed(TopicPartition(topic, partition))
    finally:
        await c.stop()


@contextlib.asynccontextmanager
async def running(app: Any) -> AsyncIterator[Any]:
    """Run a service app in-process (startup hooks, broker, subscribers) without HTTP: its lifespan
    (a FastAPI app's, or a FastStream AsgiFastStream's)."""
    if isinstance(app, AsgiFastStream):
        async with app.start_lifespan_context():
            yield app
    else:
        async with app.router.lifespan_context(app):
            yield app


def headers_of(record: Any) -> dict[str, bytes]:
    return {k: v for k, v in record.headers}


async def eventually(check: Callable[[], Any], timeout: float = 20.0, interval: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = await check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met")
        await asyncio.sleep(interval)
