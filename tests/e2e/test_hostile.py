"""A hostile run against the launched system (issue 13): an anonymous caller reads every HTTP route of
every service and enumerates appeal numbers; a client that can write to the broker forges actions and
lifecycle events and sends ГИС-only fields. Nothing personal or about an appeal is readable
anonymously, and no forged action or event is applied.

The embedded broker has no ACLs (operations.md, "Transport security"), so here the attacker can write
every topic; the engine's catalog checks and the router's authorisation are what refuse the records.
A client that writes a topic and also spoofs the owning service's source and the right actor is
stopped only by the broker's ACLs (it cannot write that topic at all); that is not shown here."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from pymongo import AsyncMongoClient

from devtools import embedded, samples
from devtools.dev_issuer import DevIssuer
from tests.e2e.test_launched_system import launcher_args, start_running
from tests.support.http import api_call
from tests.support.kafka import TopicReader, produce
from zhkh_contracts import (
    REGISTRY,
    Address,
    AppealAnswered,
    AppealRegistered,
    Channel,
    CitizenWithdrew,
    DeadlineExpired,
    Envelope,
    OperatorAssigned,
    PartyAnswered,
    Topics,
    from_kafka,
    to_kafka,
)

pytestmark = pytest.mark.e2e
SERVICES = ("intake", "router", "notifier", "gis_sync", "analytics")
NAME, PHONE, EMAIL = "Злоумышленникова Вера Павловна", "+79125550123", "vera.hostile@example.ru"
TEXT = "Секретный текст обращения: нет отопления в квартире 42"
FLAT = "кв. 42"
PLANTED = (NAME, PHONE, "912 555-01-23", EMAIL, "Секретный текст", FLAT, "Ленина, д. 10")
PUBLIC_PATHS = {"/health", "/ready", "/metrics", "/openapi.json", "/docs", "/dashboard"}


async def send(bootstrap: str, topic: str, env: Envelope[Any]) -> None:
    key, value, headers = to_kafka(env)
    await produce(bootstrap, topic, value, key, [(k, v.encode()) for k, v in headers.items()])


async def acall(*a: Any, **kw: Any) -> tuple[int, Any]:
    return await asyncio.to_thread(api_call, *a, timeout=10, **kw)


async def test_hostile_run_reads_nothing_and_applies_nothing(tmp_path):
    argv, ports = launcher_args(tmp_path / "data")
    proc, lines = start_running([*argv, "--no-demo"])
    base = {svc: f"http://127.0.0.1:{ports['http'] + i}" for i, svc in enumerate(SERVICES, start=1)}
    bootstrap = f"127.0.0.1:{ports['kafka']}"
    topics = Topics()
    issuer = DevIssuer.with_key_file(f"http://127.0.0.1:{ports['issuer']}", tmp_path / "data" / "dev-issuer" / "signing-key.json")
    operator = issuer.mint("op-1", ["operator"])
    seen_anonymously: list[str] = []
    try:
        # ---- a citizen submits through the public form: number and access code ----
        raw = samples.raw_submission(channel=Channel.SITE_FORM, source_id=f"hostile-{uuid.uuid4()}", text=TEXT,
                                     phone=PHONE, email=EMAIL)
        raw = raw.model_copy(update={"applicant": raw.applicant.model_copy(update={"name": NAME}),
                                     "address": Address(text=f"г. Пермь, ул. Ленина, д. 10, {FLAT}")})
        status, reg = await acall("POST", f"{base['intake']}/api/v1/appeals", json.loads(raw.model_dump_json()))
        assert status in (201, 202), reg
        code = reg["access_code"]
        number = reg.get("registration_number")
        for _ in range(150):
            if number is None:
                s, st = await acall("GET", f"{base['intake']}/api/v1/appeals/status?channel=site_form&source_id={raw.source_id}",
                                    token=operator)
                number = st.get("registration_number") if s == 200 else None
            if number:
                s, view = await acall("GET", f"{base['router']}/api/v1/appeals/{number}", token=operator)
                if s == 200 and view["status"] == "assigned":
                    break
            await asyncio.sleep(0.2)
        # an address without a FIAS id the sample directory does not know: the operators' queue
        assert view["status"] == "assigned" and view["party_id"] == "fallback:operators", view
        aid = view["appeal_id"]
        # the house key of an address without a FIAS id holds no flat number, even for staff listings
        s, listing = await acall("GET", f"{base['router']}/api/v1/appeals?open=true", token=operator)
        assert "42" not in json.dumps([x["house_key"] for x in listing["appeals"]], ensure_ascii=False)

        # ---- 1. anonymous reads of every route of every service ----
        for svc, url in base.items():
            s, doc = await acall("GET", f"{url}/openapi.json")
            assert s == 200 and doc["openapi"].startswith("3.1")
            for path, item in doc["paths"].items():
                concrete = path.replace("{number}", number)
                for method in item:
                    body = {} if method == "post" else None
                    s, answer = await acall(method.upper(), f"{url}{concrete}", body)
                    text = json.dumps(answer, ensure_ascii=False) if not isinstance(answer, str) else answer
                    seen_anonymously.append(text)
                    assert s in (401, 403, 404, 405, 422, 429), (svc, method, path, s, text[:300])
                    assert number not in json.dumps({k: v for k, v in answer.items() if k != "instance"},
                                                    ensure_ascii=False) if isinstance(answer, dict) else True
            for path in ("/health", "/ready", "/metrics", "/api/v1/appeals/by-number?number=" + number,
                         "/api/v1/appeals?open=true", "/api/v1/analytics/export.csv", "/dashboard"):
                s, answer = await acall("GET", f"{url}{path}")
                seen_anonymously.append(answer if isinstance(answer, str) else json.dumps(answer, ensure_ascii=False))
                if path.split("?")[0] not in PUBLIC_PATHS:
                    assert s in (401, 404, 405), (svc, path, s)

        # ---- 2. enumeration of numbers with guessed codes: the same answer for every number, then 429 ----
        answers = set()
        for n in range(1, 31):
            guess = f"ZH-{datetime.now(UTC).year}-{n:07d}"
            s, answer = await acall("POST", f"{base['router']}/api/v1/citizen/status",
                                    {"number": guess, "access_code": "ABCDE-FGHJK"})
            assert s in (404, 429), (guess, s, answer)
            answers.add((s, answer["code"], answer["detail"]))
            seen_anonymously.append(json.dumps(answer, ensure_ascii=False))
        assert {a[1] for a in answers} <= {"not_found", "rate_limited"} and len({a[2] for a in answers if a[0] == 404}) == 1

        # ---- 3. ГИС-only fields and the ГИС channel from the public form ----
        for sneaky in (raw.model_copy(update={"source_id": "hostile-gis-date", "channel_meta": {"execution_end_date": "2000-01-01"}}),
                       raw.model_copy(update={"source_id": "hostile-gis-channel", "channel": Channel.GIS})):
            s, answer = await acall("POST", f"{base['intake']}/api/v1/appeals", json.loads(sneaky.model_dump_json()))
            assert (s, answer["code"]) == (403, "forbidden"), answer

        # ---- 4. forged records on Kafka ----
        u = uuid.UUID(aid)
        router_src, notifier_src = "/zhkh-appeals/router", "/zhkh-appeals/notifier"
        async with TopicReader(bootstrap, topics.lifecycle) as lc:
            (first,) = [e for e in (from_kafka(r.value, r.headers, REGISTRY) for r in await lc.wait_for(
                lambda rs: any(from_kafka(r.value, r.headers, REGISTRY).appeal_id == aid for r in rs)))
                if isinstance(e.data, AppealRegistered) and e.appeal_id == aid]
        copy = first.data.appeal.model_copy(update={"appeal_id": uuid.uuid4(), "registration_number": "ZH-2026-9999999"})
        forged: list[tuple[str, Envelope[Any], str]] = [
            # an appeal created through the actions topic
            (topics.actions, Envelope.new(AppealRegistered(appeal=copy), source="/zhkh-appeals/intake",
                                          appeal_id=str(copy.appeal_id)), "type_not_allowed"),
            # an answer published as if by the router, from elsewhere
            (topics.lifecycle, Envelope.new(AppealAnswered(appeal_id=u, registration_number=number, party_id="uk-zarechye",
                                                           text="Поддельный ответ", answered_at=datetime.now(UTC)),
                                            source="/parties/uk-zarechye", appeal_id=aid), "forged_source"),
            # a party's system writing its own action to the topic
            (topics.actions, Envelope.new(PartyAnswered(appeal_id=u, actor="party:uk-zarechye", text="Поддельно"),
                                          source="/parties/uk-zarechye", appeal_id=aid), "forged_source"),
            # the deadline "expired", from someone other than the notifier
            (topics.actions, Envelope.new(DeadlineExpired(appeal_id=u, actor="service:notifier", deadline=datetime.now(UTC)),
                                          source=router_src, appeal_id=aid), "forged_source"),
            # the owner's source spoofed, but an actor that may not act: refused by the router
            (topics.actions, Envelope.new(PartyAnswered(appeal_id=u, actor="party:tsj-mira-7", text="Чужой ответ"),
                                          source=router_src, appeal_id=aid), "forbidden"),
            (topics.actions, Envelope.new(OperatorAssigned(appeal_id=u, actor="party:uk-zarechye", party_id="tgk-teplo"),
                                          source=router_src, appeal_id=aid), "forbidden"),
            (topics.actions, Envelope.new(CitizenWithdrew(appeal_id=u, actor=f"citizen:{uuid.uuid4()}"),
                                          source=router_src, appeal_id=aid), "forbidden"),
            (topics.actions, Envelope.new(DeadlineExpired(appeal_id=u, actor="citizen:x", deadline=datetime.now(UTC)),
                                          source=notifier_src, appeal_id=aid), "forbidden"),
            # a ГИС appeal with a deadline in the past, from a client that is not gis_sync
            (topics.raw(Channel.GIS), samples.raw_envelope(raw.model_copy(update={
                "source_id": "hostile-gis-raw", "channel": Channel.GIS,
                "channel_meta": {"execution_end_date": "2000-01-01"}})).model_copy(update={"source": "/evil"}),
             "forged_source"),
        ]
        async with TopicReader(bootstrap, *(topics.dlq(s) for s in SERVICES), topics.rejected, topics.lifecycle) as out:
            for topic, env, _ in forged:
                await send(bootstrap, topic, env)
            ids = {str(env.id): want for _, env, want in forged}

            def outcome(records: list[Any]) -> dict[str, set[str]]:
                got: dict[str, set[str]] = {}
                for r in records:
                    h = dict(r.headers)
                    if r.topic == topics.lifecycle:
                        e = from_kafka(r.value, r.headers, REGISTRY)
                        cause = str(getattr(e.data, "cause_event_id", ""))
                        if cause in ids and getattr(e.data, "code", None):
                            got.setdefault(cause, set()).add(e.data.code)
                    elif b"x-dlq-reason" in {k.encode() for k in h}:
                        cid = h.get("ce_id", b"").decode()
                        if cid in ids:
                            got.setdefault(cid, set()).add(h["x-dlq-reason"].decode())
                return got

            await out.wait_for(lambda r: all(want in outcome(r).get(i, set()) for i, want in ids.items()), timeout=60)
            await out.settle(3.0)

        # nothing forged was applied: the appeal is as the router assigned it, its history says who tried
        s, view = await acall("GET", f"{base['router']}/api/v1/appeals/{number}", token=operator)
        assert (view["status"], view["party_id"], view["level"]) == ("assigned", "fallback:operators", 0), view
        s, hist = await acall("GET", f"{base['router']}/api/v1/appeals/{number}/history", token=operator)
        rows = [(e["action"], e["outcome"], e["actor"], e["code"]) for e in hist["entries"]]
        assert rows[0][:3] == ("assign", "applied", "service:router")
        assert all(r[1] == "refused" and r[3] == "forbidden" for r in rows[1:]) and len(rows) == 5, rows
        # the citizen was told nothing of the forged answer; no forged ГИС appeal was registered
        client = AsyncMongoClient(embedded.mongo_uri(ports["mongo"]), tz_aware=True)
        try:
            db = client["zhkh"]
            notices = await db.notifier_deliveries.find({"appeal_id": aid}).to_list()
            assert not any("Поддельн" in json.dumps(n, default=str, ensure_ascii=False) for n in notices)
            assert await db.intake_appeals.count_documents({"source_id": {"$regex": "^hostile-gis"}}) == 0
        finally:
            await client.close()
        # the citizen with the real code still sees the real status
        s, st = await acall("POST", f"{base['router']}/api/v1/citizen/status", {"number": number, "access_code": code})
        assert s in (200, 429) and (s == 429 or st["status"] == "assigned")
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=90)

    everything = "\n".join(seen_anonymously)
    for planted in PLANTED:
        assert planted not in everything, planted
    assert not re.search(r"ZH-\d{4}-\d{7}.*(assigned|fallback)", everything)
