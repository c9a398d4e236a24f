"""Intake throughput and latency on the embedded broker and database.

    .venv/bin/python bench/intake_throughput.py [--count 2000] [--rate 0] [--houses 300]

Starts noida-db and SecantusDB (temporary data dirs), runs intake as its own process
(`python -m intake`), publishes --count raw submissions across all channels, spread over --houses
houses (as fast as possible with --rate 0, else paced at that many per second) with the default
duplicate and incident settings, and follows the lifecycle topic. Latency of one
appeal = AppealRegistered seen by the benchmark's consumer - its raw record acknowledged by the
broker. Prints registered appeals/s, p50/p90/p99/max latency, and intake's peak RSS.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import tempfile
import time
import uuid
from pathlib import Path

from common import infra, peak_rss_mib, report, service
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from devtools import samples
from zhkh_contracts import REGISTRY, Address, AppealRegistered, Category, Channel, from_kafka

TEXTS = [
    ("Третий день нет горячей воды в квартире, просим восстановить.", None),
    ("В подъезде пахнет газом!", None),
    ("Прошу сделать перерасчёт за отопление за ноябрь.", None),
    ("Мусор не вывозят неделю, контейнеры переполнены.", Category.WASTE),
    ("Лифт не работает во втором подъезде.", Category.LIFTS),
]


async def run(count: int, rate: float, houses: int, base: Path) -> None:
    async with infra(base) as inf, service("intake", inf) as proc:
        consumer = AIOKafkaConsumer(inf.topics.lifecycle, bootstrap_servers=inf.bootstrap, group_id=None, auto_offset_reset="earliest")
        producer = AIOKafkaProducer(bootstrap_servers=inf.bootstrap, acks="all", enable_idempotence=True, linger_ms=2)
        await consumer.start()
        await producer.start()
        sent: dict[str, float] = {}
        seen: dict[str, float] = {}
        channels = list(Channel)
        rnd = random.Random(42)

        async def follow() -> None:
            while len(seen) < count:
                batch = await consumer.getmany(timeout_ms=200)
                now = time.perf_counter()
                for recs in batch.values():
                    for r in recs:
                        e = from_kafka(r.value, r.headers, REGISTRY)
                        if isinstance(e.data, AppealRegistered):
                            seen.setdefault(e.data.appeal.source_id, now)

        follower = asyncio.create_task(follow())
        t0 = time.perf_counter()
        pending = []
        for i in range(count):
            text, cat = TEXTS[i % len(TEXTS)]
            raw = samples.raw_submission(channel=channels[i % len(channels)], source_id=f"b{i}", text=text, category=cat,
                                         phone=f"+7912{i:07d}")
            house = uuid.uuid5(uuid.NAMESPACE_URL, f"house-{rnd.randrange(houses)}")
            raw = raw.model_copy(update={"address": Address(fias_house_guid=house, apartment=str(i % 120 + 1))})
            topic, key, value, headers = samples.raw_record(raw, topics=inf.topics)

            async def send(topic=topic, key=key, value=value, headers=headers, sid=raw.source_id) -> None:  # noqa: ANN001
                await (await producer.send(topic, value=value, key=key, headers=headers))
                sent[sid] = time.perf_counter()

            pending.append(asyncio.create_task(send()))
            if rate > 0:
                await asyncio.sleep(max(0.0, t0 + (i + 1) / rate - time.perf_counter()))
        await asyncio.gather(*pending)
        await asyncio.wait_for(follower, timeout=max(120, count / 5))
        report(f"intake over {houses} houses", count, rate, t0, max(seen.values()),
               [(seen[s] - sent[s]) * 1000 for s in sent], peak_rss_mib(proc.pid))
        await producer.stop()
        await consumer.stop()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--count", type=int, default=2000)
    ap.add_argument("--rate", type=float, default=0.0, help="appeals per second; 0 = as fast as possible")
    ap.add_argument("--houses", type=int, default=300, help="distinct houses the appeals are about")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="zhkh-bench-") as tmp:
        asyncio.run(run(args.count, args.rate, args.houses, Path(tmp)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
