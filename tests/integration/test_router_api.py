"""The router's HTTP API on the real broker and database, with real tokens from the dev issuer (a
real JWKS over HTTP): per endpoint, which roles are allowed and which are refused (401/403); writes
published with the principal as actor, idempotent by key, checked again by the router."""

from __future__ import annotations

import asyncio
import json
import uuid

import pytest

from tests.integration.test_router import register, system
from tests.support.http import api_call, post_json
from zhkh_contracts import AppealRegistered

pytestmark = pytest.mark.integration


def call(method: str, url: str, token: str | None = None, body=None, key: str | None = None):  # noqa: ANN001, ANN201
    return api_call(method, url, body, token, key)


async def acall(*a, **kw):  # noqa: ANN002, ANN003, ANN201
    return await asyncio.to_thread(call, *a, **kw)


def tokens(issuer) -> dict[str, str | None]:  # noqa: ANN001
    return {
        "anonymous": None,
        "garbage": "eyJhbGciOiJub25lIn0.e30.",
        "party": issuer.token("p-user", "party", party_ids=["uk-zarechye"]),
        "other_party": issuer.token("o-user", "party", party_ids=["tsj-mira-7"]),
        "operator": issuer.token("op-1", "operator"),
        "inspector": issuer.token("insp-1", "inspector"),
        "analyst": issuer.token("an-1", "analyst"),
        "admin": issuer.token("adm-1", "admin"),
        "citizen_account": issuer.token("cit-1", "citizen"),
        "service": issuer.token("svc", "service", channels=["chatbot"]),
    }


ALL = ("anonymous", "garbage", "party", "other_party", "operator", "inspector", "analyst", "admin",
       "citizen_account", "service")


def expected(allowed: set[str]) -> dict[str, int]:
    return {who: 200 if who in allowed else 401 if who in ("anonymous", "garbage") else 403 for who in ALL}


async def test_who_may_read_what(infra, prefix, issuer):
    async with system(infra, prefix, issuer) as (base, f):
        aid = await register(infra, prefix, f)
        a = await f.assigned(aid)
        number = a.registration_number
        assert a.party_id == "uk-zarechye"
        t = tokens(issuer)
        api = f"{base}/api/v1"
        matrix = {
            f"{api}/party/appeals": expected({"party", "other_party"}),
            f"{api}/party/appeals/{number}": expected({"party"}),
            f"{api}/appeals": expected({"operator", "inspector", "admin", "party", "other_party"}),
            f"{api}/appeals/{number}": expected({"operator", "inspector", "admin", "party"}),
            f"{api}/appeals/{number}/history": expected({"operator", "inspector", "admin", "party"}),
            f"{api}/operator/queue": expected({"operator", "admin"}),
            f"{api}/inspector/escalated": expected({"inspector", "admin"}),
        }
        for url, want in matrix.items():
            for who, status in want.items():
                got, body = await acall("GET", url, t[who])
                assert got == status, (url, who, got, body)
                if status != 200:
                    assert body["status"] == status and body["type"].startswith("urn:zhkh-appeals:problem:")
                    assert body["code"] in ("unauthenticated", "invalid_token", "forbidden"), body
                    assert number not in json.dumps({k: v for k, v in body.items() if k != "instance"}, ensure_ascii=False)

        # scoping: a party sees its own appeals only, whatever it asks for
        _, own = await acall("GET", f"{api}/party/appeals", t["party"])
        _, other = await acall("GET", f"{api}/party/appeals", t["other_party"])
        assert [x["registration_number"] for x in own["appeals"]] == [number] and other["appeals"] == []
        assert (await acall("GET", f"{api}/appeals?party_id=uk-zarechye", t["other_party"]))[0] == 403
        _, searched = await acall("GET", f"{api}/appeals?open=true", t["other_party"])
        assert searched["appeals"] == []
        # the citizen's contacts: to the assigned party and staff, never in listings
        _, one = await acall("GET", f"{api}/party/appeals/{number}", t["party"])
        assert one["details"]["applicant"]["phone"] == "+79120000001" and one["details"]["text"]
        _, listing = await acall("GET", f"{api}/appeals?open=true", t["operator"])
        assert number in json.dumps(listing) and "+79120000001" not in json.dumps(listing)
        assert all("details" not in x for x in listing["appeals"])


async def test_writes_carry_the_principal_are_idempotent_and_checked_again_by_the_router(infra, prefix, issuer):
    async with system(infra, prefix, issuer) as (base, f):
        aid = await register(infra, prefix, f)
        number = (await f.assigned(aid)).registration_number
        t = tokens(issuer)
        url = f"{base}/api/v1/party/appeals/{number}"

        # refused before anything is published: no token, another party, staff, a missing key
        for who in ("anonymous", "other_party", "operator", "inspector", "analyst"):
            status, body = await acall("POST", f"{url}/accept", t[who], key=f"k-{who}")
            assert status == (401 if who == "anonymous" else 403), (who, body)
        status, body = await acall("POST", f"{url}/accept", t["party"])
        assert (status, body["code"], body["fields"]) == (422, "invalid_data", ["Idempotency-Key"])

        # accepted: the actor is the principal's party, never a value from the body
        status, acc = await acall("POST", f"{url}/accept", t["party"], key="accept-1")
        assert status == 202 and acc["status"] == "applied", acc
        assert (acc["outcome"]["actor"], acc["outcome"]["actor_subject"], acc["outcome"]["status"]) == (
            "party:uk-zarechye", "p-user", "in_progress")
        assert acc["outcome"]["via"] == "/zhkh-appeals/router"
        # the same key again: the same event, applied once
        status, again = await acall("POST", f"{url}/accept", t["party"], key="accept-1")
        assert (status, again["event_id"], again["status"]) == (202, acc["event_id"], "applied")
        # the same key with another request: refused
        status, reused = await acall("POST", f"{url}/answer", t["party"], {"text": "Готово"}, key="accept-1")
        assert (status, reused["code"]) == (422, "idempotency_key_reused")
        # a body with an actor of its own is refused, not obeyed
        status, sneaky = await acall("POST", f"{url}/answer", t["party"], {"text": "x", "actor": "operator:boss"}, key="a2")
        assert (status, sneaky["code"], sneaky["fields"]) == (422, "invalid_data", ["actor"])

        status, upd = await acall("POST", f"{url}/update", t["party"], {"text": "Ждём запчасть."}, key="update-1")
        assert status == 202 and upd["status"] == "applied" and upd["outcome"]["status"] == "in_progress", upd
        status, ans = await acall("POST", f"{url}/answer", t["party"], {"text": "Вода подана."}, key="answer-1")
        assert status == 202 and ans["status"] == "applied" and ans["outcome"]["status"] == "answered"
        # answering twice: the router refuses (illegal transition), and says so
        status, twice = await acall("POST", f"{url}/answer", t["party"], {"text": "Ещё раз"}, key="answer-2")
        assert status == 202 and twice["status"] == "refused" and twice["outcome"]["code"] == "illegal_transition"

        # operator routing: only to a party of the directory
        route = f"{base}/api/v1/operator/appeals/{number}/route"
        assert (await acall("POST", route, t["party"], {"party_id": "tgk-teplo"}, key="r0"))[0] == 403
        status, unknown = await acall("POST", route, t["operator"], {"party_id": "no-such-party"}, key="r1")
        assert (status, unknown["code"]) == (422, "unknown_party")

        # the history says who did what
        _, hist = await acall("GET", f"{base}/api/v1/appeals/{number}/history", t["inspector"])
        rows = [(e["action"], e["outcome"], e["actor"], e.get("code")) for e in hist["entries"]]
        assert rows == [("assign", "applied", "service:router", None),
                        ("accept", "applied", "party:uk-zarechye", None),
                        ("post_update", "applied", "party:uk-zarechye", None),
                        ("answer", "applied", "party:uk-zarechye", None),
                        ("answer", "refused", "party:uk-zarechye", "illegal_transition")], rows
        assert "Вода подана" not in json.dumps(hist, ensure_ascii=False)  # no texts in the audit trail


async def test_citizens_act_with_the_number_and_access_code_only(infra, prefix, issuer):
    async with system(infra, prefix, issuer, access_code_failures="3/15minutes") as (base, f):
        aid = await register(infra, prefix, f)
        number = (await f.assigned(aid)).registration_number
        code = next(e.data.access_code for e in f.events(aid) if isinstance(e.data, AppealRegistered))
        assert code
        t = tokens(issuer)
        party = f"{base}/api/v1/party/appeals/{number}"
        assert (await acall("POST", f"{party}/accept", t["party"], key="c1"))[0] == 202
        assert (await acall("POST", f"{party}/answer", t["party"], {"text": "Сделано."}, key="c2"))[1]["status"] == "applied"

        citizen = f"{base}/api/v1/citizen"
        status, st = await asyncio.to_thread(post_json, f"{citizen}/status", {"number": number, "access_code": code})
        assert status == 200 and st["status"] == "answered" and st["party_name"]
        assert "+7912" not in json.dumps(st) and "house_key" not in st
        # an unknown number and a wrong code look the same
        s1, b1 = await asyncio.to_thread(post_json, f"{citizen}/status", {"number": "ZH-2026-7777777", "access_code": code})
        s2, b2 = await asyncio.to_thread(post_json, f"{citizen}/status", {"number": number, "access_code": "AAAAA-AAAAA"})
        assert (s1, b1["code"]) == (s2, b2["code"]) == (404, "not_found") and b1["detail"] == b2["detail"]
        # the rating with the code: applied as the citizen of this appeal
        status, rated = await asyncio.to_thread(post_json, f"{citizen}/appeals/{number}/rate",
                                                {"access_code": code.lower().replace("-", " "), "satisfied": True}, None, "rate-1")
        assert status == 202 and rated["status"] == "applied"
        assert (rated["outcome"]["actor"], rated["outcome"]["status"]) == (f"citizen:{aid}", "closed")
        # guessing: after 3 wrong codes the number is locked for a while, even for the right code
        for _ in range(2):
            assert (await asyncio.to_thread(post_json, f"{citizen}/status", {"number": number,
                                                                             "access_code": "BBBBB-BBBBB"}))[0] == 404
        status, locked = await asyncio.to_thread(post_json, f"{citizen}/status", {"number": number, "access_code": code})
        assert (status, locked["code"]) == (429, "rate_limited")
        # a withdrawal with a wrong code for another appeal: nothing happens
        status, _ = await asyncio.to_thread(post_json, f"{citizen}/appeals/{number}/withdraw", {"access_code": code},
                                            None, "w-1")
        assert status == 429


async def test_a_write_waits_only_so_long_then_answers_accepted(infra, prefix, issuer):
    async with system(infra, prefix, issuer, api_wait_s=0) as (base, f):
        aid = await register(infra, prefix, f)
        number = (await f.assigned(aid)).registration_number
        tok = issuer.token("p", "party", party_ids=["uk-zarechye"])
        status, body = await acall("POST", f"{base}/api/v1/party/appeals/{number}/accept", tok, key=str(uuid.uuid4()))
        assert status == 202 and body["status"] == "accepted" and body["outcome"] is None
        assert body["history_url"] == f"/api/v1/appeals/{number}/history"


async def test_a_machine_client_acts_with_a_client_credentials_token(infra, prefix, issuer):
    """A managing company's own system: the client-credentials grant of the same issuer (the dev
    issuer's /token here, Keycloak's in compose), then the party API with that token."""
    import httpx

    async with system(infra, prefix, issuer) as (base, f):
        aid = await register(infra, prefix, f)
        number = (await f.assigned(aid)).registration_number
        async with httpx.AsyncClient() as http:
            bad = await http.post(f"{issuer.url}/token", data={"grant_type": "client_credentials",
                                                                "client_id": "uk-zarechye-system", "client_secret": "x"})
            assert bad.status_code == 401
            r = await http.post(f"{issuer.url}/token", data={"grant_type": "client_credentials",
                                                              "client_id": "uk-zarechye-system",
                                                              "client_secret": "dev-secret-uk-zarechye"})
            token = r.json()["access_token"]
        status, page = await acall("GET", f"{base}/api/v1/party/appeals?open=true", token)
        assert status == 200 and [x["registration_number"] for x in page["appeals"]] == [number]
        status, acc = await acall("POST", f"{base}/api/v1/party/appeals/{number}/accept", token, key="system-1")
        assert status == 202 and acc["outcome"]["actor"] == "party:uk-zarechye"
        assert acc["outcome"]["actor_subject"] == "service-account-uk-zarechye-system"


async def test_an_unrated_answer_is_asked_about_closed_without_a_reply_and_reopened_by_the_citizen(infra, prefix, issuer):
    """Closing the loop on the real servers: the router's timer asks once (AppealRatingRequested), then
    closes without a reply (reason no_reply); the citizen reopens it with the access code."""
    from zhkh_contracts import AppealRatingRequested, AppealStatusChanged

    async with system(infra, prefix, issuer, rating_ask_after_days=0, close_without_reply_days=0,
                      follow_up_interval_s=0.2) as (base, f):
        aid = await register(infra, prefix, f)
        number = (await f.assigned(aid)).registration_number
        code = next(e.data.access_code for e in f.events(aid) if isinstance(e.data, AppealRegistered))
        party = issuer.token("p", "party", party_ids=["uk-zarechye"])
        status, ans = await acall("POST", f"{base}/api/v1/party/appeals/{number}/answer", party, {"text": "Готово."},
                                  key="ans")
        assert ans["status"] in ("applied", "accepted")
        await f.until(lambda f: any(s.action == "close_without_reply" for s in f.of(AppealStatusChanged, aid)))
        # at-least-once: a record may be published twice under the same event id; count events, not records
        def once(cls, pick=lambda d: True):  # noqa: ANN001, ANN202
            return list({e.id: e.data for e in f.events(aid) if isinstance(e.data, cls) and pick(e.data)}.values())

        (asked,) = once(AppealRatingRequested)
        closed = once(AppealStatusChanged, lambda s: s.action == "close_without_reply")
        assert len(closed) == 1 and closed[0].to_status.value == "closed" and closed[0].actor == "service:router"
        await asyncio.sleep(1.0)  # more timer rounds: nothing more happens to a closed appeal
        assert len(once(AppealRatingRequested)) == 1
        assert len(once(AppealStatusChanged, lambda s: s.action == "close_without_reply")) == 1
        status, rated = await asyncio.to_thread(post_json, f"{base}/api/v1/citizen/appeals/{number}/rate",
                                                {"access_code": code, "satisfied": False}, None, "reopen-1")
        assert status == 202 and rated["status"] == "applied" and rated["outcome"]["status"] == "reopened", rated
        _, hist = await acall("GET", f"{base}/api/v1/appeals/{number}/history", issuer.token("i", "inspector"))
        assert [(e["action"], e["actor"]) for e in hist["entries"]][-3:] == [
            ("follow_up", "service:router"), ("follow_up", "service:router"), ("rate", f"citizen:{aid}")]
        assert asked.close_after_days == 0
