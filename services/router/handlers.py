"""Thin subscribers: lifecycle topic -> RouterService."""

from __future__ import annotations

from zhkh_contracts import AppealRegistered
from zhkh_runtime.kafka import EventConsumer

from .service import RouterService


def register_handlers(consumer: EventConsumer, service: RouterService) -> None:
    consumer.on(AppealRegistered)(service.on_registered)
