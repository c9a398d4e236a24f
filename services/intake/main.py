"""Wiring of the intake service. ``uvicorn --factory intake.main:create_app`` or ``python -m intake``."""

from __future__ import annotations

import re
from datetime import timedelta

from fastapi import FastAPI

from zhkh_contracts import (
    AppealDuplicateLinked,
    AppealJoinedIncident,
    AppealRegistered,
    Channel,
    ConsultationConverted,
    ConsultationRecorded,
    MassIncidentDetected,
    RawAppealSubmitted,
)
from zhkh_runtime.app import ServiceRuntime

from .classifier import Classifier
from .consultations import Consultations
from .ingress import Ingress, document_request_body
from .knowledge import KnowledgeBase
from .messages import MESSAGES_RU
from .repository import IntakeRepository
from .service import IntakeService
from .settings import IntakeSettings
from .uow import MongoIntakeUoW

PUBLISHES = (AppealRegistered, AppealDuplicateLinked, MassIncidentDetected, AppealJoinedIncident, RawAppealSubmitted,
             ConsultationRecorded, ConsultationConverted)
"""What intake publishes (the HTTP ingress: RawAppealSubmitted on every channel's raw topic; consultations: their
events on the consultations topic); topics from the
catalog. devtools/gen_contracts.py builds the catalog's producers and the AsyncAPI operations from it;
tests/contract checks it against the event classes this package constructs."""
RAW_CHANNELS = tuple(ch for ch in Channel if ch is not Channel.GIS)
"""The raw topics the HTTP ingress publishes to: every channel's but the ГИС one (only gis_sync publishes
there; the ingress refuses channel gis)."""

DESCRIPTION = (
    "Intake's HTTP ingress: submit an appeal (anonymously from the public site form, or with a token for the "
    "channels it is granted) and read a submission's registration status by channel and source id. Errors are "
    "RFC 9457 problem details. Consultations: the knowledge base's suggestions for a question, and the "
    "consultation records operators keep (convertible into an appeal)."
)


def create_app(settings: IntakeSettings | None = None) -> FastAPI:
    settings = settings or IntakeSettings()
    rt = ServiceRuntime(settings)
    repo = IntakeRepository(rt.db)
    classifier = Classifier(settings.classifier_rules)
    kb = KnowledgeBase.load(settings.knowledge_base, classifier)  # a bad file stops the start here
    service = IntakeService(
        classifier,
        phone_region=settings.default_phone_region,
        duplicate_window=timedelta(hours=settings.duplicate_window_h),
        incident_window=timedelta(hours=settings.incident_window_h),
        incident_threshold=settings.incident_threshold,
        numbering_timezone=settings.numbering_timezone,
    )
    rt.process(
        tuple(rt.topics.raw(ch) for ch in Channel), service.handlers(),
        lambda session: MongoIntakeUoW(repo, session),
        strict_types=True,  # raw topics carry RawAppealSubmitted only: any other type is refused
        inbound=True,  # from outside: what the CloudEvents Kafka binding allows (zhkh_contracts.decode)
        # every <prefix>.intake.raw.* topic, so a record on a raw topic of no known channel (a client
        # can make one where the broker auto-creates topics) is refused, not left unread
        pattern=rf"^{re.escape(rt.topics.prefix)}\.intake\.raw\..+$",
        reject_topic=rt.topics.rejected, messages_ru=MESSAGES_RU,
    )
    rt.on_startup(repo.ensure_indexes)
    ingress = Ingress(rt.publisher, repo, rt.topics, settings)
    consultations = Consultations(rt, repo, kb, settings)
    rt.on_startup(consultations.ensure_indexes)
    rt.every("consultations", settings.consultation_loop_s, consultations.round)
    app = rt.http_app([ingress.router(rt.auth), consultations.router(rt.auth)], title="zhkh-appeals intake",
                      description=DESCRIPTION)
    document_request_body(app)
    return app


def __getattr__(name: str) -> FastAPI:  # lazy ``app`` for ``uvicorn --factory intake.main:create_app``
    if name == "app":
        return create_app()
    raise AttributeError(name)
