"""The router's HTTP API for per-house control cards (services/router/controlcards.py).

    GET  /api/v1/control-cards                          cards (district, state, resource, overdue filters)
    GET  /api/v1/control-cards.csv                      one district's cards of one day, for the daily report
    GET  /api/v1/control-cards/{card_id}                one card with its appeals and actions
    POST /api/v1/control-cards/{card_id}/report-restoration   the card's party (or staff): restored
    POST /api/v1/control-cards/{card_id}/confirm        operator, inspector, admin: restoration confirmed (closes)

Operators, inspectors and admins see every card; a party sees the cards of its own houses (the cards whose
party is one of its token's ``party_ids``); anyone else is refused (401 without a valid token, 403 with
another role). Writes follow the router's action pattern: checked here, published on the actions topic with
the principal as actor and an event id from the ``Idempotency-Key``, applied (and checked again) by the
router's handlers, which record the outcome on the card; the answer waits ``api_wait_s`` for it.
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, time as dtime, timedelta
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

import structlog
from fastapi import APIRouter, Depends, Header, Path, Query
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from zhkh_contracts import (
    ConfirmationMethod,
    ControlCardActionBase,
    ControlCardRestorationConfirm,
    ControlCardRestorationReport,
    ControlCardState,
)
from zhkh_runtime.app import ServiceRuntime
from zhkh_runtime.auth import Principal
from zhkh_runtime.engine import Emit
from zhkh_runtime.csvfile import BOM, CSV_MEDIA_TYPE, attachment_headers, csv_cell, csv_text
from zhkh_runtime.http import Problem, decode_time_cursor, encode_time_cursor, problem_responses
from zhkh_runtime.mongo import aware

from .api import API_NS
from . import access
from .api_writes import ApiWrites
from .controlcards import CONFIRMERS, Card, CardPolicy, CardsRepository, hours_open, overdue
from .repository import DirectoryCache
from .settings import RouterSettings

log = structlog.get_logger(__name__)
CARD_ID = Path(pattern=r"^[0-9a-fA-F-]{36}$", description="The card's id (a UUID)")
NOT_FOUND_RU = "Контрольная карточка не найдена."
CSV_COLUMNS = ("card_id", "district_id", "house_key", "resource", "party_id", "state", "opened_at", "target_at",
               "appeals", "hours_open", "overdue", "reported_at", "reported_via", "closed_at", "confirmed_by",
               "method")


class ConfirmBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    method: ConfirmationMethod = Field(description="How restoration was checked: call_back (a resident called "
                                       "back), site_visit, dispatcher (the dispatch service's data), other")


class CardAction(BaseModel):
    event_id: str
    action: str
    outcome: Literal["applied", "refused"]
    code: str | None = None
    actor: str
    actor_subject: str | None = None
    via: str
    at: str


class CardView(BaseModel):
    card_id: str
    house_key: str = Field(description="Without a flat number")
    resource: str
    district_id: str | None
    party_id: str | None
    state: ControlCardState
    opened_at: str
    target_at: str = Field(description="The district's same-day target")
    timezone: str
    appeals: int = Field(description="Appeals about this house and resource on the card")
    hours_open: float = Field(description="Hours from opening to closing (or to now)")
    overdue: bool = Field(description="Not closed by the same-day target")
    reported_at: str | None = None
    reported_by: str | None = None
    reported_via: str | None = None
    closed_at: str | None = None
    confirmed_by: str | None = None
    method: str | None = None


class CardDetails(CardView):
    appeal_ids: list[str]
    actions: list[CardAction]


class CardPage(BaseModel):
    count: int
    cards: list[CardView]
    next_cursor: str | None = Field(description="Pass as ?cursor= for the next page; null: last page")


class CardAccepted(BaseModel):
    status: Literal["accepted", "applied", "refused"] = Field(
        description="accepted: published, not applied yet; applied / refused: the router's outcome")
    event_id: str
    action: str
    card_id: str
    outcome: CardAction | None = None
    card_url: str


def _iso(v: Any) -> str | None:
    if isinstance(v, datetime):
        return aware(v).isoformat()
    return v


def card_view(card: Card, now: datetime) -> dict[str, Any]:
    return {
        "card_id": card.card_id, "house_key": card.house_key, "resource": card.resource,
        "district_id": card.district_id, "party_id": card.party_id, "state": card.state,
        "opened_at": _iso(card.opened_at), "target_at": _iso(card.target_at), "timezone": card.timezone,
        "appeals": card.appeals, "hours_open": hours_open(card, now), "overdue": overdue(card, now),
        "reported_at": _iso(card.reported_at), "reported_by": card.reported_by, "reported_via": card.reported_via,
        "closed_at": _iso(card.closed_at), "confirmed_by": card.confirmed_by, "method": card.method,
    }


def _action_view(x: dict[str, Any]) -> dict[str, Any]:
    return {**x, "at": _iso(x.get("at"))}


class CardsApi:
    def __init__(self, rt: ServiceRuntime, settings: RouterSettings, repo: CardsRepository, cache: DirectoryCache,
                 policy: CardPolicy) -> None:
        self.rt, self.settings, self.repo, self.cache, self.policy = rt, settings, repo, cache, policy
        # the appeals API's key store (its TTL index), in a scope of its own
        self.writes = ApiWrites(rt, API_NS, scope="card\n", wait_s=settings.api_wait_s)

    async def card(self, card_id: str) -> Card:
        doc = await self.repo.cards.find_one({"_id": card_id.lower()})
        if doc is None:
            raise Problem(404, "not_found", NOT_FOUND_RU)
        return Card.of(doc)

    async def publish(self, p: Principal, key: str, action: ControlCardActionBase, name: str,
                      body: Any) -> dict[str, Any]:
        event_id, _ = await self.writes.claim(p.subject, key, [name, str(action.card_id), body])
        await self.writes.publish([Emit(action, key=action.key, event_id=event_id)], name)
        log.info("api_action", action=name, event_id=str(event_id), actor_role=action.actor.split(":", 1)[0])
        outcome = await self.wait_outcome(str(action.card_id), str(event_id))
        return {"status": "accepted" if outcome is None else outcome["outcome"], "event_id": str(event_id),
                "action": name, "card_id": str(action.card_id), "outcome": outcome,
                "card_url": f"/api/v1/control-cards/{action.card_id}"}

    async def wait_outcome(self, card_id: str, event_id: str) -> dict[str, Any] | None:
        async def entry() -> dict[str, Any] | None:
            doc = await self.repo.cards.find_one({"_id": card_id}, {"log": 1})
            return next((x for x in (doc or {}).get("log", []) if x.get("event_id") == event_id), None)

        found = await self.writes.outcome(entry)
        return _action_view(found) if found else None

    async def day_bounds(self, district_id: str, day: date) -> tuple[datetime, datetime]:
        tz = ZoneInfo(self.policy.timezone(await self.cache.current(), district_id))
        start = datetime.combine(day, dtime(0), tz)
        return start.astimezone(UTC), datetime.combine(day + timedelta(days=1), dtime(0), tz).astimezone(UTC)

    def router(self) -> APIRouter:  # noqa: C901 - one place lists every route
        auth = self.rt.auth
        api = APIRouter()
        readers = Depends(auth.require(*CONFIRMERS, "party"))
        confirmers = Depends(auth.require(*CONFIRMERS))
        idem = Header(alias="Idempotency-Key", min_length=1, max_length=200,
                      description="Unique per intended action; a retry sends the same key")
        read_errors = problem_responses(400, 401, 403, 404, 422)
        write_errors = problem_responses(400, 401, 403, 404, 422, 503)
        district_q = Query(None, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9:._-]{0,63}$")
        party_q = Query(None, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9:._-]{0,63}$")

        @api.get("/api/v1/control-cards", tags=["control cards"], response_model=CardPage, responses=read_errors,
                 operation_id="list_control_cards",
                 summary="Control cards per district (staff; a party sees the cards of its houses)")
        async def list_cards(p: Principal = readers, district_id: str | None = district_q,
                             party_id: str | None = party_q,
                             state: Literal["active", "open", "restoration_reported", "closed", "all"] = Query(
                                 "active", description="active: not closed (open or restoration reported)"),
                             resource: str | None = Query(None, pattern=r"^[a-z_]{1,30}$"),
                             overdue_only: bool = Query(False, alias="overdue",
                                                        description="Only cards past their same-day target"),
                             cursor: str | None = Query(None, max_length=200,
                                                        description="next_cursor of the previous page"),
                             limit: int = Query(100, ge=1, le=500)) -> dict[str, Any]:
            now = datetime.now(UTC)
            query: dict[str, Any] = {}
            if district_id:
                query["district_id"] = district_id
            if state == "active":
                query["active"] = True
            elif state != "all":
                query["state"] = state
            if resource:
                query["resource"] = resource
            if overdue_only:
                query["$or"] = [{"active": True, "target_at": {"$lt": now}}, {"closed_late": True}]
            access.scope(p, query, party_id)
            if cursor:  # newest first, then by id: the cards after the previous page's last one
                at, after = decode_time_cursor(cursor)
                query = {"$and": [query, {"$or": [{"opened_at": {"$lt": at}},
                                                  {"opened_at": at, "_id": {"$gt": after}}]}]}
            docs = await self.repo.cards.find(query, {"log": 0}).sort(
                [("opened_at", -1), ("_id", 1)]).limit(limit + 1).to_list(None)
            page = [Card.of(d) for d in docs[:limit]]
            nxt = encode_time_cursor(page[-1].opened_at, page[-1].card_id) if len(docs) > limit else None
            return {"count": len(page), "cards": [card_view(c, now) for c in page], "next_cursor": nxt}

        @api.get("/api/v1/control-cards.csv", tags=["control cards"], operation_id="control_cards_csv",
                 responses={**read_errors, 200: {"content": {"text/csv": {"schema": {"type": "string"}}},
                                                 "description": "One row per card"}},
                 summary="One district's cards open at any time on one day (the daily report), UTF-8 CSV with BOM",
                 response_class=Response)
        async def cards_csv(p: Principal = readers,
                            district_id: str = Query(max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9:._-]{0,63}$"),
                            day: date | None = Query(None, description="The day (in the district's zone); "
                                                     "default today")) -> Response:
            tz = ZoneInfo(self.policy.timezone(await self.cache.current(), district_id))
            now = datetime.now(UTC)
            the_day = day or now.astimezone(tz).date()
            start, end = await self.day_bounds(district_id, the_day)
            query: dict[str, Any] = {"district_id": district_id, "opened_at": {"$lt": end},
                                     "$or": [{"active": True}, {"closed_at": {"$gte": start}}]}
            access.scope(p, query, None)
            docs = await self.repo.cards.find(query, {"log": 0}).sort([("opened_at", 1), ("_id", 1)]).to_list(None)
            at = min(now, end)
            views = (card_view(Card.of(d), at) for d in docs)
            text = csv_text(([csv_cell(v.get(c)) for c in CSV_COLUMNS] for v in views), CSV_COLUMNS)
            log.info("csv_export", what="control_cards", role=p.role_for_audit(), rows=len(docs))
            name = f"control-cards-{district_id}-{the_day.isoformat()}.csv"
            return Response((BOM + text).encode("utf-8"), media_type=CSV_MEDIA_TYPE, headers=attachment_headers(name))

        @api.get("/api/v1/control-cards/{card_id}", tags=["control cards"], response_model=CardDetails,
                 responses=read_errors, operation_id="get_control_card",
                 summary="One control card with its appeals and the actions on it")
        async def get_card(card_id: Annotated[str, CARD_ID], p: Principal = readers) -> dict[str, Any]:
            card = await self.card(card_id)
            if not access.may_read(p, card.party_id):
                raise Problem(403, "forbidden")
            return {**card_view(card, datetime.now(UTC)), "appeal_ids": card.appeal_ids,
                    "actions": [_action_view(x) for x in card.log]}

        @api.post("/api/v1/control-cards/{card_id}/report-restoration", tags=["control cards"],
                  response_model=CardAccepted, status_code=202, responses=write_errors,
                  operation_id="report_restoration",
                  summary="The card's party (or staff on its word): the resource is restored at the house")
        async def report(card_id: Annotated[str, CARD_ID], key: str = idem, p: Principal = readers) -> dict[str, Any]:
            card = await self.card(card_id)
            actor = access.actor(p, CONFIRMERS, card.party_id)
            action = ControlCardRestorationReport(card_id=uuid.UUID(card.card_id), actor=actor, actor_subject=p.subject)
            return await self.publish(p, key, action, "report_restoration", None)

        @api.post("/api/v1/control-cards/{card_id}/confirm", tags=["control cards"], response_model=CardAccepted,
                  status_code=202, responses=write_errors, operation_id="confirm_restoration",
                  summary="Restoration confirmed (operator, inspector, admin): the card is closed")
        async def confirm(card_id: Annotated[str, CARD_ID], body: ConfirmBody, key: str = idem,
                          p: Principal = confirmers) -> dict[str, Any]:
            card = await self.card(card_id)
            actor = access.actor(p, CONFIRMERS)
            action = ControlCardRestorationConfirm(card_id=uuid.UUID(card.card_id), actor=actor,
                                                   actor_subject=p.subject, method=body.method)
            return await self.publish(p, key, action, "confirm_restoration", body.model_dump(mode="json"))

        return api
