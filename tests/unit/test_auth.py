"""Token checks (joserfc against a JWKS served through httpx's mock transport), problem details, rate limits."""

from __future__ import annotations

import base64
import json
import time

import httpx
import pytest
from fastapi import APIRouter, Depends
from fastapi.testclient import TestClient
from joserfc import jwt
from joserfc.jwk import OctKey

from devtools.dev_issuer import DevIssuer
from zhkh_runtime.auth import AuthError, Principal, TokenVerifier
from zhkh_runtime.http import Auth, Problem, RateLimit, build_app
from zhkh_runtime.settings import RuntimeSettings

ISS = "https://idp.example.test/realms/zhkh"


class Jwks:
    def __init__(self, *issuers: DevIssuer) -> None:
        self.issuers = list(issuers)
        self.fetches = 0

    def handler(self, request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/.well-known/openid-configuration"):
            return httpx.Response(200, json={"issuer": ISS, "jwks_uri": ISS + "/certs"})
        self.fetches += 1
        return httpx.Response(200, json={"keys": [k for i in self.issuers for k in i.jwks()["keys"]]})


def verifier(jwks: Jwks, **kw: object) -> TokenVerifier:
    s = RuntimeSettings(auth_issuer=ISS, auth_jwks_min_refresh_s=0, **kw)
    return TokenVerifier(s, httpx.AsyncClient(transport=httpx.MockTransport(jwks.handler)))


async def test_a_valid_token_gives_the_principal_with_roles_parties_and_channels():
    iss = DevIssuer(ISS)
    v = verifier(Jwks(iss))
    p = await v.verify(iss.mint("u-1", ["party", "not-a-role"], party_ids=["uk-zarechye"], channels=["hotline"]))
    assert p == Principal("u-1", frozenset({"party"}), ("uk-zarechye",), (), "u-1")
    s = await v.verify(iss.mint("svc", ["service"], channels=["chatbot", "social"], client="chatbot-adapter"))
    assert (s.roles, s.channels, s.client, s.party_ids) == (frozenset({"service"}), ("chatbot", "social"),
                                                            "chatbot-adapter", ())


@pytest.mark.parametrize("case", ["expired", "future", "audience", "issuer", "other_key", "tampered", "no_sub",
                                  "alg_none", "hs256_confusion", "garbage", "empty"])
async def test_bad_tokens_are_refused_with_a_fixed_code(case):
    iss = DevIssuer(ISS)
    v = verifier(Jwks(iss))
    now = time.time()
    good = iss.mint("u", ["admin"])
    token = {
        "expired": lambda: iss.mint("u", ["admin"], ttl_s=60, now=now - 3600),
        "future": lambda: iss.mint("u", ["admin"], now=now + 3600),
        "audience": lambda: iss.mint("u", ["admin"], audience="another-api"),
        "issuer": lambda: iss.mint("u", ["admin"], issuer="https://evil.example.test"),
        "other_key": lambda: DevIssuer(ISS).mint("u", ["admin"]),
        "tampered": lambda: good.rsplit(".", 1)[0][:-4] + "AAAA." + good.rsplit(".", 1)[1],
        "no_sub": lambda: iss.mint("", ["admin"]),
        "alg_none": lambda: ".".join(base64.urlsafe_b64encode(json.dumps(x).encode()).rstrip(b"=").decode() for x in (
            {"alg": "none"}, {"iss": ISS, "aud": "zhkh-appeals", "sub": "u", "exp": int(now) + 600, "roles": ["admin"]}
        )) + ".",
        # a public key used as an HMAC secret: refused because HS256 is not an allowed algorithm
        "hs256_confusion": lambda: jwt.encode({"alg": "HS256", "kid": iss.key.kid}, {
            "iss": ISS, "aud": "zhkh-appeals", "sub": "u", "exp": int(now) + 600, "roles": ["admin"]},
            OctKey.import_key(json.dumps(iss.jwks()["keys"][0]).encode())),
        "garbage": lambda: "not.a.jwt",
        "empty": lambda: "",
    }[case]()
    with pytest.raises(AuthError) as err:
        await v.verify(token)
    assert err.value.code in {"invalid_token", "token_expired"}
    if case == "expired":
        assert err.value.code == "token_expired"


async def test_leeway_allows_small_clock_skew_only():
    iss = DevIssuer(ISS)
    v = verifier(Jwks(iss), auth_leeway_s=60)
    assert await v.verify(iss.mint("u", ["admin"], ttl_s=60, now=time.time() - 90))  # expired 30 s ago: within skew
    with pytest.raises(AuthError):
        await v.verify(iss.mint("u", ["admin"], ttl_s=60, now=time.time() - 200))


async def test_a_rotated_key_is_fetched_again_and_discovery_finds_the_jwks():
    old, new = DevIssuer(ISS), DevIssuer(ISS)
    jwks = Jwks(old)
    v = verifier(jwks)
    assert (await v.verify(old.mint("u", ["admin"]))).subject == "u"
    jwks.issuers.append(new)  # the IdP rotates its key
    assert (await v.verify(new.mint("v", ["admin"]))).subject == "v"
    assert jwks.fetches == 2


async def test_unconfigured_issuer_refuses_everything():
    v = TokenVerifier(RuntimeSettings(auth_issuer=""))
    with pytest.raises(AuthError) as err:
        await v.verify(DevIssuer(ISS).mint("u", ["admin"]))
    assert err.value.code == "auth_not_configured"


async def test_keycloak_style_claims_are_read_from_configured_paths():
    iss = DevIssuer(ISS)
    v = verifier(Jwks(iss), auth_roles_claim="realm_access.roles", auth_party_claim="zhkh.parties")
    tok = iss.mint("kc-user", [], extra={"realm_access": {"roles": ["party", "offline_access"]},
                                         "zhkh": {"parties": ["tsj-mira-7"]}})
    p = await v.verify(tok)
    assert (p.roles, p.party_ids) == (frozenset({"party"}), ("tsj-mira-7",))


def _app(v: TokenVerifier) -> TestClient:
    auth = Auth(v, "test")
    api = APIRouter()
    limit = RateLimit("2/minute", "t")

    @api.get("/op")
    async def op(p: Principal = Depends(auth.require("operator"))) -> dict[str, str]:
        return {"sub": p.subject}

    @api.get("/limited")
    async def limited() -> dict[str, str]:
        limit.hit("client")
        return {"ok": "yes"}

    @api.get("/boom")
    async def boom() -> None:
        raise RuntimeError("secret detail +79120000000")

    @api.get("/teapot")
    async def teapot() -> None:
        raise Problem(409, "conflicting_duplicate", "Уже есть.", ["source_id"])

    async def ok() -> dict[str, bool]:
        return {"ready": True}

    return TestClient(build_app("t", "", "1", [api], ok, ok, None), raise_server_exceptions=False)


def test_every_error_is_problem_details():
    iss = DevIssuer(ISS)
    c = _app(verifier(Jwks(iss)))
    cases = {
        ("GET", "/op", None): (401, "unauthenticated"),
        ("GET", "/op", "Bearer nope"): (401, "invalid_token"),
        ("GET", "/op", "Bearer " + iss.mint("u", ["party"])): (403, "forbidden"),
        ("GET", "/nowhere", None): (404, "not_found"),
        ("POST", "/op", None): (405, "method_not_allowed"),
        ("GET", "/boom", None): (500, "internal_error"),
        ("GET", "/teapot", None): (409, "conflicting_duplicate"),
    }
    for (method, path, authz), (status, code) in cases.items():
        r = c.request(method, path, headers={"authorization": authz} if authz else {})
        assert r.status_code == status, (path, r.text)
        assert r.headers["content-type"] == "application/problem+json"
        body = r.json()
        assert (body["status"], body["code"], body["type"]) == (status, code, "urn:zhkh-appeals:problem:" + code)
        assert body["title"] and "detail" in body and "+7912" not in r.text
    assert c.get("/op", headers={"authorization": "Bearer " + iss.mint("u", ["operator"])}).json() == {"sub": "u"}
    assert c.get("/op").headers["www-authenticate"].startswith("Bearer")
    assert c.post("/op").headers["allow"] == "GET"


def test_rate_limit_answers_429_with_retry_after():
    c = _app(verifier(Jwks(DevIssuer(ISS))))
    assert [c.get("/limited").status_code for _ in range(2)] == [200, 200]
    r = c.get("/limited")
    assert r.status_code == 429 and r.json()["code"] == "rate_limited" and 1 <= int(r.headers["retry-after"]) <= 61


def test_every_limit_of_a_rate_limit_holds():
    """``30/minute;300/hour``: the second limit counts too (not only the first one given)."""
    limit = RateLimit("5/minute;2/hour", "t2")
    limit.hit("a")
    limit.hit("a")
    with pytest.raises(Problem) as over:
        limit.hit("a")
    assert over.value.status == 429 and int(over.value.headers["Retry-After"]) > 60  # the hour's window
    assert not limit.test("a") and limit.test("b")
    assert limit.count("b") and limit.count("b") and not limit.count("b")  # the third in the hour is over
