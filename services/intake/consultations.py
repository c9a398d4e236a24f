"""Consultations: questions a contact centre answers at first contact, and the knowledge base's suggestions.

A consultation is a record of its own in intake's MongoDB (collection ``consultations``): channel, topic
(category), the question and any contact the caller left, the knowledge-base articles and the answer given,
the operator (always from the token, never from the body), and whether it was resolved at first contact.
It is never routed. Each one is announced as ``ConsultationRecorded`` on the consultations topic (no personal
data, no free text: channel, topic, article ids, resolved yes/no, actor), which analytics counts.

An operator may convert a consultation into an appeal: intake then publishes a raw submission on the
consultation's channel with source id ``consultation:<id>`` — the same path as any channel adapter, so
registration, deduplication and the access code are the consumer's, and a repeated conversion registers
one appeal. Once registered, the consultation is linked to it and ``ConsultationConverted`` is published.

HTTP (OpenAPI at /openapi.json; errors are RFC 9457 problem details):

    POST /api/v1/suggestions                       {"text"} -> matching articles (anonymous allowed, rate-limited
                                                   per address like the site form; operators, admins and
                                                   services without the limit)
    GET  /api/v1/knowledge/articles                the knowledge base (a token, any role)
    POST /api/v1/consultations                     record one (operator, admin; Idempotency-Key)
    GET  /api/v1/consultations                     list, newest first (filters, cursor pages)
    GET  /api/v1/consultations/{id}                one, with the articles given
    POST /api/v1/consultations/{id}/convert        register an appeal from it (operator, admin; Idempotency-Key)

Events are published after the store is written; a consultation keeps the names of the events not yet
published (``pending``) until the broker takes them, and a leased loop (``consultations``) publishes what a
failed request left, links conversions registered after the HTTP answer, and publishes again a
conversion's submission that is still not registered a minute after its last publish. After
``MAX_CONVERSION_PUBLISHES`` publishes without a registration (intake's consumer refuses it: see
``zhkh.intake.rejected``) the conversion is abandoned: logged as an error, counted in
``zhkh_consultation_conversions_abandoned_total`` and shown on the consultation (``conversion_abandoned_at``);
the operator may convert it again. Event ids are derived from the consultation id, so a copy published
twice is one event to every consumer.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import structlog
from prometheus_client import Counter
from fastapi import APIRouter, Depends, Header, Path, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pymongo import DESCENDING
from pymongo.errors import DuplicateKeyError

from zhkh_contracts import (
    MAX_TEXT_CHARS,
    Address,
    Applicant,
    Category,
    Channel,
    ConsultationConverted,
    ConsultationRecorded,
    Consent,
    RawAppealSubmitted,
)
from zhkh_contracts.events import ACCESS_CODE_PATTERN
from zhkh_runtime import access_codes
from zhkh_runtime.auth import Principal
from zhkh_runtime.engine import Emit
from zhkh_runtime.errors import PermanentError
from zhkh_runtime.http import (
    Auth,
    Problem,
    RateLimit,
    client_address,
    decode_time_cursor,
    encode_time_cursor,
    problem_responses,
)
from zhkh_runtime.mongo import aware

from .ingress import publish_submission, registration
from .knowledge import MAX_ANSWER_CHARS, KnowledgeBase
from .messages import ACCESS_CODE_NOTE, MESSAGES_RU
from .repository import IntakeRepository
from .service import prepare
from .settings import IntakeSettings

log = structlog.get_logger(__name__)
CONSULTATION_NS = uuid.UUID("0c9d7a55-2b8e-4f61-a3c4-6e1f0b9d2c47")
SOURCE_PREFIX = "consultation:"
STAFF = ("operator", "admin")
NO_STORE = {"Cache-Control": "no-store"}
CONSULTATION_CHANNELS = tuple(c for c in Channel if c is not Channel.GIS)
REPUBLISH_AFTER_S = 60.0
"""A conversion asked for but not registered this long after its last publish is published again by the loop."""
MAX_CONVERSION_PUBLISHES = 5
"""Publishes of one conversion's submission (the request's and the loop's) before the loop abandons it."""
ABANDONED = Counter("zhkh_consultation_conversions_abandoned", "Conversions published this many times and never "
                    "registered (intake refused them), abandoned by the consultations loop")

MESSAGES_RU_CONSULT = {
    "unknown_article": "В базе знаний нет статьи с таким идентификатором.",
    "question_required": "Укажите вопрос или тему консультации.",
    "text_required": "Укажите текст обращения: в консультации нет вопроса.",
    "idempotency_key_reused": "Этот ключ Idempotency-Key уже использован для другого запроса.",
}


# ---- bodies and answers ---------------------------------------------------------------------------

class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SuggestionsBody(_Body):
    text: str = Field(min_length=1, max_length=MAX_TEXT_CHARS, description="The question, as the citizen asks it")
    limit: int = Field(default=3, ge=1, le=20, description="At most this many (and at most the base's max_suggestions)")


class ArticleView(BaseModel):
    id: str
    category: Category
    title: str
    answer: str
    score: float | None = Field(default=None, description="Matching score (suggestions only)")


class SuggestionsAnswer(BaseModel):
    category: Category = Field(description="The intake classifier's category of the text")
    articles: list[ArticleView]


class Contact(_Body):
    name: str | None = Field(default=None, max_length=300)
    phone: str | None = Field(default=None, max_length=32)
    email: str | None = Field(default=None, max_length=254)


class ConsultationBody(_Body):
    channel: Literal[tuple(c.value for c in CONSULTATION_CHANNELS)] = Field(  # type: ignore[valid-type]
        default=Channel.HOTLINE.value, description="Where the question came (not gis)")
    category: Category | None = Field(default=None, description="The topic; by default the classifier's "
                                      "category of the question")
    question: str | None = Field(default=None, max_length=MAX_TEXT_CHARS, description="The question (kept in "
                                 "intake only)")
    article_ids: list[str] = Field(default_factory=list, max_length=20, description="Knowledge-base articles given")
    answer: str | None = Field(default=None, max_length=MAX_ANSWER_CHARS, description="The answer given, if not "
                               "(only) articles (kept in intake only)")
    resolved_first_contact: bool = Field(description="Settled in this contact")
    contact: Contact | None = Field(default=None, description="How to reach the caller, if they left it (kept "
                                    "in intake only)")


class ConvertBody(_Body):
    applicant: Applicant
    consent: Consent
    address: Address
    text: str | None = Field(default=None, max_length=MAX_TEXT_CHARS, description="The appeal's text; by "
                             "default the consultation's question")
    category: Category | None = Field(default=None, description="By default the consultation's topic (other: "
                                      "the classifier decides)")
    emergency: bool | None = None


class ConsultationView(BaseModel):
    consultation_id: uuid.UUID
    channel: Channel
    category: Category
    question: str | None = None
    answer: str | None = None
    article_ids: list[str]
    articles: list[ArticleView] = Field(default_factory=list, description="The articles given (one only)")
    resolved_first_contact: bool
    contact: Contact | None = None
    operator: str = Field(description="operator:<subject> or admin:<subject> who recorded it")
    recorded_at: datetime
    converted: bool = False
    conversion: dict[str, Any] | None = Field(default=None, description="appeal_id, registration_number, "
                                              "converted_at, converted_by (once registered)")
    conversion_abandoned_at: datetime | None = Field(
        default=None, description="A conversion published repeatedly and never registered (intake refused it): "
        "abandoned at this time; converting again starts a new one")
    suggestions: list[ArticleView] | None = Field(default=None, description="In the answer to recording: the "
                                                  "knowledge base's suggestions for the question")


class ConsultationPage(BaseModel):
    items: list[ConsultationView]
    next_cursor: str | None = None


class ConversionAnswer(BaseModel):
    status: Literal["converted", "accepted"]
    consultation_id: uuid.UUID
    appeal_id: uuid.UUID | None = None
    registration_number: str | None = None
    access_code: str | None = Field(default=None, pattern=ACCESS_CODE_PATTERN, description="The citizen's access "
                                    "code, shown once (the operator tells the citizen); absent on a repeat")
    access_code_note: str | None = None


# ---- decisions (no I/O) ---------------------------------------------------------------------------

def actor_of(p: Principal) -> str:
    return f"{'operator' if p.has('operator') else 'admin'}:{p.subject}"


def consultation_id(subject: str, key: str) -> uuid.UUID:
    """One consultation per (token subject, Idempotency-Key)."""
    return uuid.uuid5(CONSULTATION_NS, f"{subject}\n{key}")


def body_digest(body: BaseModel) -> str:
    canonical = json.dumps(body.model_dump(mode="json"), sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def event_id(cid: str, what: str) -> uuid.UUID:
    return uuid.uuid5(CONSULTATION_NS, f"{cid}:{what}")


def source_id(cid: str) -> str:
    return f"{SOURCE_PREFIX}{cid}"


def new_document(cid: uuid.UUID, body: ConsultationBody, category: Category, actor: str, digest: str,
                 now: datetime) -> dict[str, Any]:
    return {
        "_id": str(cid), "digest": digest, "channel": body.channel, "category": category.value,
        "question": body.question, "answer": body.answer, "article_ids": list(body.article_ids),
        "resolved_first_contact": body.resolved_first_contact,
        "contact": body.contact.model_dump(exclude_none=True) if body.contact else None,
        "operator": actor, "recorded_at": now, "pending": ["recorded"], "conversion": None,
    }


def recorded_event(doc: dict[str, Any]) -> Emit:
    cid = doc["_id"]
    e = ConsultationRecorded(consultation_id=uuid.UUID(cid), channel=Channel(doc["channel"]),
                             category=Category(doc["category"]), article_ids=tuple(doc["article_ids"]),
                             resolved_first_contact=doc["resolved_first_contact"], actor=doc["operator"],
                             recorded_at=aware(doc["recorded_at"]))
    return Emit(e, key=f"consultation:{cid}", event_id=event_id(cid, "recorded"), correlation_id=uuid.UUID(cid),
                occurred_at=aware(doc["recorded_at"]))


def converted_event(doc: dict[str, Any]) -> Emit:
    cid, conv = doc["_id"], doc["conversion"]
    e = ConsultationConverted(consultation_id=uuid.UUID(cid), appeal_id=uuid.UUID(str(conv["appeal_id"])),
                              registration_number=conv["registration_number"], channel=Channel(doc["channel"]),
                              category=Category(doc["category"]), actor=conv["actor"],
                              converted_at=aware(conv["converted_at"]))
    return Emit(e, key=f"consultation:{cid}", event_id=event_id(cid, "converted"), correlation_id=uuid.UUID(cid),
                occurred_at=aware(conv["converted_at"]))


def conversion_submission(doc: dict[str, Any], body: ConvertBody, actor: str, now: datetime) -> RawAppealSubmitted:
    """The raw submission a conversion publishes (without an access code). Raises Problem 422."""
    text = body.text or doc.get("question")
    if not text:
        raise Problem(422, "text_required", MESSAGES_RU_CONSULT["text_required"], ["text"])
    category = body.category or Category(doc["category"])
    return RawAppealSubmitted(
        channel=Channel(doc["channel"]), source_id=source_id(doc["_id"]), received_at=now,
        applicant=body.applicant, consent=body.consent, address=body.address, text=text,
        category=None if category is Category.OTHER else category, emergency=body.emergency,
        channel_meta={"consultation_id": doc["_id"], "operator_id": actor.split(":", 1)[1][:500]},
    )


def view(doc: dict[str, Any], kb: KnowledgeBase, with_articles: bool) -> dict[str, Any]:
    conv = doc.get("conversion") or {}
    out = {
        "consultation_id": doc["_id"], "channel": doc["channel"], "category": doc["category"],
        "question": doc.get("question"), "answer": doc.get("answer"), "article_ids": doc.get("article_ids", []),
        "resolved_first_contact": doc["resolved_first_contact"], "contact": doc.get("contact"),
        "operator": doc["operator"], "recorded_at": aware(doc["recorded_at"]),
        "converted": bool(conv.get("appeal_id")),
        "conversion": {"appeal_id": str(conv["appeal_id"]), "registration_number": conv["registration_number"],
                       "converted_at": aware(conv["converted_at"]), "converted_by": conv["actor"]}
        if conv.get("appeal_id") else None,
        "conversion_abandoned_at": aware(conv.get("abandoned_at")) if not conv.get("appeal_id") else None,
    }
    if with_articles:
        out["articles"] = [_article(kb.by_id[a]) for a in out["article_ids"] if a in kb.by_id]
    return out


def _article(a: Any, score: float | None = None) -> dict[str, Any]:
    return {"id": a.id, "category": a.category.value, "title": a.title, "answer": a.answer, "score": score}


def encode_cursor(doc: dict[str, Any]) -> str:
    return encode_time_cursor(aware(doc["recorded_at"]), doc["_id"])


# ---- the service ----------------------------------------------------------------------------------

class Consultations:
    def __init__(self, rt: Any, repo: IntakeRepository, kb: KnowledgeBase, settings: IntakeSettings) -> None:
        self.rt, self.repo, self.kb, self.settings = rt, repo, kb, settings
        self.col = rt.db["consultations"]
        self.public_limit = RateLimit(settings.suggestion_rate, "intake-suggestions")

    async def ensure_indexes(self) -> None:
        await self.col.create_index([("recorded_at", DESCENDING), ("_id", DESCENDING)])
        await self.col.create_index("pending")

    # ---- publishing ----

    async def _publish(self, doc: dict[str, Any], what: str) -> bool:
        emit = recorded_event(doc) if what == "recorded" else converted_event(doc)
        try:
            await self.rt.publisher.publish(self.rt.emitter.records([emit]))
        except Exception as exc:  # noqa: BLE001 - kept as pending: the loop publishes it later
            log.warning("consultation_publish_failed", event=what, error_type=type(exc).__name__)
            return False
        await self.col.update_one({"_id": doc["_id"]}, {"$pull": {"pending": what}})
        return True

    async def _link(self, doc: dict[str, Any], registered: dict[str, Any]) -> dict[str, Any]:
        """The conversion's appeal is registered: link it (once) and publish ConsultationConverted."""
        conv = doc["conversion"]
        if not conv.get("appeal_id"):
            conv = {**conv, "appeal_id": str(registered["_id"]),
                    "registration_number": registered["registration_number"], "converted_at": datetime.now(UTC)}
            await self.col.update_one({"_id": doc["_id"], "conversion.appeal_id": None},
                                      {"$set": {"conversion": conv}, "$addToSet": {"pending": "converted"}})
            doc = await self.col.find_one({"_id": doc["_id"]}) or doc
        if "converted" in (doc.get("pending") or []):
            await self._publish(doc, "converted")
        return doc

    async def round(self) -> int:
        """The loop's round: publish what requests left pending, link conversions registered since."""
        done = 0
        settle = datetime.now(UTC) - timedelta(seconds=self.settings.consultation_settle_s)
        async for doc in self.col.find({"pending": {"$in": ["recorded", "converted"]}, "recorded_at": {"$lt": settle}},
                                       limit=200):
            for what in ("recorded", "converted"):
                if what in doc["pending"] and (what == "recorded" or (doc.get("conversion") or {}).get("appeal_id")):
                    done += await self._publish(doc, what)
        resend_before = datetime.now(UTC) - timedelta(seconds=REPUBLISH_AFTER_S)
        async for doc in self.col.find({"conversion.requested": True, "conversion.appeal_id": None,
                                        "conversion.abandoned_at": None}, limit=200):
            registered = await self.repo.find_by_source(Channel(doc["channel"]), source_id(doc["_id"]))
            if registered is not None:
                await self._link(doc, registered)
                done += 1
            elif aware(doc["conversion"].get("published_at") or doc["conversion"]["requested_at"]) >= resend_before:
                continue
            elif doc["conversion"].get("publishes", 0) >= MAX_CONVERSION_PUBLISHES:
                await self._abandon(doc)
            else:
                # asked for, not registered: the request's publish failed and nobody retried. Published again
                # without a code: intake makes one at registration and the "registered" notice carries it
                done += await self._send_submission(doc, None)
        return done

    async def _abandon(self, doc: dict[str, Any]) -> None:
        """Published ``MAX_CONVERSION_PUBLISHES`` times, never registered: stop, loudly (the id and a fixed reason)."""
        res = await self.col.update_one({"_id": doc["_id"], "conversion.appeal_id": None,
                                         "conversion.abandoned_at": None},
                                        {"$set": {"conversion.abandoned_at": datetime.now(UTC)}})
        if res.modified_count:
            ABANDONED.inc()
            log.error("conversion_abandoned", consultation_id=doc["_id"], reason="not_registered",
                      publishes=doc["conversion"].get("publishes", 0))

    async def _send_submission(self, doc: dict[str, Any], code: str | None) -> bool:
        """Publish the conversion's raw submission (the consumer registers one appeal per source id)."""
        raw = RawAppealSubmitted.model_validate({**doc["conversion"]["submission"], "access_code": code})
        try:
            await publish_submission(self.rt.publisher, self.rt.topics, raw)
        except Exception as exc:  # noqa: BLE001 - the operator may convert again; the loop tries again
            log.error("conversion_publish_failed", error_type=type(exc).__name__)
            return False
        await self.col.update_one({"_id": doc["_id"]}, {"$set": {"conversion.published_at": datetime.now(UTC)},
                                                        "$inc": {"conversion.publishes": 1}})
        log.info("consultation_convert", consultation_id=doc["_id"], channel=raw.channel.value)
        return True

    # ---- HTTP ----

    def router(self, auth: Auth) -> APIRouter:  # noqa: C901 - one place lists the routes
        api = APIRouter(tags=["consultations"])
        staff = Depends(auth.require(*STAFF))
        idem = Header(alias="Idempotency-Key", min_length=1, max_length=200,
                      description="Unique per intended action; a retry sends the same key")

        async def gate(request: Request, p: Principal | None = Depends(auth.optional)) -> None:
            self._may_suggest(p, request)  # a dependency: counted before the body is read, so bad bodies count too

        @api.post("/api/v1/suggestions", response_model=SuggestionsAnswer, operation_id="suggest_articles",
                  summary="Knowledge-base articles for a question",
                  description="Before filing: the knowledge base's articles that match the text (the intake "
                  "classifier's lemmas). Anonymous callers and tokens without role operator, admin or service are "
                  "rate-limited per address (ZHKH_SUGGESTION_RATE).",
                  responses=problem_responses(401, 403, 422, 429), openapi_extra={"security": [{}]})
        async def suggestions(body: SuggestionsBody, _: None = Depends(gate)) -> dict[str, Any]:
            category = (await asyncio.to_thread(self.kb.classifier.classify, body.text)).category
            found = await asyncio.to_thread(self.kb.suggest, body.text, body.limit, category)
            return {"category": category.value, "articles": [_article(s.article, round(s.score, 2)) for s in found]}

        async def token_gate(request: Request, p: Principal = Depends(auth.principal)) -> None:
            self._may_suggest(p, request)

        @api.get("/api/v1/knowledge/articles", response_model=list[ArticleView], operation_id="list_articles",
                 summary="The knowledge base", description="Every article, optionally of one category. Needs a "
                 "token (any role); tokens without role operator, admin or service are rate-limited as suggestions.",
                 responses=problem_responses(401, 403, 422, 429))
        async def articles(category: Category | None = None, _: None = Depends(token_gate)) -> list[dict[str, Any]]:
            return [_article(a) for a in self.kb.articles if category is None or a.category is category]

        @api.post("/api/v1/consultations", status_code=201, response_model=ConsultationView,
                  operation_id="record_consultation", summary="Record a consultation",
                  description="A question answered (operator or admin). The operator is the token's subject. "
                  "The answer carries the knowledge base's suggestions for the question. The same Idempotency-Key "
                  "with the same body answers the same record; with another body: 422 idempotency_key_reused.",
                  responses=problem_responses(400, 401, 403, 422))
        async def record(body: ConsultationBody, p: Principal = staff,
                         key: str = idem) -> JSONResponse:
            doc = await self.record(body, p, key)
            out = view(doc, self.kb, with_articles=True)
            if doc.get("question"):
                found = await asyncio.to_thread(self.kb.suggest, doc["question"])
                out["suggestions"] = [_article(s.article, round(s.score, 2)) for s in found]
            return JSONResponse(ConsultationView.model_validate(out).model_dump(mode="json"), 201, headers=NO_STORE)

        @api.get("/api/v1/consultations", response_model=ConsultationPage, operation_id="list_consultations",
                 summary="Consultations, newest first", responses=problem_responses(400, 401, 403, 422))
        async def listing(p: Principal = staff, channel: Channel | None = None,  # noqa: ARG001
                          category: Category | None = None, resolved: bool | None = None,
                          converted: bool | None = None, cursor: str | None = Query(None, max_length=200),
                          limit: int = Query(50, ge=1, le=200)) -> dict[str, Any]:
            q: dict[str, Any] = {}
            if channel is not None:
                q["channel"] = channel.value
            if category is not None:
                q["category"] = category.value
            if resolved is not None:
                q["resolved_first_contact"] = resolved
            if converted is not None:
                q["conversion.appeal_id"] = {"$ne": None} if converted else None
            if cursor:
                ts, cid = decode_time_cursor(cursor)
                q["$or"] = [{"recorded_at": {"$lt": ts}}, {"recorded_at": ts, "_id": {"$lt": cid}}]
            docs = await self.col.find(q).sort([("recorded_at", DESCENDING), ("_id", DESCENDING)]).limit(
                limit + 1).to_list(None)
            more = len(docs) > limit
            docs = docs[:limit]
            return {"items": [view(d, self.kb, with_articles=False) for d in docs],
                    "next_cursor": encode_cursor(docs[-1]) if more else None}

        @api.get("/api/v1/consultations/{cid}", response_model=ConsultationView, operation_id="get_consultation",
                 summary="One consultation, with the articles given", responses=problem_responses(401, 403, 404, 422))
        async def one(cid: uuid.UUID = Path(description="The consultation id"),
                      p: Principal = staff) -> dict[str, Any]:  # noqa: ARG001
            return view(await self._get(cid), self.kb, with_articles=True)

        @api.post("/api/v1/consultations/{cid}/convert", response_model=None, status_code=201,
                  operation_id="convert_consultation", summary="Register an appeal from a consultation",
                  description="Publishes a raw submission on the consultation's channel with source id "
                  "consultation:<id>, registered by intake like any other: a repeat registers one appeal. 201 with "
                  "the number once registered (and linked), 202 if that takes longer than ZHKH_INGRESS_WAIT_S "
                  "(linked later). The citizen's access code is in the first answer only.",
                  responses={201: {"model": ConversionAnswer, "description": "Registered"},
                             202: {"model": ConversionAnswer, "description": "Published, not yet registered"},
                             **problem_responses(400, 401, 403, 404, 409, 422, 503)})
        async def convert(body: ConvertBody, cid: uuid.UUID = Path(description="The consultation id"),
                          p: Principal = staff, key: str = idem) -> JSONResponse:  # noqa: ARG001
            return await self.convert(cid, body, p)

        return api

    def _may_suggest(self, p: Principal | None, request: Request) -> None:
        if p is not None and p.has("operator", "admin", "service"):
            return
        if p is None and not self.settings.public_suggestions:
            raise Problem(401, "unauthenticated", headers={"WWW-Authenticate": 'Bearer realm="zhkh-appeals"'})
        self.public_limit.hit(client_address(request))

    async def _get(self, cid: uuid.UUID) -> dict[str, Any]:
        doc = await self.col.find_one({"_id": str(cid)})
        if doc is None:
            raise Problem(404, "not_found", "Консультация не найдена.")
        return doc

    async def record(self, body: ConsultationBody, p: Principal, key: str) -> dict[str, Any]:
        unknown = self.kb.unknown(body.article_ids)
        if unknown:
            raise Problem(422, "unknown_article", MESSAGES_RU_CONSULT["unknown_article"], ["article_ids"])
        if len(set(body.article_ids)) != len(body.article_ids):
            raise Problem(422, "invalid_data", "Статьи повторяются.", ["article_ids"])
        category = body.category
        if category is None:
            if not body.question or not body.question.strip():
                raise Problem(422, "question_required", MESSAGES_RU_CONSULT["question_required"],
                              ["category", "question"])
            category = (await asyncio.to_thread(self.kb.classifier.classify, body.question)).category
        cid, digest = consultation_id(p.subject, key), body_digest(body)
        doc = new_document(cid, body, category, actor_of(p), digest, datetime.now(UTC))
        try:
            await self.col.insert_one(doc)
        except DuplicateKeyError:
            prev = await self.col.find_one({"_id": str(cid)})
            if prev is None or prev.get("digest") != digest:
                raise Problem(422, "idempotency_key_reused", MESSAGES_RU_CONSULT["idempotency_key_reused"],
                              ["Idempotency-Key"]) from None
            doc = prev
        else:
            log.info("consultation_recorded", consultation_id=str(cid), channel=body.channel, category=category.value,
                     resolved=body.resolved_first_contact, actor_role=doc["operator"].split(":", 1)[0])
        if "recorded" in (doc.get("pending") or []):
            await self._publish(doc, "recorded")
        return doc

    async def convert(self, cid: uuid.UUID, body: ConvertBody, p: Principal) -> JSONResponse:
        started = time.monotonic()
        doc = await self._get(cid)
        actor = actor_of(p)
        prev = doc.get("conversion")
        if not prev or (prev.get("abandoned_at") and not prev.get("appeal_id")):  # none yet, or a new try
            try:
                raw = conversion_submission(doc, body, actor, datetime.now(UTC))
            except ValidationError:
                raise Problem(422, "invalid_data", MESSAGES_RU["invalid_data"]) from None
            try:
                prepare(raw, self.settings.default_phone_region)
            except PermanentError as exc:
                raise Problem(422, exc.reason, MESSAGES_RU.get(exc.reason) or MESSAGES_RU["invalid_data"]) from None
            conv = {"requested": True, "actor": actor, "requested_at": datetime.now(UTC), "appeal_id": None,
                    "submission": raw.model_dump(mode="json", exclude={"access_code"})}
            first = {"conversion": None} if not prev else {"conversion.abandoned_at": prev["abandoned_at"]}
            await self.col.update_one({"_id": doc["_id"], **first}, {"$set": {"conversion": conv}})
            doc = await self._get(cid)  # the first conversion asked for wins; a repeat uses it, not its own body
        src, channel = source_id(doc["_id"]), Channel(doc["channel"])
        registered = await self.repo.find_by_source(channel, src)
        code: str | None = None
        if registered is None:  # publish (again): the consumer registers one appeal per (channel, source id)
            code = access_codes.generate()
            if not await self._send_submission(doc, code):
                raise Problem(503, "unavailable", MESSAGES_RU["unavailable"])
            registered = await registration(self.repo, channel, src, started + self.settings.ingress_wait_s)
        if registered is None:
            answer = ConversionAnswer(status="accepted", consultation_id=cid, access_code=code,
                                      access_code_note=ACCESS_CODE_NOTE if code else None)
            return JSONResponse(answer.model_dump(mode="json", exclude_none=True), 202, headers=NO_STORE)
        stored_hash = registered.get("access_code_hash")
        if code is not None and not await asyncio.to_thread(access_codes.verify, code, stored_hash):
            code = None  # an earlier copy registered first: its code is the valid one
        await self._link(doc, registered)
        answer = ConversionAnswer(status="converted", consultation_id=cid, appeal_id=registered["_id"],
                                  registration_number=registered["registration_number"], access_code=code,
                                  access_code_note=ACCESS_CODE_NOTE if code else None)
        return JSONResponse(answer.model_dump(mode="json", exclude_none=True), 201, headers=NO_STORE)
