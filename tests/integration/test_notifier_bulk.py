"""The notifier's unit of work on the real database: a whole batch buffers its writes and writes them
in bulk at the end, and gives exactly what the same records give one per batch."""

from __future__ import annotations

import uuid
from collections import Counter
from datetime import UTC, datetime, time, timedelta, timezone
from typing import Any

import pytest
from pymongo import AsyncMongoClient, monitoring

from tests.support.clock import Clock
from tests.support.engine import envelope, make_engine, rec
from zhkh_contracts import (
    Address,
    Appeal,
    AppealAnswered,
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
    Envelope,
    PartyKind,
)

pytestmark = pytest.mark.integration
T0 = datetime(2026, 1, 12, 9, 0, tzinfo=UTC)  # Monday, 12:00 in Moscow
STATE = ("notifier_appeals", "notifier_deadlines", "notifier_alerts", "notifier_deliveries")


class Commands(monitoring.CommandListener):
    """Every command the client sends (name, collection), while ``on``."""

    def __init__(self) -> None:
        self.on, self.seen = False, []

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if self.on:
            self.seen.append((event.command_name, event.command.get(event.command_name)))

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None: ...

    def failed(self, event: monitoring.CommandFailedEvent) -> None: ...


class Notifier:
    def __init__(self, client: AsyncMongoClient, db: Any, clock: Clock) -> None:
        from notifier.deadlines import DeadlineTable
        from notifier.repository import NotifierRepository
        from notifier.service import DeliveryConfig, NotifierService
        from notifier.uow import MongoNotifierUoW
        from zhkh_runtime.mongo import MongoTracking

        self.db, self.repo = db, NotifierRepository(db)
        # quiet hours: the answer's notice reads the deadline's time zone as well
        service = NotifierService(DeadlineTable.load(), ["50%", "80%", "1wd", "overdue"], clock,
                                  DeliveryConfig(quiet_hours=(time(22, 0), time(8, 0))))
        tracking = MongoTracking(client, db, lambda s: MongoNotifierUoW(self.repo, s))
        self.engine, self.pub = make_engine("notifier", service.handlers(), tracking, clock=clock)

    async def state(self) -> dict[str, list[dict[str, Any]]]:
        out = {c: await self.db[c].find().sort("_id", 1).to_list() for c in STATE}
        out["processed_events"] = [{k: v for k, v in m.items() if k != "processed_at"}
                                   for m in await self.db.processed_events.find().sort("_id", 1).to_list()]
        return out


def appeal(at: datetime = T0, emergency: bool = False, rule: str | None = None, notify: bool = True) -> Appeal:
    return Appeal(
        appeal_id=uuid.uuid4(), registration_number=f"ZH-2026-{uuid.uuid4().int % 10**7:07d}", channel=Channel.SITE_FORM,
        source_id=f"s-{uuid.uuid4()}", received_at=at, registered_at=at,
        applicant=Applicant(email="ivanova@example.ru", phone="+79120000000"),
        consent=Consent(personal_data=True, notifications=notify), address=Address(text="ул. Ленина, 10"),
        house_key="addr:ул ленина 10", category=Category.HEATING, category_source="channel", emergency=emergency,
        emergency_rule=rule, text="Нет отопления",
    )


def assigned(a: Appeal, party: str = "uk-zarechye", kind: PartyKind = PartyKind.MANAGING_ORGANISATION,
             at: datetime = T0, **kw: Any) -> AppealAssigned:
    return AppealAssigned(appeal_id=a.appeal_id, registration_number=a.registration_number, party_id=party,
                          party_kind=kind, reason="r", assigned_at=at, party_timezone="Europe/Moscow", **kw)


def status(a: Appeal, to: AppealStatus) -> AppealStatusChanged:
    return AppealStatusChanged(appeal_id=a.appeal_id, registration_number=a.registration_number,
                               from_status=AppealStatus.IN_PROGRESS, to_status=to, action="x", party_id="uk-zarechye",
                               version=3, changed_at=T0)


def extended(a: Appeal, days: int = 5) -> AppealExtended:
    return AppealExtended(appeal_id=a.appeal_id, registration_number=a.registration_number, party_id="uk-zarechye",
                          days=days, reason="x", extended_at=T0)


def answered(a: Appeal) -> AppealAnswered:
    return AppealAnswered(appeal_id=a.appeal_id, registration_number=a.registration_number, party_id="uk-zarechye",
                          text="Ответ", answered_at=T0)


def lifecycles() -> tuple[list[Envelope[Any]], list[Envelope[Any]]]:
    """(earlier, batch): the earlier records of one appeal, then several whole lifecycles interleaved."""
    old = appeal()
    earlier = [envelope(AppealRegistered(appeal=old)), envelope(assigned(old))]
    a, b, d = appeal(), appeal(), appeal(notify=False)
    # registered with microseconds and in another zone: what is served from memory must be what the
    # database would give back (milliseconds, UTC)
    c = appeal(at=datetime(2026, 1, 12, 12, 0, 0, 123456, tzinfo=timezone(timedelta(hours=3))), emergency=True)
    lives = [
        # assigned, extended (its alerts of this very batch cancelled), stopped, answered
        [AppealRegistered(appeal=a), assigned(a), extended(a), status(a, AppealStatus.ANSWERED), answered(a)],
        # re-routed, closed, reopened (a replan after a stop), answered
        [AppealRegistered(appeal=b), assigned(b),
         assigned(b, party="adm-leninsky", kind=PartyKind.DISTRICT_ADMINISTRATION, cause=AssignmentCause.ESCALATION,
                  previous_party_id="uk-zarechye", level=1),
         status(b, AppealStatus.CLOSED), status(b, AppealStatus.REOPENED), answered(b)],
        # an emergency (minutes), answered at once
        [AppealRegistered(appeal=c), assigned(c), status(c, AppealStatus.IN_PROGRESS), answered(c),
         status(c, AppealStatus.ANSWERED)],
        # no consent to notices; extended twice
        [AppealRegistered(appeal=d), assigned(d), extended(d, 3), extended(d, 2), status(d, AppealStatus.WITHDRAWN)],
        # registered and assigned in an earlier batch: its reads and cancellations reach the database
        [extended(old), answered(old), status(old, AppealStatus.ANSWERED)],
    ]
    batch = []
    for i in range(max(map(len, lives))):  # interleaved, each appeal's records in order
        batch += [envelope(life[i]) for life in lives if i < len(life)]
    return earlier, batch


async def test_a_batch_gives_what_one_record_per_batch_gives_in_a_few_commands(infra, prefix, mongo_db):
    earlier, batch = lifecycles()
    listener = Commands()
    client = AsyncMongoClient(infra.mongo_uri, tz_aware=True, event_listeners=[listener])
    other = f"{prefix}_one"
    try:
        bulk = Notifier(client, client[prefix], Clock(T0))
        one = Notifier(mongo_db.client, mongo_db.client[other], Clock(T0))
        for n in (bulk, one):
            await n.repo.ensure_indexes()
            for e in earlier:
                await n.engine.process([rec(e)])
        for e in batch:
            await one.engine.process([rec(e)])
        listener.on = True
        await bulk.engine.process([rec(e) for e in batch])  # one batch, one transaction
        listener.on = False
        assert bulk.pub.sent == one.pub.sent == []
        assert bulk.pub.records == one.pub.records  # the same events, byte for byte
        state = await bulk.state()
        assert state == await one.state()
        assert len(state["notifier_alerts"]) > 20 and {a["state"] for a in state["notifier_alerts"]} == {"cancelled", "pending"}

        commands = Counter(name for name, _ in listener.seen)
        written = sum(len(state[c]) for c in (*STATE, "processed_events"))  # documents, markers included
        print(f"\n{len(batch)} records, {written} documents written, {len(listener.seen)} commands: {dict(commands)}")
        assert "batch_redo" not in str(listener.seen) and commands["abortTransaction"] == 0
        # reads: the batch's facts and deadlines read ahead, one query each (the unit's prefetch)
        finds = Counter(coll for name, coll in listener.seen if name == "find")
        assert finds == {"notifier_appeals": 1, "notifier_deadlines": 1}
        # writes: one bulk write per collection (the alerts: cancellations, then inserts), the markers
        writes = Counter(coll for name, coll in listener.seen if name in ("insert", "update"))
        assert writes == {"notifier_appeals": 1, "notifier_deadlines": 1, "notifier_alerts": 2,
                          "notifier_deliveries": 1, "processed_events": 1}
        assert len(listener.seen) <= 10 < written / 5
    finally:
        await client.drop_database(other)
        await client.close()
