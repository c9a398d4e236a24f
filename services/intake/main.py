"""Wiring of the intake service. ``faststream run intake.main:app`` or ``python -m intake``."""

from __future__ import annotations

from faststream.asgi import AsgiFastStream

from zhkh_contracts import Channel
from zhkh_runtime.app import ServiceRuntime
from zhkh_runtime.mongo import IdempotencyGuard

from .handlers import register_handlers
from .repository import IntakeRepository
from .service import IntakeService
from .settings import IntakeSettings


def create_app(settings: IntakeSettings | None = None) -> AsgiFastStream:
    settings = settings or IntakeSettings()
    rt = ServiceRuntime(settings)
    repo = IntakeRepository(rt.db)
    service = IntakeService(
        repo, IdempotencyGuard(rt.mongo, rt.db, "intake"), rt.topics.lifecycle, settings.default_phone_region
    )
    consumer = rt.consumer(*(rt.topics.raw(ch) for ch in Channel))
    register_handlers(consumer, service)
    consumer.subscribe()
    rt.on_startup(repo.ensure_indexes)
    return rt.asgi_app()


def __getattr__(name: str) -> AsgiFastStream:  # lazy ``app`` for ``faststream run intake.main:app``
    if name == "app":
        return create_app()
    raise AttributeError(name)
