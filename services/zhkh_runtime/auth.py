"""Who is calling: OIDC bearer tokens (JWT) checked against the issuer's JWKS, and the principal
they carry.

The token library is joserfc (signature, algorithm allow-list, key set, and the registered claims
``iss``/``aud``/``exp``/``nbf`` with a leeway): it is maintained, typed, implements the JOSE RFCs
whole and has no optional crypto backends to configure. We write no crypto ourselves. The JWKS is
fetched from ``ZHKH_AUTH_JWKS_URL`` (or the issuer's discovery document) and fetched again when a
token names a key id it does not hold (key rotation), at most once per ``auth_jwks_min_refresh_s``.

Any standard IdP works (Keycloak, Authentik, ADFS, Yandex ID for organisations...): roles and party
ids are read from configurable claims (dotted paths, e.g. ``realm_access.roles`` for Keycloak's
default mapper). Roles: ``citizen``, ``party``, ``operator``, ``inspector``, ``analyst``, ``admin``,
``service``. A ``party`` principal is bound to the party ids in its party claim; a ``service``
principal (a channel adapter, the call-centre software) to the intake channels in its channel claim.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import httpx
import structlog
from joserfc import jwt
from joserfc.errors import ExpiredTokenError, InvalidKeyIdError, JoseError
from joserfc.jwk import KeySet
from pydantic import Field

log = structlog.get_logger(__name__)

ROLES = ("citizen", "party", "operator", "inspector", "analyst", "admin", "service")


class AuthFields:
    """Settings of the token check (mixed into RuntimeSettings; env ZHKH_AUTH_*)."""

    auth_issuer: str = Field(default="", description="The IdP's issuer URL (the token's iss). Empty: every "
                             "authenticated endpoint answers 401 (the service refuses rather than trusts)")
    auth_audience: str = Field(default="zhkh-appeals", description="The token's aud must contain this")
    auth_jwks_url: str = Field(default="", description="JWKS URL; empty: jwks_uri from the issuer's "
                               "/.well-known/openid-configuration")
    auth_algorithms: tuple[str, ...] = Field(default=("RS256", "PS256", "ES256", "EdDSA"),
                                             description="Accepted signature algorithms (never 'none' or HMAC)")
    auth_leeway_s: int = Field(default=60, ge=0, le=600, description="Clock skew allowed on exp/nbf/iat")
    auth_roles_claim: str = Field(default="roles", description="Dotted path of the roles list, e.g. realm_access.roles")
    auth_party_claim: str = Field(default="party_ids", description="Dotted path of the party ids of a party principal")
    auth_channels_claim: str = Field(default="channels", description="Dotted path of the intake channels of a "
                                     "service principal")
    auth_service_claim: str = Field(default="azp", description="Claim naming a machine client (for audit and "
                                    "for ZHKH_AUTH_GIS_CLIENT)")
    auth_jwks_min_refresh_s: float = Field(default=30.0, ge=0, description="Fetch the JWKS again at most this "
                                           "often when a token names an unknown key")
    auth_http_timeout_s: float = Field(default=5.0, gt=0)


@dataclass(frozen=True)
class Principal:
    """An authenticated caller."""

    subject: str
    roles: frozenset[str]
    party_ids: tuple[str, ...] = ()
    channels: tuple[str, ...] = ()
    client: str | None = None

    def has(self, *roles: str) -> bool:
        return bool(self.roles.intersection(roles))

    def role_for_audit(self) -> str:
        for r in ("admin", "operator", "inspector", "analyst", "party", "service", "citizen"):
            if r in self.roles:
                return r
        return "none"


class AuthError(Exception):
    """The token is missing or not acceptable. ``code`` is a fixed reason (never token content)."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


def claim(claims: dict[str, Any], path: str) -> Any:
    node: Any = claims
    for part in path.split("."):
        if not isinstance(node, dict):
            return None
        node = node.get(part)
    return node


def _strings(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        return tuple(v for v in value.replace(",", " ").split() if v)
    if isinstance(value, Iterable) and not isinstance(value, (bytes, dict)):
        return tuple(str(v) for v in value if isinstance(v, (str, int)))
    return ()


class TokenVerifier:
    """Checks bearer tokens against the configured issuer. One per process; safe to share."""

    def __init__(self, settings: AuthFields, client: httpx.AsyncClient | None = None) -> None:
        self.s = settings
        self._client = client
        self._keys: KeySet | None = None
        self._fetched_at = 0.0
        self._lock = asyncio.Lock()

    @property
    def configured(self) -> bool:
        return bool(self.s.auth_issuer)

    async def _get(self, url: str) -> dict[str, Any]:
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self.s.auth_http_timeout_s)
        r = await self._client.get(url)
        r.raise_for_status()
        return r.json()

    async def _jwks_url(self) -> str:
        if self.s.auth_jwks_url:
            return self.s.auth_jwks_url
        doc = await self._get(self.s.auth_issuer.rstrip("/") + "/.well-known/openid-configuration")
        return str(doc["jwks_uri"])

    async def keys(self, refresh: bool = False) -> KeySet:
        async with self._lock:
            stale = refresh and time.monotonic() - self._fetched_at >= self.s.auth_jwks_min_refresh_s
            if self._keys is None or stale:
                try:
                    data = await self._get(await self._jwks_url())
                    self._keys = KeySet.import_key_set(data)
                    self._fetched_at = time.monotonic()
                except Exception as exc:  # noqa: BLE001 - the IdP is down: 503-ish, but no token passes
                    log.warning("jwks_fetch_failed", error_type=type(exc).__name__)
                    if self._keys is None:
                        raise AuthError("issuer_unreachable") from None
            return self._keys

    async def verify(self, token: str) -> Principal:
        if not self.configured:
            raise AuthError("auth_not_configured")
        if not token or len(token) > 16_384:
            raise AuthError("invalid_token")
        keys = await self.keys()
        try:
            decoded = self._decode(token, keys)
        except MissingKid:
            try:
                decoded = self._decode(token, await self.keys(refresh=True))
            except MissingKid:
                raise AuthError("invalid_token") from None
        return self._principal(decoded.claims)

    def _decode(self, token: str, keys: KeySet) -> jwt.Token:
        try:
            decoded = jwt.decode(token, keys, algorithms=list(self.s.auth_algorithms))
        except InvalidKeyIdError:  # no key with this kid in the set: perhaps the IdP rotated its key
            raise MissingKid() from None
        except (JoseError, ValueError):
            raise AuthError("invalid_token") from None
        registry = jwt.JWTClaimsRegistry(
            leeway=self.s.auth_leeway_s,
            iss={"essential": True, "value": self.s.auth_issuer},
            aud={"essential": True, "value": self.s.auth_audience},
            exp={"essential": True},
            sub={"essential": True},
        )
        try:
            registry.validate(decoded.claims)
        except ExpiredTokenError:
            raise AuthError("token_expired") from None
        except JoseError:
            raise AuthError("invalid_token") from None
        return decoded

    def _principal(self, claims: dict[str, Any]) -> Principal:
        roles = frozenset(r for r in _strings(claim(claims, self.s.auth_roles_claim)) if r in ROLES)
        parties = _strings(claim(claims, self.s.auth_party_claim)) if "party" in roles else ()
        channels = _strings(claim(claims, self.s.auth_channels_claim)) if "service" in roles else ()
        client = claim(claims, self.s.auth_service_claim)
        return Principal(subject=str(claims["sub"])[:200], roles=roles, party_ids=parties[:50], channels=channels[:20],
                         client=str(client)[:200] if client else None)

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()


class MissingKid(Exception):
    pass
