"""The outage register at scale: how long the router takes to tell every resident of a district outage,
and to link a new appeal to it, on the embedded broker and database.

    .venv/bin/python bench/outage_notices.py [--count 1000] [--houses 300]

Imports a directory of --houses houses (half in each sample district), runs the router as its own
process (`python -m router`), registers --count hot-water appeals at random houses (AppealRegistered
straight onto the lifecycle topic, as intake would) and waits until every one is routed. Then it
publishes one OutageRegistered for hot water in the whole of d-leninsky (as the router's API would,
on the outages topic) and follows the lifecycle topic until every appeal of that district has its
AppealLinkedToOutage: the time from the outage's acknowledgement to the last resident's notice. Last,
--probe new appeals at houses of that district: the latency from each registration to its `linked`
notice (the citizen answered at once). Prints the figures and the router's peak RSS.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import random
import statistics
import tempfile
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from common import ROOT, infra, measure, peak_rss_mib, publish_and_follow, service

from devtools import samples
from zhkh_contracts import (
    REGISTRY,
    AppealAssigned,
    AppealLinkedToOutage,
    AppealRegistered,
    Category,
    Envelope,
    OutageKind,
    OutageRegistered,
    OutageResource,
    from_kafka,
    to_kafka,
)

SAMPLE = ROOT / "devtools" / "sample_directory"


def write_directory(folder: Path, houses: int) -> dict[str, str]:
    """house GUID -> district (alternating)."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("parties.csv", "districts.csv"):
        (folder / name).write_text((SAMPLE / name).read_text(encoding="utf-8"), encoding="utf-8")
    out = {}
    with (folder / "houses.csv").open("w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(["fias_guid", "address", "district_id", "managing_org_id", "direct_contracts"])
        for i in range(houses):
            g = str(uuid.uuid5(uuid.NAMESPACE_URL, f"bench-outage-house-{i}"))
            out[g] = "d-leninsky" if i % 2 == 0 else "d-dzerzhinsky"
            w.writerow([g, f"ул. Тестовая, д. {i}", out[g], "uk-zarechye", ""])
    return out


def registration(i: int, guid: str, clf) -> tuple[str, AppealRegistered]:  # noqa: ANN001
    from intake.service import build_appeal, prepare

    raw = samples.raw_submission(source_id=f"o{i}", category=Category.HOT_WATER)
    raw = raw.model_copy(update={"address": raw.address.model_copy(update={"fias_house_guid": uuid.UUID(guid)})})
    appeal = build_appeal(prepare(raw), uuid.uuid4(), f"ZH-2026-{i:07d}", datetime.now(UTC), clf)
    return str(appeal.appeal_id), AppealRegistered(appeal=appeal)


def record(rid: str, topic: str, data, key: str, source: str):  # noqa: ANN001, ANN201
    k, v, h = to_kafka(Envelope.new(data, source=source, appeal_id=key))
    return (rid, topic, k, v, [(a, b.encode()) for a, b in h.items()])


async def run(count: int, houses: int, probes: int, base: Path) -> None:
    from intake.classifier import Classifier
    from router.cli import import_directory
    from router.settings import RouterSettings

    async with infra(base) as inf:
        district_of = write_directory(base / "directory", houses)
        await import_directory(sorted((base / "directory").glob("*.csv")), RouterSettings(mongo_uri=inf.mongo_uri, mongo_db="zhkh"))
        clf, rnd = Classifier(), random.Random(16)
        guids = sorted(district_of)
        regs = [registration(i, rnd.choice(guids), clf) for i in range(count)]
        residents = {rid for rid, e in regs if district_of[str(e.appeal.address.fias_house_guid)] == "d-leninsky"}
        async with service("router", inf, ZHKH_MONGO_DB="zhkh") as proc:
            t0, t1, _ = await measure(inf, [record(rid, inf.topics.lifecycle, e, rid, "/zhkh-appeals/intake") for rid, e in regs],
                                      lambda e: e.appeal_id if isinstance(e.data, AppealAssigned) else None, 0)
            print(f"{count} hot-water appeals over {houses} houses routed in {t1 - t0:.1f}s; "
                  f"{len(residents)} of them in d-leninsky")

            now = datetime.now(UTC)
            oid = uuid.uuid4()
            outage = OutageRegistered(outage_id=oid, resource=OutageResource.HOT_WATER, actor="operator:bench",
                                      kind=OutageKind.EMERGENCY, district_id="d-leninsky", starts_at=now - timedelta(hours=1),
                                      expected_restore_at=now + timedelta(hours=8), party_id="tgk-teplo", registered_at=now)
            told: set[str] = set()

            def all_told(r) -> str | None:  # noqa: ANN001
                e = from_kafka(r.value, r.headers, REGISTRY)
                if isinstance(e.data, AppealLinkedToOutage) and e.data.outage_id == oid:
                    told.add(e.appeal_id)
                return "outage" if residents <= told else None

            t0, t1, _ = await publish_and_follow(inf.bootstrap, inf.topics.lifecycle,
                                                 [record("outage", inf.topics.outages, outage, outage.key, "/zhkh-appeals/router")],
                                                 all_told, 0)
            print(f"outage registered for d-leninsky: all {len(told)} residents' notices published {t1 - t0:.2f}s "
                  f"after it was acknowledged ({len(told) / (t1 - t0):.0f} notices/s)")

            leninsky = [g for g in guids if district_of[g] == "d-leninsky"]
            new = [registration(count + i, rnd.choice(leninsky), clf) for i in range(probes)]
            _, _, lat = await measure(inf, [record(rid, inf.topics.lifecycle, e, rid, "/zhkh-appeals/intake") for rid, e in new],
                                      lambda e: e.appeal_id if isinstance(e.data, AppealLinkedToOutage) else None, 5)
            lat.sort()
            print(f"{probes} new appeals in that district, paced at 5/s: registration -> 'linked' notice "
                  f"p50 {statistics.median(lat):.0f} ms, max {lat[-1]:.0f} ms")
            print(f"peak RSS of the router: {peak_rss_mib(proc.pid):.0f} MiB")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--count", type=int, default=1000)
    ap.add_argument("--houses", type=int, default=300)
    ap.add_argument("--probe", type=int, default=20)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="zhkh-bench-") as tmp:
        asyncio.run(run(args.count, args.houses, args.probe, Path(tmp)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
