"""Fault test: under a steady load of appeals, kill -9 intake, router, notifier and analytics, then the broker,
then the database, and start each again. Every appeal is registered and assigned exactly once, and
every citizen gets exactly one "registered" notice (counted by notification id); analytics counts each
appeal once.

"Every appeal" is every raw record the broker still has after its own kill -9: the embedded
single-node broker loses the records it acknowledged in the last ~0.4 s before a kill -9 (measured;
documented in the README). A lifecycle record the broker lost that way is accepted only when the
service that published it has it in its durable outbox (committed with its state change, published
before its input was acknowledged) and produced it within 3 s before the broker's kill; so is a
registration (and the citizen's notice for it) of a raw record the broker lost after intake had read
it, when intake's outbox holds that registration. Any other
gap is a loss by our services and fails the test, with a diagnosis (stuck appeals, dead letters,
service logs).

Slow by nature (a killed instance's open transaction holds its locks for about 60 s, which the
redelivered record waits out), so all three services are killed at the same moment."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest
from pymongo import AsyncMongoClient

from devtools.dev_issuer import DevIssuer
from devtools import embedded, samples
from devtools.launcher import Config, System
from tests.support.http import request
from tests.support.kafka import TopicReader, produce
from tests.support.receivers import HttpReceiver
from zhkh_contracts import REGISTRY, AppealAssigned, AppealRegistered, Channel, Topics, from_kafka

pytestmark = pytest.mark.e2e
N = 240
RATE = 12.0  # appeals per second: the kills land mid-stream
CHANNELS = [ch for ch in Channel if ch is not Channel.GIS]


def kill(srv: embedded.ServerProcess) -> None:
    assert srv.proc is not None and srv.proc.poll() is None, f"{srv.name} is not running"
    os.killpg(srv.proc.pid, signal.SIGKILL)
    srv.proc.wait(10)


async def load(bootstrap: str, topics: Topics, ids: dict[str, str]) -> None:
    for i, (source_id, event_id) in enumerate(ids.items()):
        raw = samples.raw_submission(channel=CHANNELS[i % len(CHANNELS)], source_id=source_id)
        topic, key, value, headers = samples.raw_record(raw, uuid.UUID(event_id), topics=topics)
        for attempt in range(60):  # the broker is down for a while: a channel adapter retries
            try:
                await produce(bootstrap, topic, value, key, headers)
                break
            except Exception:  # noqa: BLE001
                await asyncio.sleep(1.0)
        else:
            raise RuntimeError("could not publish for 60 s")
        await asyncio.sleep(1 / RATE)


@dataclass
class View:
    """The lifecycle topic as the test reads it, checked against the services' own durable ledger."""

    registered: dict[str, set[uuid.UUID]] = field(default_factory=dict)  # source id -> AppealRegistered ids
    assigned: dict[str, set[uuid.UUID]] = field(default_factory=dict)  # appeal id -> AppealAssigned ids
    appeal_of: dict[str, str] = field(default_factory=dict)  # source id -> appeal id
    # records a service committed to its outbox (and so published before acknowledging its input)
    # that the broker no longer has: event id -> when the service produced it
    broker_lost: dict[str, datetime] = field(default_factory=dict)
    not_registered: set[str] = field(default_factory=set)  # kept source ids, unexplained
    not_assigned: set[str] = field(default_factory=set)  # registered appeal ids, unexplained
    lost_registrations: set[str] = field(default_factory=set)  # appeal ids whose AppealRegistered the broker lost
    lost_with_raw: set[str] = field(default_factory=set)  # of those, appeals whose raw record the broker lost too

    def unexplained(self) -> list[str]:
        return [f"raw {x} not registered" for x in sorted(self.not_registered)] + \
               [f"appeal {x} not assigned" for x in sorted(self.not_assigned)]


class Ledger:
    """Reads ``processed_events`` (marker + outbox, committed with each state change) of intake and router."""

    def __init__(self, mongo_uri: str) -> None:
        self.client: AsyncMongoClient = AsyncMongoClient(mongo_uri, serverSelectionTimeoutMS=10_000)
        self.col = self.client["zhkh"]["processed_events"]

    async def close(self) -> None:
        await self.client.close()

    async def _outboxes(self, consumer: str, keys: list[str]) -> dict[str, list[dict]]:
        if not keys:
            return {}
        docs = await self.col.find({"_id": {"$in": [f"{consumer}:{k}" for k in keys]}}).to_list(None)
        return {d["_id"].split(":", 1)[1]: [r["headers"] for r in d.get("outbox", [])] for d in docs}

    async def view(self, records: list, raw_ids: dict[str, str], sent: dict[str, str]) -> View:
        """``raw_ids``: the raw records the broker kept; ``sent``: every raw record the load published
        (source id -> raw event id). A raw record the broker lost may still have been registered
        before the broker's kill, and its AppealRegistered lost with it (published in the same last
        ~0.4 s): the notifier may have read it and told the citizen. Such a registration counts as
        lost by the broker only when intake's durable outbox holds it."""
        v = View()
        in_topic: set[str] = set()
        registration: dict[str, str] = {}  # appeal id -> AppealRegistered id
        for r in records:
            e = from_kafka(r.value, r.headers, REGISTRY)
            in_topic.add(str(e.id))
            if isinstance(e.data, AppealRegistered):
                a = e.data.appeal
                v.registered.setdefault(a.source_id, set()).add(e.id)
                v.appeal_of[a.source_id] = str(a.appeal_id)
                registration[str(a.appeal_id)] = str(e.id)
            elif isinstance(e.data, AppealAssigned):
                v.assigned.setdefault(str(e.data.appeal_id), set()).add(e.id)

        def lost(outbox: list[dict], event_type: type, raw_too: bool = False) -> bool:
            gone = [h for h in outbox if h["ce_type"] == event_type.EVENT_TYPE and h["ce_id"] not in in_topic]
            for h in gone:
                v.broker_lost[h["ce_id"]] = datetime.fromisoformat(h["ce_time"])
                if event_type is AppealRegistered:
                    v.lost_registrations.add(h["ce_partitionkey"])
                    if raw_too:
                        v.lost_with_raw.add(h["ce_partitionkey"])
            return bool(gone)

        unregistered = [sid for sid in raw_ids if sid not in v.registered]
        intake = await self._outboxes("intake", [raw_ids[sid] for sid in unregistered])
        v.not_registered = {sid for sid in unregistered if not lost(intake.get(raw_ids[sid], []), AppealRegistered)}
        gone_raw = [sent[sid] for sid in sent if sid not in raw_ids and sid not in v.registered]
        for outbox in (await self._outboxes("intake", gone_raw)).values():
            lost(outbox, AppealRegistered, raw_too=True)
        unassigned = [a for a in registration if a not in v.assigned]
        router = await self._outboxes("router", [registration[a] for a in unassigned])
        v.not_assigned = {a for a in unassigned if not lost(router.get(registration[a], []), AppealAssigned)}
        return v


async def diagnose(cfg: Config, system: System, topics: Topics, view: View, lifecycle: list, timeline: list[str]) -> None:
    """On a timeout: which appeals are stuck, what the dead-letter topics hold, what the services logged about them."""
    unassigned = sorted(view.not_assigned)[:5]
    seen: dict[str, list[str]] = {a: [] for a in unassigned}  # appeal id -> its event types in log order
    for r in lifecycle:
        e = from_kafka(r.value, r.headers, REGISTRY)
        if e.appeal_id in seen:
            seen[e.appeal_id].append(e.type.split(".")[-2])
    timeline.append(f"DIAG raw records never registered: {sorted(view.not_registered)[:5]}")
    timeline.append(f"DIAG registered, never assigned: {list(seen.items())}")
    dlqs = [topics.dlq(s) for s in system.services] + [topics.rejected]
    async with TopicReader(cfg.bootstrap, *dlqs) as dlq:
        await dlq.settle(3.0)
    for r in dlq.records[:10]:
        h = {k: v.decode(errors="replace") for k, v in r.headers or ()}
        timeline.append(f"DIAG {r.topic}: reason={h.get('x-dlq-reason')} error={h.get('x-dlq-error', '')[:300]} "
                        f"event={h.get('ce_id')} appeal={h.get('ce_subject')}")
    timeline.append(f"DIAG dead-lettered or rejected records: {len(dlq.records)}")
    marks = tuple(unassigned) + ("dead_lettered", "retrying", "error", "Traceback")
    for name, srv in system.services.items():
        lines = [ln for ln in srv.log_path.read_text(errors="replace").splitlines() if any(m in ln for m in marks)]
        timeline.append(f"DIAG {name}.log: {len(lines)} matching lines")
        timeline.extend(f"DIAG   {ln[:400]}" for ln in lines[-8:])


async def test_kill_9_services_broker_and_database_under_load_loses_and_repeats_nothing(tmp_path, monkeypatch):
    receiver = HttpReceiver()
    monkeypatch.setenv("ZHKH_CITIZEN_WEBHOOKS", json.dumps({ch.value: receiver.url(f"/{ch.value}") for ch in Channel}))
    monkeypatch.setenv("ZHKH_QUIET_HOURS", "")
    monkeypatch.setenv("ZHKH_LOG_LEVEL", "WARNING")
    # noida-db loses the records it acknowledged just before a kill -9 and gives their offsets to the
    # records published after its restart; a consumer that had read the lost ones has committed past
    # those offsets and would skip the new records there (seen: 1 appeal in ~5 runs). Each newly
    # assigned partition is re-read from 20 records before its commit (README, Known limits).
    monkeypatch.setenv("ZHKH_REWIND_ON_ASSIGN", "20")
    cfg = Config(data_dir=tmp_path / "data", kafka_port=embedded.free_port(), mongo_port=embedded.free_port(),
                 http_base_port=embedded.free_port_block(5), gis_port=embedded.free_port(), gis_seed=0,
                 issuer_port=embedded.free_port())
    system = System(cfg)
    topics = Topics()
    ids = {f"fault-{i}-{uuid.uuid4()}": str(uuid.uuid4()) for i in range(N)}  # source id -> raw event id
    timeline: list[str] = []
    try:
        await system.start()
        started = time.monotonic()
        producer = asyncio.create_task(load(cfg.bootstrap, topics, ids))

        await asyncio.sleep(4)
        killed = ("intake", "router", "notifier", "analytics")
        for name in killed:
            kill(system.services[name])
        timeline.append(f"{time.monotonic() - started:.0f}s kill -9 {', '.join(killed)}")
        await asyncio.sleep(1)
        for name in killed:
            system.start_service(name)
        await asyncio.gather(*(system.wait_ready(n) for n in killed))

        await asyncio.sleep(4)
        broker_killed_at = datetime.now(UTC)
        kill(system.kafka)
        timeline.append(f"{time.monotonic() - started:.0f}s kill -9 broker")
        await asyncio.sleep(2)
        system.kafka.start()
        await embedded.wait_kafka(cfg.bootstrap, server=system.kafka)

        await asyncio.sleep(4)
        kill(system.mongo)
        timeline.append(f"{time.monotonic() - started:.0f}s kill -9 database")
        await asyncio.sleep(2)
        system.mongo.start()
        await embedded.wait_mongo(cfg.mongo_uri, server=system.mongo)

        await producer
        timeline.append(f"{time.monotonic() - started:.0f}s load done ({N} appeals)")
        # What the broker kept: noida-db loses the records it acknowledged in the last ~0.4 s before a
        # kill -9 (a single node with no replicas; see README "Known limits"). Our services must lose none of these.
        async with TopicReader(cfg.bootstrap, *(topics.raw(ch) for ch in CHANNELS)) as raw_reader:
            await raw_reader.settle(3.0)
        raw_ids = {}  # source id -> raw event id
        for r in raw_reader.records:
            e = from_kafka(r.value, r.headers, REGISTRY)
            raw_ids[e.data.source_id] = str(e.id)
        kept = set(raw_ids)
        timeline.append(f"{time.monotonic() - started:.0f}s the broker kept {len(kept)} of {N} raw records")
        async with TopicReader(cfg.bootstrap, topics.lifecycle) as lc:
            ledger = Ledger(cfg.mongo_uri)
            try:
                deadline = time.monotonic() + 240
                prev: View | None = None
                while True:
                    await lc.settle(3.0)
                    view = await ledger.view(lc.records, raw_ids, ids)
                    # settled: nothing unexplained twice in a row, 3 s apart (a record a service has
                    # just committed to its outbox may not be published yet: it is not "lost" then)
                    if not view.unexplained() and prev is not None and prev.broker_lost.keys() == view.broker_lost.keys():
                        break
                    prev = None if view.unexplained() else view
                    if time.monotonic() > deadline:
                        await diagnose(cfg, system, topics, view, lc.records, timeline)
                        raise AssertionError(f"lost by the services: {view.unexplained()}")
            finally:
                await ledger.close()
                copies = len(lc.records)
        reg, asg = view.registered, view.assigned
        timeline.append(f"{time.monotonic() - started:.0f}s registered {len(reg)}, assigned {len(asg)}; "
                        f"lifecycle records the broker lost after acknowledging them: {sorted(view.broker_lost)}")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            notified = {b["appeal_id"] for _, _, b in receiver.requests if b["kind"] == "registered"}
            if len(notified) >= len(reg):
                break
            await asyncio.sleep(0.5)
        summary_url = f"http://127.0.0.1:{cfg.port('analytics')}/api/v1/analytics/summary"
        analyst = DevIssuer.with_key_file(cfg.issuer_url, cfg.issuer_key).mint("analyst", ["analyst"])
        total = None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            total = json.loads((await asyncio.to_thread(request, "GET", summary_url, None, "application/json", 10,
                                                   analyst))[1])["total"]
            if total >= len(reg):
                break
            await asyncio.sleep(0.5)
        await asyncio.sleep(2)
        total = json.loads((await asyncio.to_thread(request, "GET", summary_url, None, "application/json", 10,
                                                   analyst))[1])["total"]
        timeline.append(f"{time.monotonic() - started:.0f}s analytics counts {total}")
        for name, srv in system.services.items():
            assert srv.alive(), f"{name} died; see {srv.log_path}"
    finally:
        await asyncio.to_thread(system.stop)
        receiver.close()
        print("\n".join(timeline))

    # every appeal the broker kept was registered and assigned exactly once (a republished record
    # carries the same event id), except where the broker lost the very record a service had
    # published, just before the broker's kill -9 (checked against the services' durable outboxes)
    assert len(kept) >= N * 0.9, f"the broker lost {N - len(kept)} acknowledged raw records"
    # (the registrations lost with their raw records are bounded by the raw records lost, checked above)
    assert len(view.lost_with_raw) <= N - len(kept)
    assert len(view.broker_lost) - len(view.lost_with_raw) <= N * 0.05, \
        f"the broker lost {len(view.broker_lost)} acknowledged lifecycle records"
    for event_id, at in view.broker_lost.items():
        assert broker_killed_at - timedelta(seconds=3) <= at <= broker_killed_at, \
            f"{event_id} published at {at} is missing, but the broker was killed at {broker_killed_at}"
    assert all(len(x) == 1 for x in reg.values()), "an appeal was registered twice"
    assert all(len(x) == 1 for x in asg.values()), "an appeal was assigned twice"
    assert not view.unexplained()
    # re-published records carry the same event id: count distinct notification ids per appeal
    by_appeal: dict[str, set[str]] = {}
    deliveries = 0
    for _, headers, body in receiver.requests:
        if body["kind"] == "registered":
            by_appeal.setdefault(body["appeal_id"], set()).add(headers["idempotency-key"])
            deliveries += 1
    registered = {view.appeal_of[x] for x in reg}
    assert registered <= set(by_appeal), f"citizens not notified: {len(registered - set(by_appeal))}"
    # the notifier may have read an AppealRegistered that the broker then lost (explained above)
    assert set(by_appeal) - registered <= view.lost_registrations, "a notice for an appeal nobody registered"
    # analytics, too, may have read a registration the broker lost afterwards
    assert len(reg) <= total <= len(reg) + len(view.lost_registrations), f"analytics counts {total} appeals for {len(reg)}"
    assert all(len(keys) == 1 for keys in by_appeal.values()), "an appeal got two different 'registered' notices"
    print(f"lifecycle records read: {copies}; 'registered' webhook deliveries: {deliveries} for {len(by_appeal)} appeals")
