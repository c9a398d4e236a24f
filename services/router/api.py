"""The router's HTTP API: how parties, operators, inspectors and citizens act on appeals
(OpenAPI 3.1 at /openapi.json; errors are RFC 9457 problem details).

Reads come from the router's own state. Writes do not change state here: each one is checked
(token, role, the appeal's current party, the citizen's access code), then published as an action
on the actions topic with the authenticated principal as its actor (``party:<id>``,
``operator:<sub>``, ``citizen:<appeal id>``), never a value from the body. The router's lifecycle
handlers apply it, check the same rules again against the state they hold, and record the outcome
in the appeal's history. Every write needs an ``Idempotency-Key``: the same key with the same body
publishes the same event id again (applied once); with another body it is refused.

    party       GET  /api/v1/party/appeals                    my appeals (status filter, cursor pages)
                GET  /api/v1/party/appeals/{number}           one, with the citizen's contacts
                POST /api/v1/party/appeals/{number}/accept | /update | /answer | /not-ours | /extension
    operator    GET  /api/v1/operator/queue                   the fallback queue
                POST /api/v1/operator/appeals/{number}/route  route or re-route to a party
    staff       GET  /api/v1/appeals                          search (number, house, party, status, escalated)
                GET  /api/v1/appeals/{number}                 one appeal (operator, inspector, admin, its party)
                GET  /api/v1/appeals/{number}/history         the audit trail
    inspector   GET  /api/v1/inspector/escalated              escalated open appeals
    citizen     POST /api/v1/citizen/status                   number + access code
                POST /api/v1/citizen/appeals/{number}/rate | /complain | /withdraw
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal

import structlog
from fastapi import APIRouter, Depends, Header, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from zhkh_contracts import (
    MAX_TEXT_CHARS,
    ActionBase,
    AppealStatus,
    AttachmentRef,
    CitizenComplained,
    CitizenRatedAnswer,
    CitizenWithdrew,
    OperatorAssigned,
    PartyAccepted,
    PartyAnswered,
    PartyPostedUpdate,
    PartyRejectedNotResponsible,
    PartyRequestedExtension,
)
from zhkh_runtime import access_codes
from zhkh_runtime.app import ServiceRuntime
from zhkh_runtime.auth import Principal
from zhkh_runtime.engine import Emit
from zhkh_runtime.http import Problem, RateLimit, client_address, problem_responses

from . import access
from .access import STAFF
from .api_writes import ApiWrites
from .queries import Queries, details_view, summary_view
from .settings import RouterSettings

log = structlog.get_logger(__name__)
API_NS = uuid.UUID("5d1c0f8e-1f0a-4c55-9a57-3f4f4e1f2a10")
NUMBER = Path(pattern=r"^[A-Za-z0-9-]{1,40}$", description="Registration number, e.g. ZH-2026-0000001")

PUBLIC = {"security": []}  # no token: the number and the access code are the credential
NOT_FOUND_RU = "Обращение с таким номером не найдено."
CITIZEN_NOT_FOUND_RU = "Обращение с таким номером и кодом доступа не найдено."


# ---- bodies and answers -------------------------------------------------------------------------

class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AnswerBody(Body):
    text: str = Field(min_length=1, max_length=MAX_TEXT_CHARS, description="The answer to the citizen")
    attachments: tuple[AttachmentRef, ...] = Field(default=(), max_length=50)


class UpdateBody(Body):
    text: str = Field(min_length=1, max_length=MAX_TEXT_CHARS, description="What is being done, when to expect it")


class NotOursBody(Body):
    reason: str = Field(default="", max_length=2000)
    suggested_party_id: str | None = Field(default=None, max_length=200)


class ExtensionBody(Body):
    days: int = Field(ge=1, le=30)
    reason: str = Field(min_length=1, max_length=2000)


class RouteBody(Body):
    party_id: str = Field(min_length=1, max_length=200)


class CitizenBody(Body):
    access_code: str = Field(min_length=10, max_length=20, description="The code from the registration answer or notice")


class StatusBody(CitizenBody):
    number: str = Field(pattern=r"^[A-Za-z0-9-]{1,40}$")


class RateBody(CitizenBody):
    satisfied: bool


class ComplainBody(CitizenBody):
    text: str = Field(default="", max_length=MAX_TEXT_CHARS)


class Deadline(BaseModel):
    due_at: str
    regime: str
    timezone: str


class AppealSummary(BaseModel):
    appeal_id: str
    registration_number: str
    status: str
    category: str
    house_key: str | None = Field(description="Without a flat number")
    district_id: str | None = None
    party_id: str | None
    party_kind: str | None
    level: int
    incident_id: str | None
    emergency: bool
    version: int
    deadline: Deadline | None
    updated_at: str | None


class Page(BaseModel):
    count: int
    appeals: list[AppealSummary]
    next_cursor: str | None = Field(description="Pass as ?cursor= for the next page; null: last page")


class AppealDetails(BaseModel):
    text: str | None
    channel: str | None
    registered_at: str | None
    address: dict[str, Any] | None
    applicant: dict[str, Any] | None = Field(description="The citizen's contacts: only for the assigned party and staff")
    attachments: list[dict[str, Any]]


class AppealView(AppealSummary):
    party_name: str | None = None
    details: AppealDetails | None = None


class HistoryEntry(BaseModel):
    """One applied or refused action (router.history): who, what, when, the outcome. No personal data."""

    appeal_id: str
    at: str
    action: str
    outcome: Literal["applied", "refused"]
    actor: str | None
    actor_subject: str | None
    via: str = Field(description="The CloudEvents source the action came through")
    cause_event_id: str
    status: str | None
    version: int
    from_status: str | None = None
    party_id: str | None = None
    code: str | None = Field(default=None, description="Refused: why (e.g. forbidden, illegal_transition)")


class History(BaseModel):
    registration_number: str
    entries: list[HistoryEntry]


class Accepted(BaseModel):
    status: Literal["accepted", "applied", "refused"] = Field(
        description="accepted: published, not applied yet; applied / refused: the router's outcome")
    event_id: str
    action: str
    registration_number: str
    outcome: HistoryEntry | None = Field(default=None, description="The history entry, once the router decided")
    history_url: str


class CitizenStatus(BaseModel):
    registration_number: str
    status: str
    category: str
    party_name: str | None
    deadline: Deadline | None
    updated_at: str | None


# ---- the API ------------------------------------------------------------------------------------

class RouterApi:
    def __init__(self, rt: ServiceRuntime, queries: Queries, settings: RouterSettings) -> None:
        self.rt, self.q, self.settings = rt, queries, settings
        self.requests = rt.db["router_api_requests"]
        self.writes = ApiWrites(rt, API_NS, wait_s=self.settings.api_wait_s)
        self.citizen_rate = RateLimit(settings.citizen_rate, "citizen")
        self.code_failures = RateLimit(settings.access_code_failures, "access_code")

    async def ensure_indexes(self) -> None:
        await self.requests.create_index("created_at", expireAfterSeconds=self.settings.idempotency_ttl_s)

    # ---- helpers ----

    async def appeal(self, number: str) -> dict[str, Any]:
        doc = await self.q.by_number(number)
        if doc is None:
            raise Problem(404, "not_found", NOT_FOUND_RU)
        return doc

    async def view(self, doc: dict[str, Any], with_details: bool) -> dict[str, Any]:
        out = summary_view(doc)
        out["party_name"] = await self.q.party_name(doc.get("party_id"))
        if with_details:
            out["details"] = details_view(await self.q.details(doc["_id"]))
        return out

    async def publish(self, principal_key: str, key: str, request_body: Any, action: ActionBase, name: str,
                      number: str) -> dict[str, Any]:
        """Publish ``action`` once per (principal, Idempotency-Key): a repeat with the same body
        publishes the same event id again (the router applies it once), another body is refused."""
        if not 1 <= len(key) <= 200:
            raise Problem(400, "invalid_idempotency_key", "Заголовок Idempotency-Key: от 1 до 200 символов.",
                          ["Idempotency-Key"])
        event_id, _ = await self.writes.claim(principal_key, key, [name, number, request_body])
        await self.writes.publish([Emit(action, event_id=event_id)], name)
        log.info("api_action", action=name, event_id=str(event_id), actor_role=action.actor.split(":", 1)[0])
        outcome = await self.wait_outcome(str(action.appeal_id), str(event_id))
        status = "accepted" if outcome is None else outcome["outcome"]
        return {"status": status, "event_id": str(event_id), "action": name, "registration_number": number,
                "outcome": outcome, "history_url": f"/api/v1/appeals/{number}/history"}

    async def wait_outcome(self, appeal_id: str, event_id: str) -> dict[str, Any] | None:
        return await self.writes.outcome(lambda: self.q.outcome(appeal_id, event_id))

    async def citizen_appeal(self, request: Request, number: str, code: str) -> dict[str, Any]:
        """The appeal, if ``code`` is its access code. Unknown number and wrong code get the same
        answer; failures per number and requests per client are rate-limited."""
        self.citizen_rate.hit(client_address(request))
        if not self.code_failures.test(number.upper()):
            raise Problem(429, "rate_limited", headers={"Retry-After": "900"})
        doc = await self.q.by_number(number)
        stored = await self.q.access_code_hash(doc["_id"]) if doc else None
        if doc is None or not access_codes.verify(code, stored):
            self.code_failures.count(number.upper())  # towards the lock; this answer stays 404
            raise Problem(404, "not_found", CITIZEN_NOT_FOUND_RU)
        return doc

    # ---- routes ----

    def router(self) -> APIRouter:  # noqa: C901 - one place lists every route
        auth = self.rt.auth
        api = APIRouter()
        party = Depends(auth.require("party"))
        operator = Depends(auth.require("operator", "admin"))
        staff = Depends(auth.require(*STAFF, "party"))
        inspector = Depends(auth.require("inspector", "admin"))
        idem = Header(alias="Idempotency-Key", min_length=1, max_length=200,
                      description="Unique per intended action; a retry sends the same key")
        read_errors = problem_responses(401, 403, 404, 422, 429)
        write_errors = problem_responses(400, 401, 403, 404, 409, 422, 429, 503)

        # -- party --

        @api.get("/api/v1/party/appeals", tags=["party"], response_model=Page, responses=read_errors,
                 operation_id="party_list_appeals", summary="Appeals assigned to my party")
        async def party_list(p: Principal = party, status: AppealStatus | None = None,
                             party_id: str | None = Query(None, max_length=200),
                             open_only: bool = Query(False, alias="open"),
                             cursor: str | None = Query(None, max_length=100),
                             limit: int = Query(50, ge=1, le=200)) -> dict[str, Any]:
            query: dict[str, Any] = {}
            access.own_parties(p, query, party_id)
            if status is not None:
                query["status"] = status.value
            if open_only:
                query["open"] = True
            return await self._page(query, limit, cursor)

        @api.get("/api/v1/party/appeals/{number}", tags=["party"], response_model=AppealView, responses=read_errors,
                 operation_id="party_get_appeal", summary="One of my appeals, with the citizen's contacts")
        async def party_get(number: Annotated[str, NUMBER], p: Principal = party) -> dict[str, Any]:
            doc = await self.appeal(number)
            if doc.get("party_id") not in p.party_ids:
                raise Problem(403, "forbidden")
            return await self.view(doc, with_details=True)

        async def party_action(p: Principal, number: str, key: str, make: Any, name: str, body: Any) -> dict[str, Any]:
            doc = await self.appeal(number)
            actor = access.actor(p, (), doc.get("party_id"))
            action = make(appeal_id=uuid.UUID(doc["_id"]), actor=actor, actor_subject=p.subject)
            return await self.publish(f"{p.subject}", key, body, action, name, number)

        @api.post("/api/v1/party/appeals/{number}/accept", tags=["party"], response_model=Accepted, status_code=202,
                  responses=write_errors, operation_id="party_accept", summary="Accept the appeal (work starts)")
        async def accept(number: Annotated[str, NUMBER], key: str = idem, p: Principal = party) -> dict[str, Any]:
            return await party_action(p, number, key, PartyAccepted, "accept", None)

        @api.post("/api/v1/party/appeals/{number}/answer", tags=["party"], response_model=Accepted, status_code=202,
                  responses=write_errors, operation_id="party_answer", summary="Answer the citizen")
        async def answer(number: Annotated[str, NUMBER], body: AnswerBody, key: str = idem,
                         p: Principal = party) -> dict[str, Any]:
            return await party_action(p, number, key, lambda **kw: PartyAnswered(
                text=body.text, attachments=body.attachments, **kw), "answer", body.model_dump(mode="json"))

        @api.post("/api/v1/party/appeals/{number}/update", tags=["party"], response_model=Accepted, status_code=202,
                  responses=write_errors, operation_id="party_post_update",
                  summary="Interim update for the citizen (the status does not change)")
        async def update(number: Annotated[str, NUMBER], body: UpdateBody, key: str = idem,
                         p: Principal = party) -> dict[str, Any]:
            return await party_action(p, number, key, lambda **kw: PartyPostedUpdate(text=body.text, **kw),
                                      "post_update", body.model_dump(mode="json"))

        @api.post("/api/v1/party/appeals/{number}/not-ours", tags=["party"], response_model=Accepted, status_code=202,
                  responses=write_errors, operation_id="party_not_ours",
                  summary="Not our responsibility (optionally suggest the party that is)")
        async def not_ours(number: Annotated[str, NUMBER], body: NotOursBody, key: str = idem,
                           p: Principal = party) -> dict[str, Any]:
            return await party_action(p, number, key, lambda **kw: PartyRejectedNotResponsible(
                reason=body.reason, suggested_party_id=body.suggested_party_id, **kw), "reject_not_responsible",
                body.model_dump(mode="json"))

        @api.post("/api/v1/party/appeals/{number}/extension", tags=["party"], response_model=Accepted,
                  status_code=202, responses=write_errors, operation_id="party_request_extension",
                  summary="Extend the deadline once (up to 30 days, 59-ФЗ)")
        async def extension(number: Annotated[str, NUMBER], body: ExtensionBody, key: str = idem,
                            p: Principal = party) -> dict[str, Any]:
            return await party_action(p, number, key, lambda **kw: PartyRequestedExtension(
                days=body.days, reason=body.reason, **kw), "request_extension", body.model_dump(mode="json"))

        # -- operator --

        @api.get("/api/v1/operator/queue", tags=["operator"], response_model=Page, responses=read_errors,
                 operation_id="operator_queue", summary="Open appeals in the fallback queue (route them by hand)")
        async def queue(_: Principal = operator, cursor: str | None = Query(None, max_length=100),
                        limit: int = Query(50, ge=1, le=200)) -> dict[str, Any]:
            return await self._page({"party_id": self.settings.fallback_queue_id, "open": True}, limit, cursor)

        @api.post("/api/v1/operator/appeals/{number}/route", tags=["operator"], response_model=Accepted,
                  status_code=202, responses=write_errors, operation_id="operator_route",
                  summary="Route (or re-route) an appeal to a party")
        async def route(number: Annotated[str, NUMBER], body: RouteBody, key: str = idem,
                        p: Principal = operator) -> dict[str, Any]:
            doc = await self.appeal(number)
            if not await self.q.party_exists(body.party_id):
                raise Problem(422, "unknown_party", "Такой организации нет в справочнике.", ["party_id"])
            action = OperatorAssigned(appeal_id=uuid.UUID(doc["_id"]), party_id=body.party_id,
                                      actor=access.actor(p, ("operator", "admin")), actor_subject=p.subject)
            return await self.publish(p.subject, key, body.model_dump(mode="json"), action, "operator_assign", number)

        # -- staff reads --

        @api.get("/api/v1/appeals", tags=["staff"], response_model=Page, responses=read_errors,
                 operation_id="search_appeals",
                 summary="Search appeals (operators, inspectors, admins; a party sees only its own)")
        async def search(p: Principal = staff, number: str | None = Query(None, max_length=40),
                         house_key: str | None = Query(None, max_length=600),
                         party_id: str | None = Query(None, max_length=200), status: AppealStatus | None = None,
                         escalated: bool = Query(False, description="Only appeals above level 0"),
                         open_only: bool = Query(False, alias="open"),
                         cursor: str | None = Query(None, max_length=100),
                         limit: int = Query(50, ge=1, le=200)) -> dict[str, Any]:
            query: dict[str, Any] = {}
            if number:
                query["registration_number"] = number
            if house_key:
                query["house_key"] = house_key
            if status is not None:
                query["status"] = status.value
            if escalated:
                query["level"] = {"$gt": 0}
            if open_only:
                query["open"] = True
            access.scope(p, query, party_id)  # a party: its own appeals only, whatever the filters say
            return await self._page(query, limit, cursor)

        @api.get("/api/v1/appeals/{number}", tags=["staff"], response_model=AppealView, responses=read_errors,
                 operation_id="get_appeal", summary="One appeal with its details (staff, or its assigned party)")
        async def get_one(number: Annotated[str, NUMBER], p: Principal = staff) -> dict[str, Any]:
            doc = await self.appeal(number)
            if not access.may_read(p, doc.get("party_id")):
                raise Problem(403, "forbidden")
            return await self.view(doc, with_details=True)

        @api.get("/api/v1/appeals/{number}/history", tags=["staff"], response_model=History, responses=read_errors,
                 operation_id="appeal_history", summary="Audit trail: who did what, when, and the resulting status")
        async def history(number: Annotated[str, NUMBER], p: Principal = staff) -> dict[str, Any]:
            doc = await self.appeal(number)
            if not access.may_read(p, doc.get("party_id")):
                raise Problem(403, "forbidden")
            entries = await self.q.history(doc["_id"])
            return {"registration_number": number, "entries": entries}

        @api.get("/api/v1/inspector/escalated", tags=["inspector"], response_model=Page, responses=read_errors,
                 operation_id="inspector_escalated", summary="Open appeals escalated above their first party")
        async def escalated(_: Principal = inspector, cursor: str | None = Query(None, max_length=100),
                            limit: int = Query(50, ge=1, le=200)) -> dict[str, Any]:
            return await self._page({"level": {"$gt": 0}, "open": True}, limit, cursor)

        # -- citizen (number + access code; no account) --

        @api.post("/api/v1/citizen/status", tags=["citizen"], response_model=CitizenStatus,
                  responses=problem_responses(404, 422, 429), operation_id="citizen_status", openapi_extra=PUBLIC,
                  summary="Status of my appeal (number and access code)")
        async def citizen_status(request: Request, body: StatusBody) -> dict[str, Any]:
            doc = await self.citizen_appeal(request, body.number, body.access_code)
            v = summary_view(doc)
            return {"registration_number": doc["registration_number"], "status": v["status"], "category": v["category"],
                    "party_name": await self.q.party_name(doc.get("party_id")), "deadline": v["deadline"],
                    "updated_at": v["updated_at"]}

        async def citizen_action(request: Request, number: str, code: str, key: str, make: Any, name: str,
                                 body: dict[str, Any]) -> dict[str, Any]:
            doc = await self.citizen_appeal(request, number, code)
            actor = f"citizen:{doc['_id']}"
            action = make(appeal_id=uuid.UUID(doc["_id"]), actor=actor)
            body = {k: v for k, v in body.items() if k != "access_code"}
            return await self.publish(actor, key, body, action, name, doc["registration_number"])

        citizen_errors = problem_responses(400, 404, 409, 422, 429, 503)

        @api.post("/api/v1/citizen/appeals/{number}/rate", tags=["citizen"], response_model=Accepted, status_code=202,
                  responses=citizen_errors, operation_id="citizen_rate", openapi_extra=PUBLIC, summary="Rate the answer")
        async def rate(request: Request, number: Annotated[str, NUMBER], body: RateBody, key: str = idem) -> dict[str, Any]:
            return await citizen_action(request, number, body.access_code, key, lambda **kw: CitizenRatedAnswer(
                satisfied=body.satisfied, **kw), "rate", body.model_dump())

        @api.post("/api/v1/citizen/appeals/{number}/complain", tags=["citizen"], response_model=Accepted,
                  status_code=202, responses=citizen_errors, operation_id="citizen_complain", openapi_extra=PUBLIC,
                  summary="Complain about the answer (escalates)")
        async def complain(request: Request, number: Annotated[str, NUMBER], body: ComplainBody,
                           key: str = idem) -> dict[str, Any]:
            return await citizen_action(request, number, body.access_code, key, lambda **kw: CitizenComplained(
                text=body.text, **kw), "complain", body.model_dump())

        @api.post("/api/v1/citizen/appeals/{number}/withdraw", tags=["citizen"], response_model=Accepted,
                  status_code=202, responses=citizen_errors, operation_id="citizen_withdraw", openapi_extra=PUBLIC,
                  summary="Withdraw my appeal")
        async def withdraw(request: Request, number: Annotated[str, NUMBER], body: CitizenBody,
                           key: str = idem) -> dict[str, Any]:
            return await citizen_action(request, number, body.access_code, key, CitizenWithdrew, "withdraw",
                                        body.model_dump())

        return api

    async def _page(self, query: dict[str, Any], limit: int, cursor: str | None) -> dict[str, Any]:
        try:
            docs, nxt = await self.q.page(query, limit, cursor)
        except ValueError:
            raise Problem(400, "invalid_cursor", None, ["cursor"]) from None
        return {"count": len(docs), "appeals": [summary_view(d) for d in docs], "next_cursor": nxt}
