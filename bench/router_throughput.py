"""Router throughput and routing latency on the embedded broker and database.

    .venv/bin/python bench/router_throughput.py [--count 2000] [--rate 0] [--houses 300]

Imports a directory of --houses houses (the sample parties and districts), runs the router as its
own process (`python -m router`), publishes AppealRegistered events straight onto the lifecycle
topic (as intake would) for random houses and categories, and follows the lifecycle topic.
Latency of one appeal = its AppealAssigned seen by the benchmark - its AppealRegistered
acknowledged by the broker. Prints routed appeals/s, p50/p90/p99/max and the router's peak RSS.
"""

from __future__ import annotations

import csv
import random
import uuid
from datetime import UTC, datetime
from pathlib import Path

from common import cli, ROOT, infra, measure, peak_rss_mib, report, service

from devtools import samples
from zhkh_contracts import AppealAssigned, AppealRegistered, Category, Envelope, to_kafka

SAMPLE = ROOT / "devtools" / "sample_directory"


def write_directory(folder: Path, houses: int) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("parties.csv", "districts.csv"):
        (folder / name).write_text((SAMPLE / name).read_text(encoding="utf-8"), encoding="utf-8")
    rnd = random.Random(7)
    guids = []
    with (folder / "houses.csv").open("w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(["fias_guid", "address", "district_id", "managing_org_id", "direct_contracts"])
        for i in range(houses):
            g = str(uuid.uuid5(uuid.NAMESPACE_URL, f"bench-house-{i}"))
            guids.append(g)
            w.writerow([g, f"ул. Тестовая, д. {i}", rnd.choice(["d-leninsky", "d-dzerzhinsky"]),
                        rnd.choice(["uk-zarechye", "tsj-mira-7", "zhsk-uralets", ""]),
                        rnd.choice(["", "", "electricity;gas", "heating;hot_water"])])
    return guids


async def run(count: int, rate: float, houses: int, base: Path) -> None:
    from router.cli import import_directory
    from router.settings import RouterSettings
    from intake.classifier import Classifier
    from intake.service import build_appeal, prepare

    async with infra(base) as inf:
        guids = write_directory(base / "directory", houses)
        await import_directory(sorted((base / "directory").glob("*.csv")), RouterSettings(mongo_uri=inf.mongo_uri, mongo_db="zhkh"))
        clf, rnd = Classifier(), random.Random(42)
        records = []
        for i in range(count):
            raw = samples.raw_submission(source_id=f"r{i}", category=rnd.choice(list(Category)))
            raw = raw.model_copy(update={"address": raw.address.model_copy(update={"fias_house_guid": uuid.UUID(rnd.choice(guids))})})
            appeal = build_appeal(prepare(raw), uuid.uuid4(), f"ZH-2026-{i:07d}", datetime.now(UTC), clf)
            key, value, headers = to_kafka(Envelope.new(AppealRegistered(appeal=appeal), source="/zhkh-appeals/intake", appeal_id=str(appeal.appeal_id)))
            records.append((str(appeal.appeal_id), inf.topics.lifecycle, key, value, [(k, v.encode()) for k, v in headers.items()]))
        async with service("router", inf, ZHKH_MONGO_DB="zhkh") as proc:

            def assigned(e: Envelope) -> str | None:
                return e.appeal_id if isinstance(e.data, AppealAssigned) else None

            t0, t_end, lat = await measure(inf, records, assigned, rate)
            report(f"router over {houses} houses", count, rate, t0, t_end, lat, peak_rss_mib(proc.pid))


def main() -> int:
    return cli(__doc__, run)


if __name__ == "__main__":
    raise SystemExit(main())
