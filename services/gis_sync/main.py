"""Wiring of gis_sync. ``uvicorn --factory gis_sync.main:create_app`` or ``python -m gis_sync``.

* Consumer: the lifecycle topic (group ``<prefix>.gis_sync``) -> queue of ГИС actions (links.py).
* Loops, each under a lease (one replica at a time): push (push.py, every ``push_interval_s``),
  pull (pull.py, exportAppeal by date window, every ``pull_interval_s``), reconcile (reconcile.py,
  exportAppeal by GUID, every ``reconcile_interval_s``).
* HTTP: /health, /ready, /metrics, and GET /api/v1/gis/queue (counts by state; roles operator, inspector, admin).
"""

from __future__ import annotations

from typing import Any

import structlog
from fastapi import APIRouter, Depends, FastAPI

from zhkh_contracts import Channel, CitizenWithdrew, GisActionFailed, GisActionMirrored, RawAppealSubmitted
from zhkh_runtime.app import ServiceRuntime
from zhkh_runtime.auth import Principal
from zhkh_runtime.http import problem_responses
from zhkh_runtime.engine import Emit

from .links import LinkHandlers
from .mapping import PartyMap
from .outcomes import SyncConfig
from .pull import Exporter, Puller
from .push import Dispatcher
from .reconcile import Reconciler
from .repository import GisRepository, MongoGisUoW
from .settings import GisSyncSettings
from .soap import GisClient, NoopSigner, load_signer

log = structlog.get_logger(__name__)

PUBLISHES = (GisActionMirrored, GisActionFailed, CitizenWithdrew, RawAppealSubmitted)
"""What gis_sync publishes (see intake.main.PUBLISHES): CitizenWithdrew (withdrawn in ГИС) on the actions topic,
RawAppealSubmitted (pulled) on the raw topics of RAW_CHANNELS."""
RAW_CHANNELS = (Channel.GIS,)


def create_app(settings: GisSyncSettings | None = None) -> FastAPI:
    settings = settings or GisSyncSettings()
    rt = ServiceRuntime(settings)
    repo = GisRepository(rt.db, rt.mongo)
    signer = load_signer(settings.gis_signer, settings.gis_signing_key, settings.gis_signing_cert)
    client = GisClient(
        settings.gis_endpoint, settings.gis_org_ppa_guid, settings.gis_timeout_s, signer,
        export_version=settings.gis_export_version, import_version=settings.gis_import_version,
    )
    config = SyncConfig(
        default_answerer=settings.gis_default_answerer,
        batch=settings.push_batch,
        max_attempts=settings.push_max_attempts,
        backoff_s=settings.push_backoff_s,
        backoff_max_s=settings.push_backoff_max_s,
        stuck_after_s=settings.gis_stuck_after_s,
        poll_interval_s=settings.gis_poll_interval_s,
        pull_initial_days=settings.pull_initial_days,
        pull_overlap_days=settings.pull_overlap_days,
        transient_codes=frozenset(settings.gis_transient_codes),
    )

    async def publish(out: list[Emit]) -> None:
        await rt.publisher.publish(rt.emitter.records(out))

    links = LinkHandlers(PartyMap.load(settings.gis_party_map), config)
    rt.process((rt.topics.lifecycle,), links.handlers(), lambda session: MongoGisUoW(repo.bound(session)))
    rt.on_startup(repo.ensure_indexes)
    exporter = Exporter(repo, client, config)
    dispatcher = Dispatcher(repo, client, publish, config)
    puller, reconciler = Puller(repo, exporter, publish, config), Reconciler(repo, exporter, publish, config)
    rt.every("push", settings.push_interval_s, dispatcher.push, again=bool)
    rt.every("pull", settings.pull_interval_s, puller.pull)
    rt.every("reconcile", settings.reconcile_interval_s, reconciler.reconcile)

    async def warn_unsigned() -> None:
        if isinstance(signer, NoopSigner):
            log.warning("gis_unsigned", detail="requests are not signed (ZHKH_GIS_SIGNER=none): for the local emulator "
                        "only; real ГИС ЖКХ refuses them")

    rt.after_startup(warn_unsigned)
    rt.on_shutdown(client.close)  # after the loops, which the runtime cancels first

    api = APIRouter(tags=["ГИС ЖКХ queue"])

    @api.get("/api/v1/gis/queue", summary="ГИС actions by state (pending, in flight, done, failed)",
             responses=problem_responses(401, 403), operation_id="gis_queue")
    async def queue(_: Principal = Depends(rt.auth.require("operator", "inspector", "admin"))) -> dict[str, Any]:
        return {"queue": await repo.count_by_state()}

    return rt.http_app([api], title="zhkh-appeals gis_sync", description="ГИС ЖКХ mirror: queue counts. Kafka does the rest.")


def __getattr__(name: str) -> FastAPI:  # lazy ``app`` for ``uvicorn --factory gis_sync.main:create_app``
    if name == "app":
        return create_app()
    raise AttributeError(name)
