"""A small OIDC token issuer for the local run and the tests. The services never know it is a dev
issuer: they see an issuer URL, its discovery document, its JWKS and RS256-signed JWTs, exactly as
from Keycloak or any other IdP (see docs/operations.md "Identity").

    python -m devtools.dev_issuer --port 18443 [--key-file key.json]

    GET  /.well-known/openid-configuration     issuer, jwks_uri, token_endpoint
    GET  /jwks                                 the public key(s)
    POST /token                                client-credentials grant (form: grant_type=client_credentials,
                                               client_id, client_secret; or HTTP Basic) for the clients below

Clients (dev secrets, never for production): see ``CLIENTS``. ``DevIssuer.mint`` makes a token for
any subject/roles in-process (tests, the launcher's printed demo tokens).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import secrets
import time
import uuid
from urllib.parse import parse_qs
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvicorn
from joserfc import jwt
from joserfc.jwk import RSAKey
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

AUDIENCE = "zhkh-appeals"


@dataclass(frozen=True)
class Client:
    secret: str
    roles: tuple[str, ...]
    party_ids: tuple[str, ...] = ()
    channels: tuple[str, ...] = ()


CLIENTS: dict[str, Client] = {
    # a managing company's own system acting for its party
    "uk-zarechye-system": Client("dev-secret-uk-zarechye", ("party",), party_ids=("uk-zarechye",)),
    # the contact centre's software: operators' actions and hotline submissions
    "callcentre": Client("dev-secret-callcentre", ("operator", "service"), channels=("hotline",)),
    # the ГИС ЖКХ bridge (gis_sync's own HTTP calls, if any) and channel adapters
    "gis-sync": Client("dev-secret-gis-sync", ("service",), channels=("gis",)),
    "chatbot-adapter": Client("dev-secret-chatbot", ("service",), channels=("chatbot", "social")),
    "reception-adapter": Client("dev-secret-reception", ("service",), channels=("reception", "paper")),
}
"""Dev clients of the client-credentials grant (ids and secrets are public: dev only)."""

DEMO_USERS: dict[str, dict[str, Any]] = {
    "demo-party": {"roles": ["party"], "party_ids": ["uk-zarechye"]},
    "demo-operator": {"roles": ["operator"]},
    "demo-inspector": {"roles": ["inspector"]},
    "demo-analyst": {"roles": ["analyst"]},
    "demo-admin": {"roles": ["admin"]},
}
"""People the launcher prints ready tokens for."""


class DevIssuer:
    def __init__(self, issuer: str, key: RSAKey | None = None, audience: str = AUDIENCE) -> None:
        self.issuer = issuer.rstrip("/")
        self.audience = audience
        self.key = key or RSAKey.generate_key(2048, parameters={"use": "sig", "alg": "RS256"}, auto_kid=True)

    @classmethod
    def with_key_file(cls, issuer: str, path: Path) -> DevIssuer:
        """A key kept across restarts (tokens printed earlier stay valid)."""
        if path.exists():
            key = RSAKey.import_key(json.loads(path.read_text()))
        else:
            key = RSAKey.generate_key(2048, parameters={"use": "sig", "alg": "RS256"}, auto_kid=True)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(key.as_dict(private=True)))
            path.chmod(0o600)
        return cls(issuer, key)

    def jwks(self) -> dict[str, Any]:
        return {"keys": [self.key.as_dict(private=False)]}

    def mint(self, subject: str, roles: list[str] | tuple[str, ...], ttl_s: int = 3600, *,
             party_ids: list[str] | tuple[str, ...] = (), channels: list[str] | tuple[str, ...] = (),
             client: str | None = None, audience: str | None = None, issuer: str | None = None,
             now: float | None = None, extra: dict[str, Any] | None = None) -> str:
        iat = int(now if now is not None else time.time())
        claims: dict[str, Any] = {
            "iss": issuer or self.issuer, "aud": audience or self.audience, "sub": subject, "iat": iat, "nbf": iat,
            "exp": iat + ttl_s, "jti": str(uuid.uuid4()), "roles": list(roles), "azp": client or subject,
        }
        if party_ids:
            claims["party_ids"] = list(party_ids)
        if channels:
            claims["channels"] = list(channels)
        claims.update(extra or {})
        return jwt.encode({"alg": "RS256", "kid": self.key.kid, "typ": "JWT"}, claims, self.key, algorithms=["RS256"])

    def demo_tokens(self, ttl_s: int = 12 * 3600) -> dict[str, str]:
        return {name: self.mint(name, u["roles"], ttl_s, party_ids=u.get("party_ids", ())) for name, u in DEMO_USERS.items()}

    # ---- HTTP ------------------------------------------------------------------------------------

    def app(self) -> Starlette:
        async def discovery(request: Request) -> JSONResponse:  # noqa: ARG001
            return JSONResponse({
                "issuer": self.issuer, "jwks_uri": f"{self.issuer}/jwks", "token_endpoint": f"{self.issuer}/token",
                "grant_types_supported": ["client_credentials"], "id_token_signing_alg_values_supported": ["RS256"],
                "token_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic"],
            })

        async def jwks(request: Request) -> JSONResponse:  # noqa: ARG001
            return JSONResponse(self.jwks(), headers={"cache-control": "max-age=300"})

        async def token(request: Request) -> JSONResponse:
            form = {k: v[0] for k, v in parse_qs((await request.body()).decode("utf-8", "replace")).items()}
            client_id, secret = form.get("client_id"), form.get("client_secret")
            basic = request.headers.get("authorization", "")
            if basic.lower().startswith("basic "):
                with contextlib.suppress(ValueError, UnicodeDecodeError):
                    client_id, _, secret = base64.b64decode(basic[6:]).decode().partition(":")
            if form.get("grant_type") != "client_credentials":
                return JSONResponse({"error": "unsupported_grant_type"}, 400)
            c = CLIENTS.get(str(client_id or ""))
            if c is None or not secrets.compare_digest(c.secret, str(secret or "")):
                return JSONResponse({"error": "invalid_client"}, 401)
            ttl = 300
            tok = self.mint(f"service-account-{client_id}", c.roles, ttl, party_ids=c.party_ids, channels=c.channels,
                            client=str(client_id))
            return JSONResponse({"access_token": tok, "token_type": "Bearer", "expires_in": ttl},
                                headers={"cache-control": "no-store"})

        return Starlette(routes=[
            Route("/.well-known/openid-configuration", discovery),
            Route("/jwks", jwks),
            Route("/token", token, methods=["POST"]),
        ])


@contextlib.asynccontextmanager
async def serving(port: int, host: str = "127.0.0.1", issuer: DevIssuer | None = None) -> AsyncIterator[DevIssuer]:
    """Serve a dev issuer in this event loop (tests)."""
    iss = issuer or DevIssuer(f"http://{host}:{port}")
    server = uvicorn.Server(uvicorn.Config(iss.app(), host=host, port=port, log_config=None, lifespan="off"))
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            if task.done():
                task.result()
            await asyncio.sleep(0.02)
        yield iss
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=18443)
    ap.add_argument("--key-file", default=None, help="keep the signing key here (JSON JWK, created if missing)")
    args = ap.parse_args(argv)
    url = f"http://{args.host}:{args.port}"
    iss = DevIssuer.with_key_file(url, Path(args.key_file)) if args.key_file else DevIssuer(url)
    uvicorn.run(iss.app(), host=args.host, port=args.port, log_config=None, access_log=False)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
