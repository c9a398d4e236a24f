"""Thin subscribers: every channel's raw topic -> IntakeService.register."""

from __future__ import annotations

from zhkh_contracts import RawAppealSubmitted
from zhkh_runtime.kafka import EventConsumer

from .service import IntakeService


def register_handlers(consumer: EventConsumer, service: IntakeService) -> None:
    consumer.on(RawAppealSubmitted)(service.register)
