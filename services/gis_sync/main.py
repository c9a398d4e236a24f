"""Wiring of gis_sync: process, settings, health and metrics only.

NOT IMPLEMENTED YET (issue #6). It deliberately subscribes to nothing: a consumer group that
acknowledged lifecycle events without acting on them would move its committed offsets past
appeals that the real handlers must later see.
"""

from __future__ import annotations

import structlog
from faststream.asgi import AsgiFastStream

from zhkh_runtime.app import ServiceRuntime

from .settings import GisSyncSettings

log = structlog.get_logger(__name__)


def create_app(settings: GisSyncSettings | None = None) -> AsgiFastStream:
    settings = settings or GisSyncSettings()
    rt = ServiceRuntime(settings)

    async def announce() -> None:
        log.warning("not_implemented", detail="gis_sync has no handlers yet (issue #6)")

    rt.on_startup(announce)
    return rt.asgi_app()


def __getattr__(name: str) -> AsgiFastStream:  # lazy ``app`` for ``faststream run gis_sync.main:app``
    if name == "app":
        return create_app()
    raise AttributeError(name)
