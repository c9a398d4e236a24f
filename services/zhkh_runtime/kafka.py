"""Kafka producer policy shared by every service, and topic creation.

* Producer: acks=all, idempotent; every record is a CloudEvent in binary mode (zhkh_contracts);
  dead letters keep the original bytes (null value and null header values included).
* Consuming is the engine's (engine.py, consumer.py): explicit commits after the batch's state,
  markers and outbox are stored and its events published; bounded retries; then a DLQ.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable

import structlog
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import InvalidProducerEpoch, OutOfOrderSequenceNumber, TopicAlreadyExistsError, UnknownProducerId
from faststream.kafka import KafkaBroker

from zhkh_contracts import CATALOG, TopicSpec

from . import metrics
from .errors import TransientError
from .records import OutboundRecord, failure_headers  # noqa: F401 - failure_headers: re-exported (the ingress uses it)
from .settings import RuntimeSettings

log = structlog.get_logger(__name__)

LOST_PRODUCER_STATE = (OutOfOrderSequenceNumber, UnknownProducerId, InvalidProducerEpoch)


def make_broker(settings: RuntimeSettings) -> KafkaBroker:
    """The FastStream broker: subscribers and the app lifecycle. Publishing goes through RecordPublisher."""
    return KafkaBroker(
        settings.kafka_bootstrap,
        client_id=f"zhkh-{settings.service_name}",
        graceful_timeout=settings.graceful_timeout_s,
        logger=None,  # our own structured logs replace FastStream's per-message lines
    )


class RecordPublisher:
    """An idempotent producer (acks=all) that publishes exact bytes, headers included.

    FastStream's publish only carries str header values; a dead letter must keep the original
    record byte for byte (broken encodings too), so all publishing goes through this one producer.
    """

    def __init__(self, settings: RuntimeSettings) -> None:
        self.settings = settings
        self._producer: AIOKafkaProducer | None = None

    async def start(self) -> None:
        self._producer = AIOKafkaProducer(
            bootstrap_servers=self.settings.kafka_bootstrap,
            client_id=f"zhkh-{self.settings.service_name}-producer",
            acks="all",
            enable_idempotence=True,
            request_timeout_ms=30_000,
        )
        await self._producer.start()

    async def stop(self) -> None:
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None

    async def send(self, topic: str, key: bytes | None, value: bytes | None, headers: list[tuple[str, bytes | None]]) -> None:
        if self._producer is None:
            raise RuntimeError("RecordPublisher is not started")
        try:
            await self._producer.send_and_wait(topic, value=value, key=key, headers=headers)
        except LOST_PRODUCER_STATE as exc:
            await self._renew(exc)

    async def _renew(self, exc: BaseException) -> None:
        """The broker no longer knows this producer's id/sequence (seen after a broker restart that
        kept the log but not the producer state; real Kafka does it when a producer id expires). The
        aiokafka producer never recovers from that by itself: start a new one (new producer id) and
        let the caller retry. A retried record may then be in the log twice; consumers dedupe by id."""
        log.warning("producer_state_lost", error=exc.__class__.__name__)
        old, self._producer = self._producer, None
        if old is not None:
            with contextlib.suppress(Exception):
                await old.stop()
        await self.start()
        raise TransientError(f"producer state lost ({exc.__class__.__name__}); producer renewed") from exc

    async def publish(self, records: Iterable[OutboundRecord]) -> None:
        """Send all, then wait for all: records to one partition go out in one request, in order
        (the idempotent producer keeps per-partition order across retries)."""
        if self._producer is None:
            raise RuntimeError("RecordPublisher is not started")
        records = list(records)
        try:
            futures = [
                await self._producer.send(r.topic, value=r.value, key=r.key, headers=[(k, v.encode()) for k, v in r.headers.items()])
                for r in records
            ]
            await asyncio.gather(*futures)
        except LOST_PRODUCER_STATE as exc:
            await self._renew(exc)
        for r in records:
            metrics.PUBLISHED.labels(self.settings.service_name, r.topic, r.headers.get("ce_type", "")).inc()


async def ensure_topics(bootstrap: str, specs: Iterable[TopicSpec] = CATALOG, replication: int = 1) -> list[str]:
    """Create missing topics with their partitions and retention. Returns the names created."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        new = []
        for spec in specs:
            if spec.name in existing:
                continue
            config = dict(spec.config)
            if spec.retention_ms is not None:
                config["retention.ms"] = str(spec.retention_ms)
            new.append(NewTopic(spec.name, num_partitions=spec.partitions, replication_factor=replication, topic_configs=config))
        if new:
            try:
                await admin.create_topics(new)
            except TopicAlreadyExistsError:
                pass  # another service created them at the same moment
        return [t.name for t in new]
    finally:
        await admin.close()
