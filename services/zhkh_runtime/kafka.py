"""Kafka policy shared by every service.

* Producer: acks=all, idempotent; every record is a CloudEvent in binary mode (zhkh_contracts).
* Consumer: a group id per service, no auto-commit; the offset is committed only after the
  handler's state change is stored and its outgoing events are published (at-least-once).
* Failures: transient errors are retried in place with exponential backoff (tenacity), a bounded
  number of times; then, or at once for a permanent error, the original record goes to the
  service's dead-letter topic with x-dlq-* error headers and the offset moves on. If even the
  dead-letter publish fails the record is not committed: FastStream seeks back to it and it is
  delivered again. Nothing is skipped silently.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import structlog
from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import InvalidProducerEpoch, OutOfOrderSequenceNumber, TopicAlreadyExistsError, UnknownProducerId
from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, stop_after_delay, wait_exponential_jitter

from zhkh_contracts import CATALOG, REGISTRY, Envelope, EnvelopeError, EventData, Topics, TopicSpec, from_kafka

from . import metrics
from .records import OutboundRecord, failure_headers
from .errors import TransientError, is_bad_input, is_transient, reason_of, safe_detail
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

    async def send(self, topic: str, key: bytes | None, value: bytes, headers: list[tuple[str, bytes]]) -> None:
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


async def _tolerant_parse(record: Any, original: Callable[[Any], Awaitable[Any]]) -> Any:
    """FastStream decodes every header as UTF-8 while parsing, before our handler runs. For a
    record with an undecodable or null header value, parse a sanitized copy but keep the original
    record as ``raw_message``: our handler then dead-letters the exact original bytes."""
    try:
        return await original(record)
    except (UnicodeDecodeError, AttributeError):
        safe = dataclasses.replace(
            record, headers=[(k, (v or b"").decode("utf-8", "replace").encode()) for k, v in record.headers or ()]
        )
        if hasattr(record, "consumer"):
            safe.consumer = record.consumer
        msg = await original(safe)
        msg.raw_message = record
        return msg


async def _raw_body(msg: Any) -> bytes:
    """Keep FastStream from parsing the body (it would json-decode it by content-type before our
    handler runs, and a broken record would fail outside our DLQ policy). Decoding is ours."""
    return msg.body


EventHandler = Callable[[Envelope[Any]], Awaitable[Iterable[OutboundRecord]]]


def _observe_lag(service: str, msg: Any, record: Any) -> None:
    """Consumer lag from the consumer's last fetched high-water mark (None until the first fetch)."""
    highwater = getattr(getattr(msg, "consumer", None), "highwater", None)
    if highwater is None:
        return
    try:
        hw = highwater(TopicPartition(record.topic, record.partition))
    except Exception:  # noqa: BLE001 - partition revoked meanwhile: nothing to report
        return
    if hw is not None:
        metrics.CONSUMER_LAG.labels(service, record.topic, str(record.partition)).set(max(0, hw - record.offset - 1))


@dataclass
class EventConsumer:
    """Subscribes one service to one topic and dispatches records to handlers by CloudEvents type.

    Types without a handler are acknowledged and counted as ``ignored`` (a lifecycle topic carries
    many types; each service reads the ones it cares about).
    """

    broker: KafkaBroker
    publisher: RecordPublisher
    settings: RuntimeSettings
    topics: tuple[str, ...]
    handlers: dict[str, EventHandler] = field(default_factory=dict)
    registry: Mapping[str, type[EventData]] = field(default_factory=lambda: REGISTRY)
    retry_sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    reject_topic: str | None = None
    """Where bad input goes (decode errors, PermanentError, validation); None: the DLQ."""
    messages_ru: Mapping[str, str] = field(default_factory=dict)
    """reason -> message for the citizen, sent as x-dlq-message-ru."""
    strict_types: bool = False
    """True: a record of a type without a handler is bad input (unknown_type), not 'ignored'."""
    _decoding: tuple[bool, Mapping[str, type[EventData]]] | None = field(default=None, init=False, repr=False)

    def on(self, data_cls: type[EventData]) -> Callable[[EventHandler], EventHandler]:
        def deco(fn: EventHandler) -> EventHandler:
            self.handlers[data_cls.EVENT_TYPE] = fn
            self._decoding = None  # the set of decodable types changed
            return fn

        return deco

    def _decoding_registry(self) -> Mapping[str, type[EventData]]:
        """Types this consumer decodes: only its handlers' when strict, else the whole registry.
        Computed once per set of handlers, not per record."""
        if self._decoding is None or self._decoding[0] != self.strict_types:
            types = {t: c for t, c in self.registry.items() if t in self.handlers} if self.strict_types else self.registry
            self._decoding = (self.strict_types, types)
        return self._decoding[1]

    @property
    def service(self) -> str:
        return self.settings.service_name

    def subscribe(self) -> None:
        s = self.settings
        self.broker.subscriber(
            *self.topics,
            group_id=s.group_id,
            group_instance_id=s.group_instance_id,
            ack_policy=AckPolicy.NACK_ON_ERROR,
            auto_offset_reset="earliest",
            session_timeout_ms=s.session_timeout_ms,
            max_poll_interval_ms=s.max_poll_interval_ms,
            title=f"{self.service}:{','.join(self.topics)}",
            parser=_tolerant_parse,
            decoder=_raw_body,
        )(self._on_record)

    async def _on_record(self, msg: KafkaMessage) -> None:
        record = msg.raw_message
        started = time.perf_counter()
        structlog.contextvars.bind_contextvars(
            topic=record.topic, partition=record.partition, offset=record.offset
        )
        try:
            await self.handle_record(record)
        finally:
            structlog.contextvars.unbind_contextvars(
                "topic", "partition", "offset", "event_id", "appeal_id", "event_type", "correlation_id"
            )
            metrics.HANDLER_SECONDS.labels(self.service).observe(time.perf_counter() - started)
            _observe_lag(self.service, msg, record)

    async def handle_record(self, record: Any) -> None:
        """Handle one consumer record. Returns normally when the offset may be committed."""
        size = len(record.value or b"")
        if size > self.settings.max_record_bytes:
            await self.dead_letter(record, "too_large", f"{size} bytes > {self.settings.max_record_bytes}", 0, bad_input=True)
            return
        try:
            env = from_kafka(record.value, record.headers, self._decoding_registry())
        except EnvelopeError as exc:
            if exc.reason == "unknown_type" and not self.strict_types:
                # A well-formed event of a type this service does not handle.
                metrics.CONSUMED.labels(self.service, record.topic, exc.detail, "ignored").inc()
                return
            await self.dead_letter(record, exc.reason, exc.detail, attempts=0, bad_input=True)
            return
        except Exception as exc:  # noqa: BLE001 - whatever the decoder trips on, the record is routed
            await self.dead_letter(record, "undecodable", safe_detail(exc), attempts=0, bad_input=True)
            return
        structlog.contextvars.bind_contextvars(
            event_id=str(env.id), appeal_id=env.appeal_id, event_type=env.type, correlation_id=str(env.correlation_id)
        )
        handler = self.handlers.get(env.type)
        if handler is None:
            metrics.CONSUMED.labels(self.service, record.topic, env.type, "ignored").inc()
            return
        attempts = 0
        try:
            async for attempt in AsyncRetrying(
                stop=stop_after_attempt(self.settings.retry_attempts) | stop_after_delay(self.settings.retry_budget_s),
                wait=wait_exponential_jitter(multiplier=self.settings.retry_initial_s, max=self.settings.retry_max_s),
                retry=retry_if_exception(is_transient),
                sleep=self.retry_sleep,
                reraise=True,
            ):
                with attempt:
                    attempts = attempt.retry_state.attempt_number
                    if attempts > 1:
                        metrics.RETRIES.labels(self.service, env.type).inc()
                        log.warning("retrying", attempt=attempts)
                    outbound = await handler(env)
                    await self.publisher.publish(outbound)
        except Exception as exc:  # noqa: BLE001 - every failure is routed, none is swallowed
            reason = "retries_exhausted" if is_transient(exc) else reason_of(exc)
            await self.dead_letter(record, reason, safe_detail(exc), attempts, bad_input=is_bad_input(exc),
                                   error_type=type(exc).__name__)
            return
        metrics.CONSUMED.labels(self.service, record.topic, env.type, "ok").inc()
        log.info("handled", attempts=attempts)

    async def dead_letter(self, record: Any, reason: str, detail: str, attempts: int, bad_input: bool = False,
                          error_type: str | None = None) -> None:
        """Publish the original record with x-dlq-* headers to the rejected topic (bad input, when
        the service has one) or to the service's DLQ (everything else). The log line names the
        exception's type only: its text may quote input (the full text goes to the headers)."""
        headers: list[tuple[str, bytes]] = [(n, v if isinstance(v, bytes) else str(v).encode()) for n, v in record.headers or ()]
        headers += failure_headers(
            reason,
            detail,
            self.service,
            self.messages_ru.get(reason),
            **{
                "consumer-group": self.settings.group_id,
                "original-topic": record.topic,
                "original-partition": record.partition,
                "original-offset": record.offset,
                "attempts": attempts,
            },
        )
        if bad_input and self.reject_topic:
            topic = self.reject_topic
        else:
            topic = Topics(self.settings.topic_prefix).dlq(self.service)
        try:
            await self.publisher.send(topic, record.key, record.value or b"", headers)
        except Exception:
            log.exception("dead_letter_publish_failed", reason=reason)
            await asyncio.sleep(1.0)  # the record will be redelivered; do not spin
            raise
        metrics.DEAD_LETTERED.labels(self.service, record.topic, reason).inc()
        metrics.CONSUMED.labels(self.service, record.topic, "", "dead_lettered").inc()
        log.warning("dead_lettered", reason=reason, error_type=error_type, dlq_topic=topic, attempts=attempts)
