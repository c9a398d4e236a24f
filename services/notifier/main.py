"""Wiring of the notifier. ``faststream run notifier.main:app`` or ``python -m notifier``.

Deadline planning on the Russian calendar, the alert scanner (DeadlineAlert events, DeadlineExpired
actions for the router) and delivery of alerts and citizen notifications (webhook, e-mail, SMS) with
quiet hours and stored retries. See docs/notifier.md.
"""

from __future__ import annotations

from faststream.asgi import AsgiFastStream

from zhkh_runtime.app import ServiceRuntime
from zhkh_runtime.mongo import IdempotencyGuard

from .calendar import ProductionCalendar
from .deadlines import DeadlineTable
from .delivery import Senders, parse_quiet_hours
from .handlers import register_handlers
from .repository import NotifierRepository
from .service import DeliveryConfig, NotifierService
from .settings import NotifierSettings


def create_app(settings: NotifierSettings | None = None) -> AsgiFastStream:
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
        dlq_topic=rt.topics.dlq("notifier"),
        email_enabled=bool(settings.smtp_host),
        sms_enabled=bool(settings.sms_gateway_url),
    )
    service = NotifierService(
        repo, IdempotencyGuard(rt.mongo, rt.db, "notifier"), rt.topics.lifecycle, rt.topics.actions, table,
        settings.thresholds, delivery=delivery,
    )
    senders = Senders(settings.smtp_host, settings.smtp_port, settings.smtp_from, settings.sms_gateway_url)
    consumer = rt.consumer(rt.topics.lifecycle)
    register_handlers(consumer, service)
    consumer.subscribe()
    rt.on_startup(repo.ensure_indexes)

    async def scan_round() -> int:
        sent = await service.scan(rt.publisher.publish, settings.scan_batch)
        return sent + await service.deliver(senders.send, rt.publisher.publish)

    # a full round (as many as the batch) means more may be due: go again at once
    rt.every("scanner", settings.scan_interval_s, scan_round, again=lambda sent: sent >= settings.scan_batch)
    return rt.asgi_app()


def __getattr__(name: str) -> AsgiFastStream:  # lazy ``app`` for ``faststream run notifier.main:app``
    if name == "app":
        return create_app()
    raise AttributeError(name)
