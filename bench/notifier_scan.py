"""How the notifier's due-alert scan costs as the schedule grows.

    .venv/bin/python bench/notifier_scan.py [--sizes 10000,100000,1000000] [--due 500]

For each size N: a fresh embedded SecantusDB holds N scheduled deadlines (N pending alerts at
future times, as the notifier stores them, with its index) plus --due alerts that are due now.
Measures: time to load the schedule, the due-alert query the scanner runs every round (median of
20, and the first, cold one), one full scan round (query + marking the due batch sent, publishing
skipped), and the memory of the database server and of this process (which plays the notifier).
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from common import ROOT  # noqa: F401 - puts the project on sys.path

from pymongo import AsyncMongoClient

from devtools import embedded
from notifier.repository import NotifierRepository

BATCH = 5000


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def one(size: int, due: int, base: Path) -> None:
    port = embedded.free_port()
    server = embedded.mongo_server(base / f"m{size}", port, base / "logs")
    (base / f"m{size}").mkdir(parents=True)
    server.start()
    client = AsyncMongoClient(embedded.mongo_uri(port), tz_aware=True)
    try:
        await embedded.wait_mongo(embedded.mongo_uri(port), server=server)
        repo = NotifierRepository(client["bench"])
        await repo.ensure_indexes()
        now = datetime.now(UTC)
        t0 = time.perf_counter()
        for start in range(0, size + due, BATCH):
            docs = []
            for i in range(start, min(start + BATCH, size + due)):
                at = now - timedelta(seconds=1) if i >= size else now + timedelta(minutes=1 + i % (60 * 24 * 30))
                aid = str(uuid.uuid4())
                docs.append({"_id": f"{aid}:1:overdue", "appeal_id": aid, "generation": 1, "threshold": "overdue",
                             "alert_at": at, "due_at": at, "party_id": "uk", "number": f"ZH-2026-{i:07d}",
                             "correlation_id": aid, "state": "pending"})
            await repo.alerts.insert_many(docs)
        load_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        first = await repo.due_alerts(now, due)
        cold_ms = (time.perf_counter() - t0) * 1000
        times = []
        for _ in range(20):
            t0 = time.perf_counter()
            got = await repo.due_alerts(now, due)
            times.append((time.perf_counter() - t0) * 1000)
        assert len(got) == len(first) == due
        t0 = time.perf_counter()
        for a in got:
            await repo.mark_sent(a["_id"], now)
        round_ms = (time.perf_counter() - t0) * 1000 + statistics.median(times)
        t0 = time.perf_counter()
        empty = await repo.due_alerts(now, due)
        idle_ms = (time.perf_counter() - t0) * 1000
        assert empty == []
        me = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"{size:>9,} scheduled: load {load_s:7.1f}s | due query {statistics.median(times):7.1f} ms (cold {cold_ms:.1f}) "
              f"| round of {due} {round_ms:8.1f} ms | idle query {idle_ms:6.1f} ms | db RSS {rss_mib(server.proc.pid):6.0f} MiB "
              f"| bench RSS {me:4.0f} MiB", flush=True)
    finally:
        await client.close()
        server.stop(60)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="10000,100000,1000000")
    ap.add_argument("--due", type=int, default=500)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="zhkh-bench-") as tmp:
        for size in (int(s) for s in args.sizes.split(",")):
            asyncio.run(one(size, args.due, Path(tmp)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
