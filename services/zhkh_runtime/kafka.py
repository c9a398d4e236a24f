"""Kafka producer policy shared by every service, and topic creation.

* Producer: acks=all, idempotent; every record is a CloudEvent in binary mode (zhkh_contracts);
  dead letters keep the original bytes (null value and null header values included).
* Consuming is the engine's (engine.py, consumer.py): explicit commits after the batch's state,
  markers and outbox are stored and its events published; bounded retries; then a DLQ.
* Security: every client (producer, consumer, admin, the FastStream broker) gets its TLS and SASL
  settings from ``client_kwargs`` / ``broker_security`` (ZHKH_KAFKA_SECURITY_PROTOCOL and friends).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable
from typing import Any

import structlog
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.helpers import create_ssl_context
from aiokafka.errors import InvalidProducerEpoch, OutOfOrderSequenceNumber, TopicAlreadyExistsError, UnknownProducerId
from faststream.kafka import KafkaBroker
from faststream.security import BaseSecurity, SASLPlaintext, SASLScram256, SASLScram512

from zhkh_contracts import CATALOG, TopicSpec

from . import metrics
from .errors import TransientError
from .records import OutboundRecord, failure_headers  # noqa: F401 - failure_headers: re-exported (the ingress uses it)
from .settings import RuntimeSettings

log = structlog.get_logger(__name__)

LOST_PRODUCER_STATE = (OutOfOrderSequenceNumber, UnknownProducerId, InvalidProducerEpoch)


def _ssl_context(settings: RuntimeSettings) -> Any:
    if settings.kafka_security_protocol not in ("SSL", "SASL_SSL"):
        return None
    return create_ssl_context(cafile=settings.kafka_ssl_cafile, certfile=settings.kafka_ssl_certfile,
                              keyfile=settings.kafka_ssl_keyfile)


def client_kwargs(settings: RuntimeSettings) -> dict[str, Any]:
    """The connection and security arguments of every aiokafka client (AIOKafkaProducer,
    AIOKafkaConsumer, AIOKafkaAdminClient) a service, a tool or the launcher builds: bootstrap
    servers, security protocol, SASL mechanism and credentials, and an SSL context (server
    certificates verified against ZHKH_KAFKA_SSL_CAFILE or the system's CAs, host names checked)."""
    kwargs: dict[str, Any] = {
        "bootstrap_servers": settings.kafka_bootstrap,
        "security_protocol": settings.kafka_security_protocol,
    }
    ssl = _ssl_context(settings)
    if ssl is not None:
        kwargs["ssl_context"] = ssl
    if settings.kafka_security_protocol.startswith("SASL_"):
        assert settings.kafka_sasl_username and settings.kafka_sasl_password  # checked by the settings
        kwargs.update(
            sasl_mechanism=settings.kafka_sasl_mechanism,
            sasl_plain_username=settings.kafka_sasl_username,
            sasl_plain_password=settings.kafka_sasl_password.get_secret_value(),
        )
    return kwargs


_SASL_SECURITY = {"SCRAM-SHA-512": SASLScram512, "SCRAM-SHA-256": SASLScram256, "PLAIN": SASLPlaintext}


def broker_security(settings: RuntimeSettings) -> BaseSecurity | None:
    """The same settings as FastStream's ``security`` object (it turns it into the same aiokafka arguments)."""
    protocol = settings.kafka_security_protocol
    if protocol == "PLAINTEXT":
        return None
    ssl = _ssl_context(settings)
    if protocol == "SSL":
        return BaseSecurity(ssl_context=ssl, use_ssl=True)
    assert settings.kafka_sasl_username and settings.kafka_sasl_password  # checked by the settings
    return _SASL_SECURITY[settings.kafka_sasl_mechanism](
        settings.kafka_sasl_username, settings.kafka_sasl_password.get_secret_value(),
        ssl_context=ssl, use_ssl=protocol == "SASL_SSL",
    )


def make_broker(settings: RuntimeSettings) -> KafkaBroker:
    """The FastStream broker: subscribers and the app lifecycle. Publishing goes through RecordPublisher."""
    return KafkaBroker(
        settings.kafka_bootstrap,
        security=broker_security(settings),
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
            **client_kwargs(self.settings),
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


async def ensure_topics(bootstrap: str, specs: Iterable[TopicSpec] = CATALOG, replication: int = 1,
                        client: dict[str, Any] | None = None) -> list[str]:
    """Create missing topics with their partitions and retention. Returns the names created.
    ``client``: the security arguments of ``client_kwargs`` (its bootstrap_servers wins)."""
    admin = AIOKafkaAdminClient(**{"bootstrap_servers": bootstrap, **(client or {})})
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
