"""Thin subscribers: the lifecycle topic -> NotifierService."""

from __future__ import annotations

from zhkh_contracts import AppealAnswered, AppealAssigned, AppealExtended, AppealRegistered, AppealStatusChanged
from zhkh_runtime.kafka import EventConsumer

from .service import NotifierService


def register_handlers(consumer: EventConsumer, service: NotifierService) -> None:
    consumer.on(AppealRegistered)(service.on_registered)
    consumer.on(AppealAssigned)(service.on_assigned)
    consumer.on(AppealExtended)(service.on_extended)
    consumer.on(AppealStatusChanged)(service.on_status)
    consumer.on(AppealAnswered)(service.on_answered)
