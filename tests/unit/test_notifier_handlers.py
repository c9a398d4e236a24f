"""The notifier's behaviour through the runtime's engine, on the in-memory unit of work: planning per
regime, replanning, stopping, citizen notices, the alert scan, delivery retries and the DLQ, and
redelivery. No broker, no database: each test runs in milliseconds."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, time, timedelta
from typing import Any

import pytest

from notifier.deadlines import DeadlineTable
from notifier.delivery import Senders, dead_delivery_record
from notifier.service import ALERT_NS, DeliveryConfig, NotifierService
from notifier.uow import MemoryNotifierStore, MemoryNotifierUoW
from tests.support.clock import Clock
from tests.support.engine import decoded, envelope, events, make_engine, rec
from zhkh_contracts import (
    Address,
    Appeal,
    AppealAnswered,
    AppealProgressUpdated,
    AppealRatingRequested,
    AppealAssigned,
    AppealExtended,
    AppealRegistered,
    AppealStatus,
    AppealStatusChanged,
    Applicant,
    AssignmentCause,
    Category,
    Channel,
    Consent,
    DeadlineAlert,
    DeadlineExpired,
    DeadlinePlanned,
    Envelope,
    PartyKind,
    Topics,
)
from zhkh_runtime.engine import Emit, Emitter, MemoryTracking
from zhkh_runtime.errors import PermanentError, TransientError

T0 = datetime(2026, 1, 12, 9, 0, tzinfo=UTC)  # Monday, 12:00 in Moscow
TABLE = DeadlineTable.load()
TOPICS = Topics()


# ---- helpers -------------------------------------------------------------------------------------


def make_appeal(category: Category = Category.HEATING, emergency: bool = False, rule: str | None = None,
                channel: Channel = Channel.SITE_FORM, email: str | None = "ivanova@example.ru",
                phone: str | None = "+79120000000", notify: bool = True, at: datetime = T0,
                refs: dict[str, str] | None = None) -> Appeal:
    return Appeal(
        appeal_id=uuid.uuid4(), registration_number="ZH-2026-0000042", channel=channel, source_id=f"s-{uuid.uuid4()}",
        received_at=at, registered_at=at, applicant=Applicant(email=email, phone=phone),
        consent=Consent(personal_data=True, notifications=notify), address=Address(text="ул. Ленина, 10"),
        house_key="addr:ул ленина 10", category=category, category_source="channel", emergency=emergency,
        emergency_rule=rule, text="Нет отопления", source_refs=refs or {},
    )


def assigned(a: Appeal, kind: PartyKind = PartyKind.MANAGING_ORGANISATION, tz: str | None = "Europe/Moscow",
             at: datetime = T0, party: str = "uk-zarechye", **kw: Any) -> AppealAssigned:
    return AppealAssigned(appeal_id=a.appeal_id, registration_number=a.registration_number, party_id=party,
                          party_kind=kind, reason="r", assigned_at=at, party_timezone=tz, **kw)


def status(a: Appeal, to: AppealStatus, at: datetime = T0) -> AppealStatusChanged:
    return AppealStatusChanged(appeal_id=a.appeal_id, registration_number=a.registration_number,
                               from_status=AppealStatus.IN_PROGRESS, to_status=to, action="x", party_id="uk-zarechye",
                               version=3, changed_at=at)


class Notifier:
    """The service on the engine with an in-memory store; ``run`` feeds envelopes as one batch."""

    def __init__(self, clock: Clock | None = None, thresholds: list[str] | None = None, **delivery: Any) -> None:
        self.clock = clock or Clock(T0)
        self.service = NotifierService(TABLE, thresholds or ["50%", "80%", "1wd", "overdue"], self.clock,
                                       DeliveryConfig(**delivery))
        self.store = MemoryNotifierStore()
        self.uow = MemoryNotifierUoW(self.store)
        self.engine, self.pub = make_engine("notifier", self.service.handlers(), MemoryTracking(self.uow), clock=self.clock)
        self.emitter = Emitter("notifier", TOPICS, self.clock)
        self.sent: list[Any] = []

    async def run(self, *envs: Envelope[Any]) -> list[Any]:
        before = len(self.pub.records)
        await self.engine.process([rec(e, TOPICS.lifecycle) for e in envs])
        return [decoded(r).data for r in self.pub.records[before:]]

    async def publish(self, out: list[Emit]) -> None:
        self.sent.extend(self.emitter.records(out))

    async def scan(self, limit: int = 500) -> int:
        return await self.service.scan(self.store, self.publish, limit)

    async def planned(self, a: Appeal, kind: PartyKind = PartyKind.MANAGING_ORGANISATION, tz: str = "Europe/Moscow",
                      **kw: Any) -> DeadlinePlanned:
        reg = envelope(AppealRegistered(appeal=a))
        (p,) = await self.run(reg, envelope(assigned(a, kind, tz, **kw), correlation_id=reg.correlation_id))
        return p


class Spy:
    """Wraps a port and records each call as (port, method)."""

    def __init__(self, name: str, inner: Any, calls: list[tuple[str, str]]) -> None:
        self._name, self._inner, self._calls = name, inner, calls

    def __getattr__(self, attr: str) -> Any:
        fn = getattr(self._inner, attr)

        async def call(*args: Any, **kw: Any) -> Any:
            self._calls.append((self._name, attr))
            return await fn(*args, **kw)

        return call


def spy(n: Notifier) -> list[tuple[str, str]]:
    calls: list[tuple[str, str]] = []
    for port in ("facts", "schedule", "deliveries"):
        setattr(n.uow, port, Spy(port, getattr(n.uow, port), calls))
    return calls


# ---- planning per regime -------------------------------------------------------------------------


@pytest.mark.parametrize(("kind", "category", "emergency", "rule", "tz", "regime", "due"), [
    # 10 working days after the day of registration, end of day in Moscow
    (PartyKind.MANAGING_ORGANISATION, Category.HEATING, False, None, "Europe/Moscow", "pp416_written",
     datetime(2026, 1, 26, 20, 59, 59, tzinfo=UTC)),
    # 30 calendar days (Wed 11 Feb 2026 is a working day), end of day in the party's zone (UTC+5)
    (PartyKind.DISTRICT_ADMINISTRATION, Category.HEATING, False, None, "Asia/Yekaterinburg", "fz59",
     datetime(2026, 2, 11, 18, 59, 59, tzinfo=UTC)),
    (PartyKind.MANAGING_ORGANISATION, Category.GAS, True, "gas_smell", "Europe/Moscow", "pp416_emergency_localise",
     T0 + timedelta(minutes=30)),
    (PartyKind.MANAGING_ORGANISATION, Category.SEWERAGE, True, "sewer_flooding", "Europe/Moscow", "pp416_sewer_blockage",
     T0 + timedelta(hours=2)),
    (PartyKind.RESOURCE_SUPPLIER, Category.HOT_WATER, False, None, "Europe/Moscow", "pp354_quality_check",
     T0 + timedelta(hours=2)),
])
async def test_the_regime_and_deadline_follow_the_table(kind, category, emergency, rule, tz, regime, due):
    n = Notifier()
    a = make_appeal(category, emergency, rule)
    p = await n.planned(a, kind, tz)
    assert (p.regime, p.due_at, p.generation, p.reason, p.party_timezone) == (regime, due, 1, "assigned", tz)
    stored = n.store.deadlines[str(a.appeal_id)]
    assert (stored["regime"], stored["due_at"], stored["status"]) == (regime, due, "active")
    thresholds = sorted(x["threshold"] for x in n.store.pending_alerts(str(a.appeal_id)))
    # minute terms have no "last working day" alert
    assert thresholds == (["50%", "80%", "overdue"] if TABLE.regimes[regime].kind == "minutes"
                          else ["1wd", "50%", "80%", "overdue"])


async def test_gis_execution_end_date_wins_over_the_table():
    n = Notifier()
    a = make_appeal(refs={"execution_end_date": "2026-02-02T18:00:00+03:00"})
    p = await n.planned(a)
    assert (p.regime, p.due_at) == ("gis_execution_end_date", datetime(2026, 2, 2, 15, 0, tzinfo=UTC))


async def test_a_reassignment_runs_from_the_new_assignment_and_cancels_the_old_alerts():
    n = Notifier()
    a = make_appeal()
    await n.planned(a)
    later = T0 + timedelta(days=3)
    (p,) = await n.run(envelope(assigned(a, PartyKind.DISTRICT_ADMINISTRATION, at=later, cause=AssignmentCause.ESCALATION,
                                         previous_party_id="uk-zarechye", party="adm-leninsky")))
    assert (p.generation, p.regime, p.party_id) == (2, "fz59", "adm-leninsky")
    assert p.due_at == datetime(2026, 2, 16, 20, 59, 59, tzinfo=UTC)  # 30 days from 15 Jan: Sat 14 Feb -> Mon 16 Feb
    assert {x["generation"] for x in n.store.pending_alerts(str(a.appeal_id))} == {2}
    assert sum(x["state"] == "cancelled" for x in n.store.alerts.values()) == 4


async def test_assigned_before_registered_is_dead_lettered():
    n = Notifier()
    await n.run(envelope(assigned(make_appeal())))
    ((topic, _, _, headers),) = n.pub.sent
    assert topic == TOPICS.dlq("notifier") and dict(headers)["x-dlq-reason"] == b"unknown_appeal"
    assert n.store.deadlines == {}


# ---- replanning and stopping ---------------------------------------------------------------------


async def test_an_extension_replans_and_tells_the_citizen():
    n = Notifier()
    a = make_appeal()
    first = await n.planned(a, PartyKind.DISTRICT_ADMINISTRATION)
    ext = AppealExtended(appeal_id=a.appeal_id, registration_number=a.registration_number, party_id="adm",
                         days=10, reason="нужна проверка", extended_at=T0)
    (p,) = await n.run(envelope(ext))
    assert (p.generation, p.reason, p.regime) == (2, "extended", "fz59")
    # 11 Feb + 10 days is Sat 21 Feb; Mon 23 Feb is a holiday: the next working day is Tue 24 Feb
    assert (first.due_at, p.due_at) == (datetime(2026, 2, 11, 20, 59, 59, tzinfo=UTC),
                                        datetime(2026, 2, 24, 20, 59, 59, tzinfo=UTC))
    notices = [d for d in n.store.deliveries.values() if d["kind"] == "extended"]
    assert len(notices) == 1 and "продлён на 10 дн." in notices[0]["body"]
    assert {x["generation"] for x in n.store.pending_alerts(str(a.appeal_id))} == {2}


async def test_an_extension_without_an_active_deadline_changes_nothing():
    n = Notifier()
    a = make_appeal()
    await n.planned(a)
    await n.run(envelope(status(a, AppealStatus.ANSWERED)))
    ext = AppealExtended(appeal_id=a.appeal_id, registration_number="N", party_id="uk", days=5, reason="x", extended_at=T0)
    assert await n.run(envelope(ext)) == []
    assert n.store.deadlines[str(a.appeal_id)]["generation"] == 1


@pytest.mark.parametrize("to", [AppealStatus.ANSWERED, AppealStatus.CLOSED, AppealStatus.WITHDRAWN])
async def test_answer_close_or_withdrawal_stop_every_alert(to):
    n = Notifier()
    a = make_appeal()
    await n.planned(a)
    assert await n.run(envelope(status(a, to))) == []
    assert n.store.pending_alerts(str(a.appeal_id)) == []
    assert n.store.deadlines[str(a.appeal_id)]["status"] == "stopped"
    n.clock.now = T0 + timedelta(days=90)
    assert await n.scan() == 0 and n.sent == []


async def test_a_reopened_appeal_gets_a_new_term_from_the_reopening():
    n = Notifier()
    a = make_appeal()
    await n.planned(a)
    await n.run(envelope(status(a, AppealStatus.ANSWERED)))
    n.clock.now = datetime(2026, 2, 2, 7, 0, tzinfo=UTC)  # Monday
    (p,) = await n.run(envelope(status(a, AppealStatus.REOPENED)))
    assert (p.generation, p.reason, p.regime) == (2, "reopened", "pp416_written")
    assert p.due_at == datetime(2026, 2, 16, 20, 59, 59, tzinfo=UTC)
    assert len(n.store.pending_alerts(str(a.appeal_id))) == 4


@pytest.mark.parametrize("to", [AppealStatus.ASSIGNED, AppealStatus.IN_PROGRESS, AppealStatus.REGISTERED])
async def test_a_status_change_that_neither_stops_nor_reopens_touches_nothing(to):
    n = Notifier()
    a = make_appeal()
    await n.planned(a)
    before = json.dumps([n.store.deadlines, n.store.alerts, n.store.deliveries], default=str, sort_keys=True)
    calls = spy(n)
    assert await n.run(envelope(status(a, to))) == []
    assert calls == []  # no read, no write
    assert json.dumps([n.store.deadlines, n.store.alerts, n.store.deliveries], default=str, sort_keys=True) == before


async def test_each_event_reads_what_it_needs_once_and_never_rereads_its_own_writes():
    n = Notifier(quiet_hours=(time(22), time(8)))
    a = make_appeal()
    calls = spy(n)
    reg = envelope(AppealRegistered(appeal=a))
    await n.run(reg)
    assert calls == [("facts", "save"), ("deliveries", "queue")]
    calls.clear()
    await n.run(envelope(assigned(a)))
    assert calls == [("facts", "get"), ("schedule", "current"), ("schedule", "plan")]
    calls.clear()
    ext = AppealExtended(appeal_id=a.appeal_id, registration_number="N", party_id="uk", days=5, reason="x", extended_at=T0)
    await n.run(envelope(ext))
    assert calls == [("schedule", "current"), ("facts", "get"), ("deliveries", "queue"), ("schedule", "plan")]
    calls.clear()
    await n.run(envelope(status(a, AppealStatus.ANSWERED)))
    assert calls == [("schedule", "stop")]


# ---- citizen notices -----------------------------------------------------------------------------


async def test_registration_and_answer_notices_are_queued_by_email():
    n = Notifier()
    a = make_appeal()
    reg = envelope(AppealRegistered(appeal=a))
    ans = envelope(AppealAnswered(appeal_id=a.appeal_id, registration_number=a.registration_number, party_id="uk",
                                  text="Отопление восстановлено.", answered_at=T0))
    await n.run(reg, ans)
    d_reg, d_ans = n.store.deliveries[f"{reg.id}:registered"], n.store.deliveries[f"{ans.id}:answered"]
    assert (d_reg["target_kind"], d_reg["target"], d_reg["state"]) == ("email", "ivanova@example.ru", "pending")
    assert d_reg["subject"] == "Обращение ZH-2026-0000042 зарегистрировано"
    assert "Отопление восстановлено." in d_ans["body"]


async def test_an_interim_update_goes_to_the_citizen():
    n = Notifier()
    a = make_appeal()
    upd = envelope(AppealProgressUpdated(appeal_id=a.appeal_id, registration_number=a.registration_number, party_id="uk",
                                         text="Ждём запчасть, работы в пятницу.", updated_at=T0))
    await n.run(envelope(AppealRegistered(appeal=a)), upd)
    d = n.store.deliveries[f"{upd.id}:progress"]
    assert d["subject"] == "Ход рассмотрения обращения ZH-2026-0000042" and "Ждём запчасть, работы в пятницу." in d["body"]


async def test_the_citizen_is_asked_once_whether_the_problem_is_solved():
    n = Notifier()
    a, quiet = make_appeal(), make_appeal(notify=False)
    asks = [envelope(AppealRatingRequested(appeal_id=x.appeal_id, registration_number=x.registration_number, party_id="uk",
                                           requested_at=T0, close_after_days=5, reopen_window_days=30)) for x in (a, quiet)]
    await n.run(envelope(AppealRegistered(appeal=a)), envelope(AppealRegistered(appeal=quiet)), *asks)
    d = n.store.deliveries[f"{asks[0].id}:rating_requested"]
    assert d["subject"] == "Решена ли проблема по обращению ZH-2026-0000042?"
    assert "закроют через 5 дн." in d["body"] and "в течение 30 дн." in d["body"]
    assert f"{asks[1].id}:rating_requested" not in n.store.deliveries  # no consent to notices: not asked


async def test_without_consent_no_registration_notice_but_the_answer_still_goes():
    n = Notifier()
    a = make_appeal(notify=False)
    await n.run(envelope(AppealRegistered(appeal=a)))
    assert n.store.deliveries == {}
    await n.run(envelope(AppealAnswered(appeal_id=a.appeal_id, registration_number="N", party_id="uk", text="Ответ",
                                        answered_at=T0)))
    assert [d["kind"] for d in n.store.deliveries.values()] == ["answered"]


async def test_the_channel_webhook_wins_then_email_then_sms_and_unreachable_queues_nothing():
    n = Notifier(citizen_webhooks={"chatbot": "http://bot/notify"}, email_enabled=False)
    bot, call, nobody = (make_appeal(channel=Channel.CHATBOT), make_appeal(channel=Channel.HOTLINE),
                         make_appeal(email=None, phone=None))
    await n.run(*(envelope(AppealRegistered(appeal=x)) for x in (bot, call, nobody)))
    by_appeal = {d["appeal_id"]: (d["target_kind"], d["target"]) for d in n.store.deliveries.values()}
    assert by_appeal == {str(bot.appeal_id): ("webhook", "http://bot/notify"), str(call.appeal_id): ("sms", "+79120000000")}


async def test_without_consent_to_personal_data_no_sms_or_messenger_only_email():
    n = Notifier(citizen_webhooks={"chatbot": "http://bot/notify"})
    bot = make_appeal(channel=Channel.CHATBOT)
    bot = bot.model_copy(update={"consent": Consent(personal_data=False, notifications=True)})
    sms_only = make_appeal(email=None)
    sms_only = sms_only.model_copy(update={"consent": Consent(personal_data=False, notifications=True)})
    await n.run(*(envelope(AppealRegistered(appeal=x)) for x in (bot, sms_only)))
    by_appeal = {d["appeal_id"]: (d["target_kind"], d["target"]) for d in n.store.deliveries.values()}
    assert by_appeal == {str(bot.appeal_id): ("email", "ivanova@example.ru")}  # no webhook, and no SMS at all


async def test_the_registered_notice_keeps_the_quiet_hours_of_the_party_zone_once_it_is_known():
    # 19:30 UTC: 22:30 in Moscow (quiet until 08:00 MSK) but 00:30 in Yekaterinburg (quiet until 08:00 YEKT)
    evening = datetime(2026, 1, 15, 19, 30, tzinfo=UTC)
    n = Notifier(Clock(evening), quiet_hours=(time(22), time(8)))
    a = make_appeal()
    await n.planned(a, tz="Asia/Yekaterinburg")
    (reg,) = [d for d in n.store.deliveries.values() if d["kind"] == "registered"]
    assert reg["not_before"] == datetime(2026, 1, 16, 3, 0, tzinfo=UTC)  # 08:00 in Yekaterinburg, not 05:00 UTC (MSK)
    # at noon in both zones nothing moves
    n2 = Notifier(Clock(datetime(2026, 1, 15, 9, 0, tzinfo=UTC)), quiet_hours=(time(22), time(8)))
    b = make_appeal()
    await n2.planned(b, tz="Asia/Yekaterinburg")
    (reg2,) = [d for d in n2.store.deliveries.values() if d["kind"] == "registered"]
    assert reg2["not_before"] == datetime(2026, 1, 15, 9, 0, tzinfo=UTC)


async def test_quiet_hours_hold_a_notice_until_morning_in_the_party_zone_except_emergencies():
    night = datetime(2026, 1, 15, 20, 30, tzinfo=UTC)  # 23:30 in Moscow
    n = Notifier(Clock(night), quiet_hours=(time(22), time(8)))
    calm, gas = make_appeal(), make_appeal(Category.GAS, emergency=True, rule="gas_smell")
    await n.run(envelope(AppealRegistered(appeal=calm)), envelope(AppealRegistered(appeal=gas)))
    held = {d["appeal_id"]: d["not_before"] for d in n.store.deliveries.values()}
    assert held[str(calm.appeal_id)] == datetime(2026, 1, 16, 5, 0, tzinfo=UTC)  # 08:00 Moscow
    assert held[str(gas.appeal_id)] == night
    # the answer uses the deadline's zone: 03:30 UTC is 08:30 in Yekaterinburg (not quiet), 06:30 in Moscow
    a = make_appeal()
    n.clock.now = T0
    await n.planned(a, tz="Asia/Yekaterinburg")
    n.clock.now = datetime(2026, 1, 16, 3, 30, tzinfo=UTC)
    ans = envelope(AppealAnswered(appeal_id=a.appeal_id, registration_number="N", party_id="uk", text="Ответ",
                                  answered_at=n.clock.now))
    await n.run(ans)
    assert n.store.deliveries[f"{ans.id}:answered"]["not_before"] == n.clock.now


# ---- the alert scan ------------------------------------------------------------------------------


async def test_due_alerts_are_sent_on_time_once_with_derived_ids_and_overdue_expires():
    n = Notifier()
    a = make_appeal()
    reg = envelope(AppealRegistered(appeal=a))
    await n.run(reg)
    (p,) = await n.run(envelope(assigned(a), correlation_id=reg.correlation_id))
    assert await n.scan() == 0  # nothing early
    n.clock.now = T0 + (p.due_at - T0) / 2 - timedelta(seconds=1)
    assert await n.scan() == 0
    n.clock.now += timedelta(seconds=2)
    assert await n.scan() == 1
    n.clock.now = p.due_at + timedelta(minutes=1)
    assert await n.scan() == 3  # 80%, 1wd, overdue
    assert await n.scan() == 0  # and never again
    envs = [(r.topic, decoded(r)) for r in n.sent]
    alerts = [(t, e) for t, e in envs if isinstance(e.data, DeadlineAlert)]
    assert [e.data.threshold for _, e in alerts] == ["50%", "80%", "1wd", "overdue"]
    assert {t for t, _ in alerts} == {TOPICS.lifecycle}
    ((t, expired),) = [(t, e) for t, e in envs if isinstance(e.data, DeadlineExpired)]
    assert (t, expired.data.deadline, expired.appeal_id) == (TOPICS.actions, p.due_at, str(a.appeal_id))
    overdue_id = f"{a.appeal_id}:1:overdue"
    assert alerts[-1][1].id == uuid.uuid5(ALERT_NS, f"{overdue_id}:alert")
    assert expired.id == uuid.uuid5(ALERT_NS, f"{overdue_id}:expired")
    assert {e.correlation_id for _, e in envs} == {reg.correlation_id}
    assert {e.source for _, e in envs} == {"/zhkh-appeals/notifier"}
    assert all(x["state"] == "sent" for x in n.store.alerts.values())


async def test_a_crash_between_publishing_and_marking_resends_the_very_same_events():
    n = Notifier(thresholds=["overdue"])
    a = make_appeal()
    await n.planned(a)
    n.clock.now = T0 + timedelta(days=60)
    first: list[Any] = []

    async def publish_then_crash(out: list[Emit]) -> None:
        first.extend(n.emitter.records(out))
        raise ConnectionError("killed after publishing, before marking")

    with pytest.raises(ConnectionError):
        await n.service.scan(n.store, publish_then_crash)
    assert await n.scan() == 1
    assert [decoded(r).id for r in first] == [decoded(r).id for r in n.sent]
    assert await n.scan() == 0


async def test_each_alert_is_queued_for_the_party_webhook_once_with_the_supervisor():
    n = Notifier(thresholds=["overdue"], party_alerts_webhook="http://parties/alerts")
    a = make_appeal(email=None, phone=None)
    await n.planned(a, supervisor_party_id="adm-leninsky")
    n.clock.now = T0 + timedelta(days=40)
    assert await n.scan() == 1
    await n.service.scan(n.store, n.publish)  # a resend queues nothing new
    (d,) = [x for x in n.store.deliveries.values() if x["kind"] == "deadline_alert"]
    assert (d["_id"], d["target"], d["party_id"], d["supervisor_party_id"]) == (
        f"{a.appeal_id}:1:overdue:party", "http://parties/alerts", "uk-zarechye", "adm-leninsky")
    assert "срок ответа истёк" in d["subject"]


# ---- the notices of issue 16: overdue, forwarded, assigned to you ---------------------------------


async def test_a_forwarded_appeal_tells_the_citizen_the_new_body_by_name():
    n = Notifier()
    a = make_appeal(notify=False)  # 59-ФЗ ст. 8: told whatever the consent to status notices
    await n.planned(a)
    assert n.store.deliveries == {}  # the first assignment is not a forwarding
    moved = envelope(assigned(a, PartyKind.RESOURCE_SUPPLIER, "Asia/Yekaterinburg", party="vodokanal",
                              cause=AssignmentCause.REROUTE, previous_party_id="uk-zarechye",
                              party_name="МУП «Водоканал»"))
    (p,) = await n.run(moved)
    assert p.generation == 2
    d = n.store.deliveries[f"{moved.id}:forwarded"]
    assert d["subject"] == "Обращение ZH-2026-0000042 направлено в МУП «Водоканал»"
    assert "направлено для рассмотрения в МУП «Водоканал»" in d["body"] and d["target"] == "ivanova@example.ru"
    for cause in (AssignmentCause.ESCALATION, AssignmentCause.OPERATOR, AssignmentCause.INCIDENT):
        e = envelope(assigned(a, party="adm-leninsky", cause=cause, previous_party_id="vodokanal"))
        await n.run(e)
        assert (f"{e.id}:forwarded" in n.store.deliveries) is (cause is not AssignmentCause.INCIDENT)
    nameless = envelope(assigned(a, party="gzhi", cause=AssignmentCause.ESCALATION, previous_party_id="adm-leninsky"))
    await n.run(nameless)
    assert "направлено для рассмотрения в другую организацию" in n.store.deliveries[f"{nameless.id}:forwarded"]["body"]


async def test_the_party_is_told_of_a_new_appeal_and_of_one_rerouted_to_it_with_the_deadline():
    n = Notifier(party_alerts_webhook="http://parties/alerts")
    a = make_appeal(email=None, phone=None)
    reg = envelope(AppealRegistered(appeal=a))
    first = envelope(assigned(a, tz="Asia/Yekaterinburg"), correlation_id=reg.correlation_id)
    (p,) = await n.run(reg, first)
    d = n.store.deliveries[f"{first.id}:party_assigned"]
    assert (d["kind"], d["party_id"], d["target"], d["due_at"]) == ("assigned", "uk-zarechye", "http://parties/alerts",
                                                                     p.due_at.isoformat())
    assert d["subject"] == "Новое обращение ZH-2026-0000042"
    assert d["body"] == "Вам назначено обращение ZH-2026-0000042. Срок ответа: 26.01.2026 23:59 (Asia/Yekaterinburg)."
    moved = envelope(assigned(a, PartyKind.RESOURCE_SUPPLIER, party="vodokanal", cause=AssignmentCause.REROUTE,
                              previous_party_id="uk-zarechye"))
    (p2,) = await n.run(moved)
    d2 = n.store.deliveries[f"{moved.id}:party_assigned"]
    assert (d2["party_id"], d2["due_at"], d2["subject"]) == ("vodokanal", p2.due_at.isoformat(),
                                                             "Вам передано обращение ZH-2026-0000042")
    assert "(было у uk-zarechye)" in d2["body"]
    await n.run(moved)  # a redelivery queues nothing new
    assert len([x for x in n.store.deliveries.values() if x["kind"] == "assigned"]) == 2
    assert "supervisor_party_id" not in Senders._payload(d2) and Senders._payload(d2)["due_at"] == p2.due_at.isoformat()


async def test_without_a_party_webhook_no_assigned_notice_is_queued():
    n = Notifier()
    await n.planned(make_appeal(email=None, phone=None))
    assert n.store.deliveries == {}


async def overdue_alert(n: Notifier, a: Appeal) -> Envelope[Any]:
    n.clock.now = T0 + timedelta(days=40)
    await n.scan()
    (alert,) = [e for e in map(decoded, n.sent) if isinstance(e.data, DeadlineAlert) and e.data.threshold == "overdue"]
    return alert


async def test_the_citizen_is_told_once_per_generation_that_the_deadline_passed():
    n = Notifier(thresholds=["overdue"])
    a = make_appeal()
    p = await n.planned(a)
    alert = await overdue_alert(n, a)
    await n.run(alert)
    await n.run(alert)  # redelivered, or resent by the scanner after a crash: the same id
    (d,) = [x for x in n.store.deliveries.values() if x["kind"] == "overdue"]
    assert d["_id"] == f"{alert.id}:overdue" and d["subject"] == "Срок ответа по обращению ZH-2026-0000042 истёк"
    assert "истёк 26.01.2026 23:59 (Europe/Moscow), а ответ не дан" in d["body"] and p.generation == 1
    # the escalation's new deadline passes too: one more notice, for generation 2
    n.sent.clear()
    await n.run(envelope(assigned(a, party="adm-leninsky", at=n.clock.now, cause=AssignmentCause.ESCALATION,
                                  previous_party_id="uk-zarechye")))
    n.clock.now += timedelta(days=60)
    await n.scan()
    (second,) = [e for e in map(decoded, n.sent) if isinstance(e.data, DeadlineAlert)]
    await n.run(second)
    assert len([x for x in n.store.deliveries.values() if x["kind"] == "overdue"]) == 2


async def test_no_overdue_notice_without_consent_or_once_answered_or_replanned():
    n = Notifier(thresholds=["overdue"])
    quiet, answered, moved = make_appeal(notify=False), make_appeal(), make_appeal()
    for x in (quiet, answered, moved):
        await n.planned(x)
    n.clock.now = T0 + timedelta(days=40)
    await n.scan()
    alerts = {e.data.appeal_id: e for e in map(decoded, n.sent) if isinstance(e.data, DeadlineAlert)}
    await n.run(envelope(status(answered, AppealStatus.ANSWERED)))  # the answer raced the scanner
    await n.run(envelope(assigned(moved, party="vodokanal", at=n.clock.now, cause=AssignmentCause.OPERATOR,
                                  previous_party_id="uk-zarechye")))
    await n.run(*alerts.values())
    assert [x for x in n.store.deliveries.values() if x["kind"] == "overdue"] == []


# ---- delivery retries and the DLQ ----------------------------------------------------------------


class Sender:
    def __init__(self, failures: list[Exception] | None = None) -> None:
        self.failures, self.sent = list(failures or []), []

    async def __call__(self, d: dict[str, Any]) -> None:
        if self.failures:
            raise self.failures.pop(0)
        self.sent.append(d["_id"])


async def test_transient_failures_back_off_doubling_then_succeed():
    n = Notifier(attempts=3, backoff_s=10)
    a = make_appeal()
    reg = envelope(AppealRegistered(appeal=a))
    await n.run(reg)
    send, dead = Sender([TransientError("http 500"), TransientError("http 503")]), []

    async def dlq(*args: Any) -> None:
        dead.append(args)

    assert await n.service.deliver(n.store, send, dlq) == 1  # 500
    assert await n.service.deliver(n.store, send, dlq) == 0  # waiting 10 s
    n.clock.now += timedelta(seconds=10)
    assert await n.service.deliver(n.store, send, dlq) == 1  # 503
    n.clock.now += timedelta(seconds=19)
    assert await n.service.deliver(n.store, send, dlq) == 0  # now 20 s
    n.clock.now += timedelta(seconds=1)
    assert await n.service.deliver(n.store, send, dlq) == 1
    assert send.sent == [f"{reg.id}:registered"] and dead == []
    d = n.store.deliveries[f"{reg.id}:registered"]
    assert (d["state"], d["attempts"]) == ("sent", 3)
    assert await n.service.deliver(n.store, send, dlq) == 0


@pytest.mark.parametrize(("failure", "rounds", "reason"), [
    (TransientError("http 500"), 3, "retries_exhausted"),
    (PermanentError("http_400", "the receiver refused the notification"), 1, "http_400"),
])
async def test_failures_end_in_the_dlq_with_the_reason(failure, rounds, reason):
    n = Notifier(attempts=3, backoff_s=10)
    reg = envelope(AppealRegistered(appeal=make_appeal()))
    await n.run(reg)
    send, dead = Sender([failure] * 10), []

    async def dlq(d: dict[str, Any], why: str, detail: str, attempts: int) -> None:
        dead.append((d["_id"], why, attempts))

    for _ in range(rounds):
        await n.service.deliver(n.store, send, dlq)
        n.clock.now += timedelta(hours=1)
    assert dead == [(f"{reg.id}:registered", reason, rounds)]
    d = n.store.deliveries[f"{reg.id}:registered"]
    assert (d["state"], d["reason"], d["attempts"]) == ("failed", reason, rounds)
    assert await n.service.deliver(n.store, send, dlq) == 0


def test_the_dead_delivery_record_is_the_delivery_as_json_with_dlq_headers():
    d = {"_id": "e:registered", "appeal_id": "a-1", "kind": "registered", "not_before": T0, "attempts": 2}
    r = dead_delivery_record(d, "retries_exhausted", "http 500", 3, "zhkh.notifier.dlq")
    assert (r.topic, r.key) == ("zhkh.notifier.dlq", b"a-1")
    assert json.loads(r.value) == {**d, "not_before": T0.isoformat()}
    assert (r.headers["x-dlq-reason"], r.headers["x-dlq-attempts"], r.headers["content-type"]) == (
        "retries_exhausted", "3", "application/json")


# ---- redelivery and batches ----------------------------------------------------------------------


async def test_a_redelivered_event_republishes_the_same_plan_and_changes_nothing():
    n = Notifier()
    a = make_appeal()
    reg = envelope(AppealRegistered(appeal=a))
    asg = envelope(assigned(a), correlation_id=reg.correlation_id)
    await n.run(reg, asg)
    first = [decoded(r) for r in n.pub.records]
    state = json.dumps([n.store.deadlines, n.store.alerts, n.store.deliveries], default=str, sort_keys=True)
    await n.run(asg)  # alone: the per-record path
    await n.run(reg, asg)  # in a batch: redone record by record
    again = [decoded(r) for r in n.pub.records]
    assert [e.id for e in again] == [first[0].id] * 3
    assert json.dumps([n.store.deadlines, n.store.alerts, n.store.deliveries], default=str, sort_keys=True) == state
    assert n.pub.sent == []  # nothing dead-lettered


async def test_the_same_event_id_with_another_body_is_refused():
    n = Notifier()
    a = make_appeal()
    reg = envelope(AppealRegistered(appeal=a))
    asg = envelope(assigned(a))
    await n.run(reg, asg)
    other = envelope(assigned(a, PartyKind.DISTRICT_ADMINISTRATION), event_id=asg.id)
    assert await n.run(other) == []
    ((_, _, _, headers),) = n.pub.sent
    assert dict(headers)["x-dlq-reason"] == b"conflicting_duplicate"
    assert n.store.deadlines[str(a.appeal_id)]["generation"] == 1


async def test_a_whole_lifecycle_in_one_batch_shares_one_unit_of_work():
    n = Notifier()
    a = make_appeal()
    reg = envelope(AppealRegistered(appeal=a))
    ext = AppealExtended(appeal_id=a.appeal_id, registration_number="N", party_id="uk", days=5, reason="x", extended_at=T0)
    out = await n.run(reg, envelope(assigned(a)), envelope(status(a, AppealStatus.IN_PROGRESS)), envelope(ext),
                      envelope(status(a, AppealStatus.ANSWERED)))
    assert [(p.generation, p.reason) for p in out] == [(1, "assigned"), (2, "extended")]
    assert n.store.deadlines[str(a.appeal_id)]["status"] == "stopped"
    assert n.store.pending_alerts(str(a.appeal_id)) == []
    assert sorted(d["kind"] for d in n.store.deliveries.values()) == ["extended", "registered"]
    # the in_progress status change is filtered out before any unit of work: no marker for it
    assert len(n.engine.tracking.markers) == 4  # type: ignore[attr-defined]


async def test_the_planned_event_has_an_id_derived_from_its_cause():
    n1, n2 = Notifier(), Notifier()
    a = make_appeal()
    reg = envelope(AppealRegistered(appeal=a))
    asg = envelope(assigned(a), correlation_id=reg.correlation_id)
    await n1.run(reg, asg)
    await n2.run(reg, asg)
    (e1,), (e2,) = [decoded(r) for r in n1.pub.records], [decoded(r) for r in n2.pub.records]
    assert e1.id == e2.id and e1.correlation_id == reg.correlation_id
    assert events(n1.pub) == events(n2.pub)


# ---- the access code in the "registered" notice ----------------------------------------------------


@pytest.mark.parametrize("outcome", ["sent", "failed"])
async def test_the_registered_notice_carries_the_access_code_which_is_not_kept_once_done(outcome):
    from notifier.templates import rendered_body

    n = Notifier(attempts=1, backoff_s=10)
    a = make_appeal()
    reg = envelope(AppealRegistered(appeal=a, access_code="7K3QM-2XH9D"))
    await n.run(reg)
    d = n.store.deliveries[f"{reg.id}:registered"]
    assert "7K3QM-2XH9D" not in d["body"] and "7K3QM-2XH9D" not in json.dumps(n.store.facts, default=str)
    texts, dead = [], []

    async def send(doc: dict[str, Any]) -> None:
        texts.append(rendered_body(doc))
        if outcome == "failed":
            raise PermanentError("http_400", "refused")

    async def dlq(doc: dict[str, Any], why: str, detail: str, attempts: int) -> None:
        dead.append(dead_delivery_record(doc, why, detail, attempts, "zhkh.notifier.dlq"))

    assert await n.service.deliver(n.store, send, dlq) == 1
    (text,) = texts
    assert a.registration_number in text and "Код доступа: 7K3QM-2XH9D" in text
    assert "7K3QM-2XH9D" not in json.dumps(n.store.deliveries, default=str)  # gone once sent or failed
    assert n.store.deliveries[f"{reg.id}:registered"]["state"] == outcome
    assert all(b"7K3QM-2XH9D" not in r.value for r in dead)  # nor in the dead letter


async def test_a_registered_event_without_a_code_gets_the_notice_without_one():
    n = Notifier()
    reg = envelope(AppealRegistered(appeal=make_appeal()))
    await n.run(reg)
    d = n.store.deliveries[f"{reg.id}:registered"]
    assert "access_code" not in d and "Код доступа" not in d["body"] and "[код доступа]" not in d["body"]
