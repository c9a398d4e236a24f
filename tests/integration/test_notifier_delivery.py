"""Notification delivery to a real SMTP server and a real HTTP receiver, with the real database."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from devtools import samples
from tests.support.clock import Clock
from tests.support.engine import owned, rec
from tests.support.receivers import HttpReceiver, smtp_server
from zhkh_contracts import AppealAnswered, AppealRegistered, Channel, Envelope, PartyKind, Topics

pytestmark = pytest.mark.integration


@pytest.fixture
def smtp():  # noqa: ANN201
    controller, sink, port = smtp_server()
    yield sink, port
    controller.stop()


@pytest.fixture
def http():  # noqa: ANN201
    r = HttpReceiver()
    yield r
    r.close()


class Notifier:
    """The notifier's handlers on the engine (real transactions) and its delivery loop with the real
    senders; dead letters are the records main.py would publish (delivery.dead_delivery_record)."""

    def __init__(self, mongo_db, prefix, clock, smtp_port=None, http=None, **delivery) -> None:  # noqa: ANN001, ANN003
        from notifier.deadlines import DeadlineTable
        from notifier.delivery import Senders, parse_quiet_hours
        from notifier.repository import NotifierRepository
        from notifier.service import DeliveryConfig, NotifierService
        from notifier.uow import MongoNotifierUoW
        from tests.support.engine import make_engine
        from zhkh_runtime.mongo import MongoTracking

        self.topics = Topics(prefix)
        cfg = DeliveryConfig(quiet_hours=parse_quiet_hours(delivery.pop("quiet", "")), attempts=3, backoff_s=10, **delivery)
        self.repo = NotifierRepository(mongo_db)
        self.service = NotifierService(DeadlineTable.load(), ["overdue"], clock, cfg)
        tracking = MongoTracking(mongo_db.client, mongo_db, lambda s: MongoNotifierUoW(self.repo, s))
        self.engine, self.pub = make_engine("notifier", self.service.handlers(), tracking, clock=clock)
        sms = http.url("/sms") if http else None
        self.senders = Senders("127.0.0.1" if smtp_port else None, smtp_port or 25, "noreply@zhkh.test", sms, timeout_s=5)
        self.dead: list = []

    async def handle(self, env: Envelope) -> None:
        await self.engine.process([rec(env)])
        assert self.pub.sent == []  # nothing dead-lettered

    async def deliver(self) -> int:
        from notifier.delivery import dead_delivery_record

        async def dead_letter(d, reason, detail, attempts) -> None:  # noqa: ANN001
            self.dead.append(dead_delivery_record(d, reason, detail, attempts, self.topics.dlq("notifier")))

        return await self.service.deliver(self.repo, self.senders.send, dead_letter)

    async def scan(self) -> int:
        async def publish(out) -> None:  # noqa: ANN001
            pass  # the alert events are not what these tests look at

        return await self.service.scan(self.repo, publish)


def registered(channel=Channel.SITE_FORM, email="ivanova@example.ru", phone="+79120000000", text="Нет воды"):  # noqa: ANN001, ANN201
    from intake.classifier import Classifier
    from intake.service import build_appeal, prepare

    raw = samples.raw_submission(channel=channel, email=email, phone=phone, text=text, source_id=f"d-{uuid.uuid4()}")
    appeal = build_appeal(prepare(raw), uuid.uuid4(), "ZH-2026-0000777", datetime(2026, 1, 15, 9, tzinfo=UTC), Classifier())
    return appeal, owned(AppealRegistered(appeal=appeal), appeal_id=str(appeal.appeal_id))


async def test_registration_notice_by_email_and_the_answer_too(infra, prefix, mongo_db, smtp):
    sink, port = smtp
    clock = Clock(datetime(2026, 1, 15, 9, tzinfo=UTC))
    svc = Notifier(mongo_db, prefix, clock, smtp_port=port)
    appeal, env = registered()
    await svc.handle(env)
    answer = owned(AppealAnswered(appeal_id=appeal.appeal_id, registration_number="ZH-2026-0000777", party_id="uk",
                                         text="Подача воды восстановлена.", answered_at=clock.now),
                          appeal_id=str(appeal.appeal_id))
    await svc.handle(answer)
    assert await svc.deliver() == 2
    assert svc.dead == []
    subjects = [m["Subject"] for m in sink.messages]
    assert subjects == ["Обращение ZH-2026-0000777 зарегистрировано", "Ответ на обращение ZH-2026-0000777"]
    assert sink.messages[0]["To"] == "ivanova@example.ru"
    assert "Подача воды восстановлена." in sink.messages[1].get_content()
    assert f"{env.id}.registered" in sink.messages[0]["Message-ID"]  # the idempotency key
    assert await svc.deliver() == 0  # sent once


async def test_chatbot_appeal_is_answered_through_the_bot_webhook_and_phone_only_by_sms(infra, prefix, mongo_db, http):
    clock = Clock(datetime(2026, 1, 15, 9, tzinfo=UTC))
    svc = Notifier(mongo_db, prefix, clock, http=http, citizen_webhooks={"chatbot": http.url("/bot")})
    _, bot = registered(channel=Channel.CHATBOT)
    _, call = registered(channel=Channel.HOTLINE, email=None)
    await svc.handle(bot)
    await svc.handle(call)
    assert await svc.deliver() == 2
    by_path = {p: (h, b) for p, h, b in http.requests}
    h, b = by_path["/bot"]
    assert h["idempotency-key"] == f"{bot.id}:registered" and b["registration_number"] == "ZH-2026-0000777"
    h, b = by_path["/sms"]
    assert b["to"] == "+79120000000" and b["client_ref"] == f"{call.id}:registered" and "зарегистрировано" in b["text"]


async def test_transient_failures_back_off_then_succeed(infra, prefix, mongo_db, http):
    clock = Clock(datetime(2026, 1, 15, 9, tzinfo=UTC))
    svc = Notifier(mongo_db, prefix, clock, http=http, citizen_webhooks={"chatbot": http.url("/bot")})
    http.fail = 2
    _, env = registered(channel=Channel.CHATBOT)
    await svc.handle(env)
    assert await svc.deliver() == 1  # 500
    assert await svc.deliver() == 0  # waiting 10 s
    clock.now += timedelta(seconds=10)
    assert await svc.deliver() == 1  # 500 again
    clock.now += timedelta(seconds=19)
    assert await svc.deliver() == 0  # now 20 s
    clock.now += timedelta(seconds=1)
    assert await svc.deliver() == 1
    assert len(http.requests) == 1
    doc = await mongo_db.notifier_deliveries.find_one({})
    assert (doc["state"], doc["attempts"]) == ("sent", 3)


@pytest.mark.parametrize(("fail_status", "rounds", "reason"), [(500, 3, "retries_exhausted"), (400, 1, "http_400")])
async def test_failures_end_in_the_dlq_with_the_reason(infra, prefix, mongo_db, http, fail_status, rounds, reason):
    clock = Clock(datetime(2026, 1, 15, 9, tzinfo=UTC))
    svc = Notifier(mongo_db, prefix, clock, http=http, citizen_webhooks={"chatbot": http.url("/bot")})
    http.fail, http.fail_status = 100, fail_status
    _, env = registered(channel=Channel.CHATBOT)
    await svc.handle(env)
    for _ in range(rounds):
        await svc.deliver()
        clock.now += timedelta(hours=1)
    (d,) = svc.dead
    assert d.topic == Topics(prefix).dlq("notifier")
    assert d.headers["x-dlq-reason"] == reason and d.headers["x-dlq-attempts"] == str(rounds)
    assert json.loads(d.value)["_id"] == f"{env.id}:registered"
    doc = await mongo_db.notifier_deliveries.find_one({})
    assert doc["state"] == "failed"


async def test_quiet_hours_wait_for_morning_but_not_for_emergencies(infra, prefix, mongo_db, smtp):
    sink, port = smtp
    night = datetime(2026, 1, 15, 20, 30, tzinfo=UTC)  # 23:30 in Moscow
    clock = Clock(night)
    svc = Notifier(mongo_db, prefix, clock, smtp_port=port, quiet="22:00-08:00")
    _, calm = registered(text="Прошу покрасить лавочку")
    _, gas = registered(text="В подъезде сильно пахнет газом")
    await svc.handle(calm)
    await svc.handle(gas)
    assert await svc.deliver() == 1  # the emergency only
    clock.now = datetime(2026, 1, 16, 5, 0, tzinfo=UTC)  # 08:00 in Moscow
    assert await svc.deliver() == 1
    assert len(sink.messages) == 2


async def test_deadline_alerts_reach_the_party_webhook(infra, prefix, mongo_db, http):
    from zhkh_contracts import AppealAssigned

    clock = Clock(datetime(2026, 1, 15, 9, tzinfo=UTC))
    svc = Notifier(mongo_db, prefix, clock, http=http, party_alerts_webhook=http.url("/parties"))
    appeal, env = registered(email=None, phone=None)
    await svc.handle(env)
    await svc.handle(owned(
        AppealAssigned(appeal_id=appeal.appeal_id, registration_number="ZH-2026-0000777", party_id="uk-zarechye",
                       party_kind=PartyKind.MANAGING_ORGANISATION, reason="r", assigned_at=clock.now,
                       supervisor_party_id="adm-leninsky"),
        appeal_id=str(appeal.appeal_id)))
    assert await svc.deliver() == 1  # the party's "assigned to you" notice (issue 16)
    http.requests.clear()
    clock.now += timedelta(days=40)
    assert await svc.scan() == 1  # overdue
    assert await svc.deliver() == 1
    (path, headers, body), = http.requests
    assert path == "/parties" and body["party_id"] == "uk-zarechye" and "срок ответа истёк" in body["subject"]
    assert body["supervisor_party_id"] == "adm-leninsky"  # the supervisor is told as well
