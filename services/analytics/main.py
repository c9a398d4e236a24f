"""Wiring of the analytics service. ``faststream run analytics.main:app`` or ``python -m analytics``.

Reads the lifecycle topic into a per-appeal read model (``analytics_appeals``) and serves the
summary API, the CSV export and the dashboard page. Publishes nothing. See docs/analytics.md.
"""

from __future__ import annotations

from faststream.asgi import AsgiFastStream

from zhkh_runtime.app import ServiceRuntime

from . import api
from .repository import AnalyticsRepository
from .service import AnalyticsService
from .settings import AnalyticsSettings
from .uow import MongoAnalyticsUoW

PUBLISHES: tuple[type, ...] = ()
"""Analytics publishes nothing (see intake.main.PUBLISHES)."""


def create_app(settings: AnalyticsSettings | None = None) -> AsgiFastStream:
    settings = settings or AnalyticsSettings()
    rt = ServiceRuntime(settings)
    repo = AnalyticsRepository(rt.db)
    service = AnalyticsService(repo)
    rt.process((rt.topics.lifecycle,), service.handlers(), lambda session: MongoAnalyticsUoW(repo.appeals, session))
    rt.on_startup(repo.ensure_indexes)
    return rt.asgi_app(extra_routes=api.routes(service, settings))


def __getattr__(name: str) -> AsgiFastStream:  # lazy ``app`` for ``faststream run analytics.main:app``
    if name == "app":
        return create_app()
    raise AttributeError(name)
