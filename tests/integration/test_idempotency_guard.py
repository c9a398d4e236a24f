"""IdempotencyGuard on the real MongoDB-protocol server: once per key, atomically with its outbox."""

from __future__ import annotations

import pytest
from pymongo import AsyncMongoClient

from zhkh_runtime.mongo import IdempotencyGuard
from zhkh_runtime.records import OutboundRecord

pytestmark = pytest.mark.integration


def rec(n: int) -> OutboundRecord:
    return OutboundRecord(topic="t", key=b"k", value=f'{{"n": {n}}}'.encode(), headers={"ce_id": str(n)})


async def test_second_run_with_same_key_returns_stored_outbox_without_running_work(infra, mongo_db):
    client: AsyncMongoClient = mongo_db.client
    guard = IdempotencyGuard(client, mongo_db, "c1")
    calls: list[int] = []

    async def work(session):
        calls.append(1)
        await mongo_db.state.insert_one({"_id": "x", "v": len(calls)}, session=session)
        return [rec(len(calls))]

    first = await guard.run("event-1", work)
    second = await guard.run("event-1", work)
    assert calls == [1]
    assert first == second == [rec(1)]
    assert await mongo_db.state.count_documents({}) == 1
    assert await guard.seen("event-1")


async def test_failed_work_rolls_back_state_and_marker_so_a_retry_runs_again(infra, mongo_db):
    guard = IdempotencyGuard(mongo_db.client, mongo_db, "c1")
    attempts: list[int] = []

    async def work(session):
        attempts.append(1)
        await mongo_db.state.insert_one({"_id": "y"}, session=session)
        if len(attempts) == 1:
            raise RuntimeError("crash after the state change, before commit")
        return [rec(2)]

    with pytest.raises(RuntimeError):
        await guard.run("event-2", work)
    assert await mongo_db.state.count_documents({}) == 0
    assert not await guard.seen("event-2")
    assert await guard.run("event-2", work) == [rec(2)]
    assert await mongo_db.state.count_documents({}) == 1


async def test_keys_are_scoped_per_consumer(infra, mongo_db):
    a = IdempotencyGuard(mongo_db.client, mongo_db, "router")
    b = IdempotencyGuard(mongo_db.client, mongo_db, "notifier")

    async def work(session):
        return [rec(3)]

    await a.run("same-event", work)
    assert not await b.seen("same-event")
    assert await b.run("same-event", work) == [rec(3)]
