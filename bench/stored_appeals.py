"""Per-appeal cost as the stored data grows: the same burst against 1k, 100k, 1M appeals already stored.

    .venv/bin/python bench/stored_appeals.py [--sizes 1000,100000,1000000] [--count 300] [--houses 300]

For each size N, on fresh embedded servers: intake, router and notifier run as their own processes;
30 warm-up appeals go through the pipeline and their stored documents become templates; N older
appeals are then stored directly (the documents a real appeal leaves: intake's and the router's
appeal, the notifier's facts, deadline and an alert, and three processed-event markers, each with
its own ids, numbers and source ids, registered 30..395 days ago over the same houses). Then
--count new appeals are published at once and followed to DeadlinePlanned, as in
e2e_throughput.py. Prints per size: load time, throughput, CPU ms per appeal per process, and
database operations per appeal.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from common import CpuMeter, cpu_line, infra, measure, service
from e2e_throughput import deadline_planned, opcounters, raw_records
from pymongo import AsyncMongoClient
from router_throughput import write_directory


CLONED = ("intake_appeals", "router_appeals", "notifier_appeals", "notifier_deadlines", "notifier_alerts", "processed_events")
PER_APPEAL = {"notifier_alerts": 1, "processed_events": 3}
BATCH = 5000


def clone(doc: dict[str, Any], i: int, k: int, aid: str, at: datetime, houses: list[str]) -> dict[str, Any]:
    """A copy of a template document as appeal number ``i`` (its k-th document in the collection)."""
    d = dict(doc)
    old = str(doc["_id"])
    d["_id"] = f"{aid}:{k}" if ":" in old else aid
    for f in ("registration_number", "number"):
        if f in d:
            d[f] = f"ZH-2025-{i:07d}"
    for f in ("appeal_id",):
        if f in d:
            d[f] = aid
    if "source_id" in d:
        d["source_id"] = f"stored-{i}"
    for f in ("registered_at", "created_at", "updated_at", "processed_at", "start_at"):
        if f in d and isinstance(d[f], datetime):
            d[f] = at
    for f in ("due_at", "alert_at"):
        if f in d and isinstance(d[f], datetime):
            d[f] = at + timedelta(days=10)
    if "state" in d and isinstance(d["state"], str) and "alert_at" in d:
        d["state"] = "sent"
    if "house_key" in d:
        d["house_key"] = f"fias:{houses[i % len(houses)]}"
    return d


async def store(uri: str, n: int, houses: list[str]) -> float:
    client = AsyncMongoClient(uri, tz_aware=True)
    db = client["zhkh"]
    t0 = time.perf_counter()
    templates = {c: await db[c].find({}).limit(PER_APPEAL.get(c, 1)).to_list() for c in CLONED}
    now = datetime.now(UTC)
    rnd = random.Random(1)
    for start in range(0, n, BATCH):
        docs: dict[str, list[dict[str, Any]]] = {c: [] for c in CLONED}
        for i in range(start, min(n, start + BATCH)):
            aid = str(uuid.UUID(int=rnd.getrandbits(128)))
            at = now - timedelta(days=30 + i % 365, seconds=i % 86400)
            for c, tpl in templates.items():
                docs[c] += [clone(t, i, k, aid, at, houses) for k, t in enumerate(tpl)]
        for c, batch in docs.items():
            if batch:
                await db[c].insert_many(batch, ordered=False)
    await client.close()
    return time.perf_counter() - t0


async def one(size: int, count: int, houses: int, base: Path) -> None:
    from router.cli import import_directory
    from router.settings import RouterSettings

    async with infra(base) as inf:
        guids = write_directory(base / "directory", houses)
        await import_directory(sorted((base / "directory").glob("*.csv")), RouterSettings(mongo_uri=inf.mongo_uri, mongo_db="zhkh"))
        planned = deadline_planned()

        async with service("intake", inf) as intake, service("router", inf) as router, service("notifier", inf) as notifier:
            await measure(inf, raw_records(inf, 30, guids, prefix="warm"), planned, 0)
            loaded = await store(inf.mongo_uri, size, guids)
            records = raw_records(inf, count, guids, prefix=f"s{size}")
            procs = (("intake", intake), ("router", router), ("notifier", notifier))
            assert inf.pids is not None
            meter = CpuMeter({**inf.pids, **{n: p.pid for n, p in procs}})
            ops0 = await opcounters(inf.mongo_uri)
            t0, t_end, _ = await measure(inf, records, planned, 0, meter=meter)
            ops = {k: v - ops0.get(k, 0) for k, v in (await opcounters(inf.mongo_uri)).items()}
    print(f"{size} appeals stored (loaded in {loaded:.0f}s): burst of {count}: {count / (t_end - t0):.1f} appeals/s")
    print("  " + cpu_line(meter.used, count))
    print("  database operations per appeal: " + ", ".join(f"{k} {v / count:.1f}" for k, v in ops.items() if v))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="1000,100000,1000000")
    ap.add_argument("--count", type=int, default=300)
    ap.add_argument("--houses", type=int, default=300)
    args = ap.parse_args()
    for size in (int(s) for s in args.sizes.split(",")):
        with tempfile.TemporaryDirectory(prefix="zhkh-stored-") as tmp:
            asyncio.run(one(size, args.count, args.houses, Path(tmp)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
