"""Thin subscribers: the lifecycle topic -> GisSyncService."""

from __future__ import annotations

from zhkh_contracts import AppealAnswered, AppealAssigned, AppealExtended, AppealRegistered, AppealStatusChanged
from zhkh_runtime.kafka import EventConsumer

from .service import GisSyncService


def register_handlers(consumer: EventConsumer, service: GisSyncService) -> None:
    consumer.on(AppealRegistered)(service.on_registered)
    consumer.on(AppealAssigned)(service.on_assigned)
    consumer.on(AppealAnswered)(service.on_answered)
    consumer.on(AppealExtended)(service.on_extended)
    consumer.on(AppealStatusChanged)(service.on_status)
