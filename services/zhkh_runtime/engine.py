"""The processing engine: the runtime owns "process an event"; services only decide.

A service registers typed handlers ``async (event, uow) -> [events]`` per event type
(:class:`Handlers`). The engine, per fetched partition batch:

1. decodes every record (a bad one is refused or dead-lettered with its original bytes; so is a type
   the catalog does not list for the record's topic, ``type_not_allowed``, and one whose source is
   not one of its type's owners, ``forged_source``; a type nobody here handles is counted as ignored
   and costs no transaction);
2. opens one unit of work (one MongoDB transaction), calls the handlers in record order, then
   writes every processed marker together with its outbox in one ``insert_many``; the state writes,
   markers and outbox commit together;
3. wraps the returned events into envelopes (source, correlation id of the cause, ids derived from
   the cause's id, so a redo yields the same ids), publishes them, then the caller commits the offset.

If anything in the batch fails (a handler refuses a record, a write conflicts, a marker already
exists because the batch is a redelivery) the batch is redone record by record, each in its own
transaction with bounded retries, so every bad record gets its own dead letter and the order per
appeal holds. A redelivered record whose marker exists republishes its stored outbox and changes
nothing; one whose body differs from what was processed under that id is refused
(``conflicting_duplicate``).

Service logic never sees a session, an envelope or Kafka bytes: it sees its event, its unit of work
(repositories behind ports, plus :class:`Message` about the event) and returns events.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Protocol, TypeVar

import structlog
from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, stop_after_delay, wait_exponential_jitter

from zhkh_contracts import (
    EXTERNAL_PRODUCERS,
    REGISTRY,
    SECRET_FIELDS,
    SERVICES,
    ActionBase,
    AppealRegistered,
    Channel,
    Envelope,
    EnvelopeError,
    EventData,
    MassIncidentDetected,
    RawAppealSubmitted,
    Topics,
    TopicSpec,
    decode,
    owners,
    source_of,
)

from . import metrics
from .errors import PermanentError, TransientError, is_bad_input, is_transient, reason_of, safe_detail
from .records import OutboundRecord, failure_headers
from .settings import RuntimeSettings

log = structlog.get_logger(__name__)

EVENT_NS = uuid.UUID("5b0f5d0e-7f7e-4c61-9a0e-5a3f0b7c2d11")
E = TypeVar("E", bound=EventData)
U = TypeVar("U")


# ---- what handlers see and return ----------------------------------------------------------------


@dataclass(frozen=True)
class Message:
    """What a handler may know about the event it handles, beside its data."""

    id: uuid.UUID
    key: str
    source: str
    occurred_at: datetime
    correlation_id: uuid.UUID
    topic: str = ""

    @classmethod
    def of(cls, env: Envelope[Any], topic: str = "") -> Message:
        return cls(env.id, env.appeal_id, env.source, env.occurred_at, env.correlation_id, topic)


@dataclass(frozen=True)
class Emit:
    """An event to publish with something other than the defaults: the partition key
    (:func:`partition_key`), the catalog's topic for its type, an id derived from the cause, the
    cause's correlation id, and the runtime clock's time."""

    event: EventData
    key: str | None = None
    topic: str | None = None
    event_id: uuid.UUID | None = None
    correlation_id: uuid.UUID | None = None
    occurred_at: datetime | None = None


Out = EventData | Emit
Handler = Callable[[Any, Any], Awaitable[Sequence[Out] | None]]


class UnitOfWork(Protocol):
    """A service's repositories on one transaction. ``message`` is set before each handler call."""

    message: Message


def partition_key(event: EventData) -> str:
    """The record key of an event: its appeal (raw submissions: ``<channel>:<source_id>``;
    incidents: ``incident:<id>``), so every event of one appeal is in one partition, in order."""
    if isinstance(event, ActionBase):
        return event.key
    if isinstance(event, AppealRegistered):
        return str(event.appeal.appeal_id)
    if isinstance(event, RawAppealSubmitted):
        return f"{event.channel.value}:{event.source_id}"
    if isinstance(event, MassIncidentDetected):
        return f"incident:{event.incident_id}"
    appeal_id = getattr(event, "appeal_id", None)
    if appeal_id is None:
        raise ValueError(f"no partition key for {type(event).__name__}: pass Emit(key=...)")
    return str(appeal_id)


class Handlers:
    """Event type -> handler: what a service does, found by the event's name in one step."""

    def __init__(self) -> None:
        self.by_type: dict[str, Handler] = {}
        self.classes: dict[str, type[EventData]] = {}
        self.filters: dict[str, Callable[[Any], bool]] = {}

    def on(self, *classes: type[EventData], when: Callable[[Any], bool] | None = None) -> Callable[[Handler], Handler]:
        """Register ``fn`` for these types. ``when(event)`` false: the record is ignored like a type
        nobody handles (no unit of work, no marker), e.g. status changes a service does not act on."""
        def deco(fn: Handler) -> Handler:
            for cls in classes:
                self.by_type[cls.EVENT_TYPE] = fn
                self.classes[cls.EVENT_TYPE] = cls
                if when is not None:
                    self.filters[cls.EVENT_TYPE] = when
            return fn

        return deco

    def wants(self, event_type: str, event: Any) -> bool:
        f = self.filters.get(event_type)
        return f is None or bool(f(event))

    def __contains__(self, event_type: str) -> bool:
        return event_type in self.by_type


class Emitter:
    """Wraps events into records: the one place envelopes are made (handlers and loops alike)."""

    def __init__(self, service: str, topics: Topics, clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.service = service
        self.source = f"/zhkh-appeals/{service}"
        self.topics = topics
        self.clock = clock
        self._topic_of: dict[type[EventData], str] = {}
        for spec in topics.catalog():
            for cls in spec.events:
                self._topic_of.setdefault(cls, spec.name)

    def topic_of(self, event: EventData) -> str:
        if isinstance(event, RawAppealSubmitted):
            return self.topics.raw(event.channel)
        return self._topic_of[type(event)]

    def records(self, out: Iterable[Out], cause: Message | None = None) -> list[OutboundRecord]:
        now = self.clock()
        records = []
        for i, item in enumerate(out):
            e = item if isinstance(item, Emit) else Emit(item)
            if e.event_id is not None:
                event_id = e.event_id
            elif cause is not None:
                event_id = uuid.uuid5(EVENT_NS, f"{self.service}:{cause.id}:{i}")
            else:
                event_id = uuid.uuid4()
            env = Envelope.new(
                e.event,
                source=self.source,
                appeal_id=e.key or partition_key(e.event),
                correlation_id=e.correlation_id or (cause.correlation_id if cause else None),
                occurred_at=e.occurred_at or now,
                event_id=event_id,
            )
            records.append(OutboundRecord.of(e.topic or self.topic_of(e.event), env))
        return records


# ---- ports the engine needs ----------------------------------------------------------------------


@dataclass(frozen=True)
class Marker:
    """A processed-event record: the event's body digest and what processing it published."""

    id: str
    digest: str
    outbox: list[OutboundRecord]


class AlreadyProcessed(Exception):
    """A marker to be written exists already (a redelivery, or another instance got there first)."""


class Unit(Protocol):
    """One open transaction: the service's unit of work and the marker write."""

    uow: Any

    async def add_markers(self, markers: list[Marker]) -> None: ...


class Tracking(Protocol):
    """Processed markers with their outbox, and transactions around a service's unit of work."""

    async def find(self, marker_id: str) -> Marker | None: ...

    def unit(self) -> contextlib.AbstractAsyncContextManager[Unit]: ...


class Publisher(Protocol):
    async def publish(self, records: Iterable[OutboundRecord]) -> None: ...

    async def send(self, topic: str, key: bytes | None, value: bytes | None, headers: list[tuple[str, bytes | None]]) -> None: ...


class Record(Protocol):
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: Sequence[tuple[str, bytes | None]]


# ---- the engine ----------------------------------------------------------------------------------


@dataclass
class _Work:
    record: Any
    env: Envelope[Any]
    handler: Handler
    digest: str


@dataclass
class _Refuse:
    record: Any
    reason: str
    detail: str


@dataclass
class _Ignore:
    record: Any
    type_label: str


@dataclass(frozen=True)
class _Elsewhere:
    """The event types that exist (``REGISTRY``) but are not allowed on one topic."""

    on_topic: Mapping[str, Any]

    def __contains__(self, event_type: object) -> bool:
        return event_type in REGISTRY and event_type not in self.on_topic


def _owner_sources(spec: TopicSpec) -> dict[str, frozenset[str] | None]:
    """Per type on this topic, the sources that may publish it (None: systems outside may, no check)."""
    external = {cls for name in spec.producers if name not in SERVICES for cls in EXTERNAL_PRODUCERS.get(name, ())}
    return {
        cls.EVENT_TYPE: None if cls in external
        else frozenset(source_of(svc) for svc in owners(cls.EVENT_TYPE) if svc in spec.producers)
        for cls in spec.events
    }


def without_secrets(value: bytes | None, event_type: str | None) -> bytes | None:
    """A body without its type's secret fields (zhkh_contracts.SECRET_FIELDS, e.g. the citizen's access
    code), as canonical JSON; other types' bodies as they are. What a producer's outbox keeps, and what
    consumers compare copies of an event by."""
    secret = SECRET_FIELDS.get(event_type or "")
    if not secret or not value:
        return value
    try:
        data = json.loads(value)
    except ValueError:
        return value
    if not isinstance(data, dict):
        return value
    for name in secret:
        data.pop(name, None)
    return json.dumps(data, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode()


def digest_of(value: bytes | None, event_type: str | None = None) -> str:
    """The body's digest (the same id with another digest is ``conflicting_duplicate``), without the
    type's secret fields: the producer's outbox keeps the record without them (:meth:`Engine._stored`),
    so a republished copy is the same event."""
    return hashlib.sha256(without_secrets(value, event_type) or b"").hexdigest()


@dataclass
class Engine:
    """Processes batches of records of one partition for one service (see the module docstring)."""

    settings: RuntimeSettings
    handlers: Handlers
    tracking: Tracking
    publisher: Publisher
    emitter: Emitter
    reject_topic: str | None = None
    """Where bad input goes (decode errors, PermanentError, validation); None: the service's DLQ."""
    messages_ru: Mapping[str, str] = field(default_factory=dict)
    strict_types: bool = False
    """True: a record of a type without a handler is bad input (unknown_type), not 'ignored'."""
    strict_topics: frozenset[str] = frozenset()
    """Topics on which a type nobody knows is refused (``unknown_type``) rather than ignored, e.g. the
    actions topic, whose every type is the router's. On every topic, a known type the catalog does not
    list for it is refused ``type_not_allowed`` and one from a source other than its owner's
    ``forged_source`` (:meth:`trusted`); neither check can be turned off."""
    inbound: bool = False
    """The topics come from outside (raw submissions): accept what the CloudEvents Kafka binding
    allows (zhkh_contracts.decode); our own topics are read strictly."""
    retry_sleep: Callable[[float], Awaitable[None]] | None = None

    def __post_init__(self) -> None:
        topics = self.emitter.topics
        catalog = topics.catalog()
        self._known_topics = frozenset(spec.name for spec in catalog)
        self._topic_types = {spec.name: {cls.EVENT_TYPE: cls for cls in spec.events} for spec in catalog}
        self._sources = {spec.name: _owner_sources(spec) for spec in catalog}
        # a raw topic of no known channel (intake reads <prefix>.intake.raw.* by pattern): RawAppealSubmitted
        # only, from anyone (as on a channel adapter's topic); intake then refuses it for its channel
        self._raw_prefix = topics.raw(Channel.SITE_FORM).rsplit(".", 1)[0] + "."
        self._other_raw: tuple[dict[str, type[EventData]], dict[str, frozenset[str] | None]] = (
            {RawAppealSubmitted.EVENT_TYPE: RawAppealSubmitted}, {RawAppealSubmitted.EVENT_TYPE: None})

    def _rules(self, topic: str) -> tuple[Mapping[str, type[EventData]], Mapping[str, frozenset[str] | None]]:
        """The types allowed on a topic and, per type, the sources allowed (None: anyone). A topic outside
        the catalog allows nothing (a service reads only catalog topics)."""
        if topic in self._topic_types:
            return self._topic_types[topic], self._sources[topic]
        if topic.startswith(self._raw_prefix):
            return self._other_raw
        return {}, {}

    def trusted(self, topic: str, env: Envelope[Any]) -> bool:
        """Whether the event's source may publish its type on this topic: ``/zhkh-appeals/<owner>`` for
        one of the type's owners (``zhkh_contracts.owners``) that publish on this topic, unless systems
        outside this repository may publish the type there (``EXTERNAL_PRODUCERS``: channel adapters)."""
        allowed = self._rules(topic)[1].get(env.type)
        return allowed is None or env.source in allowed

    @property
    def service(self) -> str:
        return self.settings.service_name

    def _marker_id(self, env: Envelope[Any]) -> str:
        return f"{self.service}:{env.id}"

    # -- decoding --

    def _decode(self, record: Any) -> _Work | _Refuse | _Ignore:
        size = len(record.value or b"") + len(record.key or b"")
        if size > self.settings.max_record_bytes:
            return _Refuse(record, "too_large", f"{size} bytes > {self.settings.max_record_bytes}")
        strict = self.strict_types or record.topic in self.strict_topics
        registry = on_topic = self._rules(record.topic)[0]
        elsewhere = _Elsewhere(on_topic)  # known types that do not belong here: type_not_allowed
        if self.strict_types:
            registry = {t: cls for t, cls in registry.items() if t in self.handlers.classes}
        ts = getattr(record, "timestamp", None)
        try:
            received = datetime.fromtimestamp(ts / 1000, UTC) if isinstance(ts, int) and ts > 0 else None
        except (OverflowError, OSError, ValueError):
            received = None
        try:
            decoded = decode(record.value, record.headers, registry, key=record.key, inbound=self.inbound,
                             received_at=received, key_of=partition_key, known_types=elsewhere)
        except EnvelopeError as exc:
            if exc.reason == "unknown_type" and not strict:
                return _Ignore(record, "unknown")
            return _Refuse(record, exc.reason, exc.detail)
        except Exception as exc:  # noqa: BLE001 - whatever the decoder trips on, the record is routed
            return _Refuse(record, "undecodable", safe_detail(exc))
        env = decoded.envelope
        if decoded.original_id is not None:
            # the producer's own id (not a UUID) is known by its digest: an id chosen outside may say anything
            log.info("event_id_mapped", event_id=str(env.id),
                     source_event_id_sha256=hashlib.sha256(decoded.original_id.encode()).hexdigest()[:16],
                     topic=self.topic_label(record.topic), partition=record.partition, offset=record.offset)
        if not self.trusted(record.topic, env):
            return _Refuse(record, "forged_source", "the source is not an owner of this event type")
        handler = self.handlers.by_type.get(env.type)
        if handler is None or not self.handlers.wants(env.type, env.data):
            return _Ignore(record, env.type)
        return _Work(record, env, handler, digest_of(record.value, env.type))

    # -- processing --

    async def process(self, records: Sequence[Any]) -> None:
        """Process one partition batch; returns when its offsets may be committed."""
        started = time.perf_counter()
        items = [self._decode(r) for r in records]
        work = [i for i in items if isinstance(i, _Work)]
        batch_out: list[OutboundRecord] | None = []
        if len(work) > 1:
            try:
                batch_out = await self._run_batch(work)
            except Exception as exc:  # noqa: BLE001 - the batch is redone record by record
                log.info("batch_redo", size=len(work), error_type=type(exc).__name__)
                batch_out = None
        elif work:
            batch_out = None  # one record: the per-record path is the batch
        if batch_out is not None:
            await self.publisher.publish(batch_out)
            for item in items:
                await self._finish_simple(item)
                if isinstance(item, _Work):
                    metrics.CONSUMED.labels(self.service, self.topic_label(item.record.topic), self._type_label(item.env.type), "ok").inc()
        else:
            for item in items:
                if isinstance(item, _Work):
                    await self._one(item)
                else:
                    await self._finish_simple(item)
        metrics.HANDLER_SECONDS.labels(self.service).observe(time.perf_counter() - started)

    def _type_label(self, event_type: str) -> str:
        """Metric label: only types this service knows (a fixed set), never an input value."""
        return event_type if event_type in REGISTRY else "unknown"

    def topic_label(self, topic: str) -> str:
        """Metric label and log field: the catalog's topics only (a raw topic someone made up, read
        through the raw-topic pattern, is ``other``)."""
        return topic if topic in self._known_topics else "other"

    async def _finish_simple(self, item: _Work | _Refuse | _Ignore) -> None:
        if isinstance(item, _Ignore):
            metrics.CONSUMED.labels(self.service, self.topic_label(item.record.topic), self._type_label(item.type_label), "ignored").inc()
        elif isinstance(item, _Refuse):
            await self.dead_letter(item.record, item.reason, item.detail, 0, bad_input=True)

    async def _call(self, uow: Any, item: _Work) -> list[OutboundRecord]:
        msg = Message.of(item.env, item.record.topic)
        uow.message = msg
        out = await item.handler(item.env.data, uow)
        return self.emitter.records(out or (), msg)

    @staticmethod
    def _stored(records: list[OutboundRecord]) -> list[OutboundRecord]:
        """What the outbox keeps of the published records: each without its type's secret fields (the
        citizen's access code stays only in the published record; a redelivery republishes it without)."""
        out = []
        for r in records:
            kept = without_secrets(r.value, r.headers.get("ce_type"))
            out.append(r if kept is r.value else replace(r, value=kept))
        return out

    async def _run_batch(self, work: list[_Work]) -> list[OutboundRecord]:
        """Every record of the batch in one transaction; markers and outbox in one write."""
        out: list[OutboundRecord] = []
        async with self.tracking.unit() as unit:
            prefetch = getattr(unit.uow, "prefetch", None)
            if prefetch is not None:  # a unit of work may read what the batch needs in a few queries
                await prefetch([item.env.data for item in work])
            markers = []
            seen: set[str] = set()
            for item in work:
                mid = self._marker_id(item.env)
                if mid in seen:  # the same event twice in one batch: the per-record path decides
                    raise AlreadyProcessed(mid)
                seen.add(mid)
                records = await self._call(unit.uow, item)
                markers.append(Marker(mid, item.digest, self._stored(records)))
                out += records
            await unit.add_markers(markers)
        return out

    async def _one(self, item: _Work) -> None:
        """One record in its own transaction, transient failures retried, then dead-lettered."""
        env, record = item.env, item.record
        structlog.contextvars.bind_contextvars(
            event_id=str(env.id), appeal_id=env.appeal_id, event_type=env.type, correlation_id=str(env.correlation_id),
            topic=self.topic_label(record.topic), partition=record.partition, offset=record.offset,
        )
        attempts = 0
        try:
            retrying = AsyncRetrying(
                stop=stop_after_attempt(self.settings.retry_attempts) | stop_after_delay(self.settings.retry_budget_s),
                wait=wait_exponential_jitter(multiplier=self.settings.retry_initial_s, max=self.settings.retry_max_s),
                retry=retry_if_exception(is_transient),
                reraise=True,
                **({"sleep": self.retry_sleep} if self.retry_sleep else {}),
            )
            async for attempt in retrying:
                with attempt:
                    attempts = attempt.retry_state.attempt_number
                    if attempts > 1:
                        metrics.RETRIES.labels(self.service, self._type_label(env.type)).inc()
                        log.warning("retrying", attempt=attempts)
                    records = await self._once(item)
                    await self.publisher.publish(records)
        except Exception as exc:  # noqa: BLE001 - every failure is routed, none is swallowed
            reason = "retries_exhausted" if is_transient(exc) else reason_of(exc)
            if reason == "handler_error":
                log.debug("handler_error_trace", exc_info=True)  # DEBUG level only: a traceback may quote input
            await self.dead_letter(record, reason, safe_detail(exc), attempts, bad_input=is_bad_input(exc),
                                   error_type=type(exc).__name__)
            return
        finally:
            structlog.contextvars.unbind_contextvars(
                "event_id", "appeal_id", "event_type", "correlation_id", "topic", "partition", "offset"
            )
        metrics.CONSUMED.labels(self.service, self.topic_label(record.topic), self._type_label(env.type), "ok").inc()

    async def _once(self, item: _Work) -> list[OutboundRecord]:
        """Run the handler and write its marker; only when that fails, look at the marker: a
        redelivered record finds it and republishes its outbox (no read on the common path)."""
        mid = self._marker_id(item.env)
        try:
            async with self.tracking.unit() as unit:
                records = await self._call(unit.uow, item)
                await unit.add_markers([Marker(mid, item.digest, self._stored(records))])
            return records
        except Exception as exc:
            marker = await self.tracking.find(mid)
            if marker is None:
                if isinstance(exc, AlreadyProcessed):  # the other transaction did not commit after all
                    raise TransientError(f"processed marker {mid} not visible yet") from None
                raise
        if marker.digest and marker.digest != item.digest:
            raise PermanentError("conflicting_duplicate", "an event with this id and another body was processed")
        return marker.outbox

    # -- dead letters --

    async def dead_letter(self, record: Any, reason: str, detail: str, attempts: int, bad_input: bool = False,
                          error_type: str | None = None) -> None:
        """The original record (key, value, headers byte for byte, nulls kept) with x-dlq-* headers,
        to the rejected topic (bad input, when the service has one) or to the service's DLQ."""
        topic = self.reject_topic if bad_input and self.reject_topic else self.emitter.topics.dlq(self.service)
        extra = failure_headers(
            reason, detail, self.service, self.messages_ru.get(reason),
            **{"consumer-group": self.settings.group_id, "original-topic": record.topic,
               "original-partition": record.partition, "original-offset": record.offset, "attempts": attempts},
        )
        headers: list[tuple[str, bytes | None]] = [*list(record.headers or ()), *extra]
        try:
            await send_fitting(self.publisher, topic, record.key, record.value, headers, self.settings.max_dead_letter_bytes)
        except Exception:
            log.exception("dead_letter_publish_failed", reason=reason)
            raise
        metrics.DEAD_LETTERED.labels(self.service, self.topic_label(record.topic), reason).inc()
        metrics.CONSUMED.labels(self.service, self.topic_label(record.topic), "unknown", "dead_lettered").inc()
        log.warning("dead_lettered", reason=reason, error_type=error_type, dlq_topic=topic, attempts=attempts,
                    topic=self.topic_label(record.topic), partition=record.partition, offset=record.offset)


async def send_fitting(publisher: Publisher, topic: str, key: bytes | None, value: bytes | None,
                       headers: list[tuple[str, bytes | None]], limit: int) -> None:
    """Send a dead letter that always fits: when the original with its x-dlq-* headers would exceed
    ``limit``, keep its first bytes and say so (x-dlq-truncated, the original size and SHA-256)."""
    size = len(key or b"") + len(value or b"") + sum(len(k) + len(v or b"") for k, v in headers)
    if size > limit and value is not None:
        keep = max(0, limit - (size - len(value)) - 512)
        headers = [*headers, ("x-dlq-truncated", b"true"), ("x-dlq-original-size", str(len(value)).encode()),
                   ("x-dlq-original-sha256", hashlib.sha256(value).hexdigest().encode())]
        value = value[:keep]
    await publisher.send(topic, key, value, headers)


# ---- an in-memory tracking for fast tests of behaviour ------------------------------------------


class MemoryTracking:
    """Markers in a dict; a unit of work whose state is rolled back when the unit fails.

    ``make_uow()`` returns the service's in-memory unit of work; ``snapshot()``/``restore(s)`` on
    it (when present) give the rollback, so a failed batch leaves no partial writes, as a
    transaction would.
    """

    def __init__(self, uow: Any) -> None:
        self.uow = uow
        self.markers: dict[str, Marker] = {}

    async def find(self, marker_id: str) -> Marker | None:
        return self.markers.get(marker_id)

    @contextlib.asynccontextmanager
    async def unit(self) -> AsyncIterator[Unit]:
        snap = self.uow.snapshot() if hasattr(self.uow, "snapshot") else None
        tracking = self
        pending: list[Marker] = []

        class _U:
            uow = tracking.uow

            async def add_markers(self, markers: list[Marker]) -> None:
                for m in markers:
                    if m.id in tracking.markers:
                        raise AlreadyProcessed(m.id)
                pending.extend(markers)

        try:
            yield _U()
        except BaseException:
            if snap is not None:
                self.uow.restore(snap)
            raise
        for m in pending:
            self.markers[m.id] = m


class MemoryPublisher:
    """Collects what would be published (tests)."""

    def __init__(self) -> None:
        self.records: list[OutboundRecord] = []
        self.sent: list[tuple[str, bytes | None, bytes | None, list[tuple[str, bytes | None]]]] = []

    async def publish(self, records: Iterable[OutboundRecord]) -> None:
        self.records.extend(records)

    async def send(self, topic: str, key: bytes | None, value: bytes | None, headers: list[tuple[str, bytes | None]]) -> None:
        self.sent.append((topic, key, value, list(headers)))
