"""Wiring of the router service. ``uvicorn --factory router.main:create_app`` or ``python -m router``."""

from __future__ import annotations

from datetime import timedelta

from fastapi import FastAPI

from zhkh_contracts import (
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
from .controlcards import CardPolicy, CardsRepository, ControlCards, MongoCardsUoW
from .controlcards_api import CardsApi
from .followup import FollowUps
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
             AppealRatingRequested, AppealTransitionRejected, FollowUpDue, *CARD_EVENT_CLASSES, *API_ACTIONS)
"""What the router publishes (see intake.main.PUBLISHES)."""


def create_app(settings: RouterSettings | None = None) -> FastAPI:
    settings = settings or RouterSettings()
    rt = ServiceRuntime(settings)
    repo = RouterRepository(rt.db, rt.mongo)
    cache = DirectoryCache(repo, settings.directory_check_s)
    close_after = timedelta(days=settings.close_without_reply_days)
    service = RouterService(RoutingRules.load(settings.routing_rules), settings.fallback_queue_id,
                            close_after=close_after, reopen_window=timedelta(days=settings.reopen_window_days))
    cards_repo, policy = CardsRepository(rt.db), CardPolicy.of(settings)
    cards = ControlCards(policy)  # cards.report_restored*: the hook for a restored outage
    rt.process((rt.topics.lifecycle, rt.topics.actions), cards.extend(service.handlers()),
               lambda session: MongoCardsUoW(repo.appeals_in(session), cache, repo.history_in(session),
                                             cards=cards_repo.in_session(session)),
               strict_topics=(rt.topics.actions,))  # every action is the router's: another type there is refused
    rt.on_startup(cards_repo.ensure_indexes)
    rt.on_startup(repo.ensure_indexes)
    queries = Queries(repo, cache)
    api = RouterApi(rt, queries, settings)
    rt.on_startup(queries.ensure_indexes)
    rt.on_startup(api.ensure_indexes)

    async def publish(out: list[Emit]) -> None:
        await rt.publisher.publish(rt.emitter.records(out))

    follow_ups = FollowUps(repo.appeals, publish, timedelta(days=settings.rating_ask_after_days), close_after)
    rt.every("follow_up", settings.follow_up_interval_s, follow_ups.round, again=lambda n: n >= follow_ups.batch)
    cards_api = CardsApi(rt, settings, cards_repo, cache, policy)
    return rt.http_app([api.router(), cards_api.router()], title="zhkh-appeals router",
                       description="\n\n".join(m.__doc__ or "" for m in (api_module, controlcards_api)).strip())


def __getattr__(name: str) -> FastAPI:  # lazy ``app`` for ``uvicorn --factory router.main:create_app``
    if name == "app":
        return create_app()
    raise AttributeError(name)
