"""intake's HTTP ingress over real HTTP, broker and database, with tokens from a real (dev) issuer:
problem details, who may submit what, the status endpoint's callers, access codes."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import urllib.error
import urllib.request
from typing import Any

import pytest

from devtools import samples
from devtools.dev_issuer import DevIssuer, serving
from devtools.embedded import free_port
from tests.support.kafka import TopicReader, headers_of
from tests.support.services import served, service_settings
from zhkh_contracts import REGISTRY, AppealRegistered, Channel, Topics, from_kafka
from zhkh_runtime import access_codes

pytestmark = pytest.mark.integration

SUBMIT, STATUS = "/api/v1/appeals", "/api/v1/appeals/status"


@pytest.fixture(scope="module")
async def http_issuer():  # noqa: ANN201
    """A real dev issuer (discovery document and JWKS over HTTP) in this event loop."""
    async with serving(free_port()) as iss:
        yield iss


def tokens(iss: DevIssuer) -> dict[str, str]:
    return {
        "site": iss.mint("svc-site", ["service"], channels=["site_form"]),
        "chatbot": iss.mint("svc-chatbot", ["service"], channels=["chatbot", "social"]),
        "gis": iss.mint("svc-gis", ["service"], channels=["gis"]),
        "operator": iss.mint("op-1", ["operator"]),
        "admin": iss.mint("adm-1", ["admin"]),
        "citizen": iss.mint("cit-1", ["citizen"]),
        "party": iss.mint("party-1", ["party"], party_ids=["uk-zarechye"]),
    }


@contextlib.asynccontextmanager
async def ingress(infra, prefix, iss, **overrides):  # noqa: ANN001, ANN201
    from intake.main import create_app
    from intake.settings import IntakeSettings

    settings = service_settings(IntakeSettings, infra, prefix, auth_issuer=iss.issuer, **overrides)
    async with served(create_app(settings)) as base:
        yield base


def _call(method: str, url: str, body: bytes | None, content_type: str, token: str | None) -> tuple[int, dict[str, str], Any]:
    headers = {"content-type": content_type}
    if token:
        headers["authorization"] = f"Bearer {token}"
    req = urllib.request.Request(url, data=body, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:  # noqa: S310 - loopback
            status, hdrs, raw = r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        status, hdrs, raw = e.code, dict(e.headers), e.read()
    return status, {k.lower(): v for k, v in hdrs.items()}, json.loads(raw) if raw else None


async def call(method: str, url: str, body: bytes | None = None, content_type: str = "application/json",
               token: str | None = None) -> tuple[int, dict[str, str], Any]:
    return await asyncio.to_thread(_call, method, url, body, content_type, token)


def body(channel: Channel = Channel.SITE_FORM, meta: dict[str, str] | None = None, **kw) -> bytes:  # noqa: ANN003
    raw = samples.raw_submission(channel=channel, **kw)
    if meta:
        raw = raw.model_copy(update={"channel_meta": meta})
    return raw.model_dump_json().encode()


def assert_problem(status: int, headers: dict[str, str], resp: Any, want_status: int, code: str) -> None:
    assert status == want_status, resp
    assert headers["content-type"].startswith("application/problem+json")
    assert (resp["status"], resp["code"], resp["type"]) == (want_status, code, f"urn:zhkh-appeals:problem:{code}")
    assert resp["title"] and resp["detail"]  # the detail is Russian, for people


async def test_anonymous_form_submission_gets_the_number_and_the_access_code_once(infra, prefix, mongo_db, http_issuer):
    tok = tokens(http_issuer)
    async with ingress(infra, prefix, http_issuer) as base, TopicReader(infra.bootstrap, Topics(prefix).lifecycle) as life:
        b = body(source_id="web-1")
        status, headers, first = await call("POST", base + SUBMIT, b)
        assert status == 201, first
        assert first["status"] == "registered" and first["registration_number"].startswith("ZH-")
        code = first["access_code"]
        assert len(code) == 11 and code[5] == "-" and "один раз" in first["access_code_note"]
        assert "status_url" not in first  # anonymous: the status endpoint would not answer it
        assert headers["cache-control"] == "no-store"
        # a resend is safe: the same number, no new code (the first one stays valid)
        status, _, again = await call("POST", base + SUBMIT, b)
        assert (status, again["registration_number"]) == (201, first["registration_number"])
        assert "access_code" not in again
        # the status endpoint: a service token for the channel, or operator/admin; nobody else
        q = f"{STATUS}?channel=site_form&source_id=web-1"
        for who in ("site", "operator", "admin"):
            status, _, st = await call("GET", base + q, token=tok[who])
            assert status == 200 and st["registration_number"] == first["registration_number"], who
        assert_problem(*await call("GET", base + q), 401, "unauthenticated")
        for who in ("chatbot", "citizen", "party"):
            assert_problem(*await call("GET", base + q, token=tok[who]), 403, "forbidden")
        assert_problem(*await call("GET", base + q, token=tok["site"] + "x"), 401, "invalid_token")
        assert_problem(*await call("GET", base + f"{STATUS}?channel=site_form&source_id=nope", token=tok["site"]),
                       404, "not_found")
        # AppealRegistered carries the code (for the notifier's notice)
        (rec,) = await life.wait_for(lambda r: len(r) >= 1)
        reg = from_kafka(rec.value, rec.headers, REGISTRY).data
        assert isinstance(reg, AppealRegistered) and reg.access_code == code
    # intake keeps only the code's hash
    (doc,) = await mongo_db.intake_appeals.find({}).to_list()
    assert access_codes.verify(code, doc["access_code_hash"])
    flat = json.dumps(doc, default=str)
    assert code not in flat and code.replace("-", "") not in flat
    assert await mongo_db.processed_events.count_documents({}) == 1
    # ... and its outbox (a redelivery republishes it) keeps the hash, not the code
    (marker,) = await mongo_db.processed_events.find({}).to_list()
    stored = b"".join(bytes(r["value"]) for r in marker["outbox"])
    assert code.encode() not in stored and reg.access_code_hash.encode() in stored


async def test_submit_answers_202_when_registration_takes_longer(infra, prefix, mongo_db, http_issuer):
    tok = tokens(http_issuer)
    async with ingress(infra, prefix, http_issuer, ingress_wait_s=0) as base:
        status, _, resp = await call("POST", base + SUBMIT, body(Channel.CHATBOT, source_id="bot-slow"), token=tok["chatbot"])
        assert status == 202 and resp["status"] == "accepted" and resp["access_code"]
        for _ in range(100):
            status, _, st = await call("GET", base + resp["status_url"], token=tok["chatbot"])
            if status == 200:
                break
            await asyncio.sleep(0.1)
        assert status == 200 and st["registration_number"].startswith("ZH-")
    (doc,) = await mongo_db.intake_appeals.find({}).to_list()
    assert access_codes.verify(resp["access_code"], doc["access_code_hash"])


async def test_who_may_submit_what(infra, prefix, mongo_db, http_issuer):
    tok = tokens(http_issuer)
    raw_topics = [Topics(prefix).raw(ch) for ch in Channel]
    async with ingress(infra, prefix, http_issuer) as base:
        # anonymous: the form only
        st, h, resp = await call("POST", base + SUBMIT, body(Channel.HOTLINE, source_id="h-anon"))
        assert_problem(st, h, resp, 401, "unauthenticated")
        assert h["www-authenticate"].startswith("Bearer")
        # a service token: only its own channels
        assert_problem(*await call("POST", base + SUBMIT, body(Channel.HOTLINE, source_id="h-bot"), token=tok["chatbot"]),
                       403, "forbidden")
        st, _, ok = await call("POST", base + SUBMIT, body(Channel.CHATBOT, source_id="bot-1"), token=tok["chatbot"])
        assert st == 201 and ok["status_url"] and ok["access_code"]
        # an operator: the hotline
        st, _, ok = await call("POST", base + SUBMIT, body(Channel.HOTLINE, source_id="h-op"), token=tok["operator"])
        assert st == 201, ok
        assert_problem(*await call("POST", base + SUBMIT, body(Channel.PAPER, source_id="p-op"), token=tok["operator"]),
                       403, "forbidden")
        # ГИС ЖКХ: never over HTTP, not even with a token granting the gis channel
        for token in (None, tok["gis"], tok["admin"]):
            st, h, resp = await call("POST", base + SUBMIT, body(Channel.GIS, source_id="6a3c7f1e-0000-4000-8000-000000000009"),
                                     token=token)
            assert_problem(st, h, resp, 403, "forbidden")
        # ГИС-only channel_meta from the form (the ГИС deadline would escalate the appeal at once)
        for meta in ({"execution_end_date": "2000-01-01"}, {"gis_appeal_guid": "x", "bot_session": "s"}):
            st, h, resp = await call("POST", base + SUBMIT, body(source_id="form-gis", meta=meta))
            assert_problem(st, h, resp, 403, "forbidden")
            assert resp["fields"] == [f"channel_meta.{k}" for k in sorted(meta) if k != "bot_session"]
        # a token that does not verify: 401, even for the form
        assert_problem(*await call("POST", base + SUBMIT, body(source_id="form-bad-token"), token=tok["site"][:-4] + "AAAA"),
                       401, "invalid_token")
        async with TopicReader(infra.bootstrap, Topics(prefix).rejected) as rej:
            assert await rej.settle(0.5) == []  # refused for who sent them: not copied
    assert sorted(d["source_id"] for d in await mongo_db.intake_appeals.find({}).to_list()) == ["bot-1", "h-op"]
    async with TopicReader(infra.bootstrap, *raw_topics) as raw:
        got = await raw.settle(0.5)
    assert sorted(r.topic.rpartition(".")[2] for r in got) == ["chatbot", "hotline"]


async def test_anonymous_form_submissions_are_rate_limited_per_address(infra, prefix, http_issuer):
    tok = tokens(http_issuer)
    async with ingress(infra, prefix, http_issuer, public_submission_rate="2/minute;100/hour") as base:
        for i in range(2):
            st, _, resp = await call("POST", base + SUBMIT, body(source_id=f"form-{i}"))
            assert st == 201, resp
        st, h, resp = await call("POST", base + SUBMIT, body(source_id="form-3"))
        assert_problem(st, h, resp, 429, "rate_limited")
        assert 1 <= int(h["retry-after"]) <= 61
        # a service granted the form is not the public: not limited by it
        st, _, resp = await call("POST", base + SUBMIT, body(source_id="form-4"), token=tok["site"])
        assert st == 201, resp


async def test_public_submission_off_needs_a_token_for_the_form_too(infra, prefix, http_issuer):
    async with ingress(infra, prefix, http_issuer, public_submission=False) as base:
        assert_problem(*await call("POST", base + SUBMIT, body(source_id="form-off")), 401, "unauthenticated")
        st, _, resp = await call("POST", base + SUBMIT, body(source_id="form-on"), token=tokens(http_issuer)["site"])
        assert st == 201, resp


async def test_the_openapi_document_describes_the_body_the_answers_and_the_problems(infra, prefix, http_issuer):
    async with ingress(infra, prefix, http_issuer) as base:
        st, _, doc = await call("GET", base + "/openapi.json")
    assert st == 200 and doc["openapi"].startswith("3.1")
    post = doc["paths"][SUBMIT]["post"]
    assert post["requestBody"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/RawAppealSubmitted"}
    schemas = doc["components"]["schemas"]
    assert {"RawAppealSubmitted", "Applicant", "Address", "Consent", "SubmissionRegistered", "SubmissionAccepted",
            "ProblemDetails"} <= set(schemas)
    assert "access_code" in schemas["RawAppealSubmitted"]["properties"]
    assert {"201", "202", "400", "401", "403", "409", "413", "415", "422", "429", "503"} <= set(post["responses"])
    assert list(post["responses"]["403"]["content"]) == ["application/problem+json"]
    refs = json.dumps(doc)
    assert set(re.findall(r'#/components/schemas/([A-Za-z0-9_]+)', refs)) <= set(schemas)  # every $ref resolves
    assert "$defs" not in refs


@pytest.mark.parametrize(
    ("payload", "content_type", "status", "code"),
    [
        (b"{not json", "application/json", 400, "bad_json"),
        ("нет".encode("cp1251"), "application/json", 400, "bad_encoding"),
        (b"{}", "text/plain", 415, "unsupported_media_type"),
        (b'{"channel": "site_form"}', "application/json", 422, "missing_field"),
        (b"x" * 300_000, "application/json", 413, "too_large"),
    ],
    ids=["bad-json", "cp1251", "text-plain", "missing-fields", "too-large"],
)
async def test_bad_requests_get_problem_details_and_a_copy_in_the_rejected_topic(infra, prefix, http_issuer, payload,
                                                                                 content_type, status, code):
    async with ingress(infra, prefix, http_issuer) as base:
        got, headers, resp = await call("POST", base + SUBMIT, payload, content_type)
    assert_problem(got, headers, resp, status, code)
    if code == "missing_field":
        assert "text" in resp["fields"]
    async with TopicReader(infra.bootstrap, Topics(prefix).rejected) as rej:
        (copy,) = await rej.wait_for(lambda r: len(r) >= 1)
    assert headers_of(copy)["x-dlq-reason"].decode() == code
    assert headers_of(copy)["x-dlq-service"] == b"intake-http"
    if code != "too_large":
        assert copy.value == payload
    channel = samples.raw_submission().channel
    async with TopicReader(infra.bootstrap, Topics(prefix).raw(channel)) as raw_topic:
        assert await raw_topic.settle(0.5) == []  # nothing bad reached the raw topic


async def test_the_registered_notice_carries_the_code_the_form_showed_and_the_notifier_keeps_none(infra, prefix, mongo_db,
                                                                                                   http_issuer):
    """The public form -> intake -> the notifier's e-mail: the same code in the answer and the notice;
    the notifier's stored delivery no longer holds it once sent."""
    from notifier.main import create_app as notifier_app
    from notifier.settings import NotifierSettings
    from tests.support.kafka import running
    from tests.support.receivers import smtp_server

    controller, sink, port = smtp_server()
    ns = service_settings(NotifierSettings, infra, prefix, smtp_host="127.0.0.1", smtp_port=port, quiet_hours="",
                          scan_interval_s=0.2)
    try:
        async with ingress(infra, prefix, http_issuer) as base, running(notifier_app(ns)):
            st, _, resp = await call("POST", base + SUBMIT, body(source_id="web-notice"))
            assert st == 201, resp
            for _ in range(150):
                if sink.messages and await mongo_db.notifier_deliveries.count_documents({"state": "sent"}):
                    break
                await asyncio.sleep(0.2)
    finally:
        controller.stop()
    (mail,) = sink.messages
    text = mail.get_content()
    assert resp["registration_number"] in mail["Subject"] and resp["registration_number"] in text
    assert f"Код доступа: {resp['access_code']}" in text
    (delivery,) = await mongo_db.notifier_deliveries.find({}).to_list()
    assert delivery["state"] == "sent" and resp["access_code"] not in json.dumps(delivery, default=str)
