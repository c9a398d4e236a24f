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

import base64
import binascii
import json
import math
import re
import uuid
from collections.abc import Callable, Container, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
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
    appeal_id: str = Field(min_length=1, max_length=256, description="Partition key")
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


MAX_JSON_DEPTH = 64
"""Deepest nesting of JSON objects/arrays read (ours are at most 5 deep): deeper input is refused
before any recursive parser, validator or serializer sees it."""
MAX_ID_CHARS = 256
MAX_KEY_CHARS = 256
MAX_FUTURE = timedelta(days=1)
"""ce_time further ahead of the receiving clock than this is refused (a deadline from year 9999)."""
INBOUND_ID_NS = uuid.UUID("8d6f0b52-3c1e-4a8f-9e57-2b1c4f6a9d30")
"""uuid5 namespace mapping a non-UUID CloudEvents id (unique per source) to our event id."""
_INT64 = 2**63
_READ_HEADERS = ("ce_specversion", "ce_id", "ce_type", "ce_source", "ce_time", "ce_subject", "ce_schemaversion",
                 "ce_correlationid", "ce_partitionkey", "content-type")
STRICT_REQUIRED = ("ce_specversion", "ce_id", "ce_type", "ce_source", "ce_time", "ce_partitionkey")
"""Our own topics (lifecycle, actions): what to_kafka writes, checked strictly."""
INBOUND_REQUIRED = ("ce_specversion", "ce_id", "ce_type", "ce_source")
"""Inbound (raw) topics: what the CloudEvents 1.0 Kafka binding requires; time defaults to the
receive time, the partition key to the record key (or to the data's own key)."""
_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"', re.S)
_BRACKETS = re.compile(r"[\[\]{}]")
_SCHEMA_VERSION = re.compile(r"^\d{1,4}\.\d{1,4}$")
_LONE_SURROGATE = re.compile(r"\\u[dD][89abAB][0-9a-fA-F]{2}(?!\\u[dD][c-fC-F][0-9a-fA-F]{2})"
                             r"|(?<!\\u[dD][89abAB][0-9a-fA-F]{2})\\u[dD][c-fC-F][0-9a-fA-F]{2}")


class _Refused(Exception):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(reason)
        self.reason, self.detail = reason, detail


def _int(text: str) -> int:
    if len(text) > 20:
        raise _Refused("invalid_data", "integer beyond 64 bits")
    n = int(text)
    if not -_INT64 <= n < _INT64:
        raise _Refused("invalid_data", "integer beyond 64 bits")
    return n


def _float(text: str) -> float:
    f = float(text)
    if math.isinf(f):
        raise _Refused("invalid_data", "number out of range")
    return f


def _constant(name: str) -> Any:
    raise _Refused("bad_json", "NaN and Infinity are not JSON")


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise _Refused("bad_json", "duplicate object key")
        if k.startswith("$"):
            raise _Refused("invalid_data", "object key starting with $")
        out[k] = v
    return out


def json_depth(text: str) -> int:
    """Deepest nesting of objects and arrays in a JSON text (strings skipped); no recursion."""
    depth = deepest = 0
    for ch in _BRACKETS.findall(_STRINGS.sub("", text)):
        if ch in "[{":
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth -= 1
    return deepest


def _syntax_error(text: str) -> json.JSONDecodeError | None:
    """The text's JSON syntax error, if any: numbers kept as text, so only the syntax is checked."""
    try:
        json.loads(text, parse_int=str, parse_float=str)
    except json.JSONDecodeError as exc:
        return exc
    return None


def parse_json(value: bytes | None) -> Any:
    """Strict UTF-8 JSON for every reader (consumers and the HTTP ingress alike).

    Refuses, with EnvelopeError reasons: invalid UTF-8 (``bad_encoding``); broken JSON, duplicate
    object keys, NaN/Infinity, nesting deeper than MAX_JSON_DEPTH (``bad_json``); integers beyond
    64 bits (which MongoDB cannot store), infinite numbers and object keys starting with ``$``
    (``invalid_data``). Details never quote the input."""
    if value is None:
        raise EnvelopeError("bad_json", "empty value")
    try:
        text = bytes(value).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise EnvelopeError("bad_encoding", f"value is not UTF-8 at byte {exc.start}") from None
    if json_depth(text) > MAX_JSON_DEPTH:
        raise EnvelopeError("bad_json", f"nested deeper than {MAX_JSON_DEPTH}")
    if "\\u" in text and _LONE_SURROGATE.search(text):  # not encodable as UTF-8, nor storable
        raise EnvelopeError("bad_encoding", "an escaped lone UTF-16 surrogate")
    try:
        return json.loads(text, parse_int=_int, parse_float=_float, parse_constant=_constant, object_pairs_hook=_object)
    except _Refused as exc:
        broken = _syntax_error(text) if exc.reason != "bad_json" else None
        if broken is not None:  # broken JSON is bad_json, whatever the reader met before the break
            raise EnvelopeError("bad_json", f"{broken.msg} at line {broken.lineno} column {broken.colno}") from None
        raise EnvelopeError(exc.reason, exc.detail) from None
    except json.JSONDecodeError as exc:
        raise EnvelopeError("bad_json", f"{exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except (RecursionError, ValueError):
        raise EnvelopeError("bad_json", "not readable as JSON") from None


def read_headers(raw_headers: Any) -> dict[str, str]:
    """The headers an event is read from (``ce_*`` attributes and ``content-type``) as strings.

    Other headers (tracing, ...) are not read. A read header that is not UTF-8, or that appears
    twice (which copy would win is the reader's accident), is refused as ``bad_header``; a
    null-valued one counts as absent. Details name only headers we know, never input."""
    out: dict[str, str] = {}
    seen: set[str] = set()
    for name, value in raw_headers or ():
        if not (name.startswith("ce_") or name.lower() == "content-type"):
            continue
        shown = name if name in _READ_HEADERS else "a ce_ header"
        if name in seen:
            raise EnvelopeError("bad_header", f"{shown} appears more than once")
        seen.add(name)
        if value is None:
            continue
        try:
            out[name.lower() if name.lower() == "content-type" else name] = (
                bytes(value).decode("utf-8") if isinstance(value, bytes | bytearray) else str(value))
        except UnicodeDecodeError:
            raise EnvelopeError("bad_header", f"{shown} is not UTF-8") from None
    return out


@dataclass(frozen=True)
class Decoded:
    """A decoded record: the envelope, and the producer's own event id when it was not a UUID
    (inbound topics map it to ``uuid5(INBOUND_ID_NS, source + NUL + id)``)."""

    envelope: Envelope[Any]
    original_id: str | None = None


def _attr(attrs: Mapping[str, Any], name: str) -> str | None:
    v = attrs.get(name)
    if v is None:
        return None
    if not isinstance(v, str):
        raise EnvelopeError("bad_header", f"ce_{name} is not a string")
    return v or None


def from_kafka(
    value: bytes | None,
    headers: Any,
    registry: Mapping[str, type[EventData]],
    **kw: Any,
) -> Envelope[EventData]:
    """Decode a CloudEvent (see :func:`decode`); the envelope only."""
    return decode(value, headers, registry, **kw).envelope


def decode(
    value: bytes | None,
    headers: Any,
    registry: Mapping[str, type[EventData]],
    *,
    key: bytes | None | bool = False,
    inbound: bool = False,
    received_at: datetime | None = None,
    key_of: Callable[[EventData], str] | None = None,
    now: datetime | None = None,
    known_types: Container[str] = (),
) -> Decoded:
    """Decode a CloudEvent from a Kafka record. ``registry`` maps ``ce_type`` to the data class.

    ``key``: the record key; when given (bytes or None), it must agree with ``ce_partitionkey``
    when both exist (``key_mismatch``), and stands in for it when only the key exists.

    Strict (``inbound=False``, our own topics): binary mode, STRICT_REQUIRED headers, ``ce_id``
    a UUID. Inbound (raw topics): what the CloudEvents 1.0 Kafka binding allows: binary or
    structured mode (``application/cloudevents+json``), INBOUND_REQUIRED attributes, any
    non-empty id (a non-UUID one is mapped, see :class:`Decoded`), time defaulting to
    ``received_at``, the partition key from the record key or ``key_of(data)``.

    ``known_types``: types that exist but are not in ``registry`` because they do not belong on this
    topic: such a record is refused ``type_not_allowed`` (before its body is read), another type ``unknown_type``.

    Raises EnvelopeError with a stable ``reason``: missing_header, bad_header, unknown_type, type_not_allowed,
    bad_encoding, bad_json, missing_field, unknown_channel, too_long, invalid_data,
    invalid_envelope, key_mismatch. Details never quote input values.
    """
    now = now or datetime.now(UTC)
    h = read_headers(headers)
    media = h.get("content-type", "").split(";")[0].strip().lower()
    body: Any = None
    if media == "application/cloudevents+json":
        if not inbound:
            raise EnvelopeError("invalid_envelope", "structured mode is accepted on inbound topics only")
        doc = parse_json(value)
        if not isinstance(doc, dict):
            raise EnvelopeError("invalid_envelope", "a structured event must be a JSON object")
        attrs: dict[str, Any] = {k: v for k, v in doc.items() if k not in ("data", "data_base64")}
        if "data_base64" in doc:
            if not isinstance(doc["data_base64"], str):
                raise EnvelopeError("invalid_envelope", "data_base64 is not a string")
            try:
                body = parse_json(base64.b64decode(doc["data_base64"], validate=True))
            except (binascii.Error, ValueError) as exc:
                if isinstance(exc, EnvelopeError):
                    raise
                raise EnvelopeError("bad_encoding", "data_base64 is not base64") from None
        elif "data" in doc:
            body = doc["data"]
        else:
            raise EnvelopeError("missing_field", "data")
        dct = attrs.get("datacontenttype")
        if dct is not None and (not isinstance(dct, str) or dct.split(";")[0].strip().lower() != "application/json"):
            raise EnvelopeError("bad_header", "datacontenttype must be application/json")
        required = tuple(n[3:] for n in INBOUND_REQUIRED)
        prefix = ""
    else:
        if media and media != "application/json":
            raise EnvelopeError("bad_header", "content-type must be application/json")
        attrs = {k[3:]: v for k, v in h.items() if k.startswith("ce_")}
        required = tuple(n[3:] for n in (INBOUND_REQUIRED if inbound else STRICT_REQUIRED))
        prefix = "ce_"
    for name in required:
        if not _attr(attrs, name):
            raise EnvelopeError("missing_header", prefix + name)
    if _attr(attrs, "specversion") != SPEC_VERSION:
        raise EnvelopeError("bad_header", f"{prefix}specversion must be {SPEC_VERSION}")
    type_name = _attr(attrs, "type") or ""
    data_cls = registry.get(type_name)
    if data_cls is None:
        if type_name in known_types:
            raise EnvelopeError("type_not_allowed", f"{prefix}type does not belong on this topic")
        raise EnvelopeError("unknown_type", f"{prefix}type is not handled on this topic")

    source = _attr(attrs, "source") or ""
    if len(source) > 512:
        raise EnvelopeError("bad_header", f"{prefix}source longer than 512")
    raw_id = _attr(attrs, "id") or ""
    original_id = None
    try:
        event_id = uuid.UUID(raw_id)
    except ValueError:
        if not inbound:
            raise EnvelopeError("bad_header", f"{prefix}id is not a UUID") from None
        if len(raw_id) > MAX_ID_CHARS:
            raise EnvelopeError("bad_header", f"{prefix}id longer than {MAX_ID_CHARS}") from None
        event_id, original_id = uuid.uuid5(INBOUND_ID_NS, f"{source}\x00{raw_id}"), raw_id

    time_text = _attr(attrs, "time")
    if time_text is None:
        occurred_at = received_at or now
    else:
        try:
            occurred_at = datetime.fromisoformat(time_text.replace("Z", "+00:00").replace("z", "+00:00"))
        except ValueError:
            raise EnvelopeError("bad_header", f"{prefix}time is not an RFC 3339 time") from None
        if occurred_at.tzinfo is None:
            raise EnvelopeError("bad_header", f"{prefix}time has no offset")
        try:
            ahead = occurred_at - now
        except OverflowError:
            raise EnvelopeError("bad_header", f"{prefix}time out of range") from None
        if ahead > MAX_FUTURE:
            raise EnvelopeError("bad_header", f"{prefix}time is in the future")

    schema_version = _attr(attrs, "schemaversion") or data_cls.SCHEMA_VERSION
    if not _SCHEMA_VERSION.match(schema_version):
        raise EnvelopeError("bad_header", f"{prefix}schemaversion is not <major>.<minor>")
    corr_text = _attr(attrs, "correlationid")
    correlation_id = event_id
    if corr_text is not None:
        try:
            correlation_id = uuid.UUID(corr_text)
        except ValueError:
            if not inbound or len(corr_text) > MAX_ID_CHARS:
                raise EnvelopeError("bad_header", f"{prefix}correlationid is not a UUID") from None
            correlation_id = uuid.uuid5(INBOUND_ID_NS, f"{source}\x00{corr_text}")

    if prefix:  # binary mode: the value is the data
        body = parse_json(value)
    try:
        data = data_cls.model_validate(body)
    except ValidationError as exc:
        raise EnvelopeError(validation_reason(exc), describe_validation_error(exc)) from None
    except RecursionError:
        raise EnvelopeError("bad_json", "nested too deeply") from None
    pkey = _attr(attrs, "partitionkey")
    record_key: str | None = None
    if key is not False and key is not None:
        try:
            record_key = bytes(key).decode("utf-8") or None  # type: ignore[arg-type]
        except UnicodeDecodeError:
            raise EnvelopeError("bad_header", "record key is not UTF-8") from None
    if pkey is not None and record_key is not None and pkey != record_key:
        raise EnvelopeError("key_mismatch", f"record key differs from {prefix}partitionkey")
    if not inbound:
        subject = _attr(attrs, "subject")
        if subject is not None and subject != pkey:
            raise EnvelopeError("key_mismatch", "ce_subject differs from ce_partitionkey")

    appeal_id = pkey or record_key
    if appeal_id is None and inbound and key_of is not None:
        appeal_id = key_of(data)
    if appeal_id is None:
        raise EnvelopeError("missing_header", f"{prefix}partitionkey")
    if len(appeal_id) > MAX_KEY_CHARS:
        raise EnvelopeError("too_long", f"partition key longer than {MAX_KEY_CHARS}")
    try:
        env = Envelope[data_cls].model_validate(  # type: ignore[valid-type]
            {
                "id": event_id,
                "type": data_cls.EVENT_TYPE,
                "schema_version": schema_version,
                "occurred_at": occurred_at,
                "source": source,
                "correlation_id": correlation_id,
                "appeal_id": appeal_id,
                "data": data,
            }
        )
    except ValidationError as exc:
        raise EnvelopeError("invalid_envelope", describe_validation_error(exc)) from None
    return Decoded(env, original_id)


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


_LOC_TAGS = frozenset({"[key]"})
_known: tuple[int, frozenset[str]] = (0, frozenset())


def _known_names() -> frozenset[str]:
    """Every field name (and alias) of every pydantic model in the process: names from code."""
    global _known
    seen: list[type[BaseModel]] = []
    stack: list[type[BaseModel]] = [BaseModel]
    while stack:
        cls = stack.pop()
        seen.append(cls)
        stack.extend(cls.__subclasses__())
    if len(seen) != _known[0]:
        names: set[str] = set()
        for cls in seen:
            for fname, f in getattr(cls, "model_fields", {}).items():
                names.add(fname)
                if f.alias:
                    names.add(f.alias)
        _known = (len(seen), frozenset(names))
    return _known[1]


def safe_loc(loc: tuple[Any, ...]) -> str:
    """A field path with every part that is not a model field name, an index or pydantic's own
    tag replaced by ``*``: dictionary keys come from the input and may be personal data."""
    known = _known_names()
    parts = [str(p) if isinstance(p, int) or p in known or p in _LOC_TAGS else "*" for p in loc]
    return ".".join(parts) or "<root>"


def safe_fields(exc: ValidationError, limit: int = 20) -> list[str]:
    """The field paths of a validation error (see :func:`safe_loc`), for answers and headers."""
    return [safe_loc(e["loc"]) for e in exc.errors(include_input=False, include_url=False, include_context=False)[:limit]]


def describe_validation_error(exc: ValidationError, limit: int = 10) -> str:
    """Field paths (dictionary keys replaced by ``*``) and error kinds only: never input values."""
    parts = []
    for err in exc.errors(include_input=False, include_url=False, include_context=False)[:limit]:
        parts.append(f"{safe_loc(err['loc'])}: {err['type']}")
    more = exc.error_count() - limit
    if more > 0:
        parts.append(f"... {more} more")
    return "; ".join(parts)
