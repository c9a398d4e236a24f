"""Thin subscribers: the lifecycle and actions topics -> RouterService."""

from __future__ import annotations

from zhkh_contracts import ACTION_CLASSES, AppealJoinedIncident, AppealRegistered, DeadlinePlanned
from zhkh_runtime.kafka import EventConsumer

from .service import RouterService


def register_handlers(consumer: EventConsumer, service: RouterService) -> None:
    consumer.on(AppealRegistered)(service.on_registered)
    consumer.on(AppealJoinedIncident)(service.on_joined)
    consumer.on(DeadlinePlanned)(service.on_deadline)
    for cls in ACTION_CLASSES:
        consumer.on(cls)(service.on_action)
