"""MongoTracking on the real MongoDB-protocol server: a unit's state writes, markers and outbox
commit together or not at all; a marker exists once; markers are scoped per consumer."""

from __future__ import annotations

import pytest

from zhkh_runtime.engine import AlreadyProcessed, Marker
from zhkh_runtime.mongo import MongoTracking
from zhkh_runtime.records import OutboundRecord

pytestmark = pytest.mark.integration


class Uow:
    def __init__(self, db, session) -> None:  # noqa: ANN001
        self.db, self.session = db, session

    async def write(self, n: int) -> None:
        await self.db["state"].insert_one({"_id": n}, session=self.session)


def rec(n: int) -> OutboundRecord:
    return OutboundRecord(topic="t", key=b"k", value=f'{{"n": {n}}}'.encode(), headers={"ce_id": str(n)})


async def test_state_markers_and_outbox_commit_together(mongo_db):
    t = MongoTracking(mongo_db.client, mongo_db, lambda s: Uow(mongo_db, s))
    async with t.unit() as unit:
        await unit.uow.write(1)
        await unit.uow.write(2)
        await unit.add_markers([Marker("svc:a", "d1", [rec(1)]), Marker("svc:b", "d2", [rec(2), rec(3)])])
    assert await mongo_db["state"].count_documents({}) == 2
    b = await t.find("svc:b")
    assert b is not None and b.digest == "d2" and [r.value for r in b.outbox] == [rec(2).value, rec(3).value]


async def test_a_failed_unit_leaves_no_state_and_no_marker(mongo_db):
    t = MongoTracking(mongo_db.client, mongo_db, lambda s: Uow(mongo_db, s))
    with pytest.raises(RuntimeError):
        async with t.unit() as unit:
            await unit.uow.write(1)
            await unit.add_markers([Marker("svc:a", "d", [])])
            raise RuntimeError("handler failed after writing")
    assert await mongo_db["state"].count_documents({}) == 0 and await t.find("svc:a") is None


async def test_an_existing_marker_aborts_the_whole_unit(mongo_db):
    t = MongoTracking(mongo_db.client, mongo_db, lambda s: Uow(mongo_db, s))
    async with t.unit() as unit:
        await unit.add_markers([Marker("svc:a", "d", [])])
    with pytest.raises(AlreadyProcessed):
        async with t.unit() as unit:
            await unit.uow.write(7)
            await unit.add_markers([Marker("svc:new", "d", []), Marker("svc:a", "d", [])])
    assert await mongo_db["state"].count_documents({}) == 0 and await t.find("svc:new") is None


async def test_markers_are_scoped_per_consumer(mongo_db):
    t = MongoTracking(mongo_db.client, mongo_db, lambda s: Uow(mongo_db, s))
    async with t.unit() as unit:
        await unit.add_markers([Marker("router:e1", "d", [])])
    async with t.unit() as unit:
        await unit.add_markers([Marker("notifier:e1", "d", [])])
    assert await mongo_db["processed_events"].count_documents({}) == 2
