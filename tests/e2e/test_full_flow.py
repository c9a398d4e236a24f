"""The launched system, end to end: an appeal from every channel travels registered -> assigned ->
deadline planned -> answered -> (ГИС appeal: answer mirrored to the ГИС ЖКХ emulator) -> citizen
notified, each notification exactly once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import uuid
from pathlib import Path

import httpx
import pytest

from devtools import samples
from tests.e2e.test_launched_system import launcher_args, start_running
from tests.support.kafka import TopicReader, produce
from tests.support.receivers import HttpReceiver
from zhkh_contracts import (
    REGISTRY,
    AppealAnswered,
    AppealAssigned,
    AppealRegistered,
    Channel,
    DeadlinePlanned,
    Envelope,
    GisActionMirrored,
    PartyAnswered,
    Topics,
    from_kafka,
    to_kafka,
)

pytestmark = pytest.mark.e2e


def start(tmp_path: Path, receiver: HttpReceiver) -> tuple[subprocess.Popen[str], dict[str, int], list[str]]:
    argv, ports = launcher_args(tmp_path / "data")
    env = dict(os.environ,
               ZHKH_CITIZEN_WEBHOOKS=json.dumps({ch.value: receiver.url(f"/{ch.value}") for ch in Channel}),
               ZHKH_QUIET_HOURS="",  # the test may run at night
               ZHKH_PULL_INTERVAL_S="1")
    proc, lines = start_running([*argv, "--no-demo", "--gis-seed", "0"], env)
    return proc, ports, lines


def events(records: list) -> list[Envelope]:  # noqa: ANN001
    return [from_kafka(r.value, r.headers, REGISTRY) for r in records]


async def test_every_channel_registered_assigned_planned_answered_mirrored_and_notified(tmp_path):
    receiver = HttpReceiver()
    proc, ports, lines = start(tmp_path, receiver)
    bootstrap, topics = f"127.0.0.1:{ports['kafka']}", Topics()
    gis = f"http://127.0.0.1:{ports['gis']}"
    try:
        async with TopicReader(bootstrap, topics.lifecycle) as lc:
            # six channels publish raw submissions; the seventh, ГИС ЖКХ, is pulled by gis_sync
            for ch in Channel:
                if ch is not Channel.GIS:
                    raw = samples.raw_submission(channel=ch, source_id=f"e2e-{ch.value}-{uuid.uuid4()}")
                    topic, key, value, headers = samples.raw_record(raw, topics=topics)
                    await produce(bootstrap, topic, value, key, headers)
            async with httpx.AsyncClient(timeout=10) as c:
                seeded = (await c.post(gis + "/emulator/appeals", json={"appeals": [{"topic_code": "1.2"}]})).json()
            gis_guid = seeded[0]["appeal_guid"]

            def by_channel(recs):  # noqa: ANN001, ANN202
                return {e.data.appeal.channel: e.data.appeal for e in events(recs) if isinstance(e.data, AppealRegistered)}

            await lc.wait_for(lambda r: len(by_channel(r)) == len(Channel), timeout=90)
            appeals = {a.appeal_id: a for a in by_channel(lc.records).values()}
            assert appeals[next(i for i, a in appeals.items() if a.channel is Channel.GIS)].source_id == gis_guid

            def of(cls, recs):  # noqa: ANN001, ANN202
                return {e.data.appeal_id: e.data for e in events(recs) if isinstance(e.data, cls) and e.data.appeal_id in appeals}

            await lc.wait_for(lambda r: len(of(AppealAssigned, r)) == len(appeals) == len(of(DeadlinePlanned, r)), timeout=60)
            assigned = of(AppealAssigned, lc.records)
            assert {a.party_id for a in assigned.values()} == {"uk-zarechye"}

            # the party answers each appeal: the action as the router's HTTP API publishes it
            for appeal_id, a in assigned.items():
                env = Envelope.new(PartyAnswered(appeal_id=appeal_id, actor=f"party:{a.party_id}", text="Подача горячей воды восстановлена."),
                                   source="/zhkh-appeals/router", appeal_id=str(appeal_id))
                key, value, headers = to_kafka(env)
                await produce(bootstrap, topics.actions, value, key, [(k, v.encode()) for k, v in headers.items()])
            await lc.wait_for(lambda r: len(of(AppealAnswered, r)) == len(appeals), timeout=60)
            await lc.wait_for(lambda r: any(isinstance(e.data, GisActionMirrored) and e.data.action == "Answer"
                                            for e in events(r)), timeout=60)
            mirrored = [e.data for e in events(lc.records) if isinstance(e.data, GisActionMirrored)]

        async with httpx.AsyncClient(timeout=10) as c:
            in_gis = (await c.get(f"{gis}/emulator/appeals/{gis_guid}")).json()
            record = (await c.get(gis + "/emulator/record")).json()
        # the citizen hears "registered" and "answered" on their own channel, once each
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            answered = [b for _, _, b in receiver.requests if b["kind"] == "answered"]
            if len(answered) >= len(appeals):
                break
            time.sleep(0.2)
        time.sleep(1.5)  # anything duplicated would arrive now
    finally:
        proc.send_signal(signal.SIGINT)
        rest, _ = proc.communicate(timeout=90)
        receiver.close()
    assert proc.returncode == 0, "".join(lines) + rest

    assert sorted(x.action for x in mirrored) == ["Answer", "Performer"]
    assert in_gis["answerer_guid"] and any(a.get("sent") for a in in_gis["answers"])
    assert sorted(x["kind"] for x in record["applied"]) == ["LoadAnswer", "Performer", "SendAnswer"]
    notices = [(path, b["kind"], b["appeal_id"]) for path, _, b in receiver.requests]
    assert len(notices) == len(set(notices)), "a notification was delivered twice"
    for appeal_id, a in appeals.items():
        for kind in ("registered", "answered"):
            assert (f"/{a.channel.value}", kind, str(appeal_id)) in notices, (kind, a.channel)
