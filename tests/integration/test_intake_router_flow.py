"""intake and router wired as in production, on the real broker and database."""

from __future__ import annotations

import contextlib
import uuid

import pytest

from devtools import samples
from tests.support.kafka import TopicReader, running
from tests.support.services import publish_raw, service_settings
from zhkh_contracts import REGISTRY, AppealAssigned, AppealRegistered, Channel, from_kafka

pytestmark = pytest.mark.integration


@contextlib.asynccontextmanager
async def system(infra, prefix):  # noqa: ANN001, ANN201 - not a fixture: anyio scopes must stay in one task
    from intake.main import create_app as intake_app
    from intake.settings import IntakeSettings
    from router.main import create_app as router_app
    from router.settings import RouterSettings

    intake, router = intake_app(service_settings(IntakeSettings, infra, prefix)), router_app(service_settings(RouterSettings, infra, prefix))
    async with running(intake), running(router):
        yield


def events(records):  # noqa: ANN001, ANN201
    return [from_kafka(r.value, r.headers, REGISTRY) for r in records]


async def test_every_channel_is_registered_and_assigned(infra, prefix, mongo_db):
    async with system(infra, prefix):
        raws = [samples.raw_submission(channel=ch) for ch in Channel]
        for raw in raws:
            await publish_raw(infra, prefix, raw)
        async with TopicReader(infra.bootstrap, f"{prefix}.appeals.lifecycle") as lc:
            recs = await lc.wait_for(lambda r: sum(1 for e in events(r) if isinstance(e.data, AppealAssigned)) == len(raws))
        evs = events(recs)
        registered = [e.data.appeal for e in evs if isinstance(e.data, AppealRegistered)]
        assert sorted(a.channel for a in registered) == sorted(Channel)
        numbers = {a.registration_number for a in registered}
        assert len(numbers) == len(raws) and all(n.startswith("ZH-") for n in numbers)
        # contacts normalised, house key from the FIAS GUID
        assert {a.applicant.phone for a in registered} == {"+79123456789"}
        assert {a.applicant.email for a in registered} == {"ivanova.demo@example.ru"}
        assert {a.house_key for a in registered} == {f"fias:{samples.DEMO_HOUSE_GUID}"}
        # each record is keyed by its appeal id (per-appeal ordering)
        for r, e in zip(recs, evs, strict=True):
            assert r.key.decode() == e.appeal_id
        assert await mongo_db.intake_appeals.count_documents({}) == len(raws)
        assert await mongo_db.router_appeals.count_documents({"status": "assigned"}) == len(raws)

async def test_redelivered_and_republished_submission_registers_once(infra, prefix, mongo_db):
    async with system(infra, prefix):
        raw = samples.raw_submission(channel=Channel.HOTLINE, source_id="call-42")
        event_id = uuid.uuid4()
        await publish_raw(infra, prefix, raw, event_id=event_id)
        await publish_raw(infra, prefix, raw, event_id=event_id)  # broker-level redelivery / producer retry
        await publish_raw(infra, prefix, raw)  # the call centre sends the same call again with a new event id
        async with TopicReader(infra.bootstrap, f"{prefix}.appeals.lifecycle") as lc:
            await lc.wait_for(lambda r: len(r) >= 1)
            recs = await lc.settle(4.0)
        evs = events(recs)
        registered = [e for e in evs if isinstance(e.data, AppealRegistered)]
        assigned = [e for e in evs if isinstance(e.data, AppealAssigned)]
        # intake may republish its stored event, but always the same event (same id), for one appeal
        assert len({e.id for e in registered}) == 1
        assert len({e.data.appeal.appeal_id for e in registered}) == 1
        assert len({e.id for e in assigned}) == 1
        assert await mongo_db.intake_appeals.count_documents({}) == 1
        assert await mongo_db.router_appeals.count_documents({}) == 1
        for service in ("intake", "router"):  # redeliveries are absorbed, not dead-lettered
            async with TopicReader(infra.bootstrap, f"{prefix}.{service}.dlq") as dlq:
                assert await dlq.settle(0.5) == []
