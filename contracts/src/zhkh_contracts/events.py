"""Every event the services exchange. Class names are unique (AsyncAPI keys schemas by them)."""

from __future__ import annotations

import uuid
from enum import StrEnum
from typing import Annotated, ClassVar, Literal

from pydantic import AwareDatetime, Field, model_validator

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
ACCESS_CODE_PATTERN = r"^[0-9A-Z]{5}-[0-9A-Z]{5}$"


class RawAppealSubmitted(EventData):
    """A submission as a channel delivers it, before intake validates and registers it.

    Published by channel adapters (and intake's HTTP ingress) onto the channel's raw topic.
    The envelope's appeal_id for a raw event is ``<channel>:<source_id>``.
    """

    EVENT_TYPE: ClassVar[str] = TYPE_PREFIX + "intake.raw_submitted.v1"
    SCHEMA_VERSION: ClassVar[str] = "1.1"  # 1.1: access_code

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
    access_code: str | None = Field(
        default=None, pattern=ACCESS_CODE_PATTERN,
        description="(1.1) The citizen's access code, when the channel already showed one (intake's HTTP ingress "
        "does); otherwise intake makes one at registration. A secret: never logged",
    )


class AppealRegistered(EventData):
    """Intake registered a new appeal (published once per (channel, source_id))."""

    EVENT_TYPE: ClassVar[str] = TYPE_PREFIX + "appeal.registered.v1"
    SCHEMA_VERSION: ClassVar[str] = "1.1"  # 1.1: access_code

    appeal: Appeal
    access_code: str | None = Field(
        default=None, pattern=ACCESS_CODE_PATTERN,
        description="(1.1) The citizen's access code (status, rating, complaint and withdrawal need it with the "
        "number): the notifier puts it in the 'registered' notice. A secret on a topic only the services may read; "
        "never logged",
    )
    access_code_hash: str | None = Field(
        default=None, max_length=200,
        description="(1.1) Salted scrypt hash of access_code (zhkh_runtime.access_codes): the router keeps only this",
    )


class PartyKind(StrEnum):
    MANAGING_ORGANISATION = "managing_organisation"  # УК / ТСЖ / ЖСК
    RESOURCE_SUPPLIER = "resource_supplier"
    DISTRICT_ADMINISTRATION = "district_administration"
    CITY_DEPARTMENT = "city_department"
    HOUSING_INSPECTION = "housing_inspection"  # ГЖИ
    FALLBACK_QUEUE = "fallback_queue"  # operators route by hand


class AssignmentCause(StrEnum):
    RULE = "rule"  # first routing by the rules
    FALLBACK = "fallback"  # unknown house, no rule, or party missing from the directory
    REROUTE = "reroute"  # the previous party said "not ours"
    ESCALATION = "escalation"  # deadline expired, second bounce, or the citizen's complaint
    OPERATOR = "operator"  # routed by hand from the fallback queue
    INCIDENT = "incident"  # follows its mass incident's assignment


class AppealAssigned(EventData):
    """The router assigned the appeal to a responsible party."""

    EVENT_TYPE: ClassVar[str] = TYPE_PREFIX + "appeal.assigned.v1"
    SCHEMA_VERSION: ClassVar[str] = "1.2"  # 1.1: district_id; 1.2: party_name

    appeal_id: uuid.UUID
    registration_number: str
    party_id: str
    party_kind: PartyKind
    reason: str = Field(description="Which rule (or fallback) decided, machine-readable")
    assigned_at: AwareDatetime
    cause: AssignmentCause = AssignmentCause.RULE
    level: int = Field(default=0, ge=0, description="Escalation level (0: first assignment)")
    previous_party_id: str | None = None
    party_timezone: str | None = Field(default=None, description="IANA zone of the party, for deadlines")
    supervisor_party_id: str | None = Field(default=None, description="The next level up (deadline alerts go there too)")
    district_id: str | None = Field(default=None, description="District of the appeal's house in the directory (1.1)")
    party_name: str | None = Field(
        default=None, max_length=300,
        description="The party's name in the directory, for the citizen's notice of forwarding (1.2)")


class AppealStatus(StrEnum):
    REGISTERED = "registered"
    ASSIGNED = "assigned"
    IN_PROGRESS = "in_progress"  # accepted by the party
    ANSWERED = "answered"
    REOPENED = "reopened"  # the citizen rated the answer unsatisfactory
    CLOSED = "closed"
    WITHDRAWN = "withdrawn"


class AppealStatusChanged(EventData):
    """Every lifecycle transition the router applied (version = the appeal's new version)."""

    EVENT_TYPE: ClassVar[str] = TYPE_PREFIX + "appeal.status_changed.v1"
    SCHEMA_VERSION: ClassVar[str] = "1.1"  # 1.1: actor

    appeal_id: uuid.UUID
    registration_number: str
    from_status: AppealStatus
    to_status: AppealStatus
    action: str = Field(description="What caused it: accept, answer, reject, rate, complain, withdraw, ...")
    party_id: str | None
    version: int
    changed_at: AwareDatetime
    cause_event_id: uuid.UUID | None = None
    actor: str | None = Field(default=None, description="Who caused it (<role>:<id>, service:router for the router's own) (1.1)")


class AppealAnswered(EventData):
    """The responsible party's answer (mirrored to ГИС ЖКХ and sent to the citizen)."""

    EVENT_TYPE: ClassVar[str] = TYPE_PREFIX + "appeal.answered.v1"
    SCHEMA_VERSION: ClassVar[str] = "1.0"

    appeal_id: uuid.UUID
    registration_number: str
    party_id: str
    text: str = Field(min_length=1, max_length=MAX_TEXT_CHARS)
    attachments: tuple[AttachmentRef, ...] = ()
    answered_at: AwareDatetime


class AppealProgressUpdated(EventData):
    """The responsible party's interim update, for the citizen (the status did not change). Contracts 1.5."""

    EVENT_TYPE: ClassVar[str] = TYPE_PREFIX + "appeal.progress_updated.v1"
    SCHEMA_VERSION: ClassVar[str] = "1.0"

    appeal_id: uuid.UUID
    registration_number: str
    party_id: str
    text: str = Field(min_length=1, max_length=MAX_TEXT_CHARS)
    updated_at: AwareDatetime


class AppealRatingRequested(EventData):
    """The answer has gone unrated for a while: the citizen is asked once whether the problem is solved
    (the notifier sends it); without a reply the appeal is closed after ``close_after_days``. Contracts 1.7."""

    EVENT_TYPE: ClassVar[str] = TYPE_PREFIX + "appeal.rating_requested.v1"
    SCHEMA_VERSION: ClassVar[str] = "1.0"

    appeal_id: uuid.UUID
    registration_number: str
    party_id: str
    requested_at: AwareDatetime
    close_after_days: float = Field(ge=0, description="Closed without a reply this many days after the question")
    reopen_window_days: float = Field(ge=0, description="...and the citizen may still reopen it this many days after")


class AppealExtended(EventData):
    """The deadline was extended once (59-ФЗ allows one extension of up to 30 days)."""

    EVENT_TYPE: ClassVar[str] = TYPE_PREFIX + "appeal.extended.v1"
    SCHEMA_VERSION: ClassVar[str] = "1.0"

    appeal_id: uuid.UUID
    registration_number: str
    party_id: str
    days: int = Field(ge=1, le=30)
    reason: str = Field(max_length=2000)
    extended_at: AwareDatetime


class AppealTransitionRejected(EventData):
    """An action the lifecycle does not allow now. Nothing changed; the sender should know why."""

    EVENT_TYPE: ClassVar[str] = TYPE_PREFIX + "appeal.transition_rejected.v1"
    SCHEMA_VERSION: ClassVar[str] = "1.0"

    appeal_id: str
    action: str
    status: AppealStatus | None = Field(description="Current status (None: no such appeal)")
    code: str = Field(description="illegal_transition | forbidden | unknown_appeal | extension_used | ...")
    detail: str = ""
    cause_event_id: uuid.UUID


class DeadlinePlanned(EventData):
    """The notifier (re)planned an appeal's legal deadline. ``generation`` grows with every re-plan
    (re-routing, escalation, extension, reopening); alerts of older generations are cancelled."""

    EVENT_TYPE: ClassVar[str] = TYPE_PREFIX + "deadline.planned.v1"
    SCHEMA_VERSION: ClassVar[str] = "1.0"

    appeal_id: uuid.UUID
    registration_number: str
    party_id: str
    regime: str = Field(description="fz59, pp416_written, pp416_emergency_localise, gis_execution_end_date, ...")
    due_at: AwareDatetime
    party_timezone: str
    generation: int = Field(ge=1)
    reason: str = Field(description="assigned | extended | reopened")


class DeadlineAlert(EventData):
    """A deadline alert for the responsible party: a share of the term passed, one working day
    left, or overdue. The event id is derived from (appeal, generation, threshold): one per point."""

    EVENT_TYPE: ClassVar[str] = TYPE_PREFIX + "deadline.alert.v1"
    SCHEMA_VERSION: ClassVar[str] = "1.0"

    appeal_id: uuid.UUID
    registration_number: str
    party_id: str
    threshold: str = Field(description="e.g. 50%, 80%, 1wd, overdue")
    due_at: AwareDatetime
    alert_at: AwareDatetime
    generation: int


# ---- actions: what responsible parties, citizens, operators and the notifier ask of the router ----


class ActionBase(EventData):
    """An action on one appeal (``appeal_id``) or on every member of a mass incident (``incident_id``).
    Published on the actions topic keyed by the appeal id or ``incident:<id>``."""

    appeal_id: uuid.UUID | None = None
    incident_id: uuid.UUID | None = None
    actor: str = Field(
        max_length=200,
        description="Who acts, as <role>:<id>: party:<party_id>, operator:<subject>, inspector:<subject>, "
        "admin:<subject>, citizen:<appeal_id>, service:notifier, service:gis_sync (1.1; the router authorises it)",
    )
    actor_subject: str | None = Field(
        default=None, max_length=200, description="The token subject of the human who acted, for the audit trail (1.1)"
    )

    @model_validator(mode="after")
    def _one_target(self) -> ActionBase:
        if (self.appeal_id is None) == (self.incident_id is None):
            raise ValueError("exactly one of appeal_id and incident_id")
        return self

    @property
    def key(self) -> str:
        return str(self.appeal_id) if self.appeal_id else f"incident:{self.incident_id}"


class PartyAccepted(ActionBase):
    EVENT_TYPE: ClassVar[str] = TYPE_PREFIX + "action.accept.v1"
    SCHEMA_VERSION: ClassVar[str] = "1.1"  # 1.1: actor convention, actor_subject


class PartyAnswered(ActionBase):
    EVENT_TYPE: ClassVar[str] = TYPE_PREFIX + "action.answer.v1"
    SCHEMA_VERSION: ClassVar[str] = "1.1"  # 1.1: actor convention, actor_subject

    text: str = Field(min_length=1, max_length=MAX_TEXT_CHARS)
    attachments: tuple[AttachmentRef, ...] = ()


class PartyRejectedNotResponsible(ActionBase):
    EVENT_TYPE: ClassVar[str] = TYPE_PREFIX + "action.reject_not_responsible.v1"
    SCHEMA_VERSION: ClassVar[str] = "1.1"  # 1.1: actor convention, actor_subject

    reason: str = Field(default="", max_length=2000)
    suggested_party_id: str | None = None


class PartyRequestedExtension(ActionBase):
    EVENT_TYPE: ClassVar[str] = TYPE_PREFIX + "action.request_extension.v1"
    SCHEMA_VERSION: ClassVar[str] = "1.1"  # 1.1: actor convention, actor_subject

    days: int = Field(ge=1, le=30)
    reason: str = Field(max_length=2000)


class PartyPostedUpdate(ActionBase):
    """An interim update from the responsible party (what is being done, when to expect it); the
    status does not change. Contracts 1.5."""

    EVENT_TYPE: ClassVar[str] = TYPE_PREFIX + "action.post_update.v1"
    SCHEMA_VERSION: ClassVar[str] = "1.0"

    text: str = Field(min_length=1, max_length=MAX_TEXT_CHARS)


class FollowUpDue(ActionBase):
    """The router's own timer on an answered appeal nobody rated: ``ask`` the citizen once whether the
    problem is solved, then ``close`` it without a reply (reopening stays possible within a window).
    Only the router publishes it (actor ``service:router``). Contracts 1.7."""

    EVENT_TYPE: ClassVar[str] = TYPE_PREFIX + "action.follow_up.v1"
    SCHEMA_VERSION: ClassVar[str] = "1.0"

    step: Literal["ask", "close"]


class CitizenRatedAnswer(ActionBase):
    EVENT_TYPE: ClassVar[str] = TYPE_PREFIX + "action.rate.v1"
    SCHEMA_VERSION: ClassVar[str] = "1.1"  # 1.1: actor convention, actor_subject

    satisfied: bool


class CitizenComplained(ActionBase):
    """A complaint after an unsatisfactory answer: escalates to the next level."""

    EVENT_TYPE: ClassVar[str] = TYPE_PREFIX + "action.complain.v1"
    SCHEMA_VERSION: ClassVar[str] = "1.1"  # 1.1: actor convention, actor_subject

    text: str = Field(default="", max_length=MAX_TEXT_CHARS)


class CitizenWithdrew(ActionBase):
    EVENT_TYPE: ClassVar[str] = TYPE_PREFIX + "action.withdraw.v1"
    SCHEMA_VERSION: ClassVar[str] = "1.1"  # 1.1: actor convention, actor_subject


class OperatorAssigned(ActionBase):
    """An operator routes an appeal by hand (from the fallback queue, or overriding)."""

    EVENT_TYPE: ClassVar[str] = TYPE_PREFIX + "action.operator_assign.v1"
    SCHEMA_VERSION: ClassVar[str] = "1.1"  # 1.1: actor convention, actor_subject

    party_id: str


class DeadlineExpired(ActionBase):
    """Published by the notifier when an appeal's deadline passed unanswered: the router escalates."""

    EVENT_TYPE: ClassVar[str] = TYPE_PREFIX + "action.deadline_expired.v1"
    SCHEMA_VERSION: ClassVar[str] = "1.1"  # 1.1: actor convention, actor_subject

    deadline: AwareDatetime


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


class GisActionMirrored(EventData):
    """gis_sync mirrored one lifecycle step to ГИС ЖКХ (AppealsAsync importAnswer) and ГИС confirmed it.

    The event id is derived from the TransportGUID: one event per mirrored action."""

    EVENT_TYPE: ClassVar[str] = TYPE_PREFIX + "gis.action_mirrored.v1"
    SCHEMA_VERSION: ClassVar[str] = "1.0"

    appeal_id: uuid.UUID
    registration_number: str
    gis_appeal_guid: uuid.UUID
    action: str = Field(description="Performer | Answer | RedirectAppeal | RollOverAppeal | Executed | AnswerIsNotRequired")
    transport_guid: uuid.UUID = Field(description="Makes a resend harmless: ГИС applies one TransportGUID once")
    message_guid: uuid.UUID | None = Field(default=None, description="ГИС ЖКХ's MessageGUID of the request that carried it")
    gis_object_guid: uuid.UUID | None = Field(default=None, description="GUID ГИС returned (the appeal's or the answer's)")
    repair: bool = Field(default=False, description="Sent by reconciliation to repair drift found in ГИС ЖКХ")
    mirrored_at: AwareDatetime


class GisActionFailed(EventData):
    """gis_sync could not mirror a lifecycle step to ГИС ЖКХ and stopped trying: a business error
    from ГИС (``code`` as ГИС returned it), a step with no ГИС counterpart for this party, or
    transient failures beyond the retry budget. Operators act on these; later steps still go."""

    EVENT_TYPE: ClassVar[str] = TYPE_PREFIX + "gis.action_failed.v1"
    SCHEMA_VERSION: ClassVar[str] = "1.0"

    appeal_id: uuid.UUID
    registration_number: str
    gis_appeal_guid: uuid.UUID
    action: str
    transport_guid: uuid.UUID
    code: str = Field(description="ГИС ErrorCode (e.g. INT002012), or unmapped_party | no_answerer | transient_exhausted | gis_fault:<code>")
    description: str = Field(default="", max_length=2000)
    attempts: int = Field(ge=0)
    failed_at: AwareDatetime


# ---- the outage register (contracts 1.8): planned and emergency outages per house ----------------


class OutageResource(StrEnum):
    """What is cut off: the resource categories of :class:`Category` an outage can be about."""

    HEATING = Category.HEATING.value
    HOT_WATER = Category.HOT_WATER.value
    COLD_WATER = Category.COLD_WATER.value
    SEWERAGE = Category.SEWERAGE.value
    ELECTRICITY = Category.ELECTRICITY.value
    GAS = Category.GAS.value


class OutageKind(StrEnum):
    PLANNED = "planned"  # repair and preventive works, announced in advance
    EMERGENCY = "emergency"  # an accident


FiasHouseKey = Annotated[str, Field(pattern=r"^fias:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")]
"""A house key as intake makes it from a FIAS/GAR house GUID (``house_key_of``)."""


class OutageBase(EventData):
    """An event of the outage register. Published by the router on the outages topic, keyed by
    ``outage:<outage_id>`` (every event of one outage in one partition, in order). No personal data."""

    outage_id: uuid.UUID
    resource: OutageResource
    actor: str = Field(max_length=200, description="Who recorded it: operator:<sub>, admin:<sub>, party:<party_id>")

    @property
    def key(self) -> str:
        return f"outage:{self.outage_id}"


class OutageRegistered(OutageBase):
    """An outage was registered: a resource cut off at some houses (FIAS house keys, as intake makes
    them: ``fias:<guid>``) and/or in a whole district, from ``starts_at``, expected back at
    ``expected_restore_at``, with the party responsible for restoring it. Contracts 1.8."""

    EVENT_TYPE: ClassVar[str] = TYPE_PREFIX + "outage.registered.v1"
    SCHEMA_VERSION: ClassVar[str] = "1.0"

    kind: OutageKind
    house_keys: tuple[FiasHouseKey, ...] = Field(default=(), max_length=5000, description="fias:<guid> house keys")
    district_id: str | None = Field(default=None, max_length=200, description="A whole district of the directory")
    starts_at: AwareDatetime
    expected_restore_at: AwareDatetime
    party_id: str = Field(min_length=1, max_length=200, description="The party responsible for restoring it")
    ref: str | None = Field(default=None, max_length=200, description="The organisation's own reference, if any")
    registered_at: AwareDatetime
    restored_at: AwareDatetime | None = Field(
        default=None, description="Set for a past outage recorded after the fact (an import, for the durations): "
        "registered as restored, and nobody is told")

    @model_validator(mode="after")
    def _where(self) -> OutageRegistered:
        if not self.house_keys and not self.district_id:
            raise ValueError("house_keys or district_id")
        if self.expected_restore_at <= self.starts_at:
            raise ValueError("expected_restore_at must be after starts_at")
        if self.restored_at is not None and self.restored_at < self.starts_at:
            raise ValueError("restored_at must not be before starts_at")
        return self


class OutageRestoreTimeChanged(OutageBase):
    """The expected restore time of an active outage changed. Contracts 1.8."""

    EVENT_TYPE: ClassVar[str] = TYPE_PREFIX + "outage.restore_time_changed.v1"
    SCHEMA_VERSION: ClassVar[str] = "1.0"

    expected_restore_at: AwareDatetime
    changed_at: AwareDatetime
    reason: str = Field(default="", max_length=2000)


class OutageRestored(OutageBase):
    """The resource is back: the outage is over (its duration per house is the evidence for a
    recalculation under ПП 354). Contracts 1.8."""

    EVENT_TYPE: ClassVar[str] = TYPE_PREFIX + "outage.restored.v1"
    SCHEMA_VERSION: ClassVar[str] = "1.0"

    restored_at: AwareDatetime


class OutageNotice(StrEnum):
    LINKED = "linked"  # a new appeal matched an active outage: answered at once with the restore time
    REGISTERED = "registered"  # an outage was registered at the house of an appeal about that resource
    RESTORE_TIME_CHANGED = "restore_time_changed"
    RESTORED = "restored"


class AppealLinkedToOutage(EventData):
    """An appeal is about a registered outage, and what happened to it (the notifier tells the
    citizen). A notice, not the appeal's answer: the appeal stays under control, routed and timed as
    usual. Published by the router on the lifecycle topic, keyed by the appeal. Contracts 1.8."""

    EVENT_TYPE: ClassVar[str] = TYPE_PREFIX + "appeal.linked_to_outage.v1"
    SCHEMA_VERSION: ClassVar[str] = "1.0"

    appeal_id: uuid.UUID
    registration_number: str
    outage_id: uuid.UUID
    resource: OutageResource
    outage_kind: OutageKind
    what: OutageNotice
    starts_at: AwareDatetime
    expected_restore_at: AwareDatetime
    restored_at: AwareDatetime | None = None
    at: AwareDatetime

# ---- consultations (contracts 1.8): questions answered at first contact, never routed ----------------

ARTICLE_ID_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,63}$"
ArticleId = Annotated[str, Field(pattern=ARTICLE_ID_PATTERN)]


class ConsultationRecorded(EventData):
    """An operator answered a question (a consultation): a record of its own, never an appeal, never routed.

    Keyed by ``consultation:<consultation_id>``. No personal data and no free text: the question and any
    contact stay in intake's store. Contracts 1.8."""

    EVENT_TYPE: ClassVar[str] = TYPE_PREFIX + "consultation.recorded.v1"
    SCHEMA_VERSION: ClassVar[str] = "1.0"

    consultation_id: uuid.UUID
    channel: Channel
    category: Category = Field(description="The topic of the question")
    article_ids: tuple[ArticleId, ...] = Field(default=(), max_length=20, description="Knowledge-base articles given "
                                         "as the answer (ids from intake's knowledge base)")
    resolved_first_contact: bool = Field(description="The question was settled in this contact")
    actor: str = Field(max_length=200, description="Who recorded it: operator:<subject> or admin:<subject>")
    recorded_at: AwareDatetime


class ConsultationConverted(EventData):
    """A consultation became an appeal: intake registered an appeal from it through its normal path
    (a raw submission with source id ``consultation:<consultation_id>``, so it converts once).
    Keyed by ``consultation:<consultation_id>``. Contracts 1.8."""

    EVENT_TYPE: ClassVar[str] = TYPE_PREFIX + "consultation.converted.v1"
    SCHEMA_VERSION: ClassVar[str] = "1.0"

    consultation_id: uuid.UUID
    appeal_id: uuid.UUID
    registration_number: str
    channel: Channel = Field(description="The consultation's channel")
    category: Category = Field(description="The consultation's topic")
    actor: str = Field(max_length=200, description="Who converted it: operator:<subject> or admin:<subject>")
    converted_at: AwareDatetime


# ---- per-house control cards for the heating season (contracts 1.8) ---------------------------------


class ControlCardState(StrEnum):
    OPEN = "open"
    RESTORATION_REPORTED = "restoration_reported"  # the party answered or reported restoration; not yet checked
    CLOSED = "closed"  # restoration confirmed by an operator, inspector or admin


class ControlCardOpened(EventData):
    """The first appeal about a resource at a house in the heating season opened a control card
    ("поадресный контроль"). Keyed by ``card:<card_id>``. No personal data: the house key has no flat."""

    EVENT_TYPE: ClassVar[str] = TYPE_PREFIX + "control_card.opened.v1"
    SCHEMA_VERSION: ClassVar[str] = "1.0"

    card_id: uuid.UUID
    house_key: str = Field(max_length=600, description="fias:<guid> or addr:<normalised house address>, no flat")
    resource: Category = Field(description="heating, hot_water, cold_water, electricity, gas (as configured)")
    district_id: str | None = Field(default=None, max_length=200)
    party_id: str | None = Field(default=None, max_length=200, description="The party the first appeal was assigned to")
    first_appeal_id: uuid.UUID
    opened_at: AwareDatetime
    target_at: AwareDatetime = Field(description="The district's same-day target for restoration")
    timezone: str = Field(max_length=64, description="The district's IANA zone the target was computed in")


class ControlCardAppealJoined(EventData):
    """A later appeal about the same house and resource joined the card while it was not closed (counted);
    a card whose restoration was reported goes back to ``open``. Keyed by ``card:<card_id>``."""

    EVENT_TYPE: ClassVar[str] = TYPE_PREFIX + "control_card.appeal_joined.v1"
    SCHEMA_VERSION: ClassVar[str] = "1.0"

    card_id: uuid.UUID
    member_appeal_id: uuid.UUID
    appeals: int = Field(ge=1, description="Appeals on the card now")
    state: ControlCardState
    joined_at: AwareDatetime


class ControlCardRestorationReported(EventData):
    """The responsible party answered an appeal of the card or reported restoration (or a restored outage
    said so): the card waits for confirmation. Keyed by ``card:<card_id>``."""

    EVENT_TYPE: ClassVar[str] = TYPE_PREFIX + "control_card.restoration_reported.v1"
    SCHEMA_VERSION: ClassVar[str] = "1.0"

    card_id: uuid.UUID
    reported_at: AwareDatetime
    reported_by: str = Field(max_length=200, description="party:<id>, operator:<sub>, ..., service:router")
    via: Literal["answer", "report", "outage"]
    cause_event_id: uuid.UUID


class ConfirmationMethod(StrEnum):
    CALL_BACK = "call_back"  # a resident called back and said it works
    SITE_VISIT = "site_visit"  # an inspector or dispatcher saw it on site
    DISPATCHER = "dispatcher"  # the dispatch service's data (e.g. pressure/temperature restored)
    OTHER = "other"


class ControlCardClosed(EventData):
    """Restoration confirmed: the card is closed, with who confirmed it, when and how. Keyed by ``card:<card_id>``."""

    EVENT_TYPE: ClassVar[str] = TYPE_PREFIX + "control_card.closed.v1"
    SCHEMA_VERSION: ClassVar[str] = "1.0"

    card_id: uuid.UUID
    house_key: str = Field(max_length=600)
    resource: Category
    district_id: str | None = Field(default=None, max_length=200)
    party_id: str | None = Field(default=None, max_length=200)
    opened_at: AwareDatetime
    target_at: AwareDatetime
    closed_at: AwareDatetime
    confirmed_by: str = Field(max_length=200, description="operator:<sub>, inspector:<sub> or admin:<sub>")
    method: ConfirmationMethod
    appeals: int = Field(ge=1)
    within_target: bool = Field(description="Closed by the same-day target")
    cause_event_id: uuid.UUID


class ControlCardActionBase(EventData):
    """An action on one control card, published by the router's HTTP API on the actions topic keyed by
    ``card:<card_id>`` with the authenticated principal as actor."""

    card_id: uuid.UUID
    actor: str = Field(max_length=200, description="party:<id>, operator:<sub>, inspector:<sub>, admin:<sub>")
    actor_subject: str | None = Field(default=None, max_length=200, description="The token subject who acted")

    @property
    def key(self) -> str:
        return f"card:{self.card_id}"


class ControlCardRestorationReport(ControlCardActionBase):
    """The responsible party (or staff on its word) reports the resource restored at the house."""

    EVENT_TYPE: ClassVar[str] = TYPE_PREFIX + "action.report_restoration.v1"
    SCHEMA_VERSION: ClassVar[str] = "1.0"


class ControlCardRestorationConfirm(ControlCardActionBase):
    """An operator, inspector or admin confirms restoration (e.g. by calling a resident back): closes the card."""

    EVENT_TYPE: ClassVar[str] = TYPE_PREFIX + "action.confirm_restoration.v1"
    SCHEMA_VERSION: ClassVar[str] = "1.0"

    method: ConfirmationMethod


EVENT_CLASSES: tuple[type[EventData], ...] = (
    DeadlinePlanned,
    DeadlineAlert,
    RawAppealSubmitted,
    AppealRegistered,
    AppealAssigned,
    AppealDuplicateLinked,
    MassIncidentDetected,
    AppealJoinedIncident,
    AppealStatusChanged,
    AppealAnswered,
    AppealExtended,
    AppealTransitionRejected,
    PartyAccepted,
    PartyAnswered,
    PartyRejectedNotResponsible,
    PartyRequestedExtension,
    CitizenRatedAnswer,
    CitizenComplained,
    CitizenWithdrew,
    OperatorAssigned,
    DeadlineExpired,
    GisActionMirrored,
    GisActionFailed,
    PartyPostedUpdate,
    AppealProgressUpdated,
    FollowUpDue,
    AppealRatingRequested,
    OutageRegistered,
    OutageRestoreTimeChanged,
    OutageRestored,
    AppealLinkedToOutage,
    ConsultationRecorded,
    ConsultationConverted,
    ControlCardOpened,
    ControlCardAppealJoined,
    ControlCardRestorationReported,
    ControlCardClosed,
    ControlCardRestorationReport,
    ControlCardRestorationConfirm,
)
OUTAGE_CLASSES: tuple[type[EventData], ...] = (OutageRegistered, OutageRestoreTimeChanged, OutageRestored)
ACTION_CLASSES: tuple[type[EventData], ...] = tuple(c for c in EVENT_CLASSES if issubclass(c, ActionBase))
CARD_ACTION_CLASSES: tuple[type[EventData], ...] = tuple(
    c for c in EVENT_CLASSES if issubclass(c, ControlCardActionBase))
CARD_EVENT_CLASSES: tuple[type[EventData], ...] = (
    ControlCardOpened, ControlCardAppealJoined, ControlCardRestorationReported, ControlCardClosed)
REGISTRY: dict[str, type[EventData]] = {cls.EVENT_TYPE: cls for cls in EVENT_CLASSES}
SECRET_FIELDS: dict[str, tuple[str, ...]] = {
    RawAppealSubmitted.EVENT_TYPE: ("access_code",),
    AppealRegistered.EVENT_TYPE: ("access_code",),
}
"""Fields that are secrets (the citizen's access code): producers may drop them from what they keep
(an outbox), consumers leave them out of the body digest they compare copies of an event by."""
