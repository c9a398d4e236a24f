"""analytics' consumer through the engine on its in-memory unit of work: every lifecycle event folds
into the appeal's read-model document once, in a batch or one by one, redelivered or not."""

from __future__ import annotations

from datetime import timedelta

from analytics.service import AnalyticsService
from analytics.uow import MemoryAnalyticsUoW
from tests.support.engine import envelope, make_engine, rec
from tests.unit.test_analytics import T0, alert, answered, appeal, assigned, planned, status
from zhkh_contracts import AppealRegistered, AppealStatus
from zhkh_runtime.engine import MemoryTracking


def analytics():  # noqa: ANN201
    uow = MemoryAnalyticsUoW()
    eng, pub = make_engine("analytics", AnalyticsService(repo=None).handlers(), MemoryTracking(uow))
    return eng, pub, uow


def lifecycle():  # noqa: ANN201
    a = appeal()
    key = str(a.appeal_id)
    evs = [AppealRegistered(appeal=a), assigned(), planned(T0 + timedelta(days=10)), alert("80%", T0),
           alert("overdue", T0 + timedelta(days=10)), answered(T0 + timedelta(days=11)), status(AppealStatus.ANSWERED, 4)]
    return key, [rec(envelope(e, key=key)) for e in evs]


async def test_a_lifecycle_in_one_batch_folds_like_one_event_per_batch_and_publishes_nothing():
    key, records = lifecycle()
    batch, pub, uow = analytics()
    await batch.process(records)
    single, _, uow2 = analytics()
    for r in records:
        await single.process([r])
    doc = uow.appeals.docs[key]
    assert doc == uow2.appeals.docs[key]
    assert (doc["status"], doc["overdue_alert"], doc["answered_late"]) == ("answered", True, True)
    assert doc["minutes_to_answer"] == 11 * 24 * 60
    assert pub.records == [] and pub.sent == []


async def test_redelivered_events_change_nothing():
    key, records = lifecycle()
    eng, _, uow = analytics()
    await eng.process(records)
    before = dict(uow.appeals.docs[key])
    await eng.process(records[2:])
    assert uow.appeals.docs[key] == before
