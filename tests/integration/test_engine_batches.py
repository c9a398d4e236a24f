"""The engine's guarantees under batching on the real broker and database: a burst on one partition
with bad records in it; every good record's effect exactly once and in order, every bad one its own
dead letter, the offset committed to the end. And the lease that keeps background loops on one
replica."""

from __future__ import annotations

import asyncio
import types
from datetime import UTC, datetime, timedelta

import pytest

from devtools import samples
from tests.integration.conftest import runtime_settings
from tests.support.kafka import TopicReader, committed, eventually, produce, running
from zhkh_contracts import Channel, RawAppealSubmitted
from zhkh_runtime.app import ServiceRuntime
from zhkh_runtime.engine import Handlers
from zhkh_runtime.errors import PermanentError
from zhkh_runtime.lease import Lease

pytestmark = pytest.mark.integration


async def test_a_burst_with_bad_records_applies_each_good_one_once_in_order(infra, prefix, mongo_db):
    rt = ServiceRuntime(runtime_settings(infra, prefix))
    topic = rt.topics.raw(Channel.SITE_FORM)
    log = rt.db["probe_log"]
    h = Handlers()

    @h.on(RawAppealSubmitted)
    async def handle(event, uow):  # noqa: ANN001, ANN202
        if event.text.startswith("bad"):
            raise PermanentError("business_rule", "text starts with bad")
        # a read of what this very batch wrote before (read-your-writes inside the transaction)
        n = await log.count_documents({}, session=uow.session)
        await log.insert_one({"_id": event.source_id, "seen_before": n}, session=uow.session)
        return []

    rt.process((topic,), h, lambda session: types.SimpleNamespace(session=session))
    # everything on one partition (one key), published before the service starts: it arrives in batches
    n, bad = 60, {7, 8, 30, 59}
    values = []
    for i in range(n):
        raw = samples.raw_submission(source_id=f"s-{i:03d}", text=("bad " if i in bad else "") + "Нет горячей воды в квартире.")
        _, _, value, headers = samples.raw_record(raw, topics=rt.topics)
        headers = [(k, b"one-key" if k in ("ce_partitionkey", "ce_subject") else v) for k, v in headers]  # key = partition key
        values.append(value)
        await produce(infra.bootstrap, topic, value, b"one-key", headers)
    async with running(rt.http_app()):
        async with TopicReader(infra.bootstrap, rt.topics.dlq("probe")) as dlq:
            await dlq.wait_for(lambda r: len(r) >= len(bad))
            await eventually(lambda: _count(log, n - len(bad)))
            await dlq.settle(1.0)
    docs = await mongo_db["probe_log"].find({}).sort("seen_before", 1).to_list()
    assert [d["_id"] for d in docs] == [f"s-{i:03d}" for i in range(n) if i not in bad]  # in order
    assert [d["seen_before"] for d in docs] == list(range(n - len(bad)))  # once each
    assert sorted(r.value for r in dlq.records) == sorted(values[i] for i in bad)  # each bad one, its bytes
    assert await mongo_db["processed_events"].count_documents({}) == n - len(bad)
    async with TopicReader(infra.bootstrap, topic) as reader:
        recs = await reader.wait_for(lambda r: len(r) == n)
    part = recs[0].partition
    assert await committed(infra.bootstrap, rt.settings.group_id, topic, part) == recs[-1].offset + 1


async def _count(col, want: int) -> bool:  # noqa: ANN001
    return await col.count_documents({}) == want


async def test_a_lease_has_one_holder_and_passes_on_release_or_expiry(mongo_db):
    now = [datetime(2026, 1, 1, tzinfo=UTC)]
    a = Lease(mongo_db, "svc:loop", 10.0, holder="a", clock=lambda: now[0])
    b = Lease(mongo_db, "svc:loop", 10.0, holder="b", clock=lambda: now[0])
    assert await a.acquire() and not await b.acquire()
    now[0] += timedelta(seconds=5)
    assert await a.acquire() and not await b.acquire()  # renewed
    now[0] += timedelta(seconds=11)
    assert await b.acquire() and not await a.acquire()  # a stopped renewing: expired
    await b.release()
    assert await a.acquire()


async def test_two_replicas_run_a_leased_loop_one_at_a_time(infra, prefix):
    rounds: list[str] = []

    def replica(name: str) -> ServiceRuntime:
        rt = ServiceRuntime(runtime_settings(infra, prefix, lease_ttl_s=1.0))

        async def round_() -> None:
            rounds.append(name)

        rt.every("scan", 0.05, round_)
        return rt

    stops = {"one": asyncio.Event(), "two": asyncio.Event()}

    async def run(name: str) -> None:  # each replica in its own task, as in its own process
        async with running(replica(name).http_app()):
            await stops[name].wait()

    tasks = {name: asyncio.create_task(run(name)) for name in stops}
    try:
        await asyncio.sleep(1.5)
        assert len(set(rounds)) == 1, rounds  # only the holder ran rounds
        holder = rounds[0]
        other = "two" if holder == "one" else "one"
        stops[holder].set()  # the holder stops (and releases its lease)
        await tasks[holder]
        rounds.clear()
        await eventually(lambda: _true(len(rounds) > 0), timeout=10)
        assert set(rounds) == {other}  # the other replica took over
    finally:
        for ev in stops.values():
            ev.set()
        await asyncio.gather(*tasks.values())


async def _true(value: bool) -> bool:
    return value
