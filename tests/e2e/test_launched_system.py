"""The system as the README's run command launches it: embedded broker + database + four services."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from devtools import embedded, samples
from tests.support.http import request
from tests.support.kafka import TopicReader, produce
from zhkh_contracts import REGISTRY, AppealAssigned, Channel, Topics, from_kafka

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
SERVICES = ("intake", "router", "notifier", "gis_sync", "analytics")


def launcher_args(data_dir: Path) -> tuple[list[str], dict[str, int]]:
    ports = {"kafka": embedded.free_port(), "mongo": embedded.free_port(), "http": embedded.free_port_block(5),
             "gis": embedded.free_port(), "issuer": embedded.free_port()}
    argv = [sys.executable, "-m", "devtools.launcher", "--data-dir", str(data_dir), "--kafka-port", str(ports["kafka"]),
            "--mongo-port", str(ports["mongo"]), "--http-base-port", str(ports["http"]), "--gis-port", str(ports["gis"]),
            "--issuer-port", str(ports["issuer"])]
    return argv, ports


def get(url: str) -> tuple[int, bytes]:
    return request("GET", url, timeout=5)


def test_demo_once_shows_the_flow_and_data_persists_between_runs(tmp_path):
    argv, _ = launcher_args(tmp_path / "data")
    numbers = []
    for _ in range(2):
        out = subprocess.run([*argv, "--once"], cwd=ROOT, capture_output=True, text=True, timeout=240)
        assert out.returncode == 0, out.stdout + out.stderr
        assert "assigned to uk-zarechye (managing_organisation, reason: house_services_to_managing_org)" in out.stdout
        numbers += re.findall(r"^<- registered as (ZH-\d{4}-\d{7})", out.stdout, re.M)
        assert re.search(r"<- deadline \d{4}-\d{2}-\d{2} 23:59 Asia/Yekaterinburg \(pp416_written\)", out.stdout), out.stdout
        # the emulator's seeded appeals (random topics): pulled, registered, assigned, and the assignment
        # confirmed by ГИС: a Performer, or a RedirectAppeal when the appeal went to a resource supplier
        assert re.search(r"<- ГИС ЖКХ appeal \S+ pulled and registered as ZH-\d{4}-\d{7}", out.stdout), out.stdout
        assert re.search(r"<- (Performer|RedirectAppeal) for ZH-\d{4}-\d{7} confirmed by ГИС ЖКХ", out.stdout), out.stdout
        # the assigned party acts through the router's API with the token the launcher printed
        assert re.search(r"^-> party API: POST \.\.\./answer -> 202 applied \(actor party:uk-zarechye\)$", out.stdout, re.M), out.stdout
        assert "-> anonymous GET /api/v1/appeals?open=true -> 401 (unauthenticated)" in out.stdout
        assert "-> citizen: POST /api/v1/citizen/status (number + access code) -> answered" in out.stdout
        # the outage register: an outage at the demo house, a new appeal there answered at once with the restore time
        assert re.search(r"^-> outage API: an emergency hot_water outage registered at fias:\S+ -> 202 applied", out.stdout, re.M), out.stdout
        assert re.search(r"^<- a new appeal at that house, ZH-\d{4}-\d{7}, answered at once with the restore time "
                         r"\d{4}-\d{2}-\d{2} \d{2}:\d{2} Asia/Yekaterinburg \(a notice; the appeal is still routed to "
                         r"uk-zarechye", out.stdout, re.M), out.stdout
        assert re.search(r"^-> outage API: restored -> 202 applied \(duration at the house 0\.\d+ h", out.stdout, re.M), out.stdout
        # per-house control cards: the demo house's hot-water card, reported by the outage, closed on a confirmation
        if in_heating_season():
            assert re.search(r"^<- control card for fias:\S+ hot_water \(district \S+\): \d+ appeals, same-day target "
                             r"\d{4}-\d{2}-\d{2} \d{2}:\d{2} Asia/Yekaterinburg, state restoration_reported by the outage$",
                             out.stdout, re.M), out.stdout
            assert re.search(r"^-> control-card API: POST \.\.\./confirm \(call_back\) -> 202 applied \(card closed, "
                             r"confirmed by operator:demo-operator\)$", out.stdout, re.M), out.stdout
        else:
            assert "<- no control card for fias:" in out.stdout, out.stdout
        # a question answered without an appeal: the knowledge base's suggestion, then the consultation record
        assert "-> anonymous POST /api/v1/suggestions -> 200: meter-readings «Когда и как передавать показания счётчиков?»" in out.stdout, out.stdout
        assert re.search(r"^-> operator POST /api/v1/consultations -> 201 \(topic billing, resolved at first contact, "
                         r"by operator:demo-operator; not routed\)$", out.stdout, re.M), out.stdout
        # a paper appeal with only a postal address: its answer as a print-ready letter, posted by the operator
        assert re.search(r"^-> a paper appeal with only a postal address, ZH-\d{4}-\d{7}, answered by \S+ through the "
                         r"API -> 202 applied$", out.stdout, re.M), out.stdout
        assert re.search(r"^<- a print-ready answer letter in the notifier's print queue: GET /api/v1/letters/…/pdf -> "
                         r"200 application/pdf \(1 page, \d+ KiB\); marked posted by the operator$", out.stdout, re.M), out.stdout
        # the party scorecards, read by the analyst with the printed token
        assert re.search(r"^-> analyst GET /api/v1/analytics/parties -> 200: uk-zarechye \d{4}-\d{2}: assigned [1-9]\d*, "
                         r"answered [1-9]\d*, median \d+\.?\d* h to the first answer", out.stdout, re.M), out.stdout
        assert out.stdout.rstrip().endswith("stopped")
    assert len(numbers) == 2
    assert int(numbers[1][-7:]) > int(numbers[0][-7:])  # the counter survived the restart (ГИС appeals take numbers too)


def in_heating_season() -> bool:
    """Whether the demo runs in the default heating season (control cards open only then), in the sample zone."""
    from datetime import UTC, datetime
    from zoneinfo import ZoneInfo

    from router.controlcards import CardPolicy

    return CardPolicy().in_season(datetime.now(UTC), ZoneInfo("Asia/Yekaterinburg"))


def start_running(argv: list[str], env: dict[str, str] | None = None) -> tuple[subprocess.Popen[str], list[str]]:
    """Start the launcher with these arguments and wait for its "running;" line (its output so far)."""
    proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    try:
        deadline = time.monotonic() + 180
        while not any(line.startswith("running;") for line in lines):
            line = proc.stdout.readline()  # type: ignore[union-attr]
            if not line and proc.poll() is not None:
                pytest.fail("launcher exited:\n" + "".join(lines))
            lines.append(line)
            assert time.monotonic() < deadline, "".join(lines)
    except BaseException:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=90)
        raise
    return proc, lines


async def test_running_system_serves_health_metrics_and_carries_every_channel(tmp_path):
    argv, ports = launcher_args(tmp_path / "data")
    proc, lines = start_running([*argv, "--no-demo"])
    try:

        for i, svc in enumerate(SERVICES, start=1):
            base = f"http://127.0.0.1:{ports['http'] + i}"
            status, body = get(base + "/health")
            assert status == 200 and json.loads(body)["service"] == svc
            status, body = get(base + "/ready")
            assert status == 200 and json.loads(body) == {"ready": True, "started": True, "kafka": True, "mongo": True}

        bootstrap = f"127.0.0.1:{ports['kafka']}"
        topics = Topics()
        sent = []
        for ch in Channel:
            raw = samples.raw_submission(channel=ch)
            topic, key, value, headers = samples.raw_record(raw, topics=topics)
            await produce(bootstrap, topic, value, key, headers)
            sent.append(dict(headers)["ce_correlationid"].decode())
        async with TopicReader(bootstrap, topics.lifecycle) as lc:

            def assigned(records):  # noqa: ANN001, ANN202
                evs = [from_kafka(r.value, r.headers, REGISTRY) for r in records]
                return {str(e.correlation_id) for e in evs if isinstance(e.data, AppealAssigned)}

            records = await lc.wait_for(lambda r: set(sent) <= assigned(r), timeout=60)
            number = next(e.data.registration_number for e in (from_kafka(r.value, r.headers, REGISTRY) for r in records)
                          if isinstance(e.data, AppealAssigned))

        # the router answers "where is my appeal, who handles it, what is the deadline" to the operator
        # token the launcher printed (and nothing to an anonymous caller)
        printed = dict(re.findall(r"^   token (\S+)\s+(\S+)$", "".join(lines), re.M))
        assert set(printed) >= {"demo-party", "demo-operator", "demo-inspector", "demo-analyst"}, "".join(lines)
        anon, _ = get(f"http://127.0.0.1:{ports['http'] + 2}/api/v1/appeals/{number}")
        assert anon == 401
        for _ in range(100):
            status, body = request("GET", f"http://127.0.0.1:{ports['http'] + 2}/api/v1/appeals/{number}", timeout=5,
                                   token=printed["demo-operator"])
            view = json.loads(body)
            if status == 200 and view.get("deadline"):
                break
            time.sleep(0.2)
        assert view["status"] == "assigned" and view["party_name"] and view["deadline"]["regime"]

        # the HTTP ingress of intake answers with the registration number
        form = samples.raw_submission(channel=Channel.SITE_FORM, source_id="e2e-http").model_dump_json().encode()
        req = urllib.request.Request(f"http://127.0.0.1:{ports['http'] + 1}/api/v1/appeals", data=form,
                                     method="POST", headers={"content-type": "application/json"})
        resp = await asyncio.to_thread(urllib.request.urlopen, req, timeout=30)
        assert resp.status == 201 and json.loads(resp.read())["registration_number"].startswith("ZH-")

        _, metrics = get(f"http://127.0.0.1:{ports['http'] + 1}/metrics")
        consumed = re.findall(rb'zhkh_events_consumed_total\{[^}]*outcome="ok"[^}]*\} (\d+)', metrics)
        assert sum(float(x) for x in consumed) >= len(Channel)
        assert b"zhkh_handler_seconds_bucket" in metrics
        assert re.search(rb'zhkh_consumer_lag\{partition="\d+",service="intake",topic="zhkh\.intake\.raw\.\w+"\} \d', metrics), metrics
    finally:
        proc.send_signal(signal.SIGINT)
        rest, _ = proc.communicate(timeout=90)
    assert proc.returncode == 0, "".join(lines) + rest
    assert rest.rstrip().endswith("stopped")
    for svc in SERVICES:
        log = (tmp_path / "data" / "logs" / f"{svc}.log").read_text()
        assert "Application shutdown complete." in log and '"event": "stopped"' in log, log[-2000:]
        for line in filter(None, log.splitlines()):
            json.loads(line)  # every line a service prints is one JSON object
        assert "Иванова" not in log and "+79123456789" not in log  # no personal data in logs
