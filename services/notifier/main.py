"""Wiring of notifier: process, settings, health and metrics only.

NOT IMPLEMENTED YET (issue #5). It deliberately subscribes to nothing: a consumer group that
acknowledged lifecycle events without acting on them would move its committed offsets past
appeals that the real handlers must later see.
"""

from __future__ import annotations

import structlog
from faststream.asgi import AsgiFastStream

from zhkh_runtime.app import ServiceRuntime

from .settings import NotifierSettings

log = structlog.get_logger(__name__)


def create_app(settings: NotifierSettings | None = None) -> AsgiFastStream:
    settings = settings or NotifierSettings()
    rt = ServiceRuntime(settings)

    async def announce() -> None:
        log.warning("not_implemented", detail="notifier has no handlers yet (issue #5)")

    rt.on_startup(announce)
    return rt.asgi_app()


def __getattr__(name: str) -> AsgiFastStream:  # lazy ``app`` for ``faststream run notifier.main:app``
    if name == "app":
        return create_app()
    raise AttributeError(name)
