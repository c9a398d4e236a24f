"""What the benchmarks share: embedded broker + database in a temp dir, a service as its own process."""

from __future__ import annotations

import asyncio
import contextlib
import os
import statistics
import subprocess
import sys
import urllib.request
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from devtools import embedded  # noqa: E402
from zhkh_contracts import Topics  # noqa: E402
from zhkh_runtime.kafka import ensure_topics  # noqa: E402

PREFIX = "bench"


@dataclass
class Infra:
    bootstrap: str
    mongo_uri: str
    base: Path
    topics: Topics


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
        yield Infra(bootstrap, uri, base, topics)
    finally:
        mongo.stop()
        kafka.stop()


@contextlib.asynccontextmanager
async def service(name: str, inf: Infra, **env: str) -> AsyncIterator[subprocess.Popen[bytes]]:
    port = embedded.free_port()
    full = dict(os.environ, ZHKH_KAFKA_BOOTSTRAP=inf.bootstrap, ZHKH_MONGO_URI=inf.mongo_uri, ZHKH_TOPIC_PREFIX=PREFIX,
                ZHKH_GROUP_PREFIX=PREFIX, ZHKH_HTTP_PORT=str(port), ZHKH_LOG_LEVEL="WARNING", **env)
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


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def report(what: str, count: int, rate: float, t0: float, t_end: float, latencies_ms: list[float], rss_mib: float) -> None:
    lat = sorted(latencies_ms)
    q = statistics.quantiles(lat, n=100)
    mode = "burst" if rate <= 0 else f"paced at {rate:g}/s"
    print(f"{what}: {count} appeals, {mode}; all done after {t_end - t0:.2f}s")
    print(f"  throughput: {count / (t_end - t0):.0f} appeals/s")
    print(f"  latency ms: p50 {q[49]:.1f}  p90 {q[89]:.1f}  p99 {q[98]:.1f}  max {lat[-1]:.1f}")
    print(f"  peak RSS of the service: {rss_mib:.0f} MiB")
