"""intake's HTTP ingress without servers: the router on a bare app (problem handlers included), an
in-memory publisher that "registers" what reaches a raw topic, and a token verifier that maps token
strings to principals. Who may submit what, which refusals are copied, access codes, the 201/202/409/503
answers. The same rules against the real broker, database and issuer: tests/integration/test_intake_http.py."""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx
import pytest

from devtools import samples
from intake.ingress import Ingress
from intake.messages import MESSAGES_RU
from intake.service import submission_digest
from intake.settings import IntakeSettings
from zhkh_contracts import REGISTRY, Channel, RawAppealSubmitted, Topics, from_kafka
from zhkh_runtime import access_codes
from zhkh_runtime.auth import AuthError, Principal
from zhkh_runtime.http import Auth, build_app

TOPICS = Topics()
PRINCIPALS = {
    "site": Principal("svc-site", frozenset({"service"}), channels=("site_form",)),
    "chatbot": Principal("svc-bot", frozenset({"service"}), channels=("chatbot", "social")),
    "gis": Principal("svc-gis", frozenset({"service"}), channels=("gis",)),
    "callcentre": Principal("callcentre", frozenset({"service", "operator"}), channels=("hotline",)),
    "operator": Principal("op-1", frozenset({"operator"})),
    "admin": Principal("adm-1", frozenset({"admin"})),
    "citizen": Principal("cit-1", frozenset({"citizen"})),
    "party": Principal("p-1", frozenset({"party"}), party_ids=("uk-zarechye",)),
}


class Verifier:
    async def verify(self, token: str) -> Principal:
        if token not in PRINCIPALS:
            raise AuthError("invalid_token")
        return PRINCIPALS[token]


class Repo:
    def __init__(self) -> None:
        self.docs: dict[tuple[str, str], dict[str, Any]] = {}

    async def find_by_source(self, channel: Channel, source_id: str) -> dict[str, Any] | None:
        return self.docs.get((channel.value, source_id))


class Publisher:
    """Keeps what is sent; a raw submission is registered at once (as intake would, unless ``hold``)."""

    def __init__(self, repo: Repo) -> None:
        self.repo, self.sent, self.hold, self.fail = repo, [], False, False

    async def send(self, topic: str, key: bytes | None, value: bytes | None, headers: list[tuple[str, bytes]]) -> None:
        if self.fail:
            raise ConnectionError("broker down")
        self.sent.append((topic, key, value, dict(headers)))
        if topic.startswith(TOPICS.prefix + ".intake.raw.") and not self.hold:
            raw = from_kafka(value, [(k, v) for k, v in headers], REGISTRY).data
            self.register(raw)

    def register(self, raw: RawAppealSubmitted) -> None:
        if (raw.channel.value, raw.source_id) not in self.repo.docs:
            self.repo.docs[(raw.channel.value, raw.source_id)] = {
                "_id": str(uuid.uuid4()), "registration_number": f"ZH-2026-{len(self.repo.docs) + 1:07d}",
                "submission_digest": submission_digest(raw),
                "access_code_hash": access_codes.hash_code(raw.access_code) if raw.access_code else None,
            }

    def raw(self) -> list[tuple[str, RawAppealSubmitted]]:
        return [(t, from_kafka(v, list(h.items()), REGISTRY).data) for t, _, v, h in self.sent if ".intake.raw." in t]

    def rejected(self) -> list[tuple[str, bytes]]:
        return [(h["x-dlq-reason"].decode(), v) for t, _, v, h in self.sent if t == TOPICS.rejected]


class Api:
    def __init__(self, **settings: Any) -> None:
        self.settings = IntakeSettings(**{"ingress_wait_s": 0.2, **settings})
        self.repo = Repo()
        self.pub = Publisher(self.repo)
        ingress = Ingress(self.pub, self.repo, TOPICS, self.settings)  # type: ignore[arg-type]

        async def health() -> dict[str, Any]:
            return {}

        app = build_app("t", "", "1", [ingress.router(Auth(Verifier(), "intake"))], health, health, None)  # type: ignore[arg-type]
        self.client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://intake")

    async def post(self, body: bytes, token: str | None = None, ctype: str = "application/json") -> httpx.Response:
        headers = {"content-type": ctype, **({"authorization": f"Bearer {token}"} if token else {})}
        return await self.client.post("/api/v1/appeals", content=body, headers=headers)

    async def status(self, channel: str, source_id: str, token: str | None = None) -> httpx.Response:
        headers = {"authorization": f"Bearer {token}"} if token else {}
        return await self.client.get("/api/v1/appeals/status", params={"channel": channel, "source_id": source_id},
                                     headers=headers)


def body(channel: str = "site_form", source_id: str | None = None, meta: dict[str, str] | None = None, **kw: Any) -> bytes:
    raw = samples.raw_submission(channel=Channel(channel), source_id=source_id, **kw)
    if meta is not None:
        raw = raw.model_copy(update={"channel_meta": meta})
    return raw.model_dump_json().encode()


def problem(r: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    p = r.json()
    assert (p["status"], p["code"]) == (status, code) and p["detail"], p
    return p


# (who, channel) -> status: the submit matrix
MATRIX = [
    (None, "site_form", 201), (None, "hotline", 401), (None, "chatbot", 401), (None, "paper", 401), (None, "gis", 403),
    ("site", "site_form", 201), ("site", "chatbot", 403),
    ("chatbot", "chatbot", 201), ("chatbot", "social", 201), ("chatbot", "hotline", 403), ("chatbot", "site_form", 201),
    ("callcentre", "hotline", 201), ("operator", "hotline", 201), ("operator", "paper", 403),
    ("admin", "hotline", 403), ("citizen", "reception", 403), ("party", "site_form", 201), ("citizen", "site_form", 201),
    ("gis", "gis", 403), ("admin", "gis", 403), ("callcentre", "gis", 403),
]


@pytest.mark.parametrize(("who", "channel", "status"), MATRIX, ids=[f"{w or 'anonymous'}-{c}" for w, c, _ in MATRIX])
async def test_who_may_submit_for_which_channel(who, channel, status):
    api = Api()
    sid = "6a3c7f1e-0000-4000-8000-000000000001" if channel == "gis" else f"{channel}-1"
    r = await api.post(body(channel, sid), who)
    if status == 201:
        assert r.status_code == 201, r.text
        assert [(t, raw.channel.value) for t, raw in api.pub.raw()] == [(TOPICS.raw(Channel(channel)), channel)]
    else:
        p = problem(r, status, "unauthenticated" if status == 401 else "forbidden")
        assert p["fields"] == ["channel"]
        if status == 401:
            assert r.headers["www-authenticate"].startswith("Bearer")
        assert api.pub.sent == []  # nothing published, nothing copied


@pytest.mark.parametrize("meta", [{"execution_end_date": "2000-01-01"}, {"gis_appeal_guid": "x"},
                                  {"gis_appeal_number": "59-1", "operator_id": "op-1"}])
@pytest.mark.parametrize("who", [None, "callcentre"])
async def test_gis_only_channel_meta_is_never_accepted_over_http(who, meta):
    api = Api()
    channel = "site_form" if who is None else "hotline"
    p = problem(await api.post(body(channel, "m-1", meta=meta), who), 403, "forbidden")
    assert p["fields"] == sorted(f"channel_meta.{k}" for k in meta if k != "operator_id")
    assert p["detail"] == MESSAGES_RU["gis_only_field"]
    assert api.pub.sent == [] and api.repo.docs == {}


async def test_a_bad_token_is_401_even_for_the_public_form():
    api = Api()
    problem(await api.post(body(), "forged"), 401, "invalid_token")
    assert api.pub.sent == []


async def test_public_submission_off():
    api = Api(public_submission=False)
    problem(await api.post(body()), 401, "unauthenticated")
    assert (await api.post(body(), "site")).status_code == 201


async def test_anonymous_submissions_are_limited_per_address_before_the_body_is_read():
    api = Api(public_submission_rate="2/minute;10/hour")
    assert [(await api.post(body())).status_code for _ in range(2)] == [201, 201]
    r = await api.post(b"{not json")  # over the limit: refused before the body is read or copied
    problem(r, 429, "rate_limited")
    assert 1 <= int(r.headers["retry-after"]) <= 61
    assert api.pub.rejected() == []
    assert (await api.post(body(), "site")).status_code == 201  # granted the form: not the public's limit
    problem(await api.post(body(), "citizen"), 429, "rate_limited")  # a token without a grant: as the public


async def test_the_access_code_is_returned_once_and_is_the_registered_one():
    api = Api()
    b = body(source_id="form-1")
    first = await api.post(b)
    assert first.status_code == 201 and first.headers["cache-control"] == "no-store"
    ans = first.json()
    code = ans["access_code"]
    assert ans["access_code_note"] and "status_url" not in ans
    ((_, raw),) = api.pub.raw()
    assert raw.access_code == code  # published with the submission
    assert access_codes.verify(code, api.repo.docs[("site_form", "form-1")]["access_code_hash"])
    again = (await api.post(b)).json()  # a resend: the stored number, no new code
    assert again["registration_number"] == ans["registration_number"] and "access_code" not in again
    assert len(api.pub.raw()) == 1


async def test_a_code_in_the_body_is_replaced_by_the_ingress():
    api = Api()
    mine = "AAAAA-AAAAA"
    raw = json.loads(body(source_id="form-2"))
    raw["access_code"] = mine
    ans = (await api.post(json.dumps(raw).encode())).json()
    assert ans["access_code"] != mine and api.pub.raw()[0][1].access_code == ans["access_code"]


async def test_202_gives_the_code_and_a_201_withholds_a_code_that_lost_the_race():
    api = Api(ingress_wait_s=0)
    api.pub.hold = True  # intake has not registered it yet
    r = await api.post(body("chatbot", "bot-1"), "chatbot")
    assert r.status_code == 202 and r.json()["access_code"] and r.json()["status_url"].startswith("/api/v1/appeals/status?")
    # an earlier copy of the same submission (another code) is what intake registers: this copy's
    # answer has the number but not its own code, which is not valid
    api = Api()
    api.pub.hold = True
    sent = RawAppealSubmitted.model_validate_json(body("chatbot", "bot-2"))
    earlier = sent.model_copy(update={"access_code": access_codes.generate()})
    send = api.pub.send

    async def send_and_register_the_earlier(*args: Any) -> None:
        await send(*args)
        api.pub.register(earlier)

    api.pub.send = send_and_register_the_earlier  # type: ignore[method-assign]
    r = await api.post(sent.model_dump_json().encode(), "chatbot")
    assert r.status_code == 201 and r.json()["registration_number"] and "access_code" not in r.json()


@pytest.mark.parametrize(("payload", "ctype", "status", "code"), [
    (b"{not json", "application/json", 400, "bad_json"),
    (b"{}", "text/plain", 415, "unsupported_media_type"),
    (b'{"channel": "site_form"}', "application/json", 422, "missing_field"),
    (b"x" * 300_000, "application/json", 413, "too_large"),
])
async def test_bad_bodies_are_problems_and_copied_to_the_rejected_topic(payload, ctype, status, code):
    api = Api()
    p = problem(await api.post(payload, ctype=ctype), status, code)
    assert p["detail"] == MESSAGES_RU[code]
    assert api.pub.rejected() == [(code, b"" if code == "too_large" else payload)]


async def test_a_different_submission_under_a_registered_source_id_is_409_and_copied():
    api = Api()
    assert (await api.post(body(source_id="dup"))).status_code == 201
    problem(await api.post(body(source_id="dup", text="Совсем другое: не работает лифт.")), 409, "conflicting_duplicate")
    assert [r for r, _ in api.pub.rejected()] == ["conflicting_duplicate"]


async def test_a_broker_that_does_not_take_it_is_503():
    api = Api()
    api.pub.fail = True
    problem(await api.post(body()), 503, "unavailable")


async def test_the_status_answers_only_the_channels_service_and_operators():
    api = Api()
    await api.post(body("hotline", "call-1"), "callcentre")
    for who in ("callcentre", "operator", "admin"):
        r = await api.status("hotline", "call-1", who)
        assert r.status_code == 200 and r.json()["registration_number"] == "ZH-2026-0000001", who
    problem(await api.status("hotline", "call-1"), 401, "unauthenticated")
    for who in ("chatbot", "site", "citizen", "party"):
        problem(await api.status("hotline", "call-1", who), 403, "forbidden")
    problem(await api.status("hotline", "nope", "operator"), 404, "not_found")
    assert problem(await api.status("pigeon", "x", "operator"), 422, "invalid_data")["fields"] == ["channel"]
