"""kill -9 gis_sync while it mirrors, start it again: the emulator's record shows every step of every
appeal applied exactly once and in order, and every GisActionMirrored event id arrives."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import pytest

from tests.integration.test_gis_sync import PARTY_MAP, SOAP_PATH, Lifecycle, control, emulator, of_type, seed
from tests.support.kafka import TopicReader
from tests.support.services import start_process
from zhkh_contracts import GisActionMirrored, Topics
from zhkh_runtime.kafka import ensure_topics

pytestmark = pytest.mark.integration
N = 20


def start_gis_sync(infra, prefix, url: str, log: Path) -> subprocess.Popen[bytes]:  # noqa: ANN001
    return start_process("gis_sync", infra, prefix, log, ZHKH_GIS_ENDPOINT=url + SOAP_PATH, ZHKH_GIS_PARTY_MAP=str(PARTY_MAP),
                         ZHKH_PUSH_INTERVAL_S="0.05", ZHKH_PUSH_BATCH="3", ZHKH_GIS_STUCK_AFTER_S="3",
                         ZHKH_PULL_INTERVAL_S="3600")


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
