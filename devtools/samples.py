"""Sample raw submissions for the demo and the tests (fictional people and houses)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from zhkh_contracts import (
    Address,
    Applicant,
    Category,
    Channel,
    Consent,
    Envelope,
    RawAppealSubmitted,
    Topics,
    to_kafka,
)

DEMO_HOUSE_GUID = uuid.UUID("5e2a3b4c-1d2e-4f50-8a9b-0c1d2e3f4a5b")


def raw_submission(
    channel: Channel = Channel.SITE_FORM,
    source_id: str | None = None,
    text: str = "В квартире нет горячей воды третий день, просим разобраться.",
    category: Category | None = Category.HOT_WATER,
    phone: str | None = "8 (912) 345-67-89",
    email: str | None = "Ivanova.Demo@Example.RU",
    postal_address: str | None = None,
) -> RawAppealSubmitted:
    return RawAppealSubmitted(
        channel=channel,
        source_id=source_id or f"demo-{uuid.uuid4()}",
        received_at=datetime.now(UTC),
        applicant=Applicant(name="Иванова Мария Петровна", phone=phone, email=email, postal_address=postal_address),
        consent=Consent(personal_data=True, notifications=True),
        address=Address(fias_house_guid=DEMO_HOUSE_GUID, text="г. Пермь, ул. Ленина, д. 10", apartment="15"),
        text=text,
        category=category,
    )


def raw_envelope(raw: RawAppealSubmitted, event_id: uuid.UUID | None = None) -> Envelope[RawAppealSubmitted]:
    """As a channel adapter sends it (the ``gis`` channel: as gis_sync, the only source trusted there)."""
    source = "/zhkh-appeals/gis_sync" if raw.channel is Channel.GIS else f"/channels/{raw.channel.value}"
    return Envelope.new(raw, source=source, appeal_id=f"{raw.channel.value}:{raw.source_id}", event_id=event_id)


def raw_record(
    raw: RawAppealSubmitted, event_id: uuid.UUID | None = None, topics: Topics = Topics()
) -> tuple[str, bytes, bytes, list[tuple[str, bytes]]]:
    """(topic, key, value, headers) ready for a plain aiokafka producer."""
    key, value, headers = to_kafka(raw_envelope(raw, event_id))
    return topics.raw(raw.channel), key, value, [(k, v.encode()) for k, v in headers.items()]
