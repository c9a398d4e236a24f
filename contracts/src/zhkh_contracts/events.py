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
    Consent,
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
    attachments: tuple[AttachmentRef, ...] = ()
    collective: bool = False
    channel_meta: dict[str, str] = Field(
        default_factory=dict,
        description="Channel-specific ids: operator id, call recording ref, clerk id, bot session...",
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


EVENT_CLASSES: tuple[type[EventData], ...] = (RawAppealSubmitted, AppealRegistered, AppealAssigned)
REGISTRY: dict[str, type[EventData]] = {cls.EVENT_TYPE: cls for cls in EVENT_CLASSES}
