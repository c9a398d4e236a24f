"""HTTP ingress for systems that cannot speak Kafka (the site form, the call-centre software, channel
adapters): a FastAPI router served by the intake process (``rt.http_app``), under the same lifespan
as the consumers. Validation is intake's own, so refusals carry the same machine-readable reasons and
Russian messages as the rejected topic; every error is RFC 9457 problem details
(``application/problem+json``, see zhkh_runtime.http).

    POST /api/v1/appeals          body: a RawAppealSubmitted as JSON (contracts/schemas)
      201 {"status": "registered", "registration_number", "appeal_id", ["status_url"], ["access_code", "access_code_note"]}
      202 {"status": "accepted", ["status_url"], "access_code", "access_code_note"}
                                   published; not registered within ZHKH_INGRESS_WAIT_S
      400/413/415/422              the body is refused: nothing published to the raw topic; the body goes to
                                   the rejected topic (x-dlq-service=intake-http; a too_large body is not
                                   read whole, so its copy is empty)
      401/403/429                  who sent it may not (below): answered before anything is published; the
                                   body is not copied (an anonymous flood must not fill the rejected topic)
      409 conflicting_duplicate    the (channel, source_id) is registered with other content: its number is
                                   never handed out
      503 unavailable              the broker did not take it: send it again
    GET  /api/v1/appeals/status?channel=<channel>&source_id=<id>   (a token: see below)
      200 {"status": "registered", "registration_number", "appeal_id", "category", "emergency", "incident_id"}
      401/403/404/422

Who may submit what (issue "trust boundary"):

* anonymous: only channel ``site_form``, only while ZHKH_PUBLIC_SUBMISSION is on (default), at most
  ZHKH_PUBLIC_SUBMISSION_RATE per client address (429 with Retry-After); another channel: 401;
* a bearer token with role ``service``: the channels in its channels claim; role ``operator``: ``hotline``;
  any other token (or channel) may still use ``site_form`` as the public may (same rate limit), else 403;
* ``channel: gis`` and the ГИС-only channel_meta keys (``execution_end_date``, ``gis_*``): never over HTTP
  (403), whoever asks: only gis_sync publishes them, on the ГИС raw topic.

The status endpoint answers a ``service`` token for that channel, or ``operator``/``admin``.

Access codes: every copy the ingress publishes carries a new code (RawAppealSubmitted.access_code),
returned once in the 201/202 answer. A resend of a registered submission gets no code (the first one
stays valid); a 201 answer hands out its code only if it is the registered one (two copies in flight at
once: the one registered first wins; a 202 answer cannot know yet). The code is never logged.

The submission is published to the channel's raw topic exactly like a channel adapter would, so
registration, deduplication and idempotency are the consumer's; resending the same body is safe.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any, Literal
from urllib.parse import urlencode

import structlog
from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, ValidationError
from starlette.requests import ClientDisconnect

from zhkh_contracts import (
    Channel,
    Envelope,
    EnvelopeError,
    RawAppealSubmitted,
    Topics,
    describe_validation_error,
    parse_json,
    safe_fields,
    to_kafka,
)
from zhkh_contracts.envelope import validation_reason
from zhkh_contracts.events import ACCESS_CODE_PATTERN
from zhkh_runtime import access_codes
from zhkh_runtime.auth import Principal
from zhkh_runtime.errors import PermanentError
from zhkh_runtime.http import AUTH_REFUSED, extend_openapi, Auth, Problem, RateLimit, client_address, problem_responses
from zhkh_runtime.kafka import RecordPublisher
from zhkh_runtime.records import failure_headers

from .messages import ACCESS_CODE_NOTE, MESSAGES_RU
from .repository import IntakeRepository
from .service import gis_only_fields, prepare, submission_digest
from .settings import IntakeSettings

log = structlog.get_logger(__name__)
SUBMIT_PATH = "/api/v1/appeals"
STATUS_PATH = "/api/v1/appeals/status"
WWW_AUTHENTICATE = {"WWW-Authenticate": 'Bearer realm="zhkh-appeals"'}
NO_STORE = {"Cache-Control": "no-store"}


class Refused(Exception):
    """A refused body: answered as problem details and copied to the rejected topic."""

    def __init__(self, status: int, code: str, detail: str = "", fields: list[str] | None = None) -> None:
        super().__init__(code)
        self.status, self.code, self.detail, self.fields = status, code, detail, fields or []


# ---- the answers (OpenAPI response models) ----------------------------------------------------------

_CODE_DESCRIPTION = ("The citizen's access code (XXXXX-XXXXX), shown only in this answer: with the number it "
                     "gives the citizen the status, rating, complaint and withdrawal. Absent when the submission "
                     "was already registered (the first code stays valid)")


class SubmissionRegistered(BaseModel):
    status: Literal["registered"] = "registered"
    registration_number: str = Field(description="ZH-<year>-<7 digits>", examples=["ZH-2026-0000001"])
    appeal_id: uuid.UUID
    status_url: str | None = Field(default=None, description="The status endpoint for this submission; present "
                                   "when the caller may read it (a service or operator token)")
    access_code: str | None = Field(default=None, pattern=ACCESS_CODE_PATTERN, description=_CODE_DESCRIPTION)
    access_code_note: str | None = Field(default=None, description="For the citizen (Russian): the code is shown once")


class SubmissionAccepted(BaseModel):
    status: Literal["accepted"] = "accepted"
    status_url: str | None = Field(default=None, description="As in the 201 answer")
    access_code: str | None = Field(default=None, pattern=ACCESS_CODE_PATTERN,
                                    description=_CODE_DESCRIPTION + ". Valid once this copy is registered")
    access_code_note: str | None = None


class SubmissionStatus(BaseModel):
    status: Literal["registered"] = "registered"
    registration_number: str
    appeal_id: uuid.UUID
    category: str | None = None
    emergency: bool = False
    incident_id: uuid.UUID | None = None


# ---- the ingress --------------------------------------------------------------------------------------


async def publish_submission(publisher: RecordPublisher, topics: Topics, raw: RawAppealSubmitted) -> None:
    """Publish ``raw`` as the HTTP ingress does: on its channel's raw topic, keyed ``<channel>:<source id>``,
    source intake/http (the consumer registers one appeal per channel and source id). Raises if the broker
    does not take it."""
    env = Envelope.new(raw, source="/zhkh-appeals/intake/http", appeal_id=f"{raw.channel.value}:{raw.source_id}")
    k, value, headers = to_kafka(env)
    await publisher.send(topics.raw(raw.channel), k, value, [(n, v.encode()) for n, v in headers.items()])


async def registration(repo: IntakeRepository, channel: Channel, source_id: str, deadline: float) -> dict[str, Any] | None:
    """The submission's registration, looked for until ``deadline`` (``time.monotonic()``); None: not yet."""
    doc = await repo.find_by_source(channel, source_id)
    while doc is None and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
        doc = await repo.find_by_source(channel, source_id)
    return doc


class Ingress:
    def __init__(self, publisher: RecordPublisher, repo: IntakeRepository, topics: Topics, settings: IntakeSettings) -> None:
        self.publisher = publisher
        self.repo = repo
        self.topics = topics
        self.settings = settings
        self.public_limit = RateLimit(settings.public_submission_rate, "intake-public-submission")

    def router(self, auth: Auth) -> APIRouter:
        router = APIRouter(tags=["appeals"])

        @router.post(
            SUBMIT_PATH,
            operation_id="submit_appeal",
            summary="Submit an appeal",
            description="A RawAppealSubmitted as JSON. Answers with the registration number (201) once intake "
            "registered it, or 202 if that takes longer than ZHKH_INGRESS_WAIT_S; both with the citizen's access "
            "code. Anonymous callers: channel site_form only, rate-limited per address. Tokens: role service for "
            "the channels in its channels claim, role operator for hotline. Channel gis and ГИС-only channel_meta "
            "keys (execution_end_date, gis_*) are never accepted here.",
            status_code=201,
            response_model=None,
            responses={
                201: {"model": SubmissionRegistered, "description": "Registered"},
                202: {"model": SubmissionAccepted, "description": "Published, not yet registered"},
                **problem_responses(400, 401, 403, 409, 413, 415, 422, 429, 503),
            },
            openapi_extra={
                "requestBody": {"required": True, "content": {
                    "application/json": {"schema": {"$ref": "#/components/schemas/RawAppealSubmitted"}}}},
                # anonymous (the public form) or a bearer token
                "security": [{}],  # FastAPI adds {"HTTPBearer": []}: either is enough
            },
        )
        async def submit(request: Request, principal: Principal | None = Depends(auth.optional)) -> JSONResponse:
            return await self.submit(request, principal)

        @router.get(
            STATUS_PATH,
            operation_id="submission_status",
            summary="Registration status of a submission",
            description="By channel and the channel's own id. Needs a token with role service for that channel, "
            "or operator or admin.",
            response_model=SubmissionStatus,
            responses=problem_responses(401, 403, 404, 422),
        )
        async def status(
            channel: Channel = Query(description="The channel the submission came by"),
            source_id: str = Query(min_length=1, max_length=200, description="The channel's id of the submission"),
            principal: Principal = Depends(auth.principal),
        ) -> SubmissionStatus:
            return await self.status(channel, source_id, principal)

        return router

    # ---- who may submit what -------------------------------------------------------------------------

    def _hit_public(self, request: Request) -> None:
        self.public_limit.hit(client_address(request))

    @staticmethod
    def may_read_status(principal: Principal, channel: Channel) -> bool:
        return principal.has("operator", "admin") or (principal.has("service") and channel.value in principal.channels)

    @staticmethod
    def granted(principal: Principal | None, channel: str) -> bool:
        """A channel this caller submits for by its token (no public rate limit)."""
        if principal is None:
            return False
        return (principal.has("service") and channel in principal.channels) or (
            principal.has("operator") and channel == Channel.HOTLINE.value)

    def _authorise(self, principal: Principal | None, data: Any, request: Request) -> None:
        """Before the body is validated: may this caller submit for the body's channel? Raises Problem
        (401/403/429), never Refused: a body refused for who sent it is not copied."""
        if not isinstance(data, dict):
            return  # not an object: the schema refuses it (422)
        channel, meta_fields = data.get("channel"), gis_only_fields(data.get("channel_meta"))
        if channel == Channel.GIS.value or meta_fields:
            AUTH_REFUSED.labels(self.settings.service_name, "forbidden").inc()
            log.info("http_forbidden", reason="gis_only", channel=str(channel)[:20])
            which = "gis_only_channel" if channel == Channel.GIS.value else "gis_only_field"
            raise Problem(403, "forbidden", MESSAGES_RU[which], ["channel"] if which == "gis_only_channel" else meta_fields)
        if not isinstance(channel, str) or channel not in {c.value for c in Channel}:
            return  # missing or unknown: the schema refuses it (422)
        if self.granted(principal, channel):
            return
        if channel == Channel.SITE_FORM.value and self.settings.public_submission:
            if principal is not None:  # a token without a grant for the form: as the public does
                self._hit_public(request)
            return
        if principal is None:
            AUTH_REFUSED.labels(self.settings.service_name, "unauthenticated").inc()
            detail = MESSAGES_RU["public_submission_only_site_form"] if self.settings.public_submission else None
            raise Problem(401, "unauthenticated", detail, ["channel"], headers=WWW_AUTHENTICATE)
        AUTH_REFUSED.labels(self.settings.service_name, "forbidden").inc()
        log.info("http_forbidden", reason="channel_not_granted", channel=channel, subject=principal.subject)
        raise Problem(403, "forbidden", MESSAGES_RU["channel_not_granted"], ["channel"])

    # ---- submit -----------------------------------------------------------------------------------------

    async def _read(self, request: Request) -> bytes:
        limit = self.settings.max_record_bytes
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise Refused(413, "too_large", f"body over {limit} bytes")
            chunks.append(chunk)
        return b"".join(chunks)

    def _decode(self, body: bytes, content_type: str) -> Any:
        if content_type.split(";")[0].strip().lower() != "application/json":
            raise Refused(415, "unsupported_media_type", "content-type must be application/json")
        try:
            return parse_json(body)
        except EnvelopeError as exc:
            raise Refused(400 if exc.reason in ("bad_json", "bad_encoding") else 422, exc.reason, exc.detail) from None

    def _validate(self, data: Any) -> RawAppealSubmitted:
        """Every check intake's consumer makes, before the ingress answers (the same reader and
        rules: zhkh_contracts.parse_json, the schema, intake.service.prepare)."""
        try:
            raw = RawAppealSubmitted.model_validate(data)
        except ValidationError as exc:
            raise Refused(422, validation_reason(exc), describe_validation_error(exc), safe_fields(exc)) from None
        try:
            prepare(raw, self.settings.default_phone_region)
        except PermanentError as exc:
            raise Refused(422, exc.reason, exc.detail) from None
        return raw

    async def submit(self, request: Request, principal: Principal | None) -> JSONResponse:
        started = time.monotonic()
        if principal is None:
            if not self.settings.public_submission:
                AUTH_REFUSED.labels(self.settings.service_name, "unauthenticated").inc()
                raise Problem(401, "unauthenticated", headers=WWW_AUTHENTICATE)
            self._hit_public(request)  # before the body is read: a flood costs us little
        body = b""
        try:
            body = await self._read(request)
            data = self._decode(body, request.headers.get("content-type", ""))
            self._authorise(principal, data, request)
            try:
                raw = self._validate(data)
            except Refused:
                raise
            except Exception as exc:  # noqa: BLE001 - input we cannot read is refused, never a 5xx
                log.error("http_parse_failed", error_type=type(exc).__name__)
                raise Refused(422, "invalid_data", "unreadable submission") from None
            digest = submission_digest(raw)
            doc = await self.repo.find_by_source(raw.channel, raw.source_id)
            if doc is not None and doc.get("submission_digest") not in (None, digest):
                raise Refused(409, "conflicting_duplicate", "channel and source_id are registered with other content")
        except ClientDisconnect:
            raise Problem(400, "client_disconnected", "") from None
        except Refused as r:
            await self._reject(body, r)
            raise Problem(r.status, r.code, MESSAGES_RU.get(r.code, ""), r.fields) from None

        status_url = None
        if principal is not None and self.may_read_status(principal, raw.channel):
            status_url = f"{STATUS_PATH}?{urlencode({'channel': raw.channel.value, 'source_id': raw.source_id})}"
        code: str | None = None
        if doc is None:  # a resend of a registered submission is answered from what is stored, without a code
            code = access_codes.generate()
            raw = raw.model_copy(update={"access_code": code})
            try:
                await publish_submission(self.publisher, self.topics, raw)
            except Exception as exc:  # noqa: BLE001 - not taken: the caller may send it again
                log.error("http_publish_failed", error_type=type(exc).__name__)
                raise Problem(503, "unavailable", MESSAGES_RU["unavailable"]) from None
            doc = await registration(self.repo, raw.channel, raw.source_id, started + self.settings.ingress_wait_s)
        if doc is None:
            accepted = SubmissionAccepted(status_url=status_url, access_code=code,
                                          access_code_note=ACCESS_CODE_NOTE if code else None)
            return JSONResponse(accepted.model_dump(mode="json", exclude_none=True), 202, headers=NO_STORE)
        if doc.get("submission_digest") not in (None, digest):
            # another submission under this (channel, source_id) registered first: the
            # consumer refuses this copy to the rejected topic; never hand out its number
            raise Problem(409, "conflicting_duplicate", MESSAGES_RU["conflicting_duplicate"])
        if code is not None and not await asyncio.to_thread(access_codes.verify, code, doc.get("access_code_hash")):
            code = None  # an earlier copy registered first: its code is the valid one, not ours
        answer = SubmissionRegistered(registration_number=doc["registration_number"], appeal_id=doc["_id"],
                                      status_url=status_url, access_code=code,
                                      access_code_note=ACCESS_CODE_NOTE if code else None)
        return JSONResponse(answer.model_dump(mode="json", exclude_none=True), 201, headers=NO_STORE)

    # ---- status -----------------------------------------------------------------------------------------

    async def status(self, channel: Channel, source_id: str, principal: Principal) -> SubmissionStatus:
        if not self.may_read_status(principal, channel):
            AUTH_REFUSED.labels(self.settings.service_name, "forbidden").inc()
            raise Problem(403, "forbidden", MESSAGES_RU["status_forbidden"], ["channel"])
        doc = await self.repo.find_by_source(channel, source_id)
        if doc is None:
            raise Problem(404, "not_found", MESSAGES_RU["not_found"])
        return SubmissionStatus(registration_number=doc["registration_number"], appeal_id=doc["_id"],
                                category=doc.get("category"), emergency=doc.get("emergency", False),
                                incident_id=doc.get("incident_id"))

    async def _reject(self, body: bytes, r: Refused) -> None:
        """Keep the refused body: nothing a citizen sent is lost, even when we answer 4xx."""
        headers = failure_headers(r.code, r.detail, "intake-http", MESSAGES_RU.get(r.code), **{"http-status": r.status})
        try:
            await self.publisher.send(self.topics.rejected, None, body, headers)
        except Exception:  # noqa: BLE001 - the 4xx answer still goes out; the log says the copy failed
            log.exception("rejected_copy_failed", reason=r.code)
        log.info("http_rejected", reason=r.code, status=r.status)


def document_request_body(app: FastAPI) -> None:
    """Put RawAppealSubmitted (and the models it uses) into the OpenAPI components: the submit route
    reads its body itself (size limit before parsing), so FastAPI does not know its schema."""

    def amend(schema: dict[str, Any], comps: dict[str, Any]) -> None:  # noqa: ARG001
        body = RawAppealSubmitted.model_json_schema(ref_template="#/components/schemas/{model}")
        for name, sub in body.pop("$defs", {}).items():
            comps.setdefault(name, sub)
        comps["RawAppealSubmitted"] = body

    extend_openapi(app, amend)
