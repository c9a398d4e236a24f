"""kill -9 the notifier while it plans and sends, start it again: every alert goes out, each once by id.

Found by this test: the killed process's open transaction keeps its locks for about 60 s, so the
redelivered event conflicts until then; a 5-attempt retry budget dead-lettered it. The budget is now
time-based (ZHKH_RETRY_BUDGET_S, 90 s)."""

from __future__ import annotations

import os
import signal
import subprocess
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest

from devtools import samples
from tests.support.engine import owned
from tests.support.kafka import TopicReader, produce
from tests.support.services import start_process
from zhkh_contracts import (
    REGISTRY,
    AppealAssigned,
    AppealRegistered,
    DeadlineAlert,
    DeadlineExpired,
    PartyKind,
    Topics,
    from_kafka,
    to_kafka,
)
from zhkh_runtime.kafka import ensure_topics

pytestmark = pytest.mark.integration
N = 120


def start_notifier(infra, prefix, table: Path, log: Path) -> subprocess.Popen[bytes]:  # noqa: ANN001
    return start_process("notifier", infra, prefix, log, ZHKH_DEADLINE_TABLE=str(table), ZHKH_SCAN_BATCH="5",
                         ZHKH_SCAN_INTERVAL_S="0.05")


async def test_kill_9_mid_run_loses_and_repeats_nothing(infra, prefix, tmp_path):
    from intake.classifier import Classifier
    from intake.service import build_appeal, prepare

    topics = Topics(prefix)
    await ensure_topics(infra.bootstrap, topics.catalog())
    table = tmp_path / "deadlines.toml"
    table.write_text('[regimes.now]\nkind = "minutes"\namount = 0\n[[apply]]\nregime = "now"\n')  # overdue at once
    clf, now, ids = Classifier(), datetime.now(UTC), []
    for i in range(N):
        raw = samples.raw_submission(source_id=f"k-{i}")
        a = build_appeal(prepare(raw), uuid.uuid4(), f"ZH-2026-{i:07d}", now, clf)
        reg = owned(AppealRegistered(appeal=a), appeal_id=str(a.appeal_id))
        asg = owned(AppealAssigned(appeal_id=a.appeal_id, registration_number=a.registration_number,
                                          party_id="uk", party_kind=PartyKind.MANAGING_ORGANISATION, reason="r",
                                          assigned_at=now), appeal_id=str(a.appeal_id))
        for env in (reg, asg):
            key, value, headers = to_kafka(env)
            await produce(infra.bootstrap, topics.lifecycle, value, key, [(k, v.encode()) for k, v in headers.items()])
        ids.append(str(a.appeal_id))

    log = tmp_path / "notifier.log"
    first = start_notifier(infra, prefix, table, log)
    async with TopicReader(infra.bootstrap, topics.lifecycle, topics.actions) as r:
        def alerts():  # noqa: ANN202
            evs = [from_kafka(x.value, x.headers, REGISTRY) for x in r.records]
            return [e for e in evs if isinstance(e.data, DeadlineAlert | DeadlineExpired)]

        await r.wait_for(lambda _: len(alerts()) >= 30, timeout=90)
        os.killpg(first.pid, signal.SIGKILL)  # mid-run: planning and sending still under way
        first.wait(10)
        killed_at = len(alerts())
        second = start_notifier(infra, prefix, table, log)
        try:
            try:
                # the killed process's open transaction holds its locks for ~60 s; the retry budget waits
                await r.wait_for(lambda _: len({e.id for e in alerts()}) >= 2 * N, timeout=180)
            except TimeoutError:
                from pymongo import AsyncMongoClient

                db = AsyncMongoClient(infra.mongo_uri)[prefix]
                states = {s: await db.notifier_alerts.count_documents({"state": s}) for s in ("pending", "sent", "cancelled")}
                raise AssertionError(
                    f"killed at {killed_at}; distinct alert events {len({e.id for e in alerts()})}; "
                    f"deadlines {await db.notifier_deadlines.count_documents({})}; alerts {states}; "
                    f"second alive {second.poll() is None}; log tail {log.read_text()[-1500:]}"
                ) from None
            await r.settle(2.0)
        finally:
            second.send_signal(signal.SIGTERM)
            second.wait(30)
    evs = alerts()
    assert killed_at < 2 * N  # the kill really happened mid-run
    by_id: dict = {}
    for e in evs:
        by_id.setdefault(e.id, e)
    alert_for = [str(e.data.appeal_id) for e in by_id.values() if isinstance(e.data, DeadlineAlert)]
    expired_for = [str(e.data.appeal_id) for e in by_id.values() if isinstance(e.data, DeadlineExpired)]
    assert sorted(alert_for) == sorted(ids)  # every appeal's alert, one id each: nothing lost
    assert sorted(expired_for) == sorted(ids)
    # a record may be resent after the kill, but only as the very same event (same id)
    assert len(evs) - len(by_id) <= 2 * 5  # at most one in-flight scan batch of 5 alerts (2 events each)
