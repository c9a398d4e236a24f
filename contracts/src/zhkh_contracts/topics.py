"""Topic names, what travels on each, and key rules.

Key rule: every record's key is the envelope's appeal_id (raw topics: ``<channel>:<source_id>``; the outages topic: ``outage:<outage_id>``),
so all events of one appeal are in one partition, in order.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from . import _wiring
from .appeal import Channel
from .envelope import EventData
from .events import (
    ACTION_CLASSES,
    CARD_ACTION_CLASSES,
    CARD_EVENT_CLASSES,
    AppealAnswered,
    AppealAssigned,
    AppealExtended,
    AppealProgressUpdated,
    AppealRatingRequested,
    AppealStatusChanged,
    AppealTransitionRejected,
    AppealDuplicateLinked,
    DeadlineAlert,
    DeadlinePlanned,
    GisActionFailed,
    GisActionMirrored,
    AppealJoinedIncident,
    AppealRegistered,
    ConsultationConverted,
    ConsultationRecorded,
    MassIncidentDetected,
    OUTAGE_CLASSES,
    AppealLinkedToOutage,
    RawAppealSubmitted,
)

PREFIX = "zhkh"
"""Default topic prefix. A deployment may set its own (ZHKH_TOPIC_PREFIX), e.g. one per region."""

SERVICES = ("intake", "router", "notifier", "gis_sync", "analytics")
EXTERNAL_PRODUCERS: dict[str, tuple[type[EventData], ...]] = {
    "channel adapters": (RawAppealSubmitted,),
}
"""Systems outside this repository that publish to our topics, and what each sends (channel adapters: on the
raw topics of every channel but ``gis``, which gis_sync fills). Parties, operators and citizens act through
the router's HTTP API, which publishes their actions itself (contracts 1.4.0). What the services themselves
publish and consume is not written here: ``_wiring`` is generated from their code (devtools/gen_contracts.py)."""

SEVEN_DAYS_MS = 7 * 24 * 3600 * 1000
THIRTY_DAYS_MS = 30 * 24 * 3600 * 1000


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


@dataclass(frozen=True)
class Topics:
    """Topic names under one prefix."""

    prefix: str = PREFIX

    def raw(self, channel: Channel) -> str:
        """Raw submissions of one channel."""
        return f"{self.prefix}.intake.raw.{channel.value}"

    @property
    def lifecycle(self) -> str:
        """Every lifecycle event of every appeal, keyed by appeal id (per-appeal order)."""
        return f"{self.prefix}.appeals.lifecycle"

    @property
    def rejected(self) -> str:
        """Submissions intake refused (bad input): original bytes plus x-dlq-* reason headers."""
        return f"{self.prefix}.intake.rejected"

    @property
    def actions(self) -> str:
        """Actions on appeals from parties, citizens, operators and the notifier, keyed by appeal id
        (or incident:<id>); the router applies them to the lifecycle."""
        return f"{self.prefix}.appeals.actions"

    @property
    def outages(self) -> str:
        """The outage register (planned and emergency outages per house), keyed by ``outage:<id>`` (contracts 1.8)."""
        return f"{self.prefix}.outages"

    @property
    def consultations(self) -> str:
        """Consultations (questions answered, never routed) and their conversion into appeals, keyed by
        ``consultation:<id>`` (contracts 1.8)."""
        return f"{self.prefix}.intake.consultations"

    def dlq(self, service: str) -> str:
        """Dead letters of one service: original key/value/headers plus x-dlq-* error headers."""
        return f"{self.prefix}.{service}.dlq"

    def catalog(self) -> tuple[TopicSpec, ...]:
        return (
            *(
                TopicSpec(
                    name=self.raw(ch),
                    events=(RawAppealSubmitted,),
                    description=f"Raw submissions from the '{ch.value}' channel, before validation.",
                    retention_ms=SEVEN_DAYS_MS,
                    producers=_producers(f"intake.raw.{ch.value}", () if ch is Channel.GIS else ("channel adapters",)),
                    consumers=_consumers(f"intake.raw.{ch.value}"),
                )
                for ch in Channel
            ),
            TopicSpec(
                name=self.lifecycle,
                events=(
                    AppealRegistered,
                    AppealDuplicateLinked,
                    MassIncidentDetected,
                    AppealJoinedIncident,
                    AppealAssigned,
                    AppealStatusChanged,
                    AppealAnswered,
                    AppealExtended,
                    AppealProgressUpdated,
                    AppealRatingRequested,
                    AppealTransitionRejected,
                    DeadlinePlanned,
                    DeadlineAlert,
                    GisActionMirrored,
                    GisActionFailed,
                    AppealLinkedToOutage,
                    *CARD_EVENT_CLASSES,
                ),
                description="Lifecycle events of every appeal (keyed by appeal id), incident (incident:<id>) and "
                "control card (card:<id>).",
                retention_ms=THIRTY_DAYS_MS,
                producers=_producers("appeals.lifecycle"),
                consumers=_consumers("appeals.lifecycle"),
            ),
            TopicSpec(
                name=self.actions,
                events=(*ACTION_CLASSES, *CARD_ACTION_CLASSES),
                description="Actions on appeals (accept, answer, not ours, extension, rating, complaint, "
                "withdrawal, operator routing, deadline expiry), keyed by appeal id or incident:<id>, and on "
                "control cards (report or confirm restoration), keyed by card:<id>.",
                retention_ms=THIRTY_DAYS_MS,
                producers=_producers("appeals.actions", _external(ACTION_CLASSES)),
                consumers=_consumers("appeals.actions"),
            ),
            TopicSpec(
                name=self.outages,
                events=OUTAGE_CLASSES,
                description="The outage register: planned and emergency outages per house or district (registered, "
                "restore time changed, restored), keyed by outage:<outage_id>. No personal data.",
                retention_ms=THIRTY_DAYS_MS,
                producers=_producers("outages"),
                consumers=_consumers("outages"),
            ),
            TopicSpec(
                name=self.consultations,
                events=(ConsultationRecorded, ConsultationConverted),
                description="Consultations intake recorded (channel, topic, articles given, resolved at first "
                "contact) and their conversion into appeals; no personal data or free text. Keyed by "
                "consultation:<id>.",
                retention_ms=THIRTY_DAYS_MS,
                producers=_producers("intake.consultations"),
                consumers=_consumers("intake.consultations"),
            ),
            TopicSpec(
                name=self.rejected,
                events=(),
                description=(
                    "Submissions intake refused: the original record with x-dlq-reason (machine-readable), "
                    "x-dlq-error (field paths, never values) and x-dlq-message-ru (for the citizen)."
                ),
                partitions=1,
                retention_ms=THIRTY_DAYS_MS,
                producers=_producers("intake.rejected"),
            ),
            *(
                TopicSpec(
                    name=self.dlq(svc),
                    events=(),
                    description=(
                        f"Dead letters of {svc}: the original record (key, value, headers) with "
                        "x-dlq-reason, x-dlq-error, x-dlq-original-topic/partition/offset, x-dlq-attempts."
                    ),
                    partitions=1,
                    retention_ms=THIRTY_DAYS_MS,
                    producers=_producers(f"{svc}.dlq"),
                )
                for svc in SERVICES
            ),
        )


def owners(event_type: str) -> tuple[str, ...]:
    """The services that publish events of this type (generated from their code: ``_wiring.TYPE_PRODUCERS``).
    A consumer accepts such an event only from one of them (CloudEvents source ``/zhkh-appeals/<service>``),
    except on a topic where systems outside this repository may publish it (``EXTERNAL_PRODUCERS``)."""
    return _wiring.TYPE_PRODUCERS.get(event_type, ())


def source_of(service: str) -> str:
    """The CloudEvents source of everything a service publishes."""
    return f"/zhkh-appeals/{service}"


def _producers(kind: str, external: tuple[str, ...] = ()) -> tuple[str, ...]:
    return (*_wiring.PRODUCERS.get(kind, ()), *external)


def _consumers(kind: str) -> tuple[str, ...]:
    return _wiring.CONSUMERS.get(kind, ())


def _external(events: tuple[type[EventData], ...]) -> tuple[str, ...]:
    return tuple(name for name, sent in EXTERNAL_PRODUCERS.items() if set(sent) & set(events))


DEFAULT_TOPICS = Topics()
LIFECYCLE = DEFAULT_TOPICS.lifecycle
CATALOG = DEFAULT_TOPICS.catalog()
raw_topic = DEFAULT_TOPICS.raw
dlq_topic = DEFAULT_TOPICS.dlq
