"""Thin subscribers: the lifecycle topic -> AnalyticsService."""

from __future__ import annotations

from zhkh_contracts import (
    AppealAnswered,
    AppealAssigned,
    AppealRegistered,
    AppealStatusChanged,
    DeadlineAlert,
    DeadlinePlanned,
)
from zhkh_runtime.kafka import EventConsumer

from .service import AnalyticsService


def register_handlers(consumer: EventConsumer, service: AnalyticsService) -> None:
    consumer.on(AppealRegistered)(service.on_registered)
    consumer.on(AppealAssigned)(service.on_assigned)
    consumer.on(DeadlinePlanned)(service.on_planned)
    consumer.on(AppealAnswered)(service.on_answered)
    consumer.on(AppealStatusChanged)(service.on_status)
    consumer.on(DeadlineAlert)(service.on_alert)
