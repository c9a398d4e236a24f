"""Intake logic: normalise a raw submission and register it once. No broker imports here.

Foundation scope (issue #2): validation by the contract, contact and address normalisation,
registration numbers, idempotent registration. Text classification, duplicate linking, mass
incidents, the rejected topic and the HTTP ingress are issue #3.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

import phonenumbers

from zhkh_contracts import (
    Address,
    Appeal,
    AppealRegistered,
    Applicant,
    Category,
    Envelope,
    RawAppealSubmitted,
)
from zhkh_runtime.errors import PermanentError
from zhkh_runtime.mongo import IdempotencyGuard
from zhkh_runtime.records import OutboundRecord

from .repository import IntakeRepository

SOURCE = "/zhkh-appeals/intake"


def normalise_phone(phone: str | None, region: str = "RU") -> str | None:
    """To E.164. A number that cannot be a valid phone number is a permanent error."""
    if phone is None or not phone.strip():
        return None
    try:
        parsed = phonenumbers.parse(phone, region)
    except phonenumbers.NumberParseException as exc:
        raise PermanentError("invalid_phone", "applicant.phone is not a phone number") from exc
    if not phonenumbers.is_possible_number(parsed):
        raise PermanentError("invalid_phone", "applicant.phone is not a possible phone number")
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def normalise_email(email: str | None) -> str | None:
    if email is None or not email.strip():
        return None
    email = email.strip().lower()
    if not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", email):
        raise PermanentError("invalid_email", "applicant.email is not an e-mail address")
    return email


_SPACES = re.compile(r"\s+")
_PUNCT = re.compile(r"[^\w\s/-]")


def house_key(address: Address) -> str:
    """``fias:<guid>`` when the house GUID is known, else ``addr:<normalised text>``."""
    if address.fias_house_guid is not None:
        return f"fias:{address.fias_house_guid}"
    if address.text and address.text.strip():
        text = _PUNCT.sub(" ", address.text.lower().replace("ё", "е"))
        return "addr:" + _SPACES.sub(" ", text).strip()
    raise PermanentError("missing_address", "address needs fias_house_guid or text")


def registration_number(year: int, seq: int) -> str:
    """Format: ``ZH-<year>-<7-digit sequence>``, e.g. ZH-2026-0000042; unique by construction."""
    return f"ZH-{year}-{seq:07d}"


def build_appeal(raw: RawAppealSubmitted, appeal_id: uuid.UUID, number: str, now: datetime, region: str) -> Appeal:
    if not raw.consent.personal_data:
        raise PermanentError("no_consent", "consent.personal_data is required to register an appeal")
    applicant = Applicant(
        kind=raw.applicant.kind,
        name=raw.applicant.name.strip() if raw.applicant.name else None,
        phone=normalise_phone(raw.applicant.phone, region),
        email=normalise_email(raw.applicant.email),
        postal_address=raw.applicant.postal_address,
    )
    return Appeal(
        appeal_id=appeal_id,
        registration_number=number,
        channel=raw.channel,
        source_id=raw.source_id,
        received_at=raw.received_at,
        registered_at=now,
        applicant=applicant,
        consent=raw.consent,
        address=raw.address,
        house_key=house_key(raw.address),
        category=raw.category or Category.OTHER,
        category_source="channel" if raw.category else "default",
        emergency=False,
        text=raw.text.strip(),
        attachments=raw.attachments,
        collective=raw.collective,
    )


class IntakeService:
    def __init__(
        self,
        repo: IntakeRepository,
        guard: IdempotencyGuard,
        lifecycle_topic: str,
        phone_region: str = "RU",
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.repo = repo
        self.guard = guard
        self.lifecycle_topic = lifecycle_topic
        self.phone_region = phone_region
        self.clock = clock

    async def register(self, env: Envelope[RawAppealSubmitted]) -> list[OutboundRecord]:
        raw = env.data
        if env.appeal_id != f"{raw.channel.value}:{raw.source_id}":
            raise PermanentError("key_mismatch", "raw event key must be <channel>:<source_id>")

        async def work(session: object) -> list[OutboundRecord]:
            existing = await self.repo.registered_record(raw.channel, raw.source_id, session)
            if existing is not None:  # the same submission published twice with new event ids
                return [existing]
            now = self.clock()
            seq = await self.repo.next_sequence(now.year, session)
            appeal = build_appeal(raw, uuid.uuid4(), registration_number(now.year, seq), now, self.phone_region)
            out = Envelope.new(
                AppealRegistered(appeal=appeal),
                source=SOURCE,
                appeal_id=str(appeal.appeal_id),
                correlation_id=env.correlation_id,
                occurred_at=now,
            )
            record = OutboundRecord.of(self.lifecycle_topic, out)
            await self.repo.insert(appeal, record, session)
            return [record]

        return await self.guard.run(str(env.id), work)
