"""The HTTP side of every service: FastAPI (OpenAPI 3.1 at /openapi.json, generated from the code),
one error shape for every answer (RFC 9457 problem details), bearer-token security, rate limits.

Every error a service answers — 400/401/403/404/405/409/413/415/422/429/500/503 — is
``application/problem+json``::

    {"type": "urn:zhkh-appeals:problem:<code>", "title": "...", "status": 403,
     "detail": "<Russian text for people>", "instance": "/api/v1/...", "code": "<code>", "fields": [...]}

``code`` is the fixed machine-readable reason (the same codes as the rejected topic's x-dlq-reason);
``fields`` names the offending inputs, never their values.
"""

from __future__ import annotations

import base64
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any

import structlog
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from limits import parse_many
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter
from prometheus_client import CONTENT_TYPE_LATEST, Counter, generate_latest
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from .auth import AuthError, Principal, TokenVerifier

log = structlog.get_logger(__name__)

PROBLEM_TYPE = "urn:zhkh-appeals:problem:"
PROBLEM_JSON = "application/problem+json"

TITLES = {
    400: "Bad request", 401: "Unauthorized", 403: "Forbidden", 404: "Not found", 405: "Method not allowed",
    409: "Conflict", 413: "Content too large", 415: "Unsupported media type", 422: "Unprocessable content",
    429: "Too many requests", 500: "Internal error", 503: "Service unavailable",
}
MESSAGES_RU = {
    "not_found": "Такого адреса или объекта нет.",
    "method_not_allowed": "Этот метод здесь не поддерживается.",
    "internal_error": "Внутренняя ошибка сервиса. Повторите запрос позже.",
    "unauthenticated": "Нужна авторизация: передайте токен доступа (Authorization: Bearer).",
    "invalid_token": "Токен доступа недействителен.",
    "token_expired": "Срок действия токена доступа истёк.",
    "auth_not_configured": "Авторизация на сервисе не настроена: запрос отклонён.",
    "issuer_unreachable": "Сервис авторизации недоступен. Повторите запрос позже.",
    "forbidden": "Недостаточно прав для этого действия.",
    "rate_limited": "Слишком много запросов. Повторите позже.",
    "invalid_data": "Данные запроса заданы неверно.",
    "invalid_cursor": "Неверный курсор страницы: возьмите его из ответа на предыдущую страницу.",
    "unavailable": "Сервис временно недоступен. Повторите запрос позже.",
}

AUTH_REFUSED = Counter("zhkh_http_auth_refused", "HTTP requests refused by authentication or authorisation",
                       ["service", "code"])


class ProblemDetails(BaseModel):
    """RFC 9457 problem details, with our two extension members."""

    type: str = Field(description="urn:zhkh-appeals:problem:<code>")
    title: str
    status: int
    detail: str = Field(description="For people (Russian)")
    instance: str | None = Field(default=None, description="The request path")
    code: str = Field(description="Fixed machine-readable reason")
    fields: list[str] = Field(default_factory=list, description="Names of the offending inputs (never their values)")


class Problem(Exception):
    """Raise anywhere in a route: answered as problem details."""

    def __init__(self, status: int, code: str, detail: str | None = None, fields: Sequence[str] = (),
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(code)
        self.status, self.code, self.fields, self.headers = status, code, list(fields), headers or {}
        self.detail = detail if detail is not None else MESSAGES_RU.get(code, "")


def problem_response(status: int, code: str, detail: str | None = None, fields: Sequence[str] = (),
                     instance: str | None = None, headers: dict[str, str] | None = None) -> JSONResponse:
    body = ProblemDetails(
        type=PROBLEM_TYPE + code, title=TITLES.get(status, "Error"), status=status,
        detail=detail if detail is not None else MESSAGES_RU.get(code, ""), instance=instance, code=code,
        fields=list(fields),
    )
    return JSONResponse(body.model_dump(), status_code=status, media_type=PROBLEM_JSON, headers=headers)


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries for the given error statuses (all problem details)."""
    return {s: {"model": ProblemDetails, "description": TITLES.get(s, "Error"),
                "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/ProblemDetails"}}}}
            for s in statuses}


def _validation_fields(exc: RequestValidationError) -> list[str]:
    out: list[str] = []
    for err in exc.errors():
        loc = [str(p) for p in err.get("loc", ()) if p not in ("body", "query", "path", "header")]
        name = ".".join(loc)[:100]
        if name and name not in out:
            out.append(name)
    return out[:20]


def install_problem_handlers(app: FastAPI) -> None:
    async def on_problem(request: Request, exc: Problem) -> JSONResponse:
        return problem_response(exc.status, exc.code, exc.detail, exc.fields, request.url.path, exc.headers)

    async def on_http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed", 401: "unauthenticated", 403: "forbidden"}.get(
            exc.status_code, "invalid_data" if exc.status_code < 500 else "internal_error")
        return problem_response(exc.status_code, code, None, (), request.url.path, dict(exc.headers or {}))

    async def on_validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        return problem_response(422, "invalid_data", None, _validation_fields(exc), request.url.path)

    async def on_error(request: Request, exc: Exception) -> JSONResponse:
        log.error("http_route_failed", path=request.scope.get("route").path if request.scope.get("route") else None,
                  error_type=type(exc).__name__)
        return problem_response(500, "internal_error", None, (), request.url.path)

    app.add_exception_handler(Problem, on_problem)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, on_http)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, on_validation)  # type: ignore[arg-type]
    app.add_exception_handler(Exception, on_error)


# ---- authentication and authorisation ----------------------------------------------------------

bearer = HTTPBearer(auto_error=False, description="OIDC access token (JWT) from the deployment's IdP")


class Auth:
    """FastAPI dependencies for one service: ``Depends(auth.principal)`` (any valid token),
    ``Depends(auth.require("operator", "admin"))`` (one of the roles), ``Depends(auth.optional)``."""

    def __init__(self, verifier: TokenVerifier, service: str) -> None:
        self.verifier, self.service = verifier, service

    async def _check(self, creds: HTTPAuthorizationCredentials | None) -> Principal:
        if creds is None or creds.scheme.lower() != "bearer":
            AUTH_REFUSED.labels(self.service, "unauthenticated").inc()
            raise Problem(401, "unauthenticated", headers={"WWW-Authenticate": 'Bearer realm="zhkh-appeals"'})
        try:
            return await self.verifier.verify(creds.credentials)
        except AuthError as exc:
            AUTH_REFUSED.labels(self.service, exc.code).inc()
            status = 503 if exc.code == "issuer_unreachable" else 401
            raise Problem(status, exc.code, headers={
                "WWW-Authenticate": 'Bearer realm="zhkh-appeals", error="invalid_token"'}) from None

    async def principal(self, creds: HTTPAuthorizationCredentials | None = Depends(bearer)) -> Principal:
        return await self._check(creds)

    async def optional(self, creds: HTTPAuthorizationCredentials | None = Depends(bearer)) -> Principal | None:
        return None if creds is None else await self._check(creds)

    def require(self, *roles: str) -> Callable[..., Awaitable[Principal]]:
        async def dep(creds: HTTPAuthorizationCredentials | None = Depends(bearer)) -> Principal:
            p = await self._check(creds)
            if not p.has(*roles):
                AUTH_REFUSED.labels(self.service, "forbidden").inc()
                raise Problem(403, "forbidden")
            return p

        dep.__name__ = "require_" + "_or_".join(roles)
        return dep


class RateLimit:
    """Moving-window limits per key (client address, appeal number...) from the ``limits`` library,
    e.g. ``RateLimit("5/minute;30/hour")``: every limit given must hold. Counters live in this process
    (memory storage): with N replicas a client gets up to N times the limit; put the replicas behind
    sticky routing or a shared storage (limits supports Redis/Memcached/MongoDB) if that matters."""

    def __init__(self, spec: str, name: str) -> None:
        self.items = parse_many(spec)
        if not self.items:
            raise ValueError("no limit given")
        self.name = name
        self.limiter = MovingWindowRateLimiter(MemoryStorage())

    def hit(self, *key: str) -> None:
        """Count one request against each limit; over one of them: 429 with Retry-After."""
        for item in self.items:
            if not self.limiter.hit(item, self.name, *key):
                reset = self.limiter.get_window_stats(item, self.name, *key).reset_time
                retry = max(1, int(reset - time.time()) + 1)
                raise Problem(429, "rate_limited", headers={"Retry-After": str(retry)})

    def count(self, *key: str) -> bool:
        """Count one event against each limit without answering 429 (False: a limit is now exceeded)."""
        return all([self.limiter.hit(item, self.name, *key) for item in self.items])

    def test(self, *key: str) -> bool:
        return all(self.limiter.test(item, self.name, *key) for item in self.items)


def encode_time_cursor(at: datetime, item_id: str) -> str:
    """A page cursor after the item (``at``, ``item_id``) of a listing ordered by time, then id."""
    return base64.urlsafe_b64encode(f"{at.isoformat()}|{item_id}".encode()).decode()


def decode_time_cursor(cursor: str, field: str = "cursor") -> tuple[datetime, str]:
    """The (time, uuid) an ``encode_time_cursor`` cursor names; anything else is the caller's error (400
    ``invalid_cursor`` on ``field``)."""
    try:
        at, item_id = base64.urlsafe_b64decode(cursor.encode()).decode().split("|", 1)
        return datetime.fromisoformat(at), str(uuid.UUID(item_id))
    except (ValueError, UnicodeDecodeError):
        raise Problem(400, "invalid_cursor", None, [field]) from None


def client_address(request: Request) -> str:
    """The caller's address (uvicorn applies X-Forwarded-For only from ZHKH_FORWARDED_ALLOW_IPS)."""
    return request.client.host if request.client else "unknown"


# ---- the app ----------------------------------------------------------------------------------

def build_app(title: str, description: str, version: str, routers: Sequence[APIRouter],
              health: Callable[[], Awaitable[dict[str, Any]]], ready: Callable[[], Awaitable[dict[str, Any]]],
              lifespan: Any) -> FastAPI:
    app = FastAPI(title=title, description=description, version=version, lifespan=lifespan,
                  docs_url="/docs", redoc_url=None, openapi_url="/openapi.json",
                  license_info={"name": "Apache-2.0", "identifier": "Apache-2.0"},
                  servers=[{"url": "/", "description": "this service"}])
    install_problem_handlers(app)
    common = problem_responses(405, 500)

    @app.get("/health", include_in_schema=False)
    async def _health() -> dict[str, Any]:
        return await health()

    @app.get("/ready", include_in_schema=False)
    async def _ready() -> Response:
        body = await ready()
        return JSONResponse(body, status_code=200 if body.get("ready") else 503)

    @app.get("/metrics", include_in_schema=False)
    async def _metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    for router in routers:
        app.include_router(router, responses=common)
    extend_openapi(app, _problem_everywhere)
    return app


def extend_openapi(app: FastAPI, amend: Callable[[dict[str, Any], dict[str, Any]], None]) -> None:
    """Change the generated OpenAPI document once, when it is first built: ``amend(document,
    components.schemas)``. Several amendments chain in the order they were added."""
    original = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = original()
        amend(schema, schema.setdefault("components", {}).setdefault("schemas", {}))
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def _problem_everywhere(schema: dict[str, Any], comps: dict[str, Any]) -> None:
    """ProblemDetails in components, and every 4xx/5xx answer of every operation is problem details
    (FastAPI's own 422 included)."""
    comps.setdefault("ProblemDetails", ProblemDetails.model_json_schema())
    problem = {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/ProblemDetails"}}}
    for path_item in schema.get("paths", {}).values():
        for op in path_item.values():
            if not isinstance(op, dict):
                continue
            for status, resp in op.get("responses", {}).items():
                if str(status)[0] in "45":
                    resp["content"] = dict(problem)
                    resp["description"] = TITLES.get(int(status), resp.get("description", "Error"))
    for unused in ("HTTPValidationError", "ValidationError"):
        comps.pop(unused, None)
