"""The notifier on the real broker and database: deadlines planned, alerts sent on time, once."""

from __future__ import annotations

import contextlib
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from devtools import samples
from tests.support.clock import Clock
from tests.support.engine import owned, rec
from tests.support.kafka import TopicReader, running
from tests.support.services import publish_raw, service_settings
from zhkh_contracts import (
    REGISTRY,
    AppealAssigned,
    AppealRegistered,
    AppealStatus,
    AppealStatusChanged,
    AppealTransitionRejected,
    AssignmentCause,
    DeadlineAlert,
    DeadlineExpired,
    DeadlinePlanned,
    Envelope,
    PartyKind,
    Topics,
    from_kafka,
)

pytestmark = pytest.mark.integration
SAMPLE = Path(__file__).resolve().parents[2] / "devtools" / "sample_directory"


class Notifier:
    """The notifier's handlers on the runtime's engine with the real transaction path (MongoTracking)
    and its scanner on the same database; published records collected."""

    def __init__(self, mongo_db, prefix: str, clock: Clock) -> None:  # noqa: ANN001
        from notifier.deadlines import DeadlineTable
        from notifier.repository import NotifierRepository
        from notifier.service import NotifierService
        from notifier.uow import MongoNotifierUoW
        from tests.support.engine import make_engine
        from zhkh_runtime.engine import Emitter
        from zhkh_runtime.mongo import MongoTracking

        self.repo = NotifierRepository(mongo_db)
        self.service = NotifierService(DeadlineTable.load(), ["50%", "80%", "1wd", "overdue"], clock)
        tracking = MongoTracking(mongo_db.client, mongo_db, lambda s: MongoNotifierUoW(self.repo, s))
        self.engine, self.pub = make_engine("notifier", self.service.handlers(), tracking, clock=clock)
        self.emitter = Emitter("notifier", Topics(prefix), clock)

    async def handle(self, env: Envelope) -> list:
        """Process one event; the records it published."""
        before = len(self.pub.records)
        await self.engine.process([rec(env)])
        assert self.pub.sent == []  # nothing dead-lettered
        return self.pub.records[before:]

    async def handle_batch(self, envs: list[Envelope]) -> list:
        """Process events as one batch (one transaction); the records it published."""
        before = len(self.pub.records)
        await self.engine.process([rec(e) for e in envs])
        assert self.pub.sent == []
        return self.pub.records[before:]

    async def scan(self, publish) -> int:  # noqa: ANN001
        async def emit(out) -> None:  # noqa: ANN001
            await publish(self.emitter.records(out))

        return await self.service.scan(self.repo, emit)


def registered_and_assigned(registered_at: datetime, tz: str = "Europe/Moscow", meta: dict | None = None):  # noqa: ANN201
    from intake.classifier import Classifier
    from intake.service import build_appeal, prepare

    raw = samples.raw_submission(source_id=f"n-{uuid.uuid4()}").model_copy(update={"channel_meta": meta or {}})
    appeal = build_appeal(prepare(raw), uuid.uuid4(), "ZH-2026-0000042", registered_at, Classifier())
    reg = owned(AppealRegistered(appeal=appeal), appeal_id=str(appeal.appeal_id))
    asg = owned(
        AppealAssigned(appeal_id=appeal.appeal_id, registration_number="ZH-2026-0000042", party_id="uk-zarechye",
                       party_kind=PartyKind.MANAGING_ORGANISATION, reason="r", assigned_at=registered_at,
                       party_timezone=tz),
        appeal_id=str(appeal.appeal_id), correlation_id=reg.correlation_id,
    )
    return appeal, reg, asg


def decode(records):  # noqa: ANN001, ANN201
    return [(r.topic, from_kafka(r.value, [(k, v.encode()) for k, v in r.headers.items()], REGISTRY)) for r in records]


async def test_deadline_planned_then_alerts_sent_on_time_and_only_once(infra, prefix, mongo_db):
    reg_at = datetime(2026, 1, 12, 9, 0, tzinfo=UTC)  # Monday, 12:00 in Moscow
    clock = Clock(reg_at)
    svc = Notifier(mongo_db, prefix, clock)
    await svc.repo.ensure_indexes()
    appeal, reg, asg = registered_and_assigned(reg_at)
    assert await svc.handle(reg) == []
    (planned,) = decode(await svc.handle(asg))
    p = planned[1].data
    assert isinstance(p, DeadlinePlanned) and (p.regime, p.generation) == ("pp416_written", 1)
    assert p.due_at == datetime(2026, 1, 26, 20, 59, 59, tzinfo=UTC)  # 10 working days, end of day MSK

    sent: list = []

    async def publish(records):  # noqa: ANN001, ANN202
        sent.extend(records)

    assert await svc.scan(publish) == 0  # nothing is due yet: no early alert
    clock.now = reg_at + (p.due_at - reg_at) / 2 - timedelta(seconds=1)
    assert await svc.scan(publish) == 0
    clock.now += timedelta(seconds=2)
    assert await svc.scan(publish) == 1
    assert decode(sent)[0][1].data.threshold == "50%"
    clock.now = p.due_at + timedelta(minutes=1)
    assert await svc.scan(publish) == 3  # 80%, 1wd, overdue
    assert await svc.scan(publish) == 0  # and never again
    evs = decode(sent)
    assert [e.data.threshold for t, e in evs if isinstance(e.data, DeadlineAlert)] == ["50%", "80%", "1wd", "overdue"]
    (expired,) = [(t, e) for t, e in evs if isinstance(e.data, DeadlineExpired)]
    assert expired[0] == Topics(prefix).actions and expired[1].data.deadline == p.due_at


async def test_gis_execution_end_date_wins_over_the_table(infra, prefix, mongo_db):
    reg_at = datetime(2026, 1, 12, 9, 0, tzinfo=UTC)
    svc = Notifier(mongo_db, prefix, Clock(reg_at))
    _, reg, asg = registered_and_assigned(reg_at, meta={"execution_end_date": "2026-02-02T18:00:00+03:00"})
    await svc.handle(reg)
    (planned,) = decode(await svc.handle(asg))
    p = planned[1].data
    assert (p.regime, p.due_at) == ("gis_execution_end_date", datetime(2026, 2, 2, 15, 0, tzinfo=UTC))


async def test_a_crash_between_sending_and_marking_resends_the_same_events(infra, prefix, mongo_db):
    reg_at = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    clock = Clock(reg_at)
    svc = Notifier(mongo_db, prefix, clock)
    appeal, reg, asg = registered_and_assigned(reg_at)
    await svc.handle(reg)
    await svc.handle(asg)
    clock.now = reg_at + timedelta(days=60)
    first: list = []

    async def publish_then_crash(records):  # noqa: ANN001, ANN202
        first.extend(records)
        raise ConnectionError("killed after publishing, before marking")

    with pytest.raises(ConnectionError):
        await svc.scan(publish_then_crash)
    restarted = Notifier(mongo_db, prefix, clock)  # a new process, same database
    again: list = []

    async def publish(records):  # noqa: ANN001, ANN202
        again.extend(records)

    assert await restarted.scan(publish) == 4
    ids_first = {e.id for _, e in decode(first)}
    ids_again = {e.id for _, e in decode(again)}
    assert ids_first <= ids_again  # the resent alert is the very same event: consumers dedupe it
    assert len(ids_again) == 5  # 4 alerts + 1 DeadlineExpired, each once
    assert await restarted.scan(publish) == 0


async def test_answer_stops_the_timers_and_extension_replans(infra, prefix, mongo_db):
    from zhkh_contracts import AppealExtended

    reg_at = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    clock = Clock(reg_at)
    svc = Notifier(mongo_db, prefix, clock)
    repo = svc.repo
    appeal, reg, asg = registered_and_assigned(reg_at)
    await svc.handle(reg)
    await svc.handle(asg)
    ext = owned(AppealExtended(appeal_id=appeal.appeal_id, registration_number="N", party_id="uk-zarechye", days=5,
                                      reason="x", extended_at=reg_at), appeal_id=str(appeal.appeal_id))
    (planned,) = decode(await svc.handle(ext))
    assert (planned[1].data.generation, planned[1].data.reason) == (2, "extended")
    assert (await repo.deadline(appeal.appeal_id))["due_at"] > asg.data.assigned_at + timedelta(days=14)
    answered = owned(AppealStatusChanged(appeal_id=appeal.appeal_id, registration_number="N",
                                                from_status=AppealStatus.IN_PROGRESS, to_status=AppealStatus.ANSWERED,
                                                action="answer", party_id="uk-zarechye", version=3, changed_at=reg_at),
                            appeal_id=str(appeal.appeal_id))
    assert await svc.handle(answered) == []
    clock.now = reg_at + timedelta(days=90)

    async def publish(records):  # noqa: ANN001, ANN202
        raise AssertionError("no alert after the answer")

    assert await svc.scan(publish) == 0
    assert await repo.pending_count() == 0


async def test_redelivered_events_on_the_real_transaction_path_change_nothing(infra, prefix, mongo_db):
    """Alone and inside a batch: the markers are found, the same DeadlinePlanned is republished, the
    deadline keeps its generation and the citizen's notice is queued once."""
    reg_at = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    svc = Notifier(mongo_db, prefix, Clock(reg_at))
    appeal, reg, asg = registered_and_assigned(reg_at)
    await svc.engine.process([rec(reg), rec(asg)])  # one batch, one transaction
    (first,) = decode(svc.pub.records)
    await svc.handle(asg)
    await svc.engine.process([rec(reg), rec(asg)])
    assert svc.pub.sent == []
    assert [e.id for _, e in decode(svc.pub.records)] == [first[1].id] * 3
    assert (await svc.repo.deadline(appeal.appeal_id))["generation"] == 1
    assert await mongo_db.notifier_alerts.count_documents({}) == 4
    assert await mongo_db.notifier_deliveries.count_documents({}) == 1


@contextlib.asynccontextmanager
async def router_and_notifier(infra, prefix, deadline_table):  # noqa: ANN001, ANN201
    from intake.main import create_app as intake_app
    from intake.settings import IntakeSettings
    from notifier.main import create_app as notifier_app
    from notifier.settings import NotifierSettings
    from router.cli import import_directory
    from router.main import create_app as router_app
    from router.settings import RouterSettings

    rs = service_settings(RouterSettings, infra, prefix)
    assert await import_directory(sorted(SAMPLE.glob("*.csv")), rs) == 0
    ns = service_settings(NotifierSettings, infra, prefix, deadline_table=deadline_table, scan_interval_s=0.2)
    async with running(intake_app(service_settings(IntakeSettings, infra, prefix))), running(router_app(rs)), running(notifier_app(ns)):
        yield


async def test_overdue_makes_the_router_escalate_up_the_whole_chain(infra, prefix, tmp_path):
    """Every regime set to 0 minutes: each assignment is overdue at once, so the notifier's
    DeadlineExpired walks the appeal up the chain until the router has no level left."""
    table = tmp_path / "deadlines.toml"
    table.write_text('[regimes.now]\nkind = "minutes"\namount = 0\n[[apply]]\nregime = "now"\n')
    async with router_and_notifier(infra, prefix, table):
        raw = samples.raw_submission(source_id="late-1")
        await publish_raw(infra, prefix, raw)
        async with TopicReader(infra.bootstrap, Topics(prefix).lifecycle) as lc:
            def evs():  # noqa: ANN202
                return [from_kafka(r.value, r.headers, REGISTRY).data for r in lc.records]

            await lc.wait_for(lambda _: any(isinstance(e, AppealTransitionRejected) for e in evs()), timeout=60)
    chain = [(a.party_id, a.level, a.cause) for a in evs() if isinstance(a, AppealAssigned)]
    assert chain == [("uk-zarechye", 0, AssignmentCause.RULE), ("adm-leninsky", 1, AssignmentCause.ESCALATION),
                     ("city-zhkh", 2, AssignmentCause.ESCALATION), ("gzhi", 3, AssignmentCause.ESCALATION)]
    assert [p.generation for p in evs() if isinstance(p, DeadlinePlanned)] == [1, 2, 3, 4]
    (refused,) = [e for e in evs() if isinstance(e, AppealTransitionRejected)]
    assert (refused.code, refused.action) == ("escalation_exhausted", "deadline_expired")


async def test_stops_and_replans_of_earlier_deadlines_in_one_batch(infra, prefix, mongo_db):
    """Deadlines planned by an earlier batch, then in one batch: one closed, extended (ignored: the
    stop, buffered before anything read the deadline, is seen) and reopened; one answered without
    any read."""
    from zhkh_contracts import AppealExtended

    reg_at = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    svc = Notifier(mongo_db, prefix, Clock(reg_at))
    x, *xs = registered_and_assigned(reg_at)
    y, *ys = registered_and_assigned(reg_at)
    await svc.handle_batch([*xs, *ys])

    def status(appeal, to: AppealStatus) -> Envelope:  # noqa: ANN001
        return owned(AppealStatusChanged(appeal_id=appeal.appeal_id, registration_number="N",
                                                from_status=AppealStatus.ANSWERED, to_status=to, action="x",
                                                party_id="uk-zarechye", version=4, changed_at=reg_at),
                            appeal_id=str(appeal.appeal_id))

    ext = owned(AppealExtended(appeal_id=x.appeal_id, registration_number="N", party_id="uk-zarechye", days=5,
                                      reason="x", extended_at=reg_at), appeal_id=str(x.appeal_id))
    (planned,) = decode(await svc.handle_batch([status(x, AppealStatus.CLOSED), ext, status(x, AppealStatus.REOPENED),
                                                status(y, AppealStatus.ANSWERED)]))
    assert (planned[1].data.generation, planned[1].data.reason) == (2, "reopened")
    assert (await svc.repo.deadline(x.appeal_id))["status"] == "active"
    assert (await svc.repo.deadline(y.appeal_id))["status"] == "stopped"
    pending = await mongo_db.notifier_alerts.find({"state": "pending"}).to_list()
    assert {(a["appeal_id"], a["generation"]) for a in pending} == {(str(x.appeal_id), 2)}
    assert await mongo_db.notifier_alerts.count_documents({"state": "cancelled"}) == 8
