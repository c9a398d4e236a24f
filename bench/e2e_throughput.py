"""End-to-end throughput and latency, side by side with bare aiokafka on the same broker, in one run.

    .venv/bin/python bench/e2e_throughput.py [--count 1000] [--rate 0] [--houses 300]

Starts noida-db and SecantusDB (temporary data dirs), imports a directory of --houses houses, runs
intake, router and notifier as their own processes, and publishes --count raw submissions across
the six non-ГИС channels and the houses. An appeal is done when its DeadlinePlanned (the deadline of
its first assignment) is on the lifecycle topic: raw submission -> registered -> assigned -> deadline.
Latency = that DeadlinePlanned seen by the benchmark's consumer - the raw record acknowledged.

Baseline, same run, same broker, same records: publish them to one plain topic and consume them
with a bare aiokafka consumer (no service, no database). Prints both, their ratio, and every
service's peak RSS.
"""

from __future__ import annotations

import random
import statistics
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from common import CpuMeter, Record, cli, cpu_line, infra, measure, peak_rss_mib, publish_and_follow, service
from router_throughput import write_directory

from devtools import samples
from zhkh_contracts import Address, AppealRegistered, Channel, DeadlinePlanned, Envelope

CHANNELS = [ch for ch in Channel if ch is not Channel.GIS]
TEXTS = [
    "Третий день нет горячей воды в квартире, просим восстановить.",
    "Прошу сделать перерасчёт за отопление за ноябрь.",
    "Протекает крыша над последним этажом после дождя.",
    "Во дворе не убирают снег, невозможно пройти.",
]


def deadline_planned() -> Callable[[Envelope], str | None]:
    """For ``measure``: an appeal is done when the deadline of its first assignment is planned;
    names it by the source id it was submitted with."""
    source_of: dict[str, str] = {}

    def planned(e: Envelope) -> str | None:
        if isinstance(e.data, AppealRegistered):
            source_of[str(e.data.appeal.appeal_id)] = e.data.appeal.source_id
        elif isinstance(e.data, DeadlinePlanned) and e.data.generation == 1:
            return source_of.get(str(e.data.appeal_id))
        return None

    return planned


def raw_records(inf: Any, count: int, guids: list[str], prefix: str = "e") -> list[Record]:
    """``count`` raw submissions across the six non-ГИС channels and the houses (fixed seed)."""
    rnd, records = random.Random(42), []
    for i in range(count):
        raw = samples.raw_submission(channel=CHANNELS[i % len(CHANNELS)], source_id=f"{prefix}{i}", text=TEXTS[i % len(TEXTS)],
                                     category=None, phone=f"+7912{i:07d}")
        raw = raw.model_copy(update={"address": Address(fias_house_guid=uuid.UUID(rnd.choice(guids)), apartment=str(i % 90 + 1))})
        records.append((raw.source_id, *samples.raw_record(raw, topics=inf.topics)))
    return records


async def baseline(bootstrap: str, records: list[Record], rate: float, meter: CpuMeter | None = None) -> tuple[float, float, list[float]]:
    """The same records through one plain topic with a bare producer and consumer."""
    topic = f"bench.baseline.{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=1)])
    finally:
        await admin.close()
    return await publish_and_follow(bootstrap, topic, records, lambda r: r.key.decode(), rate, from_start=True,
                                    publish_to=topic, meter=meter)


async def opcounters(uri: str) -> dict[str, int]:
    from pymongo import AsyncMongoClient

    client = AsyncMongoClient(uri)
    try:
        return dict((await client.admin.command("serverStatus"))["opcounters"])
    finally:
        await client.close()


def figures(count: int, t0: float, t_end: float, lat: list[float]) -> tuple[float, float, float]:
    q = statistics.quantiles(sorted(lat), n=100, method="inclusive")
    return count / (t_end - t0), q[49], q[98]


async def run(count: int, rate: float, houses: int, base: Path) -> None:
    from router.cli import import_directory
    from router.settings import RouterSettings

    async with infra(base) as inf:
        guids = write_directory(base / "directory", houses)
        await import_directory(sorted((base / "directory").glob("*.csv")),
                               RouterSettings(mongo_uri=inf.mongo_uri, mongo_db="zhkh"))
        records = raw_records(inf, count, guids)

        assert inf.pids is not None
        b_meter = CpuMeter(dict(inf.pids))
        b_t0, b_end, b_lat = await baseline(inf.bootstrap, records, rate, b_meter)

        planned = deadline_planned()

        async with service("intake", inf) as intake, service("router", inf) as router, service("notifier", inf) as notifier:
            procs = (("intake", intake), ("router", router), ("notifier", notifier))
            meter = CpuMeter({**inf.pids, **{n: p.pid for n, p in procs}})
            ops0 = await opcounters(inf.mongo_uri)
            t0, t_end, lat = await measure(inf, records, planned, rate, meter=meter)
            ops = {k: v - ops0.get(k, 0) for k, v in (await opcounters(inf.mongo_uri)).items()}
            rss = {n: peak_rss_mib(p.pid) for n, p in procs}

    mode = "burst" if rate <= 0 else f"paced at {rate:g}/s"
    s_tp, s_p50, s_p99 = figures(count, t0, t_end, lat)
    b_tp, b_p50, b_p99 = figures(count, b_t0, b_end, b_lat)
    print(f"end to end (raw -> registered -> assigned -> deadline planned): {count} appeals, {mode}, {houses} houses")
    print(f"  system   : {s_tp:7.1f} appeals/s   p50 {s_p50:7.1f} ms   p99 {s_p99:7.1f} ms")
    print(f"  bare kafka: {b_tp:7.1f} records/s   p50 {b_p50:7.1f} ms   p99 {b_p99:7.1f} ms")
    print(f"  ratio system/bare: throughput {s_tp / b_tp:.3f}   p50 latency x{s_p50 / b_p50:.1f}   p99 latency x{s_p99 / b_p99:.1f}")
    print("  system " + cpu_line(meter.used, count))
    print("  database operations per appeal (serverStatus opcounters; inserts count documents): "
          + ", ".join(f"{k} {v / count:.1f}" for k, v in ops.items()))
    print("  bare   " + cpu_line(b_meter.used, count))
    print("  peak RSS: " + ", ".join(f"{n} {v:.0f} MiB" for n, v in rss.items()))


def main() -> int:
    return cli(__doc__, run, default_count=1000)


if __name__ == "__main__":
    raise SystemExit(main())
