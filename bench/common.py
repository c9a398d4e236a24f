"""What the benchmarks share: embedded broker + database in a temp dir, a service as its own process."""

from __future__ import annotations

import asyncio
import contextlib
import os
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer  # noqa: E402

from devtools import embedded  # noqa: E402
from zhkh_contracts import REGISTRY, Envelope, Topics, from_kafka  # noqa: E402
from zhkh_runtime.kafka import ensure_topics  # noqa: E402

PREFIX = "bench"


@dataclass
class Infra:
    bootstrap: str
    mongo_uri: str
    base: Path
    topics: Topics
    pids: dict[str, int] | None = None  # broker and database server processes (CPU accounting)


def _stat(pid: int) -> tuple[int, float] | None:
    """(parent pid, user+system CPU seconds) of one process, from /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[1]), (int(fields[11]) + int(fields[12])) / tick


def cpu_seconds(pid: int) -> float:
    """CPU (user + system) used so far by ``pid`` and every process below it (a server may be a
    launcher script with the real server as its child)."""
    children: dict[int, list[int]] = {}
    cpu: dict[int, float] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            st = _stat(int(entry.name))
            if st is not None:
                children.setdefault(st[0], []).append(int(entry.name))
                cpu[int(entry.name)] = st[1]
    total, todo = 0.0, [pid]
    while todo:
        p = todo.pop()
        total += cpu.get(p, 0.0)
        todo += children.get(p, [])
    return total


class CpuMeter:
    """CPU seconds used by named processes (and this one: 'bench client') between start() and stop()."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = pids
        self.used: dict[str, float] = {}

    def _now(self) -> dict[str, float]:
        out = {name: cpu_seconds(pid) for name, pid in self.pids.items()}
        out["bench client"] = time.process_time()
        return out

    def start(self) -> None:
        self._t0 = self._now()

    def stop(self) -> dict[str, float]:
        t1 = self._now()
        self.used = {n: t1[n] - self._t0[n] for n in t1}
        return self.used


def cpu_line(used: dict[str, float], count: int) -> str:
    per = {n: v * 1000 / count for n, v in used.items()}
    parts = ", ".join(f"{n} {v:.2f}" for n, v in per.items())
    servers = sum(v for n, v in per.items() if n != "bench client")
    return f"CPU ms per appeal: {parts}; all but the bench client {servers:.2f}"


async def quiet_getmany(consumer: AIOKafkaConsumer, idle: list[int], timeout_ms: int = 1) -> dict[Any, list[Any]]:
    """getmany that does not spin against a broker that ignores fetch.max.wait.ms: after an empty
    poll the partitions are paused for a growing moment (5 ms doubling to 100 ms), as the services'
    consumer loop does (zhkh_runtime/consumer.py)."""
    batch = await consumer.getmany(timeout_ms=timeout_ms)
    if batch:
        idle[0] = 0
        return batch
    idle[0] += 1
    parts = consumer.assignment()
    consumer.pause(*parts)
    try:
        await asyncio.sleep(min(0.1, 0.01 * 2 ** min(idle[0] - 1, 8)))
    finally:
        consumer.resume(*(p for p in parts if p in consumer.assignment()))
    return {}


@contextlib.asynccontextmanager
async def infra(base: Path) -> AsyncIterator[Infra]:
    kport, mport = embedded.free_port(), embedded.free_port()
    kafka = embedded.kafka_server(base / "kafka", kport, base / "logs")
    mongo = embedded.mongo_server(base / "mongo", mport, base / "logs")
    (base / "kafka").mkdir(parents=True)
    (base / "mongo").mkdir(parents=True)
    kafka.start()
    mongo.start()
    try:
        bootstrap, uri = f"127.0.0.1:{kport}", embedded.mongo_uri(mport)
        await asyncio.gather(embedded.wait_kafka(bootstrap, server=kafka), embedded.wait_mongo(uri, server=mongo))
        topics = Topics(PREFIX)
        await ensure_topics(bootstrap, topics.catalog())
        pids = {"broker": kafka.proc.pid, "database": mongo.proc.pid} if kafka.proc and mongo.proc else None
        yield Infra(bootstrap, uri, base, topics, pids)
    finally:
        mongo.stop()
        kafka.stop()


@contextlib.asynccontextmanager
async def service(name: str, inf: Infra, **env: str) -> AsyncIterator[subprocess.Popen[bytes]]:
    port = embedded.free_port()
    full = dict(os.environ, ZHKH_KAFKA_BOOTSTRAP=inf.bootstrap, ZHKH_MONGO_URI=inf.mongo_uri, ZHKH_TOPIC_PREFIX=PREFIX,
                ZHKH_GROUP_PREFIX=PREFIX, ZHKH_HTTP_PORT=str(port),
                ZHKH_LOG_LEVEL=os.environ.get("BENCH_LOG_LEVEL", "WARNING"), **env)
    log = (inf.base / "logs" / f"{name}.log").open("wb")
    proc = subprocess.Popen([sys.executable, "-m", name], env=full, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
    try:
        for _ in range(300):
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited; see {inf.base / 'logs'}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/ready", timeout=2) as r:  # noqa: S310
                    if r.status == 200:
                        break
            except Exception:  # noqa: BLE001
                await asyncio.sleep(0.2)
        yield proc
    finally:
        proc.terminate()
        proc.wait(30)
        log.close()


Record = tuple[str, str, bytes, bytes, list[tuple[str, bytes]]]  # (id, topic, key, value, headers)


async def measure(inf: Infra, records: list[Record], done_id: Callable[[Envelope[Any]], str | None], rate: float,
                  from_start: bool = False, meter: CpuMeter | None = None) -> tuple[float, float, list[float]]:
    """Publish ``records`` (paced at ``rate``/s, or all at once with 0) and follow the lifecycle topic
    until ``done_id`` has named every record id. Returns (start, end, latencies in ms)."""
    return await publish_and_follow(
        inf.bootstrap, inf.topics.lifecycle, records, lambda r: done_id(from_kafka(r.value, r.headers, REGISTRY)),
        rate, from_start=from_start, meter=meter,
    )


async def publish_and_follow(bootstrap: str, follow: str, records: list[Record], seen_id: Callable[[Any], str | None],
                             rate: float, from_start: bool = False, publish_to: str | None = None,
                             meter: CpuMeter | None = None) -> tuple[float, float, list[float]]:
    """Publish ``records`` (each to its own topic and key, or all to ``publish_to`` keyed by record id)
    and read ``follow`` until ``seen_id`` (of a consumer record) has named every record id.
    Returns (start, end, latencies in ms from each record's acknowledgement to its id being seen)."""
    consumer = AIOKafkaConsumer(follow, bootstrap_servers=bootstrap, group_id=None,
                                auto_offset_reset="earliest" if from_start else "latest")
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, linger_ms=2)
    await consumer.start()
    await producer.start()
    try:
        await asyncio.sleep(0.5)  # the follower takes its positions before anything is published
        sent: dict[str, float] = {}
        seen: dict[str, float] = {}

        idle = [0]

        async def reader() -> None:
            while len(seen) < len(records):
                batch = await quiet_getmany(consumer, idle)
                now = time.perf_counter()
                for recs in batch.values():
                    for r in recs:
                        rid = seen_id(r)
                        if rid is not None:
                            seen.setdefault(rid, now)

        async def send(rid: str, topic: str, key: bytes, value: bytes, headers: list[tuple[str, bytes]]) -> None:
            if publish_to is not None:
                topic, key = publish_to, rid.encode()
            await (await producer.send(topic, value=value, key=key, headers=headers))
            sent[rid] = time.perf_counter()

        follower = asyncio.create_task(reader())
        if meter is not None:
            meter.start()
        t0 = time.perf_counter()
        pending = []
        for i, rec in enumerate(records):
            pending.append(asyncio.create_task(send(*rec)))
            if rate > 0:
                await asyncio.sleep(max(0.0, t0 + (i + 1) / rate - time.perf_counter()))
        await asyncio.gather(*pending)
        await asyncio.wait_for(follower, timeout=max(120, len(records) / 5))
        if meter is not None:
            meter.stop()
        return t0, max(seen.values()), [(seen[r] - sent[r]) * 1000 for r in sent]
    finally:
        await producer.stop()
        await consumer.stop()


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def report(what: str, count: int, rate: float, t0: float, t_end: float, latencies_ms: list[float], rss_mib: float) -> None:
    lat = sorted(latencies_ms)
    q = statistics.quantiles(lat, n=100, method="inclusive")  # never beyond the data
    mode = "burst" if rate <= 0 else f"paced at {rate:g}/s"
    print(f"{what}: {count} appeals, {mode}; all done after {t_end - t0:.2f}s")
    print(f"  throughput: {count / (t_end - t0):.0f} appeals/s")
    print(f"  latency ms: p50 {q[49]:.1f}  p90 {q[89]:.1f}  p99 {q[98]:.1f}  max {lat[-1]:.1f}")
    print(f"  peak RSS of the service: {rss_mib:.0f} MiB")


def cli(doc: str | None, run: Callable[[int, float, int, Path], Any], default_count: int = 2000) -> int:
    """The throughput benchmarks' command line: --count, --rate, --houses; a temp dir for the servers."""
    import argparse
    import tempfile

    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--count", type=int, default=default_count)
    ap.add_argument("--rate", type=float, default=0.0, help="appeals per second; 0 = as fast as possible")
    ap.add_argument("--houses", type=int, default=300, help="distinct houses the appeals are about")
    args = ap.parse_args()
    keep = os.environ.get("BENCH_DIR")  # keep the servers' data and the services' logs there
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=False)
        asyncio.run(run(args.count, args.rate, args.houses, Path(keep)))
        return 0
    with tempfile.TemporaryDirectory(prefix="zhkh-bench-") as tmp:
        asyncio.run(run(args.count, args.rate, args.houses, Path(tmp)))
    return 0

