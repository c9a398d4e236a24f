"""What the party scorecards cost as the read model grows, beside the summary in the same run.

    .venv/bin/python bench/scorecards.py [--sizes 1000,10000,50000] [--parties 40] [--repeat 3]

For each size N, on a fresh embedded MongoDB-protocol server: N read-model documents
(``analytics_appeals``, the shape ``readmodel`` folds: registration, current party, deadline,
status and the three histories — one or two assignments, usually an answer, sometimes a bounce,
an escalation, a rating) spread over 12 months and ``--parties`` parties are stored directly. Then
the analytics service's own ``parties`` (scorecards: one indexed find + a fold in Python) and
``summary`` (the aggregation pipeline, the baseline) run ``--repeat`` times over all of them;
prints the best wall time of each, the scorecards' read and fold parts, and the wall time per
1000 appeals.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import common  # noqa: F401  (puts the repository root on sys.path)
from pymongo import AsyncMongoClient

from analytics import scorecards as sc
from analytics.report import Filters
from analytics.repository import AnalyticsRepository
from analytics.service import AnalyticsService
from devtools import embedded

CATEGORIES = ("heating", "hot_water", "cold_water", "electricity", "common_property", "billing", "lifts")
CHANNELS = ("site_form", "hotline", "gis", "paper", "chatbot")


def doc(i: int, rnd: random.Random, now: datetime, parties: int) -> dict[str, Any]:
    reg = now - timedelta(days=rnd.uniform(1, 365))
    party = f"party-{rnd.randrange(parties)}"
    assignments = [{"party_id": party, "cause": "rules", "previous_party_id": None, "at": reg + timedelta(minutes=1)}]
    transitions: list[dict[str, Any]] = [
        {"version": 1, "action": "accept", "to": "in_progress", "party_id": party, "at": reg + timedelta(hours=1)}]
    answers: list[dict[str, Any]] = []
    status, answered_at = "in_progress", None
    if rnd.random() < 0.1:  # "not ours": re-routed to another party
        other = f"party-{rnd.randrange(parties)}"
        at = reg + timedelta(hours=3)
        transitions.append({"version": 2, "action": "reject_not_responsible", "to": "rerouted", "party_id": party, "at": at})
        assignments.append({"party_id": other, "cause": "reroute", "previous_party_id": party, "at": at})
        party = other
    if rnd.random() < 0.05:
        at = reg + timedelta(days=10)
        assignments.append({"party_id": "adm-city", "cause": "escalation", "previous_party_id": party, "at": at})
        party = "adm-city"
    if rnd.random() < 0.8:
        answered_at = reg + timedelta(hours=rnd.uniform(2, 200))
        answers.append({"party_id": party, "at": answered_at})
        transitions.append({"version": 3, "action": "answer", "to": "answered", "party_id": party, "at": answered_at})
        status = "answered"
        if rnd.random() < 0.4:
            to = "closed" if rnd.random() < 0.8 else "reopened"
            transitions.append({"version": 4, "action": "rate", "to": to, "party_id": party,
                                "at": answered_at + timedelta(days=1)})
            status = to
    return {
        "_id": f"appeal-{i}", "registration_number": f"ZH-2026-{i:07d}", "channel": rnd.choice(CHANNELS),
        "category": rnd.choice(CATEGORIES), "emergency": False, "house_key": f"fias:house-{i % 2000}",
        "address": None, "registered_at": reg, "party_id": party, "party_kind": "managing_organisation",
        "district_id": f"district-{i % 8}", "assigned_at": reg + timedelta(minutes=1),
        "due_at": reg + timedelta(days=14), "deadline_generation": 1, "answered_at": answered_at,
        "minutes_to_answer": None if answered_at is None else round((answered_at - reg).total_seconds() / 60),
        "status": status, "status_version": len(transitions), "overdue_alert": False, "answered_late": False,
        "overdue_fixed": False, "assignments": assignments, "answers": answers, "transitions": transitions,
    }


async def one_size(n: int, parties: int, repeat: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="zhkh-bench-sc-") as tmp:
        base = Path(tmp)
        port = embedded.free_port()
        (base / "mongo").mkdir()
        server = embedded.mongo_server(base / "mongo", port, base / "logs")
        server.start()
        try:
            uri = embedded.mongo_uri(port)
            await embedded.wait_mongo(uri, server=server)
            client = AsyncMongoClient(uri, tz_aware=True)
            db = client["zhkh"]
            repo = AnalyticsRepository(db)
            await repo.ensure_indexes()
            rnd, now = random.Random(7), datetime.now(UTC)
            t0 = time.perf_counter()
            for start in range(0, n, 5000):
                await db["analytics_appeals"].insert_many([doc(i, rnd, now, parties) for i in range(start, min(n, start + 5000))])
            load = time.perf_counter() - t0
            service = AnalyticsService(repo)
            f = Filters(tz="Europe/Moscow")
            best = {"scorecards": float("inf"), "read": float("inf"), "fold": float("inf"), "summary": float("inf")}
            rows = 0
            for _ in range(repeat):
                t = time.perf_counter()
                body = await service.parties(f, "Europe/Moscow")
                best["scorecards"] = min(best["scorecards"], time.perf_counter() - t)
                rows = len(body["parties"])
                t = time.perf_counter()
                docs = [d async for d in repo.rows(f.match(), sc.PROJECTION)]
                best["read"] = min(best["read"], time.perf_counter() - t)
                t = time.perf_counter()
                sc.scorecards(docs, "Europe/Moscow", now)
                best["fold"] = min(best["fold"], time.perf_counter() - t)
                t = time.perf_counter()
                await service.summary(f)
                best["summary"] = min(best["summary"], time.perf_counter() - t)
            await client.close()
            return {"load": load, "rows": rows, **best}
        finally:
            server.stop()


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="1000,10000,50000")
    ap.add_argument("--parties", type=int, default=40)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    print(f"{'appeals':>8} {'rows':>5} {'scorecards s':>12} {'(read':>7} {'fold)':>7} {'per 1000':>9} "
          f"{'summary s':>10} {'per 1000':>9}")
    for n in (int(s) for s in args.sizes.split(",")):
        r = await one_size(n, args.parties, args.repeat)
        print(f"{n:>8} {r['rows']:>5} {r['scorecards']:>12.3f} {r['read']:>7.3f} {r['fold']:>7.3f} "
              f"{r['scorecards'] / n * 1000:>8.3f}s {r['summary']:>10.3f} {r['summary'] / n * 1000:>8.3f}s")


if __name__ == "__main__":
    asyncio.run(main())
