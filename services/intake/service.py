"""Intake logic: clean, normalise, classify, link and register a raw submission once.

Handlers only decide: ``(RawAppealSubmitted, uow) -> [events]``. The runtime's engine runs them in
one transaction with the processed-event marker and publishes what they return. No broker,
envelope, session or pymongo here: storage is behind the ports of ``intake.uow``."""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import unicodedata
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

import phonenumbers
import structlog
from pydantic import ValidationError

from zhkh_contracts import (
    MAX_TEXT_CHARS,
    Address,
    Appeal,
    AppealDuplicateLinked,
    AppealJoinedIncident,
    AppealRegistered,
    Applicant,
    Category,
    Channel,
    Clarification,
    EventData,
    MassIncidentDetected,
    RawAppealSubmitted,
    describe_validation_error,
    house_key_of,
)
from zhkh_contracts.envelope import validation_reason
from zhkh_runtime import access_codes
from zhkh_runtime.engine import Handlers
from zhkh_runtime.errors import PermanentError

from .classifier import Classifier

if TYPE_CHECKING:
    from .uow import IntakeUoW

log = structlog.get_logger(__name__)

# ---- cleaning and normalisation (pure) ----------------------------------------------------------

# C0/C1 controls except tab and newline, bidi overrides/isolates, zero-width characters, BOM.
_INVISIBLE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2060-\u2069\ufeff]")
_BLANK_LINES = re.compile(r"\n{3,}")


def clean_text(text: str | None) -> str | None:
    """NFC, CR/LF unified, invisible and control characters removed, blank runs collapsed."""
    if text is None:
        return None
    text = unicodedata.normalize("NFC", text).replace("\r\n", "\n").replace("\r", "\n")
    text = _BLANK_LINES.sub("\n\n", _INVISIBLE.sub("", text))
    return text.strip() or None


def normalise_phone(phone: str | None, region: str = "RU") -> str | None:
    """To E.164. A number that cannot be a valid phone number is a permanent error."""
    phone = clean_text(phone)
    if phone is None:
        return None
    try:
        parsed = phonenumbers.parse(phone, region)
    except phonenumbers.NumberParseException as exc:
        raise PermanentError("invalid_phone", "applicant.phone is not a phone number") from exc
    if not phonenumbers.is_possible_number(parsed):
        raise PermanentError("invalid_phone", "applicant.phone is not a possible phone number")
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def normalise_email(email: str | None) -> str | None:
    email = clean_text(email)
    if email is None:
        return None
    email = email.lower()
    if not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", email):
        raise PermanentError("invalid_email", "applicant.email is not an e-mail address")
    return email


def house_key(address: Address) -> str:
    """The contract's house key (zhkh_contracts.house_key_of) of a cleaned address."""
    key = house_key_of(address.fias_house_guid, clean_text(address.text))
    if key is None:
        raise PermanentError("missing_address", "address needs fias_house_guid or text")
    return key


def registration_number(year: int, seq: int) -> str:
    """Format: ``ZH-<year>-<7-digit sequence>``, e.g. ZH-2026-0000042; unique by construction."""
    return f"ZH-{year}-{seq:07d}"


def applicant_key(applicant: Applicant) -> str | None:
    """A stable, non-reversible id of the applicant (from the normalised phone, else e-mail)."""
    contact = applicant.phone or applicant.email
    return hashlib.sha256(contact.encode()).hexdigest()[:24] if contact else None


def submission_digest(raw: RawAppealSubmitted) -> str:
    """SHA-256 of what was submitted, to tell a re-sent copy of a registered submission from a
    different one under the same (channel, source_id).

    The canonical JSON (keys sorted, compact, UTF-8) of the submission as the contract models it,
    without ``received_at``: that is when a channel says it took the submission in, and a re-sent
    copy may carry a new one (gis_sync stamps the time of its pull) while saying the same thing;
    and without ``access_code``: each copy the HTTP ingress publishes carries a code of its own
    (only the registered copy's code is valid). Digests stored before 1.1 stay comparable."""
    content = raw.model_dump(mode="json", exclude={"received_at", "access_code"})
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


GIS_ONLY_META = frozenset({"execution_end_date"})
"""channel_meta keys only ГИС ЖКХ may set (beside every ``gis_*`` key, see :func:`gis_only_fields`):
the deadline ГИС sets (the notifier plans by it) and the ids gis_sync mirrors actions under."""


def gis_only_fields(meta: object) -> list[str]:
    """The ГИС-only keys of a channel_meta (``channel_meta.<key>``), sorted; none for a non-mapping."""
    if not isinstance(meta, dict):
        return []
    return sorted(f"channel_meta.{k}" for k in meta
                  if isinstance(k, str) and (k.strip().lower() in GIS_ONLY_META or k.strip().lower().startswith("gis_")))


@dataclass(frozen=True)
class Prepared:
    """A raw submission cleaned and checked; everything registration needs except the number."""

    raw: RawAppealSubmitted
    applicant: Applicant
    address: Address
    house_key: str
    text: str
    clarifications: tuple[Clarification, ...]


MAX_INT64 = 2**63 - 1
EARLIEST_RECEIVED = datetime(2000, 1, 1, tzinfo=UTC)
MAX_CLOCK_AHEAD = timedelta(days=1)


def prepare(raw: RawAppealSubmitted, region: str = "RU", now: datetime | None = None) -> Prepared:
    """Clean and validate beyond the schema: everything intake checks, so the HTTP ingress can
    check it before it answers. Raises PermanentError with a reason code; a limit that cleaning
    (Unicode NFC) pushes a field past is ``too_long``, as the schema would say."""
    try:
        return _prepare(raw, region, now or datetime.now(UTC))
    except ValidationError as exc:
        raise PermanentError(validation_reason(exc), describe_validation_error(exc)) from None


def _prepare(raw: RawAppealSubmitted, region: str, now: datetime) -> Prepared:
    if raw.received_at > now + MAX_CLOCK_AHEAD:
        raise PermanentError("invalid_data", "received_at: in the future")
    if raw.received_at < EARLIEST_RECEIVED:
        raise PermanentError("invalid_data", "received_at: before 2000")
    for i, a in enumerate(raw.attachments):
        if a.size_bytes is not None and a.size_bytes > MAX_INT64:
            raise PermanentError("invalid_data", f"attachments.{i}.size_bytes: beyond 64 bits")
    # consent.personal_data false is not a refusal: a body that must consider appeals (59-ФЗ, ПП 416)
    # processes the data to fulfil that duty (152-ФЗ ст. 6 ч. 1); the notifier skips the optional uses
    text = clean_text(raw.text)
    if text is None:
        raise PermanentError("empty_text", "text is empty after removing invisible characters")
    if len(text) > MAX_TEXT_CHARS:
        raise PermanentError("too_long", "text: string_too_long (after normalisation)")
    applicant = Applicant(
        kind=raw.applicant.kind,
        name=clean_text(raw.applicant.name),
        phone=normalise_phone(raw.applicant.phone, region),
        email=normalise_email(raw.applicant.email),
        postal_address=clean_text(raw.applicant.postal_address),
    )
    address = Address(
        fias_house_guid=raw.address.fias_house_guid,
        text=clean_text(raw.address.text),
        apartment=clean_text(raw.address.apartment),
    )
    clarifications = tuple(
        Clarification(question=clean_text(c.question) or "", answer=clean_text(c.answer) or "")
        for c in raw.clarifications
    )
    return Prepared(raw, applicant, address, house_key(address), text, clarifications)


def build_appeal(
    p: Prepared,
    appeal_id: uuid.UUID,
    number: str,
    now: datetime,
    classifier: Classifier,
    duplicate_of: uuid.UUID | None = None,
    incident_id: uuid.UUID | None = None,
) -> Appeal:
    raw = p.raw
    # Classify the text together with the bot's clarifying answers; the month matters for heating.
    text_for_rules = "\n".join([p.text, *(c.answer for c in p.clarifications)])
    c = classifier.classify(text_for_rules, month=raw.received_at.month)
    if raw.category is not None:
        category, source, confidence = raw.category, "channel", 1.0
    elif c.confidence > 0:
        category, source, confidence = c.category, "classifier", c.confidence
    else:
        category, source, confidence = Category.OTHER, "default", 0.0
    emergency_rule = "channel" if raw.emergency else c.emergency_rule
    return Appeal(
        appeal_id=appeal_id,
        registration_number=number,
        channel=raw.channel,
        source_id=raw.source_id,
        received_at=raw.received_at,
        registered_at=now,
        applicant=p.applicant,
        consent=raw.consent,
        address=p.address,
        house_key=p.house_key,
        category=category,
        category_source=source,
        category_confidence=confidence,
        emergency=emergency_rule is not None,
        emergency_rule=emergency_rule,
        text=p.text,
        attachments=raw.attachments,
        collective=raw.collective,
        clarifications=p.clarifications,
        source_refs=dict(raw.channel_meta),
        duplicate_of=duplicate_of,
        incident_id=incident_id,
    )


# ---- duplicates and mass incidents (pure) -------------------------------------------------------


@dataclass(frozen=True)
class RecentAppeal:
    appeal_id: uuid.UUID
    number: str
    applicant_key: str | None
    at: datetime


@dataclass(frozen=True)
class Submitted:
    """What is known of an already registered (channel, source_id): its appeal and the digest of
    the submission that registered it (None for appeals registered before digests were stored)."""

    appeal_id: uuid.UUID
    digest: str | None


@dataclass
class IncidentState:
    """The open mass incident of one (house, category), if any. Small on purpose: it is written on
    every registration for that house and category, so concurrent ones conflict and one retries."""

    key: str
    incident_id: uuid.UUID | None = None
    last_at: datetime | None = None


@dataclass(frozen=True)
class Linking:
    duplicate_of: RecentAppeal | None
    incident_id: uuid.UUID | None
    opened: bool
    members: tuple[RecentAppeal, ...]  # appeals that join the incident now (all members when opened)


def link(
    state: IncidentState,
    new: RecentAppeal,
    same_applicant: RecentAppeal | None,
    in_window: list[RecentAppeal],
    incident_window: timedelta,
    threshold: int,
) -> Linking:
    """Link ``new`` to a likely duplicate and to a mass incident; updates ``state`` in place.

    ``same_applicant`` is the latest earlier appeal of the same applicant (same phone/e-mail) for
    this house and category within the duplicate window (None for anonymous applicants);
    ``in_window`` are the earlier appeals for this house and category within ``incident_window``.

    * An open incident with activity within ``incident_window`` takes the appeal in.
    * Otherwise, once ``threshold`` distinct applicants (anonymous ones count apart) reported within
      the window, a new incident opens with all of them.
    """
    now = new.at
    incident_id, opened, members = None, False, ()
    if state.incident_id is not None and state.last_at is not None and now - state.last_at <= incident_window:
        incident_id, members = state.incident_id, (new,)
    else:
        window = sorted((r for r in in_window if now - r.at <= incident_window), key=lambda r: r.at) + [new]
        distinct = {r.applicant_key or f"anon:{r.appeal_id}" for r in window}
        if len(distinct) >= threshold:
            incident_id, opened, members = uuid.uuid4(), True, tuple(window)
    if incident_id is not None:
        state.incident_id, state.last_at = incident_id, now
    return Linking(same_applicant, incident_id, opened, members)


# ---- the use case ----------------------------------------------------------------------------


class IntakeService:
    def __init__(
        self,
        classifier: Classifier,
        phone_region: str = "RU",
        duplicate_window: timedelta = timedelta(hours=72),
        incident_window: timedelta = timedelta(hours=24),
        incident_threshold: int = 3,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        numbering_timezone: str = "Europe/Moscow",
    ) -> None:
        self.numbering_tz = ZoneInfo(numbering_timezone)
        self.classifier = classifier
        self.phone_region = phone_region
        self.duplicate_window = duplicate_window
        self.incident_window = incident_window
        self.incident_threshold = incident_threshold
        self.clock = clock

    def handlers(self) -> Handlers:
        h = Handlers()
        h.on(RawAppealSubmitted)(self.on_submitted)
        return h

    async def on_submitted(self, raw: RawAppealSubmitted, uow: IntakeUoW) -> list[EventData]:
        """Register a raw submission once per (channel, source_id).

        A copy with the same content (see :func:`submission_digest`) registers nothing: the first
        registration's events went out when it was processed. A copy with other content is refused
        (``conflicting_duplicate``)."""
        topic = uow.message.topic
        if topic:  # read through the raw-topic pattern: the topic must be the channel's own
            channel_of_topic = topic.rpartition(".intake.raw.")[2]
            if channel_of_topic not in {c.value for c in Channel}:
                raise PermanentError("unknown_channel", "the record is on a raw topic of no known channel")
        # what the citizen can fix first, then how the publisher addressed it
        prepared = prepare(raw, self.phone_region)  # received_at checked against the wall clock
        if topic and topic.rpartition(".intake.raw.")[2] != raw.channel.value:
            raise PermanentError("channel_mismatch", "channel differs from the raw topic's channel")
        if raw.channel is not Channel.GIS and gis_only_fields(raw.channel_meta):
            # the ГИС deadline and ids are gis_sync's: from any other channel they would move deadlines
            raise PermanentError("gis_only_field", "channel_meta: keys only the ГИС ЖКХ channel may set: "
                                 + ", ".join(gis_only_fields(raw.channel_meta))[:300])
        if uow.message.key != f"{raw.channel.value}:{raw.source_id}":
            raise PermanentError("key_mismatch", "raw event key must be <channel>:<source_id>")
        digest = submission_digest(raw)
        known = await uow.appeals.submission(raw.channel, raw.source_id)
        if known is not None:
            if known.digest is not None and known.digest != digest:
                raise PermanentError("conflicting_duplicate", "channel and source_id are registered with other content")
            log.info("resubmission_ignored", registered_appeal_id=str(known.appeal_id))
            return []

        now = self.clock()
        appeal_id = uuid.uuid4()
        year = now.astimezone(self.numbering_tz).year  # the organisation's year, not UTC's (1 January, 00:00-03:00 MSK)
        number = registration_number(year, await uow.counters.next(year))
        draft = build_appeal(prepared, appeal_id, number, now, self.classifier)
        who = applicant_key(draft.applicant)
        house, cat = draft.house_key, draft.category
        state = await uow.incidents.load(house, cat)
        linking = link(
            state,
            RecentAppeal(appeal_id, number, who, now),
            await uow.appeals.latest_of_applicant(house, cat, who, now - self.duplicate_window) if who else None,
            await uow.appeals.recent(house, cat, now - self.incident_window),
            self.incident_window,
            self.incident_threshold,
        )
        d = linking.duplicate_of
        appeal = draft.model_copy(update={"duplicate_of": d.appeal_id if d else None, "incident_id": linking.incident_id})
        # the citizen's access code: the one the channel already showed (the HTTP ingress's), else a
        # new one; intake keeps only its hash (scrypt, tens of ms of CPU: off the event loop)
        code = raw.access_code or access_codes.generate()
        code_hash = await asyncio.to_thread(access_codes.hash_code, code)
        await uow.appeals.insert(appeal, who, digest, code_hash)
        await uow.incidents.save(state)

        out: list[EventData] = [AppealRegistered(appeal=appeal, access_code=code, access_code_hash=code_hash)]
        if d is not None:
            out.append(AppealDuplicateLinked(
                appeal_id=appeal_id, registration_number=number, duplicate_of=d.appeal_id,
                duplicate_of_number=d.number, house_key=house, category=cat,
            ))
        if linking.incident_id is not None:
            if linking.opened:
                out.append(MassIncidentDetected(
                    incident_id=linking.incident_id, house_key=house, category=cat,
                    appeal_ids=tuple(m.appeal_id for m in linking.members), opened_at=now,
                    threshold=self.incident_threshold,
                ))
                earlier = [m.appeal_id for m in linking.members if m.appeal_id != appeal_id]
                await uow.appeals.set_incident(earlier, linking.incident_id)
            out += [
                AppealJoinedIncident(appeal_id=m.appeal_id, registration_number=m.number, incident_id=linking.incident_id)
                for m in linking.members
            ]
        return out

