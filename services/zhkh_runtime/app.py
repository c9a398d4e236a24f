"""Builds a service process: broker, publisher, Mongo, HTTP (/health, /ready, /metrics), lifecycle.

Start order: topics -> Mongo indexes -> publisher -> broker (subscribers). Stop order is the
reverse: FastStream stops the subscribers (waiting up to graceful_timeout for in-flight
handlers, whose offsets are then committed), then the publisher and Mongo close.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

import structlog
import uvicorn
from fastapi import APIRouter, FastAPI

from zhkh_contracts import Topics

from .errors import safe_detail
from .consumer import ConsumerLoop
from .engine import Emitter, Engine, Handlers
from .auth import TokenVerifier
from .http import Auth, build_app
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
        self.verifier = TokenVerifier(settings)
        self.auth = Auth(self.verifier, settings.service_name)
        self.on_shutdown(self.verifier.close)
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

    def http_app(self, routers: Sequence[APIRouter] = (), *, title: str | None = None, description: str = "",
                 version: str = "1.0.0") -> FastAPI:
        """The service's HTTP app (FastAPI): its routers plus /health, /ready, /metrics, problem-details
        errors, and the process lifecycle (start: topics, hooks, publisher, FastStream broker, consumers,
        loops; stop: the reverse) run by uvicorn's lifespan."""

        @contextlib.asynccontextmanager
        async def lifespan(app: FastAPI) -> AsyncIterator[None]:  # noqa: ARG001
            await self._start()
            await self.broker.start()
            try:
                await self._started()
                yield
            finally:
                try:
                    await self._stop()
                finally:
                    await self.broker.stop()

        async def health() -> dict[str, Any]:
            return {"status": "ok", "service": self.settings.service_name}

        async def ready() -> dict[str, Any]:
            checks = await self.ready()
            return {"ready": all(checks.values()), **checks}

        return build_app(title or f"zhkh-appeals {self.settings.service_name}", description, version, routers,
                         health, ready, lifespan)


def serve(app: FastAPI, settings: RuntimeSettings) -> None:
    """Entry point of ``python -m <service>``: JSON logs, HTTP on ZHKH_HTTP_HOST:ZHKH_HTTP_PORT,
    graceful stop on SIGTERM/SIGINT (uvicorn's lifespan stops consumers, loops, publisher, Mongo)."""
    configure_logging(settings.service_name, settings.log_level, settings.log_json)
    config = uvicorn.Config(
        app, host=settings.http_host, port=settings.http_port, lifespan="on",
        timeout_graceful_shutdown=int(settings.graceful_timeout_s), access_log=False, log_config=None,
        log_level=settings.log_level.lower(), proxy_headers=bool(settings.forwarded_allow_ips),
        forwarded_allow_ips=settings.forwarded_allow_ips or None, server_header=False,
    )
    asyncio.run(uvicorn.Server(config).serve())
