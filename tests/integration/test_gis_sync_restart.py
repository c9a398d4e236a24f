"""kill -9 gis_sync while it mirrors, start it again: the emulator's record shows every step of every
appeal applied exactly once and in order, and every GisActionMirrored event id arrives."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from devtools import embedded
from tests.integration.test_gis_sync import PARTY_MAP, SOAP_PATH, Lifecycle, control, emulator, of_type, seed
from tests.support.kafka import TopicReader
from zhkh_contracts import GisActionMirrored, Topics
from zhkh_runtime.kafka import ensure_topics

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
N = 20


def start_gis_sync(infra, prefix, url: str, log: Path) -> subprocess.Popen[bytes]:  # noqa: ANN001
    env = dict(os.environ, ZHKH_KAFKA_BOOTSTRAP=infra.bootstrap, ZHKH_MONGO_URI=infra.mongo_uri, ZHKH_MONGO_DB=prefix,
               ZHKH_TOPIC_PREFIX=prefix, ZHKH_GROUP_PREFIX=prefix, ZHKH_GROUP_INSTANCE_ID="gis_sync-1",
               ZHKH_HTTP_PORT=str(embedded.free_port()), ZHKH_GIS_ENDPOINT=url + SOAP_PATH,
               ZHKH_GIS_PARTY_MAP=str(PARTY_MAP), ZHKH_PUSH_INTERVAL_S="0.05", ZHKH_PUSH_BATCH="3",
               ZHKH_GIS_STUCK_AFTER_S="3", ZHKH_PULL_INTERVAL_S="3600", ZHKH_LOG_LEVEL="WARNING")
    return subprocess.Popen([sys.executable, "-m", "gis_sync"], env=env, cwd=ROOT, stdout=log.open("ab"),
                            stderr=subprocess.STDOUT, start_new_session=True)


async def test_kill_9_mid_flight_loses_and_duplicates_nothing_in_gis(infra, prefix, tmp_path):
    topics = Topics(prefix)
    await ensure_topics(infra.bootstrap, topics.catalog())
    async with emulator() as (state, url):
        guids = [x["appeal_guid"] for x in await seed(url, N)]
        appeals = [Lifecycle(infra, prefix, g) for g in guids]
        for lc in appeals:
            await lc.publish(lc.registered(), lc.assigned(), lc.answered())
        log = tmp_path / "gis_sync.log"
        first = start_gis_sync(infra, prefix, url, log)
        async with TopicReader(infra.bootstrap, topics.lifecycle) as r:
            try:
                await r.wait_for(lambda _: len(of_type(r, GisActionMirrored)) >= N // 2, timeout=60)
                os.killpg(first.pid, signal.SIGKILL)  # mid-flight: steps queued, submitted, being polled
                first.wait(10)
                killed_at = len(of_type(r, GisActionMirrored))
                second = start_gis_sync(infra, prefix, url, log)
                try:
                    await r.wait_for(lambda _: len({e.id for e in of_type(r, GisActionMirrored)}) >= 2 * N, timeout=150)
                    await r.settle(2.0)
                finally:
                    second.send_signal(signal.SIGTERM)
                    second.wait(30)
            finally:
                if first.poll() is None:
                    os.killpg(first.pid, signal.SIGKILL)
            mirrored = of_type(r, GisActionMirrored)
        record = await control(url, "GET", "/emulator/record")

    assert killed_at < 2 * N, "the kill came after everything was mirrored; the test proved nothing"
    assert len({e.id for e in mirrored}) == 2 * N
    tgs = [x["transport_guid"] for x in record["applied"]]
    assert len(tgs) == len(set(tgs)) == 3 * N  # Performer, LoadAnswer, SendAnswer per appeal; none twice
    for g in guids:
        assert [x["kind"] for x in record["applied"] if x["appeal_guid"] == g] == ["Performer", "LoadAnswer", "SendAnswer"]
