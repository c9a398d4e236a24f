"""Wiring of the notifier. ``uvicorn --factory notifier.main:create_app`` or ``python -m notifier``.

Deadline planning on the Russian calendar (the runtime's engine on the lifecycle topic), the alert
scanner (DeadlineAlert events, DeadlineExpired actions for the router) and the delivery loop
(alerts and citizen notifications by webhook, e-mail or SMS, with quiet hours and stored retries),
each loop under a lease: one replica at a time. See docs/notifier.md.
"""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import FastAPI

from zhkh_contracts import DeadlineAlert, DeadlineExpired, DeadlinePlanned
from zhkh_runtime.app import ServiceRuntime
from zhkh_runtime.engine import Emit

from .calendar import ProductionCalendar
from . import letters_api
from .deadlines import DeadlineTable
from .delivery import Senders, dead_delivery_record, parse_quiet_hours
from .letters import MongoLetterStore, Organisation, render_round
from .repository import NotifierRepository
from .service import DeliveryConfig, NotifierService
from .settings import NotifierSettings
from .uow import Doc, MongoNotifierUoW

DELIVERY_BATCH = 100
LETTER_BATCH = 10
LETTER_INTERVAL_S = 5.0
"""Paper letters are not urgent (a download renders one not rendered yet): a slow loop costs less idle."""

PUBLISHES = (DeadlinePlanned, DeadlineAlert, DeadlineExpired)
"""What the notifier publishes (see intake.main.PUBLISHES): DeadlineExpired goes on the actions topic."""


def create_app(settings: NotifierSettings | None = None) -> FastAPI:
    settings = settings or NotifierSettings()
    rt = ServiceRuntime(settings)
    repo = NotifierRepository(rt.db)
    table = DeadlineTable.load(settings.deadline_table, ProductionCalendar.load(settings.calendar_overrides))
    delivery = DeliveryConfig(
        citizen_webhooks=settings.citizen_webhooks,
        party_alerts_webhook=settings.party_alerts_webhook,
        quiet_hours=parse_quiet_hours(settings.quiet_hours),
        default_timezone=settings.default_timezone,
        attempts=settings.delivery_attempts,
        backoff_s=settings.delivery_backoff_s,
        email_enabled=bool(settings.smtp_host),
        sms_enabled=bool(settings.sms_gateway_url),
    )
    service = NotifierService(table, settings.thresholds, delivery=delivery)
    senders = Senders(settings.smtp_host, settings.smtp_port, settings.smtp_from, settings.sms_gateway_url)
    dlq_topic = rt.topics.dlq("notifier")
    rt.process((rt.topics.lifecycle,), service.handlers(), lambda session: MongoNotifierUoW(repo, session))
    rt.on_startup(repo.ensure_indexes)
    letters = MongoLetterStore(repo.letters, repo.deliveries)
    org = Organisation(settings.letter_org_name, settings.letter_org_address, settings.letter_org_phone)
    rt.on_startup(letters.ensure_indexes)

    async def publish_events(out: list[Emit]) -> None:
        await rt.publisher.publish(rt.emitter.records(out))

    async def dead_letter(d: Doc, reason: str, detail: str, attempts: int) -> None:
        await rt.publisher.publish([dead_delivery_record(d, reason, detail, attempts, dlq_topic)])

    async def scan_round() -> int:
        return await service.scan(repo, publish_events, settings.scan_batch)

    async def delivery_round() -> int:
        return await service.deliver(repo, senders.send, dead_letter, DELIVERY_BATCH)

    # a full round (as many as the batch) means more may be due: go again at once
    rt.every("scanner", settings.scan_interval_s, scan_round, again=lambda sent: sent >= settings.scan_batch)
    rt.every("delivery", settings.scan_interval_s, delivery_round, again=lambda sent: sent >= DELIVERY_BATCH)

    async def letters_round() -> int:  # paper answer letters: render their PDFs off the handlers
        return await render_round(letters, org, datetime.now(UTC), LETTER_BATCH)

    rt.every("letters", max(settings.scan_interval_s, LETTER_INTERVAL_S), letters_round, again=lambda n: n >= LETTER_BATCH)
    return rt.http_app([letters_api.routes(letters, org, rt.auth)], title="zhkh-appeals notifier",
                       description="Deadlines and notices; the print queue of paper answer letters.")


def __getattr__(name: str) -> FastAPI:  # lazy ``app`` for ``uvicorn --factory notifier.main:create_app``
    if name == "app":
        return create_app()
    raise AttributeError(name)
