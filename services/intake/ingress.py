"""HTTP ingress for systems that cannot speak Kafka (site form, call-centre software).

Built on FastStream's ASGI support rather than FastAPI: it runs in the intake process under the
same lifespan as the consumers, and two exact-path endpoints need no router. Validation is ours,
so the answers carry the same machine-readable reasons and Russian messages as the rejected topic.

    POST /api/v1/appeals          body: a RawAppealSubmitted as JSON (contracts/schemas)
      201 {"status": "registered", "registration_number", "appeal_id", "status_url"}
      202 {"status": "accepted", "status_url"}     published; not registered within ZHKH_INGRESS_WAIT_S
      4xx {"error": {"code", "message", "fields"}} nothing published to the raw topic; the body goes
                                                    to the rejected topic (x-dlq-service=intake-http;
                                                    a too_large body is not read, so its copy is empty)
      403 forged_source                            channel gis: ГИС ЖКХ appeals come from gis_sync only (the gis
                                                    raw topic trusts gis_sync's source alone, docs/runtime.md)
      409 conflicting_duplicate                    the (channel, source_id) is registered with other
                                                    content: its number is never handed out
      503 unavailable                              the broker did not take it: send it again
    GET  /api/v1/appeals/status?channel=<channel>&source_id=<id>
      200 {"status": "registered", ...}  |  404 {"status": "not_found", "message"}

The submission is published to the channel's raw topic exactly like a channel adapter would, so
registration, deduplication and idempotency are the consumer's; resending the same body is safe.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any
from urllib.parse import urlencode

import structlog
from faststream.asgi import AsgiResponse, Request, get, post
from faststream.asgi.request import ClientDisconnectError
from pydantic import ValidationError

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
from zhkh_runtime.app import error_response, json_response, query_params
from zhkh_runtime.errors import PermanentError
from zhkh_runtime.kafka import RecordPublisher
from zhkh_runtime.records import failure_headers

from .messages import MESSAGES_RU
from .repository import IntakeRepository
from .service import prepare, submission_digest
from .settings import IntakeSettings

log = structlog.get_logger(__name__)
SUBMIT_PATH = "/api/v1/appeals"
STATUS_PATH = "/api/v1/appeals/status"


class Refused(Exception):
    def __init__(self, status: int, code: str, detail: str = "", fields: list[str] | None = None) -> None:
        super().__init__(code)
        self.status, self.code, self.detail, self.fields = status, code, detail, fields or []


class Ingress:
    def __init__(self, publisher: RecordPublisher, repo: IntakeRepository, topics: Topics, settings: IntakeSettings) -> None:
        self.publisher = publisher
        self.repo = repo
        self.topics = topics
        self.settings = settings

    def routes(self) -> list[tuple[str, Any]]:
        @post(description="Submit an appeal (RawAppealSubmitted JSON); answers with its registration number")
        async def submit(scope: Any, request: Request) -> AsgiResponse:  # noqa: ARG001
            return await self.submit(request)

        @get(description="Registration status of a submission by channel and source id")
        async def status(scope: Any) -> AsgiResponse:
            return await self.status(scope)

        return [(SUBMIT_PATH, submit), (STATUS_PATH, status)]

    async def _read(self, request: Request) -> bytes:
        limit = self.settings.max_record_bytes
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise Refused(413, "too_large", f"body over {limit} bytes")
            chunks.append(chunk)
        return b"".join(chunks)

    def _parse(self, body: bytes, content_type: str) -> RawAppealSubmitted:
        """Every check intake's consumer makes, before the ingress answers (the same reader and
        rules: zhkh_contracts.parse_json, the schema, intake.service.prepare)."""
        if not content_type.split(";")[0].strip().lower() == "application/json":
            raise Refused(415, "unsupported_media_type", "content-type must be application/json")
        try:
            data = parse_json(body)
        except EnvelopeError as exc:
            raise Refused(400 if exc.reason in ("bad_json", "bad_encoding") else 422, exc.reason, exc.detail) from None
        try:
            raw = RawAppealSubmitted.model_validate(data)
        except ValidationError as exc:
            fields = safe_fields(exc)
            raise Refused(422, validation_reason(exc), describe_validation_error(exc), fields) from None
        if raw.channel is Channel.GIS:
            raise Refused(403, "forged_source", "the gis channel is published by gis_sync only")
        try:
            prepare(raw, self.settings.default_phone_region)
        except PermanentError as exc:
            raise Refused(422, exc.reason, exc.detail) from None
        return raw

    async def submit(self, request: Request) -> AsgiResponse:
        started = time.monotonic()
        body = b""
        try:
            body = await self._read(request)
            try:
                raw = self._parse(body, request.headers.get("content-type", ""))
            except Refused:
                raise
            except Exception as exc:  # noqa: BLE001 - input we cannot read is refused, never a 5xx
                log.error("http_parse_failed", error_type=type(exc).__name__)
                raise Refused(422, "invalid_data", "unreadable submission") from None
            key = f"{raw.channel.value}:{raw.source_id}"
            digest = submission_digest(raw)
            doc = await self.repo.find_by_source(raw.channel, raw.source_id)
            if doc is not None and doc.get("submission_digest") not in (None, digest):
                raise Refused(409, "conflicting_duplicate", "channel and source_id are registered with other content")
        except ClientDisconnectError:
            return json_response({"error": {"code": "client_disconnected", "message": "", "fields": []}}, 400)
        except Refused as r:
            await self._reject(body, r)
            return error_response(r.code, r.status, r.fields, MESSAGES_RU.get(r.code, ""))
        status_url = f"{STATUS_PATH}?{urlencode({'channel': raw.channel.value, 'source_id': raw.source_id})}"
        if doc is None:  # a resend of a registered submission is answered from what is stored
            env = Envelope.new(raw, source="/zhkh-appeals/intake/http", appeal_id=key)
            k, value, headers = to_kafka(env)
            try:
                await self.publisher.send(self.topics.raw(raw.channel), k, value, [(n, v.encode()) for n, v in headers.items()])
            except Exception as exc:  # noqa: BLE001 - not taken: the caller may send it again
                log.error("http_publish_failed", error_type=type(exc).__name__)
                return error_response("unavailable", 503, message="Сервис временно недоступен. Повторите отправку позже.")
        deadline = started + self.settings.ingress_wait_s
        while True:
            if doc is not None:
                if doc.get("submission_digest") not in (None, digest):
                    # another submission under this (channel, source_id) registered first: the
                    # consumer refuses this copy to the rejected topic; never hand out its number
                    return error_response("conflicting_duplicate", 409, [], MESSAGES_RU["conflicting_duplicate"])
                return json_response(
                    {"status": "registered", "registration_number": doc["registration_number"],
                     "appeal_id": doc["_id"], "status_url": status_url},
                    201,
                )
            if time.monotonic() >= deadline:
                return json_response({"status": "accepted", "status_url": status_url}, 202)
            await asyncio.sleep(0.05)
            doc = await self.repo.find_by_source(raw.channel, raw.source_id)

    async def status(self, scope: Any) -> AsgiResponse:
        q = query_params(scope)
        try:
            channel = Channel((q.get("channel") or [""])[0])
        except ValueError:
            return error_response("unknown_channel", 400, ["channel"], MESSAGES_RU["unknown_channel"])
        source_id = (q.get("source_id") or [""])[0]
        if len(source_id) > 200:
            return error_response("too_long", 400, ["source_id"], MESSAGES_RU["too_long"])
        doc = await self.repo.find_by_source(channel, source_id) if source_id else None
        if doc is None:
            return json_response({"status": "not_found", "message": "Обращение не найдено или ещё регистрируется."}, 404)
        return json_response(
            {"status": "registered", "registration_number": doc["registration_number"], "appeal_id": doc["_id"],
             "category": doc.get("category"), "emergency": doc.get("emergency", False),
             "incident_id": doc.get("incident_id")},
            200,
        )

    async def _reject(self, body: bytes, r: Refused) -> None:
        """Keep the refused body: nothing a citizen sent is lost, even when we answer 4xx."""
        headers = failure_headers(r.code, r.detail, "intake-http", MESSAGES_RU.get(r.code), **{"http-status": r.status})
        try:
            await self.publisher.send(self.topics.rejected, None, body, headers)
        except Exception:  # noqa: BLE001 - the 4xx answer still goes out; the log says the copy failed
            log.exception("rejected_copy_failed", reason=r.code)
        log.info("http_rejected", reason=r.code, status=r.status)
