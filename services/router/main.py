"""Wiring of the router service. ``uvicorn --factory router.main:create_app`` or ``python -m router``."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from fastapi import FastAPI

from zhkh_contracts import (
    OUTAGE_CLASSES,
    AppealLinkedToOutage,
    AppealProgressUpdated,
    AppealRatingRequested,
    FollowUpDue,
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
    PartyPostedUpdate,
    PartyRequestedExtension,
    CARD_ACTION_CLASSES,
    CARD_EVENT_CLASSES,
)
from zhkh_runtime.app import ServiceRuntime
from zhkh_runtime.engine import Emit

from . import api as api_module
from . import controlcards_api
from .api import RouterApi
from .controlcards import CardPolicy, CardsRepository, ControlCards
from .controlcards_api import CardsApi
from .followup import FollowUps
from .outages import OutageService
from .outages_api import OutagesApi
from .outages_store import MongoOutageUoW, OutageRepository
from .queries import Queries
from .repository import DirectoryCache, RouterRepository
from .rules import RoutingRules
from .service import RouterService
from .settings import RouterSettings

API_ACTIONS = (
    PartyAccepted, PartyAnswered, PartyRejectedNotResponsible, PartyRequestedExtension, PartyPostedUpdate,
    OperatorAssigned, CitizenRatedAnswer, CitizenComplained, CitizenWithdrew, *CARD_ACTION_CLASSES,
)
"""Actions of parties, operators and citizens: published on the actions topic by the router's HTTP API (source
/zhkh-appeals/router, the authenticated principal as actor); nobody else may publish them (issue 13)."""
PUBLISHES = (AppealAssigned, AppealStatusChanged, AppealAnswered, AppealExtended, AppealProgressUpdated,
             AppealRatingRequested, AppealTransitionRejected, FollowUpDue, *CARD_EVENT_CLASSES, *API_ACTIONS,
             *OUTAGE_CLASSES, AppealLinkedToOutage)
"""What the router publishes (see intake.main.PUBLISHES)."""


class MongoRouterWithRegistersUoW(MongoOutageUoW):
    """The router's unit of work with the outage register and the control cards on the same transaction."""

    def __init__(self, *a: Any, outages: Any, cards: Any) -> None:
        super().__init__(*a, outages=outages)
        self.cards = cards


def create_app(settings: RouterSettings | None = None) -> FastAPI:
    settings = settings or RouterSettings()
    rt = ServiceRuntime(settings)
    repo = RouterRepository(rt.db, rt.mongo)
    cache = DirectoryCache(repo, settings.directory_check_s)
    close_after = timedelta(days=settings.close_without_reply_days)
    service = RouterService(RoutingRules.load(settings.routing_rules), settings.fallback_queue_id,
                            close_after=close_after, reopen_window=timedelta(days=settings.reopen_window_days))
    outage_repo = OutageRepository(rt.db)  # the outage register (services/router/outages.py)
    cards_repo, policy = CardsRepository(rt.db), CardPolicy.of(settings)
    cards = ControlCards(policy)  # per-house control cards (services/router/controlcards.py)
    outages = OutageService(timedelta(days=settings.outage_notice_window_days), cards=cards)
    handlers = cards.extend(outages.install(service.handlers()))
    rt.process((rt.topics.lifecycle, rt.topics.actions, rt.topics.outages), handlers,
               lambda session: MongoRouterWithRegistersUoW(repo.appeals_in(session), cache, repo.history_in(session),
                                         outages=outage_repo.in_session(session),
                                         cards=cards_repo.in_session(session)),
               # every action and outage event is the router's: another type there is refused
               strict_topics=(rt.topics.actions, rt.topics.outages))
    rt.on_startup(cards_repo.ensure_indexes)
    rt.on_startup(repo.ensure_indexes)
    rt.on_startup(outage_repo.ensure_indexes)
    queries = Queries(repo, cache)
    api = RouterApi(rt, queries, settings)
    rt.on_startup(queries.ensure_indexes)
    rt.on_startup(api.ensure_indexes)

    async def publish(out: list[Emit]) -> None:
        await rt.publisher.publish(rt.emitter.records(out))

    follow_ups = FollowUps(repo.appeals, publish, timedelta(days=settings.rating_ask_after_days), close_after)
    rt.every("follow_up", settings.follow_up_interval_s, follow_ups.round, again=lambda n: n >= follow_ups.batch)
    outages_api = OutagesApi(rt, outage_repo, queries, settings)
    cards_api = CardsApi(rt, settings, cards_repo, cache, policy)
    return rt.http_app([api.router(), outages_api.router(), cards_api.router()], title="zhkh-appeals router",
                       description="\n\n".join(m.__doc__ or "" for m in (api_module, controlcards_api)).strip())


def __getattr__(name: str) -> FastAPI:  # lazy ``app`` for ``uvicorn --factory router.main:create_app``
    if name == "app":
        return create_app()
    raise AttributeError(name)
