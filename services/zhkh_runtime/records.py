"""Outgoing records as plain data (no broker imports), so service logic can produce them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from zhkh_contracts import Envelope, to_kafka


@dataclass(frozen=True)
class OutboundRecord:
    """A record ready to publish; stored as-is in the outbox so a redelivery republishes the same bytes."""

    topic: str
    key: bytes
    value: bytes
    headers: dict[str, str]

    @classmethod
    def of(cls, topic: str, envelope: Envelope[Any]) -> OutboundRecord:
        key, value, headers = to_kafka(envelope)
        return cls(topic=topic, key=key, value=value, headers=headers)

    def to_doc(self) -> dict[str, Any]:
        return {"topic": self.topic, "key": self.key, "value": self.value, "headers": self.headers}

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any]) -> OutboundRecord:
        return cls(topic=doc["topic"], key=bytes(doc["key"]), value=bytes(doc["value"]), headers=dict(doc["headers"]))


def failure_headers(reason: str, detail: str, service: str, message_ru: str | None = None, **extra: object) -> list[tuple[str, bytes]]:
    """The x-dlq-* headers of a dead letter or a rejection (see docs/contracts.md)."""
    headers = {
        "x-dlq-reason": reason,
        "x-dlq-error": detail,
        "x-dlq-service": service,
        **{f"x-dlq-{k}": str(v) for k, v in extra.items()},
        "x-dlq-failed-at": datetime.now(UTC).isoformat(),
    }
    if message_ru:
        headers["x-dlq-message-ru"] = message_ru
    return [(k, v.encode("utf-8", "replace")) for k, v in headers.items()]
