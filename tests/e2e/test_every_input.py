"""Every input accounted for: the project's bad-input corpus through the launched system.

Several hundred hostile and careless inputs over HTTP (intake's ingress, analytics, wrong methods
and paths) and Kafka (every raw topic, a raw topic nobody declared, the actions and lifecycle
topics), on the real broker and database. For each input: registered, or refused with a
machine-readable reason (and a Russian message for citizens), or dead-lettered with the exact
original bytes (a copy too big to fit keeps its first bytes, its size and SHA-256). The count of
inputs equals registered + refused + dead-lettered; no 5xx, no service restart; the services'
logs, ``x-dlq-*`` headers and ``/metrics`` carry none of the planted personal data; valid appeals
still flow after the corpus (none stuck behind a poison record)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import signal
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer

from devtools.dev_issuer import DevIssuer
from tests.e2e.test_launched_system import launcher_args, start_running
from tests.support.http import request
from tests.support.kafka import TopicReader
from zhkh_contracts import (
    REGISTRY,
    AppealAssigned,
    AppealRegistered,
    AppealTransitionRejected,
    Channel,
    DeadlineExpired,
    PartyAccepted,
    RawAppealSubmitted,
    Topics,
    from_kafka,
)

pytestmark = pytest.mark.e2e
SERVICES = ("intake", "router", "notifier", "gis_sync", "analytics")
LIFECYCLE_READERS = ("router", "notifier", "gis_sync", "analytics")

# planted personal data: none of it may reach logs, x-dlq-* headers, HTTP error fields or /metrics
PII_NAME = "Корпусова Тайна Планировна"
PII_PHONE = "+7 999 000-11-22"
PII_EMAIL = "planted.pii@example.ru"
PII_ADDR = "г. Пермь, ул. Тайная, д. 77"
PII_TEXT = "СЕКРЕТНЫЙТЕКСТЖАЛОБЫ"
PII_KEY = "КлючКорпусовой"
PLANTED = ["Корпусова", "9990001122", "999 000-11-22", "planted.pii", "Тайная", PII_TEXT, PII_KEY, "ru.pii"]

RAW_TYPE = RawAppealSubmitted.EVENT_TYPE
T = Topics()
GIS_SYNC = "/zhkh-appeals/gis_sync"  # the only source trusted on the gis raw topic
NOW = datetime.now(UTC)


@dataclass
class Case:
    n: int
    name: str
    via: str  # kafka | http
    expect: str  # registered | refused | dead | duplicate (an exact redelivery: absorbed)
    reason: str | None = None
    topic: str = ""
    key: bytes | None = None
    value: bytes | None = None
    headers: list[tuple[str, bytes | None]] = field(default_factory=list)
    source: tuple[str, str] | None = None  # (channel, source_id) when it should be registered
    event_id: str | None = None
    method: str = "POST"
    path: str = ""
    ctype: str = "application/json"
    status: int | None = None
    readers: tuple[str, ...] = ()
    token: str | None = None  # who calls over HTTP: None (anonymous), service, operator, analyst


def submission(ch: str, sid: str, **over: Any) -> dict[str, Any]:
    d: dict[str, Any] = {
        "channel": ch, "source_id": sid, "received_at": NOW.isoformat(),
        "applicant": {"name": PII_NAME, "phone": PII_PHONE, "email": PII_EMAIL},
        "consent": {"personal_data": True, "notifications": False},
        "address": {"text": f"{PII_ADDR}, корпус {sid[-40:]}"},
        "text": f"{PII_TEXT}: в квартире нет горячей воды третий день.", "category": "hot_water",
    }
    d.update(over)
    return d


def js(d: Any) -> bytes:
    return json.dumps(d, ensure_ascii=False).encode()


def ce(n: int, ch: str, key: str | None, *, type_: str = RAW_TYPE, event_id: str | None = None,
       drop: tuple[str, ...] = (), **over: bytes | None) -> list[tuple[str, bytes | None]]:
    h: dict[str, bytes | None] = {
        "ce_specversion": b"1.0", "ce_id": (event_id or str(uuid.uuid4())).encode(), "ce_type": type_.encode(),
        "ce_source": (GIS_SYNC if ch == "gis" else f"/channels/{ch}").encode(), "ce_time": NOW.isoformat().encode(),
        "ce_schemaversion": b"1.0", "ce_correlationid": str(uuid.uuid4()).encode(),
        "content-type": b"application/json",
    }
    if key is not None:
        h["ce_subject"] = h["ce_partitionkey"] = key.encode()
    for k in drop:
        h.pop(k, None)
    h.update(over)
    return [*h.items(), ("x-corpus-id", str(n).encode())]


def build_corpus() -> list[Case]:  # noqa: PLR0915 - one list of inputs, read top to bottom
    cases: list[Case] = []

    def add(**kw: Any) -> Case:
        c = Case(n=len(cases), **kw)
        cases.append(c)
        return c

    def raw(name: str, ch: str, expect: str, reason: str | None, body: bytes | None, *, sid: str,
            key: str | None = None, headers: Any = None, topic: str | None = None, **hdr: Any) -> Case:
        n = len(cases)
        k = key if key is not None else f"{ch}:{sid}"
        hs = headers(n) if headers is not None else ce(n, ch, k, **hdr)
        return add(name=name, via="kafka", expect=expect, reason=reason, topic=topic or T.raw(Channel(ch)),
                   key=k.encode(), value=body, headers=hs, source=(ch, sid) if expect == "registered" else None)

    for ch in (c.value for c in Channel):
        s = lambda tag: f"corpus-{ch}-{tag}"  # noqa: E731
        # --- registered: what we and the CloudEvents Kafka binding allow ---
        raw("good", ch, "registered", None, js(submission(ch, s("good"))), sid=s("good"))
        sid = s("binding")  # the SDK's older Kafka API: key only, no time, an id that is not a UUID
        raw("binding-minimal", ch, "registered", None, js(submission(ch, sid)), sid=sid,
            headers=lambda n, sid=sid: ce(n, ch, None, event_id=f"crm-{sid}",
                                          drop=("ce_time", "ce_schemaversion", "ce_correlationid", "content-type")))
        sid = s("structured")
        doc = {"specversion": "1.0", "id": f"ext-{sid}", "source": GIS_SYNC if ch == "gis" else "/crm", "type": RAW_TYPE,
               "datacontenttype": "application/json", "data": submission(ch, sid)}
        raw("structured-mode", ch, "registered", None, js(doc), sid=sid,
            headers=lambda n: [("content-type", b"application/cloudevents+json"), ("x-corpus-id", str(n).encode())])
        sid = (s("long") + "-" + "x" * 200)[:200]
        raw("source-id-200", ch, "registered", None, js(submission(ch, sid)), sid=sid)
        sid = s("hostile")
        raw("hostile-strings-are-data", ch, "registered", None,
            js(submission(ch, sid, text="<script>alert(1)</script>'; DROP TABLE x;-- {\"$gt\": \"\"} нет воды")), sid=sid)
        # --- redelivery of the very same record: absorbed, nothing new, nothing refused ---
        first = cases[-1]
        add(name="redelivery", via="kafka", expect="duplicate", topic=first.topic, key=first.key, value=first.value,
            headers=[*first.headers[:-1], ("x-corpus-id", str(len(cases)).encode())], source=first.source)
        # --- a second citizen reusing a source_id: refused, never handed the first one's appeal ---
        raw("source-id-reuse", ch, "refused", "conflicting_duplicate",
            js(submission(ch, s("good"), text="Другой житель, другой текст: протечка крыши.")), sid=s("good"))
        # --- a known event id with another body: refused ---
        eid = first.headers[1][1].decode()  # ce_id of the hostile record
        raw("event-id-reuse", ch, "refused", "conflicting_duplicate",
            js(submission(ch, first.source[1], text="Подменённое тело под тем же ce_id.")), sid=first.source[1], event_id=eid)
        # --- refused: unreadable ---
        sid = s("bad")
        raw("not-json", ch, "refused", "bad_json", b"{not json " + sid.encode(), sid=sid)
        raw("cp1251", ch, "refused", "bad_encoding", f"Нет горячей воды {PII_NAME}".encode("cp1251"), sid=sid)
        raw("null-value", ch, "refused", "bad_json", None, sid=sid)
        raw("empty-value", ch, "refused", "bad_json", b"", sid=sid)
        raw("nested-65", ch, "refused", "bad_json", b"[" * 65 + b"]" * 65, sid=sid)
        raw("duplicate-json-key", ch, "refused", "bad_json", js(submission(ch, sid))[:-1] + b', "text": "x"}', sid=sid)
        raw("nan", ch, "refused", "bad_json", js(submission(ch, sid))[:-1] + b', "collective": NaN}', sid=sid)
        raw("lone-surrogate", ch, "refused", "bad_encoding", js(submission(ch, sid))[:-1] + b', "t0": "\\ud800"}', sid=sid)
        # --- refused: data ---
        raw("dollar-key-applicant", ch, "refused", "invalid_data", js(submission(ch, sid, applicant={"$gt": ""})), sid=sid)
        raw("int-beyond-64-bits", ch, "refused", "invalid_data",
            js(submission(ch, sid, attachments=[{"uri": "s3://a/1", "size_bytes": 2**64}])), sid=sid)
        raw("float-size", ch, "refused", "invalid_data",
            js(submission(ch, sid, attachments=[{"uri": "s3://a/1", "size_bytes": 1e30}])), sid=sid)
        raw("nfc-grows-text", ch, "refused", "too_long", js(submission(ch, sid, text="\ufb2c" * 7000)), sid=sid)
        raw("nfc-grows-name", ch, "refused", "too_long",
            js(submission(ch, sid, applicant={"name": "\ufb2c" * 101, "phone": PII_PHONE})), sid=sid)
        raw("year-9999", ch, "refused", "invalid_data", js(submission(ch, sid, received_at="9999-12-31T00:00:00+00:00")), sid=sid)
        raw("naive-time", ch, "refused", "invalid_data", js(submission(ch, sid, received_at="2026-11-23T10:00:00")), sid=sid)
        raw("missing-text", ch, "refused", "missing_field",
            js({k: v for k, v in submission(ch, sid).items() if k != "text"}), sid=sid)
        raw("too-long-text", ch, "refused", "too_long", js(submission(ch, sid, text="я" * 20_001)), sid=sid)
        # no consent to personal data: registered all the same (152-ФЗ ст. 6 ч. 1; the notifier skips SMS/messenger)
        raw("no-consent", ch, "registered", None, js(submission(ch, s("no-consent"), consent={"personal_data": False})),
            sid=s("no-consent"))
        raw("bad-phone", ch, "refused", "invalid_phone",
            js(submission(ch, sid, applicant={"name": PII_NAME, "phone": "звоните мне"})), sid=sid)
        raw("bad-email", ch, "refused", "invalid_email",
            js(submission(ch, sid, applicant={"email": f"{PII_NAME} at home"})), sid=sid)
        raw("invisible-text", ch, "refused", "empty_text", js(submission(ch, sid, text="\u200b\u202e\u0000")), sid=sid)
        raw("no-address", ch, "refused", "missing_address", js(submission(ch, sid, address={})), sid=sid)
        raw("pii-dict-key", ch, "refused", "invalid_data", js(submission(ch, sid, channel_meta={PII_KEY: "1"})), sid=sid)
        raw("channel-not-topic", ch, "refused", "channel_mismatch",
            js(submission("hotline" if ch != "hotline" else "paper", sid)), sid=sid,
            key=f"{'hotline' if ch != 'hotline' else 'paper'}:{sid}")
        # --- refused: headers and keys ---
        body = js(submission(ch, sid))
        raw("null-ce-type", ch, "refused", "missing_header", body, sid=sid, ce_type=None)
        raw("no-ce-id", ch, "refused", "missing_header", body, sid=sid, drop=("ce_id",))
        raw("pii-ce-type", ch, "refused", "unknown_type", body, sid=sid, type_=f"ru.pii.{PII_NAME}.v1")
        raw("lifecycle-type", ch, "refused", "type_not_allowed", body, sid=sid, type_=AppealAssigned.EVENT_TYPE)
        if ch == "gis":  # the gis raw topic is gis_sync's: a ГИС appeal from anyone else is refused
            raw("forged-gis-source", ch, "refused", "forged_source", body, sid=sid, ce_source=b"/channels/gis")
            raw("forged-gis-http", ch, "refused", "forged_source", body, sid=sid, ce_source=b"/zhkh-appeals/intake/http")
        raw("specversion-0.3", ch, "refused", "bad_header", body, sid=sid, ce_specversion=b"0.3")
        raw("ce-time-9999", ch, "refused", "bad_header", body, sid=sid, ce_time=b"9999-12-31T00:00:00+00:00")
        raw("source-not-utf8", ch, "refused", "bad_header", body, sid=sid, ce_source=b"\xff\xfe")
        raw("duplicate-header", ch, "refused", "bad_header", body, sid=sid,
            headers=lambda n, sid=sid: [*ce(n, ch, f"{ch}:{sid}")[:-1], ("ce_partitionkey", f"{ch}:other".encode()),
                                        ("x-corpus-id", str(n).encode())])
        raw("key-vs-partitionkey", ch, "refused", "key_mismatch", body, sid=sid,
            headers=lambda n, sid=sid: ce(n, ch, f"{ch}:someone-else"))
        raw("key-vs-data", ch, "refused", "key_mismatch", body, sid=sid, key=f"{ch}:someone-else",
            headers=lambda n: ce(n, ch, None))
        raw("structured-without-data", ch, "refused", "missing_field",
            js({"specversion": "1.0", "id": "x", "source": "/crm", "type": RAW_TYPE}), sid=sid,
            headers=lambda n: [("content-type", b"application/cloudevents+json"), ("x-corpus-id", str(n).encode())])

    # --- heavy ones on one channel: deep nesting, too large, a poison pill just under the broker's limit ---
    sid = "corpus-site_form-heavy"
    raw("nested-10000", "site_form", "refused", "bad_json", b"[" * 10_000 + b"]" * 10_000, sid=sid)
    raw("too-large", "site_form", "refused", "too_large", js(submission("site_form", sid, text="я" * 150_000)), sid=sid)
    poison = raw("poison-pill", "site_form", "refused", "too_large",
                 js(submission("site_form", "corpus-poison", text="ж" * 499_000)), sid="corpus-poison")
    # --- a raw topic of no known channel (clients may create it where the broker auto-creates topics) ---
    for t in ("fax", "site_form2"):
        sid = f"corpus-unknown-topic-{t}"
        raw(f"unknown-raw-topic-{t}", "site_form", "refused", "unknown_channel", js(submission("site_form", sid)),
            sid=sid, topic=f"{T.prefix}.intake.raw.{t}")

    # --- the actions topic (strict, the router's): bad records dead-lettered, unknown appeals refused ---
    def action(n: int, name: str, expect: str, reason: str | None, value: bytes | None, key: str,
               type_: str = PartyAccepted.EVENT_TYPE, **hdr: Any) -> Case:
        eid = hdr.pop("event_id", None) or str(uuid.uuid4())
        hdr.setdefault("ce_source", b"/zhkh-appeals/router")  # as the router's HTTP API publishes them
        return add(name=name, via="kafka", expect=expect, reason=reason, topic=T.actions, key=key.encode(), value=value,
                   headers=ce(n, "operator", key, type_=type_, event_id=eid, **hdr), event_id=eid, readers=("router",))

    for i in range(3):
        a = str(uuid.uuid4())
        good = js({"appeal_id": a, "actor": "party:uk-zarechye"})
        action(len(cases), f"action-unknown-appeal-{i}", "refused", "unknown_appeal", good, a)
        action(len(cases), f"action-bad-json-{i}", "dead", "bad_json", b"{" + a.encode(), a)
        action(len(cases), f"action-null-{i}", "dead", "bad_json", None, a)
        action(len(cases), f"action-pii-type-{i}", "dead", "unknown_type", good, a, type_=f"ru.pii.{PII_NAME}.v1")
        action(len(cases), f"action-lifecycle-type-{i}", "dead", "type_not_allowed", good, a, type_=AppealAssigned.EVENT_TYPE)
        action(len(cases), f"action-registered-type-{i}", "dead", "type_not_allowed", good, a, type_=AppealRegistered.EVENT_TYPE)
        action(len(cases), f"action-forged-source-{i}", "dead", "forged_source", good, a, ce_source=b"/parties/uk-zarechye")
        action(len(cases), f"action-deadline-not-notifier-{i}", "dead", "forged_source",
               js({"appeal_id": a, "actor": "service:notifier", "deadline": NOW.isoformat()}), a,
               type_=DeadlineExpired.EVENT_TYPE)
        action(len(cases), f"action-not-uuid-id-{i}", "dead", "bad_header", good, a, event_id=f"id-{a}")
        action(len(cases), f"action-no-time-{i}", "dead", "missing_header", good, a, drop=("ce_time",))
        action(len(cases), f"action-no-partitionkey-{i}", "dead", "missing_header", good, a, drop=("ce_partitionkey", "ce_subject"))
        action(len(cases), f"action-year-9999-{i}", "dead", "bad_header", good, a, ce_time=b"9999-12-31T00:00:00+00:00")
        action(len(cases), f"action-specversion-{i}", "dead", "bad_header", good, a, ce_specversion=b"2.0")
        c = action(len(cases), f"action-key-mismatch-{i}", "dead", "key_mismatch", good, a)
        c.key = str(uuid.uuid4()).encode()
        action(len(cases), f"action-two-targets-{i}", "dead", "invalid_data",
               js({"appeal_id": a, "incident_id": a, "actor": "x"}), a)
        action(len(cases), f"action-no-actor-{i}", "dead", "missing_field", js({"appeal_id": a}), a)
        action(len(cases), f"action-dollar-key-{i}", "dead", "invalid_data", js({"appeal_id": a, "actor": "x", "$where": 1}), a)
        action(len(cases), f"action-structured-{i}", "dead", "invalid_envelope", good, a,
               **{"content-type": b"application/cloudevents+json"})

    # --- the lifecycle topic: each of its four readers dead-letters what it cannot read ---
    for i in range(2):
        a = str(uuid.uuid4())
        for name, reason, value, kw in [
            ("bad-json", "bad_json", b"[" + a.encode(), {}),
            ("null-value", "bad_json", None, {}),
            ("bad-encoding", "bad_encoding", b"\xff\xfe" + a.encode(), {}),
            ("no-id", "missing_header", js({"appeal_id": a}), {"drop": ("ce_id",)}),
            ("not-uuid-id", "bad_header", js({"appeal_id": a}), {"event_id": f"x-{a}"}),
            ("specversion", "bad_header", js({"appeal_id": a}), {"ce_specversion": b"0.3"}),
        ]:
            eid = kw.pop("event_id", None) or str(uuid.uuid4())
            add(name=f"lifecycle-{name}-{i}", via="kafka", expect="dead", reason=reason, topic=T.lifecycle, key=a.encode(),
                value=value, headers=ce(len(cases), "intake", a, type_=AppealRegistered.EVENT_TYPE, event_id=eid, **kw),
                readers=LIFECYCLE_READERS)

    # --- valid appeals after the corpus, one behind the poison pill on its partition ---
    raw("after-poison", "site_form", "registered", None, js(submission("site_form", "corpus-poison")), sid="corpus-poison")
    assert cases[-1].key == poison.key
    for ch in ("hotline", "chatbot"):
        raw("after-corpus", ch, "registered", None, js(submission(ch, f"corpus-{ch}-after")), sid=f"corpus-{ch}-after")
    return cases


def http_cases(start: int) -> list[Case]:
    """Anonymous callers use the public site form; the other channels' submissions come with a
    service token for them (the channel adapters), the status endpoint with an operator's, the
    analytics API with an analyst's."""
    out: list[Case] = []

    def add(name: str, expect: str, reason: str | None, status: int, body: bytes | None = b"", method: str = "POST",
            path: str = "/api/v1/appeals", ctype: str = "application/json", source: tuple[str, str] | None = None,
            svc: str = "intake", token: str | None = None) -> None:
        out.append(Case(n=start + len(out), name=name, via="http", expect=expect, reason=reason, value=body, method=method,
                        path=f"{svc}{path}", ctype=ctype, status=status, source=source,
                        token=token or ("analyst" if svc == "analytics" else None)))

    for ch in (c.value for c in Channel if c is not Channel.GIS):  # gis: gis_sync's alone (forged-gis-* above)
        sid = f"http-{ch}-good"
        add(f"http-good-{ch}", "registered", None, 201, js(submission(ch, sid)), source=(ch, sid),
            token=None if ch == "site_form" else "service")
    add("http-no-consent", "registered", None, 201,
        js(submission("site_form", "http-no-consent", consent={"personal_data": False})), source=("site_form", "http-no-consent"))
    add("http-other-channel-anonymous", "refused", "unauthenticated", 401, js(submission("hotline", "http-anon-hotline")))
    add("http-gis-channel", "refused", "forbidden", 403, js(submission("gis", "http-gis-good")), token="service")
    add("http-gis-only-field", "refused", "forbidden", 403,
        js(submission("site_form", "http-gis-field", channel_meta={"execution_end_date": "2000-01-01"})))
    sid = ("http-long-" + "y" * 200)[:200]
    add("http-source-id-200", "registered", None, 201, js(submission("site_form", sid)), source=("site_form", sid))
    add("http-resend", "duplicate", None, 201, js(submission("hotline", "http-hotline-good")),
        source=("hotline", "http-hotline-good"), token="service")
    add("http-source-id-reuse", "refused", "conflicting_duplicate", 409,
        js(submission("site_form", "http-site_form-good", applicant={"name": "Другой житель"}, text="Другая беда: нет света.")))
    s = "http-bad"
    for name, reason, status, body, ctype in [
        ("not-json", "bad_json", 400, b"{not json", "application/json"),
        ("cp1251", "bad_encoding", 400, f"{PII_NAME}".encode("cp1251"), "application/json"),
        ("text-plain", "unsupported_media_type", 415, js(submission("site_form", s)), "text/plain"),
        ("empty", "bad_json", 400, b"", "application/json"),
        ("nested-10000", "bad_json", 400, b"[" * 10_000 + b"]" * 10_000, "application/json"),
        ("nested-objects", "bad_json", 400, b'{"a":' * 5000 + b"1" + b"}" * 5000, "application/json"),
        ("nan", "bad_json", 400, js(submission("site_form", s))[:-1] + b', "collective": NaN}', "application/json"),
        ("duplicate-key", "bad_json", 400, js(submission("site_form", s))[:-1] + b', "text": "x"}', "application/json"),
        ("lone-surrogate", "bad_encoding", 400, js(submission("site_form", s))[:-1] + b', "t0": "\\udc00"}', "application/json"),
        ("digits-5000", "invalid_data", 422, b"9" * 5000, "application/json"),
        ("array", "invalid_data", 422, b"[1,2,3]", "application/json"),
        ("dollar-key-applicant", "invalid_data", 422, js(submission("site_form", s, applicant={"$gt": ""})), "application/json"),
        ("int-beyond-64-bits", "invalid_data", 422,
         js(submission("site_form", s, attachments=[{"uri": "s3://a", "size_bytes": 2**64}])), "application/json"),
        ("float-size", "invalid_data", 422,
         js(submission("site_form", s, attachments=[{"uri": "s3://a", "size_bytes": 1e30}])), "application/json"),
        ("nfc-grows-text", "too_long", 422, js(submission("site_form", s, text="\ufb2c" * 7000)), "application/json"),
        ("nfc-grows-address", "too_long", 422, js(submission("site_form", s, address={"text": "\ufb2c" * 200})), "application/json"),
        ("year-9999", "invalid_data", 422, js(submission("site_form", s, received_at="9999-12-31T23:59:59+00:00")), "application/json"),
        ("year-1", "invalid_data", 422, js(submission("site_form", s, received_at="0001-01-01T00:00:00+00:00")), "application/json"),
        ("source-id-201", "too_long", 422, js(submission("site_form", "z" * 201)), "application/json"),
        ("missing-fields", "missing_field", 422, js({"channel": "site_form"}), "application/json"),
        ("unknown-channel", "unknown_channel", 422, js(submission("pigeon", s)), "application/json"),
        ("bad-phone", "invalid_phone", 422, js(submission("site_form", s, applicant={"phone": "звоните мне"})), "application/json"),
        ("bad-email", "invalid_email", 422, js(submission("site_form", s, applicant={"email": PII_NAME})), "application/json"),
        ("invisible-text", "empty_text", 422, js(submission("site_form", s, text="\u200b\u200b")), "application/json"),
        ("no-address", "missing_address", 422, js(submission("site_form", s, address={})), "application/json"),
        ("pii-dict-key", "invalid_data", 422, js(submission("site_form", s, channel_meta={PII_KEY: "1"})), "application/json"),
        ("too-large", "too_large", 413, js(submission("site_form", s, text="я" * 150_000)), "application/json"),
    ]:
        add(f"http-{name}", "refused", reason, status, body, ctype=ctype)
    # methods and paths: the same JSON error body, nothing registered
    add("http-head-with-body", "refused", "method_not_allowed", 405, js(submission("site_form", "http-head")), method="HEAD")
    add("http-put", "refused", "method_not_allowed", 405, js(submission("site_form", "http-put")), method="PUT")
    add("http-get-submit", "refused", "method_not_allowed", 405, None, method="GET")
    add("http-delete-health", "refused", "method_not_allowed", 405, None, method="DELETE", path="/health")
    add("http-post-metrics", "refused", "method_not_allowed", 405, b"x", method="POST", path="/metrics")
    add("http-unknown-path", "refused", "not_found", 404, None, method="GET", path="/api/v1/appealz")
    add("http-unknown-path-post", "refused", "not_found", 404, b"{}", path="/admin")
    add("http-status-anonymous", "refused", "unauthenticated", 401, None, method="GET",
        path="/api/v1/appeals/status?channel=site_form&source_id=http-site_form-good")
    add("http-status-unknown-channel", "refused", "invalid_data", 422, None, method="GET",
        path="/api/v1/appeals/status?channel=pigeon&source_id=1", token="operator")
    add("http-status-long-source-id", "refused", "invalid_data", 422, None, method="GET",
        path="/api/v1/appeals/status?channel=site_form&source_id=" + "q" * 500, token="operator")
    for q in ("from=0001-01-01", "to=9999-12-31", "from=0001-01-01&to=9999-12-31", "from=2026-12-01&to=2026-01-01",
              "from=not-a-date", "channel=pigeon"):
        add(f"analytics-summary-{q}", "refused", "invalid_data", 400, None, method="GET",
            path=f"/api/v1/analytics/summary?{q}", svc="analytics")
        add(f"analytics-export-{q}", "refused", "invalid_data", 400, None, method="GET",
            path=f"/api/v1/analytics/export.csv?{q}", svc="analytics")
    add("analytics-house-no-key", "refused", "invalid_data", 422, None, method="GET", path="/api/v1/analytics/houses",
        svc="analytics")
    add("analytics-anonymous", "refused", "unauthenticated", 401, None, method="GET", path="/api/v1/analytics/summary",
        svc="analytics", token="anonymous")
    add("analytics-as-operator", "refused", "forbidden", 403, None, method="GET", path="/api/v1/analytics/export.csv",
        svc="analytics", token="operator")
    add("analytics-post", "refused", "method_not_allowed", 405, b"{}", path="/api/v1/analytics/summary", svc="analytics")
    return out


def ours(records: list[Any]) -> list[Any]:
    """The lifecycle events the services published (the corpus's own bad records skipped)."""
    return [from_kafka(r.value, r.headers, REGISTRY) for r in records if corpus_id(r) is None]


def corpus_id(record: Any) -> int | None:
    for k, v in record.headers:
        if k == "x-corpus-id":
            return int(v)
    return None


def original_headers(record: Any) -> list[tuple[str, bytes | None]]:
    return [(k, v) for k, v in record.headers if not k.startswith("x-dlq-")]


def dlq_headers(record: Any) -> dict[str, bytes]:
    return {k: v for k, v in record.headers if k.startswith("x-dlq-")}


async def test_every_input_is_accounted_for(tmp_path):
    argv, ports = launcher_args(tmp_path / "data")
    env = {**os.environ, "ZHKH_TOPIC_DISCOVERY_MS": "1000", "ZHKH_INGRESS_WAIT_S": "10",
           "ZHKH_PUBLIC_SUBMISSION_RATE": "1000/minute"}  # the corpus posts anonymously from one address
    proc, lines = start_running([*argv, "--no-demo"], env=env)
    issuer = DevIssuer.with_key_file(f"http://127.0.0.1:{ports['issuer']}", tmp_path / "data" / "dev-issuer" / "signing-key.json")
    tokens = {"service": issuer.mint("adapters", ["service"], channels=[c.value for c in Channel if c is not Channel.GIS]),
              "operator": issuer.mint("op", ["operator"]), "analyst": issuer.mint("an", ["analyst"]), "anonymous": None}
    base = {svc: f"http://127.0.0.1:{ports['http'] + i}" for i, svc in enumerate(SERVICES, start=1)}
    bootstrap = f"127.0.0.1:{ports['kafka']}"
    started = time.monotonic()
    try:
        kafka = build_corpus()
        http = http_cases(len(kafka))
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", max_request_size=1_048_576)
        await producer.start()
        try:
            # the made-up raw topics first: their creation makes intake's pattern subscription rejoin
            # once (ZHKH_TOPIC_DISCOVERY_MS), before the rest of the corpus arrives
            first = [c for c in kafka if c.name.startswith("unknown-raw-topic")]
            await asyncio.gather(*[await producer.send(c.topic, value=c.value, key=c.key, headers=c.headers) for c in first])
            await asyncio.sleep(4)
            rest = [c for c in kafka if c not in first]
            await asyncio.gather(*[await producer.send(c.topic, value=c.value, key=c.key, headers=c.headers) for c in rest])
        finally:
            await producer.stop()

        # HTTP, one after another (the resend and the reuse need the first registered)
        print(f"\nkafka corpus produced at {time.monotonic() - started:.0f}s")
        answers: dict[int, tuple[int, Any]] = {}
        for c in http:
            if c.name in ("http-resend", "http-source-id-reuse"):  # after the first one is registered
                first = "http-hotline-good" if c.name == "http-resend" else "http-site_form-good"
                ch = first.split("-")[1]
                for _ in range(300):
                    st, _b = await asyncio.to_thread(request, "GET", f"{base['intake']}/api/v1/appeals/status?"
                                                     f"channel={ch}&source_id={first}", None, timeout=10,
                                                     token=tokens["operator"])
                    if st == 200:
                        break
                    await asyncio.sleep(0.2)
            svc, _, path = c.path.partition("/")
            status, body = await asyncio.to_thread(request, c.method, f"{base[svc]}/{path}", c.value, c.ctype, timeout=30,
                                                   token=tokens[c.token] if c.token else None)
            answers[c.n] = (status, json.loads(body) if body else None)
        for c in http:
            status, body = answers[c.n]
            assert status < 500, (c.name, status, body)
            assert status == c.status or (c.status == 201 and status == 202), (c.name, status, body)
            if status >= 400:  # RFC 9457 problem details
                assert c.method == "HEAD" or {"type", "title", "status", "detail", "code", "fields"} <= set(body), (c.name, body)
                if c.method != "HEAD":
                    assert (body["code"], body["status"]) == (c.reason, status), (c.name, body)
                    assert not any(p in json.dumps(body, ensure_ascii=False) for p in PLANTED), (c.name, body)

        print(f"http corpus answered at {time.monotonic() - started:.0f}s")
        # collect what came out
        expect_registered = {c.source for c in kafka + http if c.expect == "registered"}
        want_rejected = {c.n for c in kafka if c.expect == "refused" and c.topic != T.actions}
        # a too_large body is not read past the limit: its copy is empty (intake.ingress)
        want_http_copies = Counter(hashlib.sha256(b"" if c.reason == "too_large" else c.value or b"").hexdigest() for c in http
                                   if c.expect == "refused" and c.path.startswith("intake/api/v1/appeals")
                                   and c.method == "POST" and "status" not in c.path
                                   and c.status not in (401, 403, 429))  # who may not: answered, not copied
        want_dead = {svc: {c.n for c in kafka if c.expect == "dead" and svc in c.readers} for svc in LIFECYCLE_READERS}
        want_transition = {c.event_id for c in kafka if c.expect == "refused" and c.topic == T.actions}
        dlq_topics = {svc: T.dlq(svc) for svc in SERVICES}
        async with TopicReader(bootstrap, T.rejected, T.lifecycle, *dlq_topics.values()) as out:

            def done(records: list[Any]) -> bool:
                by_topic: dict[str, list[Any]] = {}
                for r in records:
                    by_topic.setdefault(r.topic, []).append(r)
                rej = by_topic.get(T.rejected, [])
                if not want_rejected <= {corpus_id(r) for r in rej}:
                    return False
                if sum(1 for r in rej if dlq_headers(r).get("x-dlq-service") == b"intake-http") < sum(want_http_copies.values()):
                    return False
                for svc, ids in want_dead.items():
                    if not ids <= {corpus_id(r) for r in by_topic.get(dlq_topics[svc], [])}:
                        return False
                events = ours(by_topic.get(T.lifecycle, []))
                registered = {(e.data.appeal.channel.value, e.data.appeal.source_id) for e in events
                              if isinstance(e.data, AppealRegistered)}
                rejected_ids = {str(e.data.cause_event_id) for e in events if isinstance(e.data, AppealTransitionRejected)}
                return expect_registered <= registered and want_transition <= rejected_ids

            records = await out.wait_for(done, timeout=150)
            records = await out.settle(3.0)  # nothing more arrives: no loop, no late copy
        elapsed = time.monotonic() - started

        by_topic: dict[str, list[Any]] = {}
        for r in records:
            by_topic.setdefault(r.topic, []).append(r)
        lifecycle = ours(by_topic.get(T.lifecycle, []))
        # distinct appeals per (channel, source_id): a redelivery republishes the same event (same id)
        registrations = Counter(src for src, _ in {((e.data.appeal.channel.value, e.data.appeal.source_id),
                                                    e.data.appeal.appeal_id) for e in lifecycle
                                                   if isinstance(e.data, AppealRegistered)})
        transitions = {str(e.data.cause_event_id): e.data.code for e in lifecycle if isinstance(e.data, AppealTransitionRejected)}
        rejected = by_topic.get(T.rejected, [])
        kafka_rejected = {corpus_id(r): r for r in rejected if corpus_id(r) is not None}
        assert len(kafka_rejected) == sum(1 for r in rejected if corpus_id(r) is not None)  # each at most once

        outcome: dict[int, str] = {}
        for c in kafka:
            if c.expect in ("registered", "duplicate"):
                assert registrations[c.source] == 1, (c.name, c.source, registrations[c.source])
                assert c.n not in kafka_rejected, (c.name, dlq_headers(kafka_rejected[c.n]))
                outcome[c.n] = "registered"
            elif c.topic == T.actions and c.expect == "refused":
                assert transitions.get(c.event_id) == c.reason, c.name
                outcome[c.n] = "refused"
            elif c.expect == "refused":
                r = kafka_rejected[c.n]
                h = dlq_headers(r)
                assert h["x-dlq-reason"].decode() == c.reason, (c.name, h)
                assert h["x-dlq-message-ru"].decode(), c.name
                assert r.key == c.key and original_headers(r) == c.headers, c.name
                if h.get("x-dlq-truncated") == b"true":
                    assert h["x-dlq-original-sha256"].decode() == hashlib.sha256(c.value or b"").hexdigest(), c.name
                    assert c.value is not None and c.value.startswith(r.value) and int(h["x-dlq-original-size"]) == len(c.value)
                else:
                    assert r.value == c.value, c.name  # byte for byte, null kept null
                outcome[c.n] = "refused"
            else:
                for svc in c.readers:
                    (r,) = [d for d in by_topic.get(dlq_topics[svc], []) if corpus_id(d) == c.n]
                    assert dlq_headers(r)["x-dlq-reason"].decode() == c.reason, (c.name, svc, dlq_headers(r))
                    assert (r.key, r.value, original_headers(r)) == (c.key, c.value, c.headers), (c.name, svc)
                outcome[c.n] = "dead"
        assert kafka_rejected.keys() <= {c.n for c in kafka if c.expect == "refused"}  # no other corpus record refused
        assert not by_topic.get(dlq_topics["intake"])  # no processing failure: every refusal is an input's

        http_copies = Counter(hashlib.sha256(r.value or b"").hexdigest() for r in rejected
                              if dlq_headers(r).get("x-dlq-service") == b"intake-http")
        assert http_copies == want_http_copies  # every refused submission kept exactly once
        for c in http:
            status, body = answers[c.n]
            if c.expect in ("registered", "duplicate"):
                assert registrations[c.source] == 1, (c.name, registrations[c.source])
                outcome[c.n] = "registered"
            else:
                outcome[c.n] = "refused"
        reuse = next(c for c in http if c.name == "http-source-id-reuse")
        first = next(c for c in http if c.name == "http-good-site_form")
        assert "registration_number" not in json.dumps(answers[reuse.n][1])  # never the first citizen's number
        assert answers[first.n][1]["registration_number"]

        # nothing personal in any x-dlq-* header, log line or metric; no service restarted
        for r in rejected + [d for svc in SERVICES for d in by_topic.get(dlq_topics[svc], [])]:
            text = b"".join(v or b"" for v in dlq_headers(r).values()).decode("utf-8", "replace")
            assert not any(p in text for p in PLANTED), dlq_headers(r)
        for svc in SERVICES:
            status, metrics = await asyncio.to_thread(request, "GET", f"{base[svc]}/metrics", None, timeout=10)
            assert status == 200
            assert not any(p.encode() in metrics for p in PLANTED), svc
            assert b'topic="zhkh.intake.raw.fax"' not in metrics
            status, _ = await asyncio.to_thread(request, "GET", f"{base[svc]}/ready", None, timeout=10)
            assert status == 200, svc
        assert proc.poll() is None

        inputs = len(kafka) + len(http)
        figures = Counter(outcome.values())
        lost = inputs - sum(figures.values())
        print(f"\nevery input: {inputs} inputs ({len(kafka)} Kafka, {len(http)} HTTP): registered {figures['registered']}, "
              f"refused {figures['refused']}, dead-lettered {figures['dead']}, lost {lost}; {elapsed:.0f}s")
        assert lost == 0 and inputs >= 300
    finally:
        proc.send_signal(signal.SIGINT)
        rest, _ = proc.communicate(timeout=90)
    assert proc.returncode == 0, "".join(lines) + rest
    for svc in SERVICES:
        log = (tmp_path / "data" / "logs" / f"{svc}.log").read_text()
        assert log.count('"event": "started"') == 1, svc  # never restarted
        for p in PLANTED:
            assert p not in log, (svc, p, [line for line in log.splitlines() if p in line][:3])
