"""Event envelope and its CloudEvents 1.0 Kafka protocol binding (binary content mode).

On the wire an event is one Kafka record:

* key: the appeal id (UTF-8), so every event of one appeal lands in one partition, in order;
* value: the event's ``data`` as UTF-8 JSON;
* headers: the CloudEvents attributes as ``ce_<name>`` plus ``content-type``.

Extension attributes used here (CloudEvents names are lowercase alphanumerics):
``ce_schemaversion`` (minor version of the data schema), ``ce_correlationid`` (the id that
ties every event caused by one submission together), ``ce_partitionkey`` (the appeal id, as
in the CloudEvents partitioning extension).
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from collections.abc import Mapping
from typing import Any, ClassVar, Generic, TypeVar

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from .resources import dataschema

SPEC_VERSION = "1.0"
CONTENT_TYPE = "application/json"


class EventData(BaseModel):
    """Base of every event payload. Subclasses set ``EVENT_TYPE`` and ``SCHEMA_VERSION``.

    ``EVENT_TYPE`` carries the major version (``...v1``): an incompatible change is a new
    type. ``SCHEMA_VERSION`` is ``"<major>.<minor>"``; minor grows with optional additions.
    """

    model_config = ConfigDict(extra="ignore", frozen=True)

    EVENT_TYPE: ClassVar[str]
    SCHEMA_VERSION: ClassVar[str]


D = TypeVar("D", bound=EventData)


class Envelope(BaseModel, Generic[D]):
    """One event: its CloudEvents attributes and its data."""

    model_config = ConfigDict(frozen=True)

    id: uuid.UUID = Field(default_factory=uuid.uuid4, description="Event id; consumers dedupe on it")
    type: str = Field(description="CloudEvents type, e.g. ru.zhkh-appeals.appeal.registered.v1")
    schema_version: str = Field(description="<major>.<minor> of the data schema")
    occurred_at: AwareDatetime = Field(description="When the fact happened (timezone-aware)")
    source: str = Field(description="URI-reference of the producer, e.g. /zhkh-appeals/intake")
    correlation_id: uuid.UUID = Field(description="Shared by every event caused by one submission")
    appeal_id: str = Field(min_length=1, max_length=128, description="Partition key")
    data: D

    @classmethod
    def new(
        cls,
        data: D,
        *,
        source: str,
        appeal_id: str,
        correlation_id: uuid.UUID | None = None,
        occurred_at: datetime | None = None,
        event_id: uuid.UUID | None = None,
    ) -> Envelope[D]:
        return cls(
            id=event_id or uuid.uuid4(),
            type=data.EVENT_TYPE,
            schema_version=data.SCHEMA_VERSION,
            occurred_at=occurred_at or datetime.now(UTC),
            source=source,
            correlation_id=correlation_id or uuid.uuid4(),
            appeal_id=appeal_id,
            data=data,
        )


class EnvelopeError(ValueError):
    """A Kafka record is not a valid event. ``reason`` is a stable machine-readable code."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


HeaderList = list[tuple[str, bytes]]


def to_kafka(envelope: Envelope[Any]) -> tuple[bytes, bytes, dict[str, str]]:
    """Encode an envelope as (key, value, headers) in CloudEvents binary mode."""
    headers = {
        "ce_specversion": SPEC_VERSION,
        "ce_id": str(envelope.id),
        "ce_type": envelope.type,
        "ce_source": envelope.source,
        "ce_time": envelope.occurred_at.isoformat(),
        "ce_subject": envelope.appeal_id,
        "ce_schemaversion": envelope.schema_version,
        "ce_correlationid": str(envelope.correlation_id),
        "ce_partitionkey": envelope.appeal_id,
        "ce_dataschema": dataschema(envelope.type),
        "content-type": CONTENT_TYPE,
    }
    value = envelope.data.model_dump_json().encode("utf-8")
    return envelope.appeal_id.encode("utf-8"), value, headers


def read_headers(raw_headers: Any) -> dict[str, str]:
    """Kafka headers (sequence of (name, bytes)) to a dict of strings; undecodable values fail."""
    out: dict[str, str] = {}
    for name, value in raw_headers or ():
        if value is None:
            continue
        try:
            out[name] = value.decode("utf-8") if isinstance(value, bytes | bytearray) else str(value)
        except UnicodeDecodeError as exc:
            raise EnvelopeError("bad_header", f"header {name!r} is not UTF-8") from exc
    return out


def from_kafka(
    value: bytes | None,
    headers: Any,
    registry: Mapping[str, type[EventData]],
) -> Envelope[EventData]:
    """Decode a binary-mode CloudEvent. ``registry`` maps ``ce_type`` to the data class.

    Raises EnvelopeError with a stable ``reason``: missing_header, bad_header, unknown_type,
    bad_encoding, bad_json, missing_field, unknown_channel, too_long, invalid_data,
    invalid_envelope.
    """
    h = read_headers(headers)
    for name in ("ce_id", "ce_type", "ce_source", "ce_time", "ce_specversion"):
        if name not in h:
            raise EnvelopeError("missing_header", name)
    data_cls = registry.get(h["ce_type"])
    if data_cls is None:
        raise EnvelopeError("unknown_type", h["ce_type"][:200])
    if value is None:
        raise EnvelopeError("bad_json", "empty value")
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise EnvelopeError("bad_encoding", f"value is not UTF-8 at byte {exc.start}") from exc
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise EnvelopeError("bad_json", f"{exc.msg} at line {exc.lineno} column {exc.colno}") from exc
    except RecursionError as exc:
        raise EnvelopeError("bad_json", "nested too deeply") from exc
    try:
        data = data_cls.model_validate(raw)
    except ValidationError as exc:
        raise EnvelopeError(validation_reason(exc), describe_validation_error(exc)) from exc
    appeal_id = h.get("ce_partitionkey") or h.get("ce_subject")
    try:
        return Envelope[data_cls].model_validate(  # type: ignore[valid-type]
            {
                "id": h["ce_id"],
                "type": h["ce_type"],
                "schema_version": h.get("ce_schemaversion", data_cls.SCHEMA_VERSION),
                "occurred_at": h["ce_time"],
                "source": h["ce_source"],
                "correlation_id": h.get("ce_correlationid") or h["ce_id"],
                "appeal_id": appeal_id,
                "data": data,
            }
        )
    except ValidationError as exc:
        raise EnvelopeError("invalid_envelope", describe_validation_error(exc)) from exc


def validation_reason(exc: ValidationError) -> str:
    """The most useful single reason code for a data validation failure."""
    errors = exc.errors(include_input=False, include_url=False, include_context=False)
    types = {e["type"] for e in errors}
    if "missing" in types:
        return "missing_field"
    if any(e["loc"][:1] == ("channel",) for e in errors):
        return "unknown_channel"
    if types & {"string_too_long", "too_long"}:
        return "too_long"
    return "invalid_data"


def describe_validation_error(exc: ValidationError, limit: int = 10) -> str:
    """Field paths and messages only: never the input values (they may hold personal data)."""
    parts = []
    for err in exc.errors(include_input=False, include_url=False, include_context=False)[:limit]:
        loc = ".".join(str(p) for p in err["loc"]) or "<root>"
        parts.append(f"{loc}: {err['type']}")
    more = exc.error_count() - limit
    if more > 0:
        parts.append(f"... {more} more")
    return "; ".join(parts)
