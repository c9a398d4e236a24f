"""Builds a service process: broker, publisher, Mongo, HTTP (/health, /ready, /metrics), lifecycle.

Start order: topics -> Mongo indexes -> publisher -> broker (subscribers). Stop order is the
reverse: FastStream stops the subscribers (waiting up to graceful_timeout for in-flight
handlers, whose offsets are then committed), then the publisher and Mongo close.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any
from urllib.parse import parse_qs

import structlog
from faststream.asgi import AsgiFastStream, AsgiResponse, get
from faststream.asgi.handlers import HttpHandler
from faststream.asgi.types import ASGIApp, Receive, Scope, Send
from prometheus_client import make_asgi_app

from zhkh_contracts import Topics

from .errors import safe_detail
from .consumer import ConsumerLoop
from .engine import Emitter, Engine, Handlers
from .kafka import RecordPublisher, client_kwargs, ensure_topics, make_broker
from .lease import Lease
from .logging import configure_logging
from .mongo import MongoTracking, make_mongo
from .settings import RuntimeSettings

log = structlog.get_logger(__name__)

Hook = Callable[[], Awaitable[None]]


class ServiceRuntime:
    """The shared moving parts of one service process."""

    def __init__(self, settings: RuntimeSettings) -> None:
        self.settings = settings
        self.broker = make_broker(settings)
        self.publisher = RecordPublisher(settings)
        self.mongo = make_mongo(settings)
        self.db = self.mongo[settings.mongo_db]
        self.topics = Topics(settings.topic_prefix)
        self.started = False  # set once the subscribers run; /ready reports it
        self._startup: list[Hook] = []
        self._after_startup: list[Hook] = []
        self._shutdown: list[Hook] = []
        self._loops: dict[str, Hook] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self.emitter = Emitter(settings.service_name, self.topics)
        self._consumers: list[ConsumerLoop] = []

    def process(self, topics: tuple[str, ...], handlers: Handlers, make_uow: Callable[[Any], Any], *,
                strict_types: bool = False, strict_topics: tuple[str, ...] = (), inbound: bool = False,
                pattern: str | None = None, reject_topic: str | None = None,
                messages_ru: dict[str, str] | None = None) -> Engine:
        """Consume ``topics`` (or every topic matching ``pattern``) with the engine: ``handlers``
        decide, ``make_uow(session)`` gives the service's unit of work on one MongoDB transaction
        (see zhkh_runtime.engine for ``strict_types``, ``strict_topics`` and ``inbound``)."""
        engine = Engine(
            settings=self.settings, handlers=handlers, tracking=MongoTracking(self.mongo, self.db, make_uow),
            publisher=self.publisher, emitter=self.emitter, reject_topic=reject_topic,
            messages_ru=messages_ru or {}, strict_types=strict_types, strict_topics=frozenset(strict_topics),
            inbound=inbound,
        )
        self._consumers.append(ConsumerLoop(self.settings, engine, topics, pattern))
        return engine

    def on_startup(self, hook: Hook) -> Hook:
        self._startup.append(hook)
        return hook

    def after_startup(self, hook: Hook) -> Hook:
        """Runs once the publisher and the subscribers are running (e.g. a background scanner)."""
        self._after_startup.append(hook)
        return hook

    def on_shutdown(self, hook: Hook) -> Hook:
        self._shutdown.append(hook)
        return hook

    def every(self, name: str, interval_s: float, round_: Callable[[], Awaitable[Any]],
              again: Callable[[Any], bool] | None = None, lease: bool = True) -> None:
        """A background loop (a scanner, a dispatcher): ``round_`` runs, then again at once while
        ``again(its result)`` says there is more to do, else after ``interval_s``. A failed round is
        logged (the work is kept in MongoDB: the next round resumes it). Loops start after the
        subscribers and are cancelled first on shutdown, before the shutdown hooks run.

        With ``lease`` (the default) a round runs only while this replica holds the loop's lease
        (zhkh_runtime.lease), so two replicas of a service never run the same loop at once."""
        held = Lease(self.db, f"{self.settings.service_name}:{name}", self.settings.lease_ttl_s) if lease else None
        if held is not None:
            self.on_shutdown(held.release)

        async def loop() -> None:
            while True:
                try:
                    if held is not None and not await held.acquire():
                        await asyncio.sleep(min(interval_s, held.ttl_s / 3))
                        continue
                    result = await round_()
                except Exception as exc:  # noqa: BLE001 - a round never ends the loop
                    log.warning("loop_failed", loop=name, error_type=type(exc).__name__, error=safe_detail(exc, 300))
                    result = None
                if result is None or again is None or not again(result):
                    await asyncio.sleep(interval_s)

        self._loops[name] = loop

    async def _start(self) -> None:
        if self.settings.create_topics:
            created = await ensure_topics(
                self.settings.kafka_bootstrap, self.topics.catalog(), replication=self.settings.topic_replication,
                client=client_kwargs(self.settings),
            )
            if created:
                log.info("topics_created", topics=created)
        for hook in self._startup:
            await hook()
        await self.publisher.start()
        log.info("starting", kafka=self.settings.kafka_bootstrap, kafka_security=self.settings.kafka_security_protocol,
                 kafka_user=self.settings.kafka_sasl_username, group_id=self.settings.group_id)

    async def _started(self) -> None:
        for consumer in self._consumers:
            await consumer.start()
        for hook in self._after_startup:
            await hook()
        for name, loop in self._loops.items():
            self._tasks[name] = asyncio.create_task(loop(), name=f"{self.settings.service_name}.{name}")
        self.started = True
        log.info("started")

    async def _stop(self) -> None:
        self.started = False
        for task in self._tasks.values():
            task.cancel()
        for task in self._tasks.values():
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        for consumer in self._consumers:
            await consumer.stop()
        for hook in reversed(self._shutdown):
            await hook()
        await self.publisher.stop()
        await self.mongo.close()
        log.info("stopped")

    async def ready(self) -> dict[str, bool]:
        async def kafka_ok() -> bool:
            return bool(await self.broker.ping(timeout=2.0))

        async def mongo_ok() -> bool:
            try:
                await asyncio.wait_for(self.mongo.admin.command("ping"), 2.0)
                return True
            except Exception:  # noqa: BLE001 - readiness reports, it does not raise
                return False

        k, m = await asyncio.gather(kafka_ok(), mongo_ok())
        return {"started": self.started, "kafka": k, "mongo": m}

    def asgi_app(self, extra_routes: Sequence[tuple[str, ASGIApp]] = ()) -> AsgiFastStream:
        @get(include_in_schema=False)
        async def health(scope: Scope) -> AsgiResponse:  # noqa: ARG001
            return json_response({"status": "ok", "service": self.settings.service_name})

        @get(include_in_schema=False)
        async def ready(scope: Scope) -> AsgiResponse:  # noqa: ARG001
            checks = await self.ready()
            ok = all(checks.values())
            return json_response({"ready": ok, **checks}, 200 if ok else 503)

        return JsonErrorsApp(
            self.broker,
            asgi_routes=[("/health", health), ("/ready", ready), ("/metrics", make_asgi_app()), *extra_routes],
            on_startup=[self._start],
            after_startup=[self._started],
            after_shutdown=[self._stop],
            logger=logging.getLogger(f"zhkh.{self.settings.service_name}.faststream"),
        )


HTTP_ERRORS_RU = {
    "not_found": "Такого адреса нет.",
    "method_not_allowed": "Этот метод здесь не поддерживается.",
    "internal_error": "Внутренняя ошибка сервиса. Повторите запрос позже.",
}


def error_response(code: str, status: int, fields: list[str] | None = None, message: str | None = None,
                   headers: dict[str, str] | None = None) -> AsgiResponse:
    """The one error body every HTTP answer uses: ``{"error": {"code", "message", "fields"}}``."""
    return json_response({"error": {"code": code, "message": message if message is not None else HTTP_ERRORS_RU.get(code, ""),
                                     "fields": fields or []}}, status, headers)


def allowed_methods(route: Any) -> tuple[str, ...]:
    """GET routes answer HEAD too; POST routes do not (FastStream's ``post`` would also run the
    handler for HEAD: a HEAD with a body registered an appeal). Plain ASGI apps (/metrics): GET."""
    methods = tuple(getattr(route, "methods", ()) or ()) if isinstance(route, HttpHandler) else ("GET", "HEAD")
    if "HEAD" in methods and "GET" not in methods:
        methods = tuple(m for m in methods if m != "HEAD")
    return methods


class JsonErrorsApp(AsgiFastStream):
    """FastStream's ASGI app with our error answers: an unknown path (404), a method the route
    does not serve (405) and a failure inside a route (500, no exception text) all get the JSON
    error body; FastStream's own answers are plain text."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return
        route = next((app for path, app in self.routes if scope["path"] == path), None)
        if route is None:
            await error_response("not_found", 404)(scope, receive, send)
            return
        methods = allowed_methods(route)
        if scope["method"] not in methods:
            await error_response("method_not_allowed", 405, headers={"allow": ", ".join(methods)})(scope, receive, send)
            return
        state = {"started": False, "replaced": False}

        async def guarded(message: Any) -> None:
            if message["type"] == "http.response.start":
                state["started"] = True
                ctype = dict(message.get("headers") or []).get(b"content-type", b"")
                if message["status"] >= 500 and not ctype.startswith(b"application/json"):
                    state["replaced"] = True  # FastStream's text 500 after a failed route
                    await error_response("internal_error", 500)(scope, receive, send)
                    return
            if state["replaced"]:
                return
            await send(message)

        try:
            await route(scope, receive, guarded)
        except Exception as exc:  # noqa: BLE001 - a failure is answered, never a dropped connection
            log.error("http_route_failed", path_known=True, error_type=type(exc).__name__)
            if not state["started"]:
                await error_response("internal_error", 500)(scope, receive, send)


def query_params(scope: Scope) -> dict[str, list[str]]:
    """Query parameters decoded as UTF-8. (FastStream 0.7.8's AsgiRequest.query_params hands bytes
    to parse_qs and fails on percent-encoded non-ASCII such as a Cyrillic address.)"""
    raw = scope.get("query_string", b"").decode("ascii", "replace")
    return parse_qs(raw, encoding="utf-8", errors="replace")


def json_response(body: dict[str, Any], status: int = 200, headers: dict[str, str] | None = None) -> AsgiResponse:
    return AsgiResponse(
        json.dumps(body, ensure_ascii=False).encode(), status,
        headers={"content-type": "application/json; charset=utf-8", **(headers or {})},
    )


def serve(app: AsgiFastStream, settings: RuntimeSettings) -> None:
    """Entry point of ``python -m <service>``: JSON logs, HTTP on ZHKH_HTTP_HOST:ZHKH_HTTP_PORT,
    graceful stop on SIGTERM/SIGINT."""
    configure_logging(settings.service_name, settings.log_level, settings.log_json)
    asyncio.run(
        app.run(
            log_level=logging.getLevelName(settings.log_level.upper()),
            run_extra_options={
                "host": settings.http_host,
                "port": settings.http_port,
                "timeout_graceful_shutdown": int(settings.graceful_timeout_s),
                "access_log": "false",
                "log_config": None,  # uvicorn logs through our JSON handler
            },
        )
    )
