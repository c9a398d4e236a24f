"""Topic names, what travels on each, and key rules.

Key rule: every record's key is the envelope's appeal_id (raw topics: ``<channel>:<source_id>``),
so all events of one appeal are in one partition, in order.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .appeal import Channel
from .envelope import EventData
from .events import AppealAssigned, AppealRegistered, RawAppealSubmitted

PREFIX = "zhkh"


def raw_topic(channel: Channel) -> str:
    return f"{PREFIX}.intake.raw.{channel.value}"


LIFECYCLE = f"{PREFIX}.appeals.lifecycle"
"""Every lifecycle event of every appeal, keyed by appeal id (per-appeal order)."""


def dlq_topic(service: str) -> str:
    """Dead letters of one service: original key/value/headers plus x-dlq-* error headers."""
    return f"{PREFIX}.{service}.dlq"


SERVICES = ("intake", "router", "notifier", "gis_sync")


@dataclass(frozen=True)
class TopicSpec:
    name: str
    events: tuple[type[EventData], ...]
    description: str
    partitions: int = 3
    retention_ms: int | None = None
    producers: tuple[str, ...] = ()
    consumers: tuple[str, ...] = ()
    config: dict[str, str] = field(default_factory=dict)


SEVEN_DAYS_MS = 7 * 24 * 3600 * 1000
THIRTY_DAYS_MS = 30 * 24 * 3600 * 1000

CATALOG: tuple[TopicSpec, ...] = (
    *(
        TopicSpec(
            name=raw_topic(ch),
            events=(RawAppealSubmitted,),
            description=f"Raw submissions from the '{ch.value}' channel, before validation.",
            retention_ms=SEVEN_DAYS_MS,
            producers=("channel adapters", "intake HTTP ingress") if ch is not Channel.GIS else ("gis_sync",),
            consumers=("intake",),
        )
        for ch in Channel
    ),
    TopicSpec(
        name=LIFECYCLE,
        events=(AppealRegistered, AppealAssigned),
        description="Lifecycle events of every appeal, keyed by appeal id.",
        retention_ms=THIRTY_DAYS_MS,
        producers=("intake", "router"),
        consumers=("router", "notifier", "gis_sync"),
    ),
    *(
        TopicSpec(
            name=dlq_topic(svc),
            events=(),
            description=(
                f"Dead letters of {svc}: the original record (key, value, headers) with "
                "x-dlq-reason, x-dlq-error, x-dlq-original-topic/partition/offset, x-dlq-attempts."
            ),
            partitions=1,
            retention_ms=THIRTY_DAYS_MS,
            producers=(svc,),
        )
        for svc in SERVICES
    ),
)
