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
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer  # noqa: E402

from devtools import embedded, samples  # noqa: E402
from zhkh_contracts import REGISTRY, Address, AppealRegistered, Category, Channel, Topics, from_kafka  # noqa: E402
from zhkh_runtime.kafka import ensure_topics  # noqa: E402

TEXTS = [
    ("Третий день нет горячей воды в квартире, просим восстановить.", None),
    ("В подъезде пахнет газом!", None),
    ("Прошу сделать перерасчёт за отопление за ноябрь.", None),
    ("Мусор не вывозят неделю, контейнеры переполнены.", Category.WASTE),
    ("Лифт не работает во втором подъезде.", Category.LIFTS),
]


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


async def run(count: int, rate: float, houses: int, base: Path) -> None:
    kport, mport, hport = embedded.free_port(), embedded.free_port(), embedded.free_port()
    kafka = embedded.kafka_server(base / "kafka", kport, base / "logs")
    mongo = embedded.mongo_server(base / "mongo", mport, base / "logs")
    (base / "kafka").mkdir(parents=True)
    (base / "mongo").mkdir(parents=True)
    kafka.start()
    mongo.start()
    bootstrap, uri = f"127.0.0.1:{kport}", embedded.mongo_uri(mport)
    intake = None
    try:
        await asyncio.gather(embedded.wait_kafka(bootstrap, server=kafka), embedded.wait_mongo(uri, server=mongo))
        topics = Topics("bench")
        await ensure_topics(bootstrap, topics.catalog())
        env = dict(os.environ, ZHKH_KAFKA_BOOTSTRAP=bootstrap, ZHKH_MONGO_URI=uri, ZHKH_TOPIC_PREFIX="bench",
                   ZHKH_GROUP_PREFIX="bench", ZHKH_HTTP_PORT=str(hport), ZHKH_LOG_LEVEL="WARNING")
        log = (base / "logs" / "intake.log").open("wb")
        intake = subprocess.Popen([sys.executable, "-m", "intake"], env=env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
        import urllib.request

        for _ in range(300):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{hport}/ready", timeout=2) as r:  # noqa: S310
                    if r.status == 200:
                        break
            except Exception:  # noqa: BLE001
                await asyncio.sleep(0.2)
        consumer = AIOKafkaConsumer(topics.lifecycle, bootstrap_servers=bootstrap, group_id=None, auto_offset_reset="earliest")
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, linger_ms=2)
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
            topic, key, value, headers = samples.raw_record(raw, topics=topics)

            async def send(topic=topic, key=key, value=value, headers=headers, sid=raw.source_id) -> None:  # noqa: ANN001
                fut = await producer.send(topic, value=value, key=key, headers=headers)
                await fut
                sent[sid] = time.perf_counter()

            pending.append(asyncio.create_task(send()))
            if rate > 0:
                await asyncio.sleep(max(0.0, t0 + (i + 1) / rate - time.perf_counter()))
        await asyncio.gather(*pending)
        t_sent = time.perf_counter()
        await asyncio.wait_for(follower, timeout=max(120, count / 5))
        t_end = max(seen.values())
        lat = sorted((seen[s] - sent[s]) * 1000 for s in sent)
        q = statistics.quantiles(lat, n=100)
        print(f"intake: {count} appeals over {houses} houses, {'burst' if rate <= 0 else f'paced at {rate:g}/s'}; "
              f"published in {t_sent - t0:.2f}s, all registered after {t_end - t0:.2f}s")
        print(f"  throughput: {count / (t_end - t0):.0f} appeals/s registered")
        print(f"  latency ms: p50 {q[49]:.1f}  p90 {q[89]:.1f}  p99 {q[98]:.1f}  max {lat[-1]:.1f}")
        print(f"  intake peak RSS: {rss_kb(intake.pid) / 1024:.0f} MiB")
        await producer.stop()
        await consumer.stop()
    finally:
        if intake is not None:
            intake.terminate()
            intake.wait(30)
        mongo.stop()
        kafka.stop()


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
