"""Wiring of the analytics service. ``uvicorn --factory analytics.main:create_app`` or ``python -m analytics``.

Reads the lifecycle topic into a per-appeal read model (``analytics_appeals``), the consultations topic
into ``analytics_consultations``, and serves the
summary API, the CSV export and the dashboard page. Publishes nothing. See docs/analytics.md.
"""

from __future__ import annotations

from fastapi import FastAPI

from zhkh_runtime.app import ServiceRuntime

from . import api
from .repository import AnalyticsRepository
from .service import AnalyticsService
from .settings import AnalyticsSettings
from .uow import MongoAnalyticsUoW

PUBLISHES: tuple[type, ...] = ()
"""Analytics publishes nothing (see intake.main.PUBLISHES)."""


def create_app(settings: AnalyticsSettings | None = None) -> FastAPI:
    settings = settings or AnalyticsSettings()
    rt = ServiceRuntime(settings)
    repo = AnalyticsRepository(rt.db)
    service = AnalyticsService(repo)
    rt.process((rt.topics.lifecycle, rt.topics.consultations), service.handlers(),
               lambda session: MongoAnalyticsUoW(repo.appeals, session, repo.consultations))
    rt.on_startup(repo.ensure_indexes)
    return rt.http_app([api.routes(service, settings, rt.auth)], title="zhkh-appeals analytics",
                       description="Read model and reports (roles analyst, inspector, admin).")


def __getattr__(name: str) -> FastAPI:  # lazy ``app`` for ``uvicorn --factory analytics.main:create_app``
    if name == "app":
        return create_app()
    raise AttributeError(name)
