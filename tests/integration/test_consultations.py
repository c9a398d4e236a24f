"""Consultations and knowledge-base suggestions over real HTTP, broker and database, with tokens from a
real (dev) issuer: who may do what, bad input as problem details, recording once per Idempotency-Key,
converting once into a registered appeal, the events on the consultations topic, and analytics' counts."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from typing import Any

import pytest

from tests.support.http import api_call, request
from tests.support.kafka import TopicReader
from tests.support.services import served, service_settings
from zhkh_contracts import REGISTRY, ConsultationConverted, ConsultationRecorded, Topics, from_kafka

pytestmark = pytest.mark.integration

CONSULT, SUGGEST = "/api/v1/consultations", "/api/v1/suggestions"


@contextlib.asynccontextmanager
async def intake(infra, prefix, issuer, **overrides):  # noqa: ANN001, ANN201
    from intake.main import create_app
    from intake.settings import IntakeSettings

    settings = service_settings(IntakeSettings, infra, prefix, auth_issuer=issuer.url, consultation_loop_s=0.5,
                                consultation_settle_s=0.5, **overrides)
    async with served(create_app(settings)) as base:
        yield base


async def call(method: str, url: str, body: Any = None, token: str | None = None,
               key: str | None = None) -> tuple[int, Any]:
    return await asyncio.to_thread(api_call, method, url, body, token, key)


def problem(status: int, resp: Any, want: int, code: str, field: str | None = None) -> None:
    assert status == want, resp
    assert resp["code"] == code and resp["status"] == want and resp["type"] == f"urn:zhkh-appeals:problem:{code}"
    assert resp["detail"]  # Russian, for people
    if field is not None:
        assert field in resp["fields"], resp


def events(records: list[Any]) -> list[Any]:
    return [from_kafka(r.value, r.headers, REGISTRY) for r in records]


async def test_suggestions_anonymous_rate_limited_and_for_operators(infra, prefix, mongo_db, issuer):
    op = issuer.token("op-1", "operator")
    async with intake(infra, prefix, issuer, suggestion_rate="4/minute") as base:
        q = {"text": "До какого числа нужно передавать показания счётчиков?"}
        status, ans = await call("POST", base + SUGGEST, q)
        assert status == 200, ans
        assert ans["articles"][0]["id"] == "meter-readings" and ans["category"] == "billing"
        assert "25" in ans["articles"][0]["answer"] and ans["articles"][0]["score"] > 0
        # a question the base has nothing for: no articles, not a guess
        status, ans = await call("POST", base + SUGGEST, {"text": "У соседей громко лает собака"})
        assert (status, ans["articles"]) == (200, [])
        problem(*await call("POST", base + SUGGEST, {"text": ""}), 422, "invalid_data", "text")
        problem(*await call("POST", base + SUGGEST, {"text": "x", "actor": "me"}), 422, "invalid_data", "actor")
        # anonymous: 4 a minute from one address (refused bodies count too), then 429; an operator is not limited
        status, ans = await call("POST", base + SUGGEST, q)
        assert status == 429, ans
        for _ in range(4):
            status, ans = await call("POST", base + SUGGEST, q, token=op)
            assert status == 200, ans
        status, arts = await call("GET", base + "/api/v1/knowledge/articles?category=heating", token=op)
        assert status == 200 and {a["id"] for a in arts} == {"heating-temperature", "heating-season"}
        problem(*await call("GET", base + "/api/v1/knowledge/articles"), 401, "unauthenticated")
    async with intake(infra, prefix, issuer, public_suggestions=False) as base:
        problem(*await call("POST", base + SUGGEST, q), 401, "unauthenticated")


async def test_record_list_get_convert_once_and_analytics_counts(infra, prefix, mongo_db, issuer):
    from analytics.main import create_app as analytics_app
    from analytics.settings import AnalyticsSettings

    op, admin = issuer.token("op-1", "operator"), issuer.token("adm-1", "admin")
    party = issuer.token("party-1", "party", party_ids=["uk-zarechye"])
    analyst = issuer.token("an-1", "analyst")
    topic = Topics(prefix).consultations
    asettings = service_settings(AnalyticsSettings, infra, prefix, auth_issuer=issuer.url)
    async with intake(infra, prefix, issuer) as base, served(analytics_app(asettings)) as abase, \
            TopicReader(infra.bootstrap, topic) as reader:
        first = {"channel": "hotline", "question": "Когда дадут отопление? В квартире холодно.",
                 "article_ids": ["heating-season"], "resolved_first_contact": True,
                 "contact": {"name": "Иванова Анна", "phone": "+79161234567"}}

        # who may: operators and admins; not anonymously, not a party
        problem(*await call("POST", base + CONSULT, first, key="k1"), 401, "unauthenticated")
        problem(*await call("POST", base + CONSULT, first, token=party, key="k1"), 403, "forbidden")
        problem(*await call("GET", base + CONSULT, token=party), 403, "forbidden")
        problem(*await call("GET", base + CONSULT), 401, "unauthenticated")
        # bad input: problem details with a code and the field, nothing stored
        problem(*await call("POST", base + CONSULT, {**first, "operator": "operator:someone-else"}, token=op, key="k0"),
                422, "invalid_data", "operator")
        problem(*await call("POST", base + CONSULT, {**first, "article_ids": ["no-such-article"]}, token=op, key="k0"),
                422, "unknown_article")
        problem(*await call("POST", base + CONSULT, {**first, "channel": "gis"}, token=op, key="k0"), 422,
                "invalid_data", "channel")
        problem(*await call("POST", base + CONSULT, {"resolved_first_contact": True}, token=op, key="k0"), 422,
                "question_required")
        problem(*await call("POST", base + CONSULT, first, token=op), 422, "invalid_data", "Idempotency-Key")

        # record: the operator from the token; suggestions for the question; the same key answers the same record
        status, c1 = await call("POST", base + CONSULT, first, token=op, key="k1")
        assert status == 201, c1
        assert (c1["operator"], c1["category"], c1["converted"]) == ("operator:op-1", "heating", False)
        assert [a["id"] for a in c1["articles"]] == ["heating-season"]
        assert "heating-season" in [a["id"] for a in c1["suggestions"]]
        status, again = await call("POST", base + CONSULT, first, token=op, key="k1")
        assert (status, again["consultation_id"]) == (201, c1["consultation_id"])
        problem(*await call("POST", base + CONSULT, {**first, "resolved_first_contact": False}, token=op, key="k1"),
                422, "idempotency_key_reused")
        # two more: one not resolved (to be converted), one by an admin on another channel
        second = {"channel": "hotline", "category": "billing", "question": "Мне неправильно начислили за воду, "
                  "хотя я передавала показания. Прошу разобраться.", "article_ids": ["receipt-error"],
                  "resolved_first_contact": False}
        status, c2 = await call("POST", base + CONSULT, second, token=op, key="k2")
        assert status == 201, c2
        status, c3 = await call("POST", base + CONSULT, {"channel": "reception", "category": "management",
                                                          "article_ids": ["management-method"],
                                                          "resolved_first_contact": True}, token=admin, key="k3")
        assert status == 201 and c3["operator"] == "admin:adm-1", c3

        # list (newest first, pages, filters) and get one
        status, page = await call("GET", base + CONSULT + "?limit=2", token=op)
        assert status == 200 and [i["consultation_id"] for i in page["items"]] == [c3["consultation_id"],
                                                                                    c2["consultation_id"]]
        status, rest = await call("GET", base + CONSULT + f"?limit=2&cursor={page['next_cursor']}", token=op)
        assert [i["consultation_id"] for i in rest["items"]] == [c1["consultation_id"]] and rest["next_cursor"] is None
        status, res = await call("GET", base + CONSULT + "?resolved=false", token=admin)
        assert [i["consultation_id"] for i in res["items"]] == [c2["consultation_id"]]
        problem(*await call("GET", base + CONSULT + "?cursor=garbage", token=op), 400, "invalid_cursor")
        status, one = await call("GET", base + f"{CONSULT}/{c1['consultation_id']}", token=op)
        assert status == 200 and one["contact"]["name"] == "Иванова Анна" and one["articles"][0]["title"]
        problem(*await call("GET", base + f"{CONSULT}/{uuid.uuid4()}", token=op), 404, "not_found")
        problem(*await call("GET", base + f"{CONSULT}/not-a-uuid", token=op), 422, "invalid_data", "cid")

        # convert: only staff; a body without an address is refused; then registered once under repeats
        conv = {"applicant": {"name": "Петров Пётр", "phone": "+7 916 765-43-21"},
                "consent": {"personal_data": True}, "address": {"text": "г. Заречный, ул. Ленина, д. 5, кв. 7"}}
        url = f"{base}{CONSULT}/{c2['consultation_id']}/convert"
        problem(*await call("POST", url, conv, token=party, key="c1"), 403, "forbidden")
        problem(*await call("POST", url, conv), 401, "unauthenticated")
        problem(*await call("POST", url, {**conv, "address": {}}, token=op, key="c0"), 422, "missing_address")
        results = await asyncio.gather(*(call("POST", url, conv, token=op, key=f"c{i}") for i in range(1, 4)))
        numbers = set()
        for status, r in results:
            assert status in (201, 202), r
            if status == 201:
                numbers.add(r["registration_number"])
        status, r = await call("POST", url, conv, token=op, key="c9")
        assert status == 201, r
        numbers.add(r["registration_number"])
        assert len(numbers) == 1 and "access_code" not in r  # one appeal; its code went out in the first answer
        assert sum(1 for _, x in results if x.get("access_code")) <= 1
        appeals = await mongo_db["intake_appeals"].find({"source_id": f"consultation:{c2['consultation_id']}"}).to_list(None)
        assert len(appeals) == 1 and appeals[0]["registration_number"] in numbers
        assert appeals[0]["category"] == "billing" and appeals[0]["channel"] == "hotline"
        status, linked = await call("GET", base + f"{CONSULT}/{c2['consultation_id']}", token=op)
        assert linked["converted"] and linked["conversion"]["registration_number"] in numbers
        assert linked["conversion"]["converted_by"] == "operator:op-1"
        status, conv_page = await call("GET", base + CONSULT + "?converted=true", token=op)
        assert [i["consultation_id"] for i in conv_page["items"]] == [c2["consultation_id"]]

        # events: one recorded per consultation and one converted, with no personal data or text in them
        recs = await reader.wait_for(lambda rs: len({(type(e.data), e.id) for e in events(rs)}) >= 4, timeout=20)
        evs = events(recs)
        recorded = {e.id: e.data for e in evs if isinstance(e.data, ConsultationRecorded)}
        converted = {e.id: e.data for e in evs if isinstance(e.data, ConsultationConverted)}
        assert {str(d.consultation_id) for d in recorded.values()} == {c1["consultation_id"], c2["consultation_id"],
                                                                      c3["consultation_id"]}
        assert [str(d.consultation_id) for d in converted.values()] == [c2["consultation_id"]]
        raw = b"".join(r.value for r in recs)
        for secret in ("Иванова".encode(), "79161234567".encode(), "Петров".encode(), "холодно".encode(),
                       "Ленина".encode()):
            assert secret not in raw

        # analytics counts them: by topic and channel, first-contact share, converted
        def done(s: dict[str, Any]) -> bool:
            return s["consultations"]["total"] == 3 and s["consultations"]["converted"]["count"] == 1

        deadline, summary = time.monotonic() + 30, None
        while time.monotonic() < deadline:
            status, summary = await call("GET", abase + "/api/v1/analytics/summary", token=analyst)
            assert status == 200, summary
            if done(summary):
                break
            await asyncio.sleep(0.25)
        assert summary is not None and done(summary), summary
        c = summary["consultations"]
        assert c["by_category"] == {"billing": 1, "heating": 1, "management": 1}
        assert c["by_channel"] == {"hotline": 2, "reception": 1}
        assert c["resolved_first_contact"] == {"count": 2, "share": round(2 / 3, 4)}
        assert c["converted"] == {"count": 1, "share": round(1 / 3, 4)}
        status, hot = await call("GET", abase + "/api/v1/analytics/summary?channel=reception", token=analyst)
        assert hot["consultations"]["total"] == 1
        status, raw_csv = await asyncio.to_thread(request, "GET", abase + "/api/v1/analytics/consultations.csv",
                                                  token=analyst)
        text = raw_csv.decode("utf-8-sig")
        lines = text.strip().split("\r\n")
        assert status == 200 and lines[0].startswith("consultation_id,recorded_at,channel,category") and len(lines) == 4
        assert any(c2["consultation_id"] in ln and ln.endswith(list(numbers)[0]) for ln in lines)
        assert "Иванова" not in text and "Петров" not in text
        status, _ = await asyncio.to_thread(request, "GET", abase + "/api/v1/analytics/consultations.csv", token=op)
        assert status == 403


async def test_the_loop_publishes_what_a_request_left_and_links_a_late_registration(infra, prefix, mongo_db, issuer):
    """A request that stored a consultation but could not publish its event (the broker refused), a
    conversion whose appeal was registered after the HTTP answer, and a conversion whose submission never
    reached the broker (nobody retried): the leased loop finishes all three, once each. A conversion already
    published the most times allowed and never registered is abandoned, not published again; converting it
    again through the API registers it."""
    from datetime import UTC, datetime, timedelta

    from devtools import samples
    from tests.support.services import publish_raw
    from zhkh_contracts import Channel

    from intake.consultations import MAX_CONVERSION_PUBLISHES

    left, late, lost, given_up = (str(uuid.uuid4()) for _ in range(4))
    old = datetime.now(UTC) - timedelta(minutes=1)
    base_doc = {"digest": "d", "channel": "hotline", "category": "billing", "question": "?", "answer": None,
                "article_ids": ["payment-deadline"], "resolved_first_contact": True, "contact": None,
                "operator": "operator:op-1", "recorded_at": old}
    await mongo_db["consultations"].insert_many([
        {**base_doc, "_id": left, "pending": ["recorded"], "conversion": None},
        {**base_doc, "_id": late, "pending": [], "resolved_first_contact": False,
         "conversion": {"requested": True, "actor": "operator:op-2", "requested_at": old, "appeal_id": None}},
        {**base_doc, "_id": lost, "pending": [], "resolved_first_contact": False,
         "conversion": {"requested": True, "actor": "admin:a-1", "requested_at": old - timedelta(minutes=5),
                        "appeal_id": None, "submission": samples.raw_submission(
                            channel=Channel.HOTLINE, source_id=f"consultation:{lost}").model_dump(mode="json")}},
        {**base_doc, "_id": given_up, "pending": [], "resolved_first_contact": False,
         "conversion": {"requested": True, "actor": "operator:op-3", "requested_at": old - timedelta(minutes=9),
                        "published_at": old - timedelta(minutes=2), "publishes": MAX_CONVERSION_PUBLISHES,
                        "appeal_id": None, "submission": samples.raw_submission(
                            channel=Channel.HOTLINE, source_id=f"consultation:{given_up}").model_dump(mode="json")}},
    ])
    raw = samples.raw_submission(channel=Channel.HOTLINE, source_id=f"consultation:{late}", category=None)
    async with TopicReader(infra.bootstrap, Topics(prefix).consultations) as reader, \
            intake(infra, prefix, issuer) as base:
        await publish_raw(infra, prefix, raw)
        await reader.wait_for(lambda rs: len({e.id for e in events(rs)}) >= 3, timeout=60)
        await asyncio.sleep(1.5)  # a few more rounds: nothing new is published
        evs = events(await reader.settle(1.0))
        assert len({e.id for e in evs}) == 3
        recorded = [e.data for e in evs if isinstance(e.data, ConsultationRecorded)]
        assert {str(d.consultation_id) for d in recorded} == {left}
        converted = {str(e.data.consultation_id): e.data for e in evs if isinstance(e.data, ConsultationConverted)}
        assert set(converted) == {late, lost}
        assert (converted[late].actor, converted[lost].actor) == ("operator:op-2", "admin:a-1")
        for cid in (late, lost):
            doc = await mongo_db["consultations"].find_one({"_id": cid})
            assert doc["conversion"]["registration_number"] == converted[cid].registration_number and doc["pending"] == []
        assert await mongo_db["intake_appeals"].count_documents({"source_id": f"consultation:{lost}"}) == 1
        assert (await mongo_db["consultations"].find_one({"_id": left}))["pending"] == []

        # abandoned, loudly, not published again: nothing registered from it (its submission is valid)
        doc = await mongo_db["consultations"].find_one({"_id": given_up})
        assert doc["conversion"]["abandoned_at"] is not None and doc["conversion"]["publishes"] == MAX_CONVERSION_PUBLISHES
        assert await mongo_db["intake_appeals"].count_documents({"source_id": f"consultation:{given_up}"}) == 0
        op = issuer.token("op-3", "operator")
        status, shown = await call("GET", f"{base}{CONSULT}/{given_up}", token=op)
        assert status == 200 and shown["conversion_abandoned_at"] and not shown["converted"], shown
        # the operator converts it again: a new conversion, registered and linked
        body = {"applicant": {"name": "Петров Пётр", "phone": "+7 916 765-43-21"}, "consent": {"personal_data": True},
                "address": {"text": "г. Заречный, ул. Ленина, д. 5, кв. 7"}}
        status, again = await call("POST", f"{base}{CONSULT}/{given_up}/convert", body, token=op, key="again-1")
        assert status in (201, 202), again
        await reader.wait_for(lambda rs: any(isinstance(e.data, ConsultationConverted)
                                             and str(e.data.consultation_id) == given_up for e in events(rs)), timeout=30)
        status, shown = await call("GET", f"{base}{CONSULT}/{given_up}", token=op)
        assert shown["converted"] and shown["conversion_abandoned_at"] is None
        assert shown["conversion"]["converted_by"] == "operator:op-3"
        assert await mongo_db["intake_appeals"].count_documents({"source_id": f"consultation:{given_up}"}) == 1
