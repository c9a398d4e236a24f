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

import random
import uuid
from pathlib import Path

from common import cli, infra, measure, peak_rss_mib, report, service

from devtools import samples
from zhkh_contracts import Address, AppealRegistered, Category, Channel, Envelope

TEXTS = [
    ("Третий день нет горячей воды в квартире, просим восстановить.", None),
    ("В подъезде пахнет газом!", None),
    ("Прошу сделать перерасчёт за отопление за ноябрь.", None),
    ("Мусор не вывозят неделю, контейнеры переполнены.", Category.WASTE),
    ("Лифт не работает во втором подъезде.", Category.LIFTS),
]


async def run(count: int, rate: float, houses: int, base: Path) -> None:
    async with infra(base) as inf, service("intake", inf) as proc:
        channels, rnd, records = list(Channel), random.Random(42), []
        for i in range(count):
            text, cat = TEXTS[i % len(TEXTS)]
            raw = samples.raw_submission(channel=channels[i % len(channels)], source_id=f"b{i}", text=text, category=cat,
                                         phone=f"+7912{i:07d}")
            house = uuid.uuid5(uuid.NAMESPACE_URL, f"house-{rnd.randrange(houses)}")
            raw = raw.model_copy(update={"address": Address(fias_house_guid=house, apartment=str(i % 120 + 1))})
            records.append((raw.source_id, *samples.raw_record(raw, topics=inf.topics)))

        def registered(e: Envelope) -> str | None:
            return e.data.appeal.source_id if isinstance(e.data, AppealRegistered) else None

        t0, t_end, lat = await measure(inf, records, registered, rate)
        report(f"intake over {houses} houses", count, rate, t0, t_end, lat, peak_rss_mib(proc.pid))


def main() -> int:
    return cli(__doc__, run)


if __name__ == "__main__":
    raise SystemExit(main())
