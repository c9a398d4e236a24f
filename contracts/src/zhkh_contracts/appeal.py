"""The canonical appeal and the vocabularies it uses."""

from __future__ import annotations

import re
import uuid
from enum import StrEnum

from typing import Annotated

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints

MAX_TEXT_CHARS = 20_000
"""Longest appeal text accepted (characters). Longer input is rejected, not truncated."""


class Channel(StrEnum):
    """Where an appeal came from. Each has its own raw-submission topic (see topics.py)."""

    GIS = "gis"  # state portal / ГИС ЖКХ (dom.gosuslugi.ru)
    SITE_FORM = "site_form"  # the organisation's official site form
    SOCIAL = "social"  # social networks and public messenger chats
    PAPER = "paper"  # written appeal delivered by hand, registered by a clerk
    RECEPTION = "reception"  # personal reception by an official
    HOTLINE = "hotline"  # hotline / call centre
    CHATBOT = "chatbot"  # the mobile app chat-bot


class Category(StrEnum):
    """Category taxonomy (docs/taxonomy.md)."""

    HEATING = "heating"
    HOT_WATER = "hot_water"
    COLD_WATER = "cold_water"
    SEWERAGE = "sewerage"
    ELECTRICITY = "electricity"
    GAS = "gas"
    COMMON_PROPERTY = "common_property"  # common property & repairs
    LIFTS = "lifts"
    WASTE = "waste"
    BILLING = "billing"  # billing & recalculation
    MANAGEMENT = "management"  # management company work
    LAND = "land"
    OTHER = "other"


class ApplicantKind(StrEnum):
    PERSON = "person"
    ORGANISATION = "organisation"


class Applicant(BaseModel):
    model_config = ConfigDict(frozen=True)

    kind: ApplicantKind = ApplicantKind.PERSON
    name: str | None = Field(default=None, max_length=300)
    phone: str | None = Field(default=None, max_length=32, description="E.164 once normalised")
    email: str | None = Field(default=None, max_length=254, description="lowercased once normalised")
    postal_address: str | None = Field(default=None, max_length=500)


class Consent(BaseModel):
    model_config = ConfigDict(frozen=True)

    personal_data: bool = Field(description="Consent to processing of personal data (152-ФЗ)")
    notifications: bool = Field(default=True, description="Agrees to status notifications")


class Address(BaseModel):
    model_config = ConfigDict(frozen=True)

    fias_house_guid: uuid.UUID | None = Field(default=None, description="FIAS/GAR house GUID")
    text: str | None = Field(default=None, max_length=500, description="Address as given")
    apartment: str | None = Field(default=None, max_length=20)


class AttachmentRef(BaseModel):
    """A reference to a stored file; bytes never travel on Kafka."""

    model_config = ConfigDict(frozen=True)

    uri: str = Field(max_length=2000)
    media_type: str | None = Field(default=None, max_length=100)
    name: str | None = Field(default=None, max_length=300)
    size_bytes: int | None = Field(default=None, ge=0)


SourceRefKey = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,63}$")]
SourceRefValue = Annotated[str, StringConstraints(max_length=500)]


class Clarification(BaseModel):
    """A question the channel asked (e.g. the chat-bot) and the citizen's answer."""

    model_config = ConfigDict(frozen=True)

    question: str = Field(max_length=500)
    answer: str = Field(max_length=2000)


_SPACES = re.compile(r"\s+")
_PUNCT = re.compile(r"[^\w\s/-]")


def house_key_of(fias_house_guid: uuid.UUID | str | None, address_text: str | None) -> str | None:
    """The house key rule: ``fias:<guid>`` when the FIAS/GAR house GUID is known, else
    ``addr:<address>`` lowercased, ё→е, punctuation removed, spaces collapsed; None if neither."""
    if fias_house_guid:
        return f"fias:{uuid.UUID(str(fias_house_guid))}"
    if address_text:
        key = _SPACES.sub(" ", _PUNCT.sub(" ", address_text.lower().replace("ё", "е"))).strip()
        if key:
            return "addr:" + key
    return None


class Appeal(BaseModel):
    """The canonical, registered appeal."""

    model_config = ConfigDict(frozen=True)

    appeal_id: uuid.UUID
    registration_number: str = Field(description="Human-facing number, format in docs/contracts.md")
    channel: Channel
    source_id: str = Field(description="Id of the submission in its channel; (channel, source_id) is unique")
    received_at: AwareDatetime
    registered_at: AwareDatetime
    applicant: Applicant
    consent: Consent
    address: Address
    house_key: str = Field(description="fias:<guid> or addr:<normalised address text>")
    category: Category
    category_source: str = Field(description="channel | classifier | default")
    category_confidence: float = Field(default=1.0, ge=0, le=1, description="1.0 when the channel chose it")
    emergency: bool = False
    emergency_rule: str | None = Field(default=None, description="Name of the emergency rule that fired")
    text: str = Field(max_length=MAX_TEXT_CHARS)
    attachments: tuple[AttachmentRef, ...] = ()
    collective: bool = False
    clarifications: tuple[Clarification, ...] = ()
    source_refs: dict[SourceRefKey, SourceRefValue] = Field(
        default_factory=dict, description="Channel ids: operator_id, call_recording_ref, clerk_id, bot_session..."
    )
    duplicate_of: uuid.UUID | None = Field(default=None, description="Likely duplicate of this earlier appeal")
    incident_id: uuid.UUID | None = Field(default=None, description="Mass incident this appeal belongs to")
