"""Every event the services exchange. Class names are unique (AsyncAPI keys schemas by them)."""

from __future__ import annotations

import uuid
from enum import StrEnum
from typing import ClassVar

from pydantic import AwareDatetime, Field

from .appeal import (
    MAX_TEXT_CHARS,
    Address,
    Appeal,
    Applicant,
    AttachmentRef,
    Category,
    Channel,
    Clarification,
    Consent,
    SourceRefKey,
    SourceRefValue,
)
from .envelope import EventData

TYPE_PREFIX = "ru.zhkh-appeals."


class RawAppealSubmitted(EventData):
    """A submission as a channel delivers it, before intake validates and registers it.

    Published by channel adapters (and intake's HTTP ingress) onto the channel's raw topic.
    The envelope's appeal_id for a raw event is ``<channel>:<source_id>``.
    """

    EVENT_TYPE: ClassVar[str] = TYPE_PREFIX + "intake.raw_submitted.v1"
    SCHEMA_VERSION: ClassVar[str] = "1.0"

    channel: Channel
    source_id: str = Field(min_length=1, max_length=200)
    received_at: AwareDatetime
    applicant: Applicant
    consent: Consent
    address: Address
    text: str = Field(min_length=1, max_length=MAX_TEXT_CHARS)
    category: Category | None = Field(default=None, description="The channel's own category, if any")
    emergency: bool | None = Field(
        default=None, description="The channel's own emergency mark (operator, dispatcher); True always wins"
    )
    attachments: tuple[AttachmentRef, ...] = Field(default=(), max_length=50)
    collective: bool = False
    clarifications: tuple[Clarification, ...] = Field(default=(), max_length=50)
    channel_meta: dict[SourceRefKey, SourceRefValue] = Field(
        default_factory=dict,
        max_length=50,
        description="Channel-specific ids: operator_id, call_recording_ref, clerk_id, bot_session...",
    )


class AppealRegistered(EventData):
    """Intake registered a new appeal (published once per (channel, source_id))."""

    EVENT_TYPE: ClassVar[str] = TYPE_PREFIX + "appeal.registered.v1"
    SCHEMA_VERSION: ClassVar[str] = "1.0"

    appeal: Appeal


class PartyKind(StrEnum):
    MANAGING_ORGANISATION = "managing_organisation"  # УК / ТСЖ / ЖСК
    RESOURCE_SUPPLIER = "resource_supplier"
    DISTRICT_ADMINISTRATION = "district_administration"
    CITY_DEPARTMENT = "city_department"
    HOUSING_INSPECTION = "housing_inspection"  # ГЖИ
    FALLBACK_QUEUE = "fallback_queue"  # operators route by hand


class AppealAssigned(EventData):
    """The router assigned the appeal to a responsible party."""

    EVENT_TYPE: ClassVar[str] = TYPE_PREFIX + "appeal.assigned.v1"
    SCHEMA_VERSION: ClassVar[str] = "1.0"

    appeal_id: uuid.UUID
    registration_number: str
    party_id: str
    party_kind: PartyKind
    reason: str = Field(description="Which rule (or fallback) decided, machine-readable")
    assigned_at: AwareDatetime


class AppealDuplicateLinked(EventData):
    """Intake found a likely duplicate: same applicant, house and category within the window.

    The new appeal is registered all the same (never dropped) and linked to the earlier one.
    """

    EVENT_TYPE: ClassVar[str] = TYPE_PREFIX + "appeal.duplicate_linked.v1"
    SCHEMA_VERSION: ClassVar[str] = "1.0"

    appeal_id: uuid.UUID
    registration_number: str
    duplicate_of: uuid.UUID
    duplicate_of_number: str
    house_key: str
    category: Category


class MassIncidentDetected(EventData):
    """Enough distinct applicants reported one problem in one house: one incident to handle once.

    Keyed by ``incident:<incident_id>``.
    """

    EVENT_TYPE: ClassVar[str] = TYPE_PREFIX + "incident.detected.v1"
    SCHEMA_VERSION: ClassVar[str] = "1.0"

    incident_id: uuid.UUID
    house_key: str
    category: Category
    appeal_ids: tuple[uuid.UUID, ...]
    opened_at: AwareDatetime
    threshold: int = Field(description="Distinct applicants that opened it")


class AppealJoinedIncident(EventData):
    """An appeal belongs to a mass incident (its members follow the incident's status)."""

    EVENT_TYPE: ClassVar[str] = TYPE_PREFIX + "appeal.joined_incident.v1"
    SCHEMA_VERSION: ClassVar[str] = "1.0"

    appeal_id: uuid.UUID
    registration_number: str
    incident_id: uuid.UUID


EVENT_CLASSES: tuple[type[EventData], ...] = (
    RawAppealSubmitted,
    AppealRegistered,
    AppealAssigned,
    AppealDuplicateLinked,
    MassIncidentDetected,
    AppealJoinedIncident,
)
REGISTRY: dict[str, type[EventData]] = {cls.EVENT_TYPE: cls for cls in EVENT_CLASSES}
