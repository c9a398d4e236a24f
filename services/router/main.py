"""Wiring of the router service. ``faststream run router.main:app`` or ``python -m router``."""

from __future__ import annotations

from faststream.asgi import AsgiFastStream

from zhkh_runtime.app import ServiceRuntime
from zhkh_runtime.mongo import IdempotencyGuard

from . import api
from .handlers import register_handlers
from .repository import RouterRepository
from .rules import RoutingRules
from .service import RouterService
from .settings import RouterSettings


def create_app(settings: RouterSettings | None = None) -> AsgiFastStream:
    settings = settings or RouterSettings()
    rt = ServiceRuntime(settings)
    repo = RouterRepository(rt.db, rt.mongo)
    service = RouterService(
        repo,
        IdempotencyGuard(rt.mongo, rt.db, "router"),
        rt.topics.lifecycle,
        RoutingRules.load(settings.routing_rules),
        settings.fallback_queue_id,
    )
    consumer = rt.consumer(rt.topics.lifecycle, rt.topics.actions)
    register_handlers(consumer, service)
    consumer.subscribe()
    rt.on_startup(repo.ensure_indexes)
    return rt.asgi_app(extra_routes=api.routes(repo))


def __getattr__(name: str) -> AsgiFastStream:  # lazy ``app`` for ``faststream run router.main:app``
    if name == "app":
        return create_app()
    raise AttributeError(name)
