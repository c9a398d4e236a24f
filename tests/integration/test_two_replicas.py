"""Two replicas of the services with background loops, on the real broker and database: the
notifier's scanner sends each due alert once, and gis_sync's dispatcher sends each ГИС action once
(the loops run under a lease; the consumers share the partitions)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from tests.integration.test_gis_sync import Lifecycle, control, emulator, gis_settings, of_type, seed
from tests.support.kafka import TopicReader, running
from tests.support.services import service_settings
from zhkh_contracts import (
    REGISTRY,
    AppealStatus,
    DeadlineAlert,
    DeadlineExpired,
    GisActionFailed,
    GisActionMirrored,
    Topics,
    from_kafka,
)

pytestmark = pytest.mark.integration
ALERTS = 40


async def test_two_notifiers_send_each_due_alert_once(infra, prefix, mongo_db):
    from notifier.main import create_app
    from notifier.repository import NotifierRepository
    from notifier.settings import NotifierSettings

    now = datetime.now(UTC)
    alerts = []
    for i in range(ALERTS):
        aid = str(uuid.uuid4())
        alerts.append({"_id": f"{aid}:1:overdue", "appeal_id": aid, "generation": 1, "threshold": "overdue",
                       "alert_at": now - timedelta(seconds=1), "due_at": now - timedelta(seconds=1), "party_id": "uk",
                       "number": f"ZH-2026-{i:07d}", "supervisor_id": None, "correlation_id": str(uuid.uuid4()),
                       "state": "pending"})
    await NotifierRepository(mongo_db).ensure_indexes()
    await mongo_db["notifier_alerts"].insert_many(alerts)

    def replica(n: int):  # noqa: ANN202
        return create_app(service_settings(NotifierSettings, infra, prefix, group_instance_id=f"notifier-{n}",
                                           scan_interval_s=0.05, scan_batch=5, lease_ttl_s=2.0))

    topics = Topics(prefix)
    async with TopicReader(infra.bootstrap, topics.lifecycle, topics.actions) as r:
        async with running(replica(1)), running(replica(2)):
            await r.wait_for(lambda recs: sum(1 for x in recs if x.topic == topics.lifecycle) >= ALERTS, timeout=60)
            await r.settle(2.0)
    sent = [from_kafka(x.value, x.headers, REGISTRY) for x in r.records]
    alert_ids = [e.id for e in sent if isinstance(e.data, DeadlineAlert)]
    expired_ids = [e.id for e in sent if isinstance(e.data, DeadlineExpired)]
    assert len(alert_ids) == len(set(alert_ids)) == ALERTS  # each alert published once, by one replica
    assert len(expired_ids) == len(set(expired_ids)) == ALERTS
    assert await mongo_db["notifier_alerts"].count_documents({"state": "sent"}) == ALERTS


async def test_two_gis_sync_replicas_send_each_action_once(infra, prefix):
    from gis_sync.main import create_app

    topics = Topics(prefix)
    async with emulator() as (_, url):
        guids = [x["appeal_guid"] for x in await seed(url, 3)]
        lifecycles = [Lifecycle(infra, prefix, g) for g in guids]
        # gis_stuck_after_s long: no resend for slowness, so any TransportGUID sent twice is two dispatchers
        apps = [create_app(gis_settings(infra, prefix, url, group_instance_id=f"gis-{n}", lease_ttl_s=2.0, gis_stuck_after_s=30))
                for n in (1, 2)]
        async with TopicReader(infra.bootstrap, topics.lifecycle) as r, running(apps[0]), running(apps[1]):
            for lc in lifecycles:
                await lc.publish(lc.registered(), lc.assigned(), lc.extended(), lc.answered(),
                                 lc.status(AppealStatus.CLOSED, "rate"))
            await r.wait_for(lambda _: len(of_type(r, GisActionMirrored)) >= 4 * len(guids), timeout=90)
            await r.settle(2.0)
            mirrored, failed = of_type(r, GisActionMirrored), of_type(r, GisActionFailed)
        record = await control(url, "GET", "/emulator/record")
    assert failed == []
    # four queue items per appeal (the answer is one item: LoadAnswer + SendAnswer)
    assert len({e.data.transport_guid for e in mirrored}) == len({e.id for e in mirrored}) == 4 * len(guids)
    tgs = [x["transport_guid"] for x in record["applied"]]
    assert len(tgs) == len(set(tgs))  # every TransportGUID applied once
    assert record["duplicates"] == {}  # and never sent twice: one dispatcher at a time
    for g in guids:
        kinds = [x["kind"] for x in record["applied"] if x["appeal_guid"] == g]
        assert kinds == ["Performer", "RollOverAppeal", "LoadAnswer", "SendAnswer", "Executed"]
