"""Wiring of the router service. ``faststream run router.main:app`` or ``python -m router``."""

from __future__ import annotations

from faststream.asgi import AsgiFastStream

from zhkh_contracts import (
    AppealAnswered,
    AppealAssigned,
    AppealExtended,
    AppealStatusChanged,
    AppealTransitionRejected,
    CitizenComplained,
    CitizenRatedAnswer,
    CitizenWithdrew,
    OperatorAssigned,
    PartyAccepted,
    PartyAnswered,
    PartyRejectedNotResponsible,
    PartyRequestedExtension,
)
from zhkh_runtime.app import ServiceRuntime

from . import api
from .repository import DirectoryCache, RouterRepository
from .rules import RoutingRules
from .service import RouterService
from .settings import RouterSettings
from .uow import MongoRouterUoW

API_ACTIONS = (
    PartyAccepted, PartyAnswered, PartyRejectedNotResponsible, PartyRequestedExtension, OperatorAssigned,
    CitizenRatedAnswer, CitizenComplained, CitizenWithdrew,
)
"""Actions of parties, operators and citizens: published on the actions topic by the router's HTTP API (source
/zhkh-appeals/router, the authenticated principal as actor); nobody else may publish them (issue 13)."""
PUBLISHES = (AppealAssigned, AppealStatusChanged, AppealAnswered, AppealExtended, AppealTransitionRejected, *API_ACTIONS)
"""What the router publishes (see intake.main.PUBLISHES)."""


def create_app(settings: RouterSettings | None = None) -> AsgiFastStream:
    settings = settings or RouterSettings()
    rt = ServiceRuntime(settings)
    repo = RouterRepository(rt.db, rt.mongo)
    cache = DirectoryCache(repo, settings.directory_check_s)
    service = RouterService(RoutingRules.load(settings.routing_rules), settings.fallback_queue_id)
    rt.process((rt.topics.lifecycle, rt.topics.actions), service.handlers(),
               lambda session: MongoRouterUoW(repo.appeals_in(session), cache, repo.history_in(session)),
               strict_topics=(rt.topics.actions,))  # every action is the router's: another type there is refused
    rt.on_startup(repo.ensure_indexes)
    return rt.asgi_app(extra_routes=api.routes(repo))


def __getattr__(name: str) -> AsgiFastStream:  # lazy ``app`` for ``faststream run router.main:app``
    if name == "app":
        return create_app()
    raise AttributeError(name)
