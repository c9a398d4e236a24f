"""The consumer loop: fetched batches per partition into the engine, one offset commit per batch,
no idle spinning, pending work finished before partitions are revoked or the service stops.

FastStream's subscriber loop hands out single records or one batch merged over partitions, commits
every position at once and polls as fast as the broker answers; this loop needs per-partition
batches, a pause while idle and a rebalance hook, so it drives aiokafka's consumer itself.

Idle: real Kafka long-polls (``fetch.max.wait.ms``) but the embedded broker answers at once, and
aiokafka's fetcher then sends fetch after fetch. After an empty poll the loop pauses every assigned
partition (the fetcher sends nothing for a paused partition) and sleeps, doubling from
``idle_min_ms`` up to ``idle_max_ms``; the added latency is bounded by ``idle_max_ms``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterable
from typing import Any

import structlog
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import CommitFailedError, ConsumerStoppedError, KafkaError

from . import metrics
from .engine import Engine
from .kafka import client_kwargs
from .settings import RuntimeSettings

log = structlog.get_logger(__name__)


class _Rebalance(ConsumerRebalanceListener):
    def __init__(self, loop: ConsumerLoop) -> None:
        self.loop = loop

    async def on_partitions_revoked(self, revoked: Iterable[TopicPartition]) -> None:
        # The batch in hand finishes and commits before its partitions go to another member.
        async with self.loop.busy:
            pass

    async def on_partitions_assigned(self, assigned: Iterable[TopicPartition]) -> None:
        """With ``rewind_on_assign`` > 0, start each newly assigned partition that many records
        before its committed offset. For a broker that can lose acknowledged records and reuse their
        offsets (the embedded noida-db after a kill -9: README, Known limits): a record published
        after its restart can land below the offset this group already committed, and would be
        skipped. Re-reading a few records is harmless (their markers make them republish, not redo)."""
        rewind = self.loop.settings.rewind_on_assign
        c = self.loop.consumer
        if rewind <= 0 or c is None:
            return
        parts = list(assigned)
        if not parts:
            return
        starts = await c.beginning_offsets(parts)
        for tp in parts:
            committed = await c.committed(tp)
            if committed is not None and committed > starts[tp]:
                c.seek(tp, max(starts[tp], committed - rewind))


class ConsumerLoop:
    """One consumer group member reading ``topics`` into ``engine``."""

    def __init__(self, settings: RuntimeSettings, engine: Engine, topics: tuple[str, ...], pattern: str | None = None) -> None:
        self.settings = settings
        self.engine = engine
        self.topics = topics
        self.pattern = pattern
        """A regex of topic names read besides ``topics`` (e.g. every ``<prefix>.intake.raw.*``,
        so a record on a raw topic someone made up is refused rather than never read)."""
        self.busy = asyncio.Lock()
        self.running = False
        self.consumer: AIOKafkaConsumer | None = None
        self._task: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()

    def make_consumer(self) -> AIOKafkaConsumer:
        s = self.settings
        return AIOKafkaConsumer(
            **client_kwargs(s),
            group_id=s.group_id,
            group_instance_id=s.group_instance_id,
            client_id=f"zhkh-{s.service_name}",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            session_timeout_ms=s.session_timeout_ms,
            max_poll_interval_ms=s.max_poll_interval_ms,
            fetch_max_wait_ms=s.idle_max_ms,
            max_partition_fetch_bytes=max(1_048_576, s.max_record_bytes * 4),
            metadata_max_age_ms=s.topic_discovery_ms,
        )

    async def start(self, attempts: int = 5) -> None:
        """Join the group. A failed first join is tried again with a new consumer (seen with the
        embedded broker: two members joining at once, one got an empty assignment that aiokafka
        cannot parse and ``start`` raised); the last failure is raised."""
        for attempt in range(1, attempts + 1):
            self.consumer = self.make_consumer()
            if self.pattern is not None:
                self.consumer.subscribe(pattern=self.pattern, listener=_Rebalance(self))
            else:
                self.consumer.subscribe(list(self.topics), listener=_Rebalance(self))
            try:
                await self.consumer.start()
                break
            except KafkaError as exc:
                with contextlib.suppress(Exception):
                    await self.consumer.stop()
                self.consumer = None
                if attempt == attempts:
                    raise
                log.warning("consumer_join_failed", attempt=attempt, error_type=type(exc).__name__)
                await asyncio.sleep(1.0)
        self.running = True
        self._task = asyncio.create_task(self._run(), name=f"{self.settings.service_name}.consumer")

    async def stop(self) -> None:
        """Finish the batch in hand (up to the graceful timeout), commit it, leave the group."""
        self._stop.set()
        if self._task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._task), self.settings.graceful_timeout_s)
            except TimeoutError:
                log.warning("consumer_stop_timeout")  # not committed: redelivered after the restart
                self._task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._task
        self.running = False
        if self.consumer is not None:
            await self.consumer.stop()
            self.consumer = None

    async def _run(self) -> None:
        assert self.consumer is not None
        c = self.consumer
        idle = 0
        while not self._stop.is_set():
            try:
                batches = await c.getmany(timeout_ms=self.settings.poll_ms, max_records=self.settings.batch_max_records)
            except ConsumerStoppedError:
                return
            except (KafkaError, UnicodeDecodeError) as exc:  # e.g. a header name that is not UTF-8
                log.warning("fetch_failed", error_type=type(exc).__name__)
                await self._sleep(1.0)
                continue
            if not batches:
                idle += 1
                await self._idle(c, idle)
                continue
            idle = 0
            # No fetching while the batch is processed: the embedded broker answers an empty fetch at
            # once, and aiokafka's fetcher would send one after another for the partitions that have
            # nothing (measured: a third of intake's CPU in a burst). Paused partitions keep what
            # was fetched already; the next poll resumes them.
            async with self.busy, _paused(c):
                for tp, records in batches.items():
                    await self._batch(c, tp, records)

    async def _batch(self, c: AIOKafkaConsumer, tp: TopicPartition, records: list[Any]) -> None:
        while True:
            if tp not in c.assignment():
                # revoked meanwhile (e.g. a pattern subscription saw a new topic and rejoins): whoever
                # gets the partition reads from the last commit; processing is idempotent
                log.info("batch_dropped_after_revoke", topic=self.engine.topic_label(tp.topic), partition=tp.partition)
                return
            try:
                await self.engine.process(records)
                await c.commit({tp: records[-1].offset + 1})
                break
            except CommitFailedError:
                # the group rebalanced under us: this member must rejoin, which waits for this batch
                # (the revoke listener takes ``busy``), so retrying the commit would never succeed.
                # Leave it uncommitted: whoever gets the partition reads from the last commit, and
                # processing it again is idempotent (markers)
                log.info("batch_left_to_rebalance", topic=self.engine.topic_label(tp.topic), partition=tp.partition)
                return
            except Exception as exc:  # noqa: BLE001 - the batch is not committed: process it again
                log.warning("batch_failed", topic=self.engine.topic_label(tp.topic), partition=tp.partition,
                            error_type=type(exc).__name__)
                if self._stop.is_set():
                    return
                await self._sleep(1.0)
        hw = c.highwater(tp)
        if hw is not None:
            metrics.CONSUMER_LAG.labels(self.settings.service_name, self.engine.topic_label(tp.topic), str(tp.partition)).set(
                max(0, hw - records[-1].offset - 1))

    async def _idle(self, c: AIOKafkaConsumer, n: int) -> None:
        s = self.settings
        delay = min(s.idle_max_ms, s.idle_min_ms * 2 ** min(n - 1, 16)) / 1000
        async with _paused(c):
            await self._sleep(delay)

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), seconds)


@contextlib.asynccontextmanager
async def _paused(c: AIOKafkaConsumer) -> AsyncIterator[None]:
    """Every assigned partition paused (the fetcher sends nothing for them); on the way out, those
    still assigned are resumed (a rebalance meanwhile may have taken some away)."""
    parts = c.assignment()
    c.pause(*parts)
    try:
        yield
    finally:
        still = c.assignment()
        c.resume(*(p for p in parts if p in still))
