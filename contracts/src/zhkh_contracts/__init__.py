"""zhkh-appeals event contracts. See VERSIONING.md for the compatibility promise."""

from .appeal import (
    MAX_TEXT_CHARS,
    Address,
    Appeal,
    Applicant,
    ApplicantKind,
    AttachmentRef,
    Category,
    Channel,
    Consent,
)
from .envelope import (
    CONTENT_TYPE,
    SPEC_VERSION,
    Envelope,
    EnvelopeError,
    EventData,
    describe_validation_error,
    from_kafka,
    read_headers,
    to_kafka,
)
from .events import (
    EVENT_CLASSES,
    REGISTRY,
    AppealAssigned,
    AppealRegistered,
    PartyKind,
    RawAppealSubmitted,
)
from .topics import CATALOG, DEFAULT_TOPICS, LIFECYCLE, PREFIX, SERVICES, Topics, TopicSpec, dlq_topic, raw_topic

__version__ = "1.0.0"

__all__ = [
    "CATALOG",
    "CONTENT_TYPE",
    "DEFAULT_TOPICS",
    "EVENT_CLASSES",
    "LIFECYCLE",
    "MAX_TEXT_CHARS",
    "PREFIX",
    "REGISTRY",
    "SERVICES",
    "SPEC_VERSION",
    "Address",
    "Appeal",
    "AppealAssigned",
    "AppealRegistered",
    "Applicant",
    "ApplicantKind",
    "AttachmentRef",
    "Category",
    "Channel",
    "Consent",
    "Envelope",
    "EnvelopeError",
    "EventData",
    "PartyKind",
    "RawAppealSubmitted",
    "TopicSpec",
    "Topics",
    "describe_validation_error",
    "dlq_topic",
    "from_kafka",
    "raw_topic",
    "read_headers",
    "to_kafka",
]
