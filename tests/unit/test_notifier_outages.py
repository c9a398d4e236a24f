"""The notifier's outage notices (the router's AppealLinkedToOutage) on the in-memory unit of work:
Russian texts with the local restore time, consent to notifications and to optional uses, quiet hours."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, time, timedelta

from tests.support.clock import Clock
from tests.support.engine import envelope
from tests.unit.test_notifier_handlers import Notifier, make_appeal
from zhkh_contracts import (
    AppealLinkedToOutage,
    AppealRegistered,
    Channel,
    Consent,
    OutageKind,
    OutageNotice,
    OutageResource,
)

T0 = datetime(2026, 1, 12, 9, 0, tzinfo=UTC)


def notice(a, what: OutageNotice, restored: datetime | None = None) -> AppealLinkedToOutage:
    return AppealLinkedToOutage(appeal_id=a.appeal_id, registration_number=a.registration_number,
                                outage_id=uuid.uuid4(), resource=OutageResource.HOT_WATER, outage_kind=OutageKind.EMERGENCY,
                                what=what, starts_at=T0 - timedelta(hours=2), expected_restore_at=T0 + timedelta(hours=6),
                                restored_at=restored, at=T0)


def kinds(n: Notifier) -> dict[str, dict]:
    return {d["kind"]: d for d in n.store.deliveries.values()}


async def test_each_outage_notice_in_russian_with_the_restore_time_in_the_appeals_zone():
    n = Notifier()
    a = make_appeal()
    await n.planned(a, tz="Asia/Yekaterinburg")
    for what in OutageNotice:
        await n.run(envelope(notice(a, what, T0 + timedelta(hours=3, minutes=30) if what is OutageNotice.RESTORED else None)))
    got = kinds(n)
    linked = got["outage_linked"]
    assert "аварийное отключение: горячее водоснабжение" in linked["body"]
    assert "20:00 (Asia/Yekaterinburg)" in linked["body"]  # 15:00 UTC in Yekaterinburg
    assert "с 12.01.2026 12:00 (Asia/Yekaterinburg)" in linked["body"]  # the start, 07:00 UTC
    assert "остаётся на контроле" in linked["body"] and linked["target_kind"] == "email"
    assert "зарегистрировано аварийное отключение" in got["outage_registered"]["body"]
    assert "изменилось: 12.01.2026 20:00" in got["outage_restore_time_changed"]["body"]
    restored = got["outage_restored"]
    assert "17:30 (Asia/Yekaterinburg)" in restored["body"] and "длилось 5,5 ч." in restored["body"]
    assert "перерасчёта" in restored["body"]


async def test_no_notice_without_consent_to_notifications_and_no_sms_without_optional_uses():
    n = Notifier()
    silent = make_appeal(notify=False)
    sms_only = make_appeal(email=None).model_copy(update={"consent": Consent(personal_data=False, notifications=True)})
    sms_ok = make_appeal(email=None, channel=Channel.HOTLINE)
    await n.run(*(envelope(AppealRegistered(appeal=x)) for x in (silent, sms_only, sms_ok)))
    await n.run(*(envelope(notice(x, OutageNotice.LINKED)) for x in (silent, sms_only, sms_ok)))
    outage = [d for d in n.store.deliveries.values() if d["kind"].startswith("outage_")]
    assert [(d["appeal_id"], d["target_kind"]) for d in outage] == [(str(sms_ok.appeal_id), "sms")]


async def test_an_outage_notice_waits_out_the_quiet_hours_and_is_sent_once():
    night = datetime(2026, 1, 15, 20, 30, tzinfo=UTC)  # 23:30 in Moscow
    n = Notifier(Clock(night), quiet_hours=(time(22), time(8)))
    a = make_appeal()
    await n.planned(a, tz="Europe/Moscow")
    e = envelope(notice(a, OutageNotice.REGISTERED))
    await n.run(e)
    await n.run(e)  # redelivered
    (d,) = [d for d in n.store.deliveries.values() if d["kind"] == "outage_registered"]
    assert d["not_before"] == datetime(2026, 1, 16, 5, 0, tzinfo=UTC)  # 08:00 in Moscow
