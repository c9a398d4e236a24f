"""Directory import: ``python -m router.cli import-directory FILE [FILE ...]``; outage import:
``python -m router.cli import-outages FILE`` (a .csv or .json file, see outages_import.py).

FILEs are parties.csv / districts.csv / houses.csv, or one JSON document (see directory.py).
Every bad row is reported with its file and line; with any error nothing is written. On success the
whole directory is replaced in one transaction. Outages are checked against the stored directory and
published on the outages topic (actor ``admin:cli``), where the router registers them. Settings (MongoDB
URI, database, Kafka) come from ZHKH_*.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from zhkh_runtime.mongo import make_mongo

from .directory import ImportFailed, parse
from .repository import RouterRepository
from .settings import RouterSettings


async def import_directory(paths: list[Path], settings: RouterSettings) -> int:
    try:
        d = parse(paths)
    except ImportFailed as exc:
        for e in exc.errors:
            print(f"error: {e}", file=sys.stderr)
        print(f"import refused: {len(exc.errors)} error(s); nothing was written", file=sys.stderr)
        return 1
    client = make_mongo(settings)
    try:
        repo = RouterRepository(client[settings.mongo_db], client)
        await repo.ensure_indexes()
        await repo.replace_directory(d)
        counts = await repo.directory_counts()
    finally:
        await client.close()
    print(f"imported {counts['parties']} parties, {counts['districts']} districts, {counts['houses']} houses")
    return 0


async def import_outages(path: Path, settings: RouterSettings) -> int:
    from datetime import UTC, datetime

    from zhkh_contracts import Topics
    from zhkh_runtime.engine import Emitter
    from zhkh_runtime.kafka import RecordPublisher

    from .outages_import import ImportFailed as OutagesFailed, check_references, emits, parse as parse_outages

    client = make_mongo(settings)
    try:
        directory = await RouterRepository(client[settings.mongo_db], client).load_directory()
    finally:
        await client.close()
    try:
        rows = parse_outages(path.read_bytes(), "json" if path.suffix.lower() == ".json" else "csv")
        check_references(rows, set(directory.parties), set(directory.districts))
    except OutagesFailed as exc:
        for e in exc.errors:
            print(f"error: {path.name}: {e}", file=sys.stderr)
        print(f"import refused: {len(exc.errors)} error(s); nothing was published", file=sys.stderr)
        return 1
    out = emits(rows, "admin:cli", datetime.now(UTC))
    publisher = RecordPublisher(settings)
    await publisher.start()
    try:
        await publisher.publish(Emitter("router", Topics(settings.topic_prefix)).records(out))
    finally:
        await publisher.stop()
    print(f"published {len(out)} event(s) for {len(rows)} outage(s)")
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m router.cli", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    imp = sub.add_parser("import-directory", help="validate and import the directory of responsible parties")
    imp.add_argument("files", nargs="+", type=Path)
    out = sub.add_parser("import-outages", help="validate and import outages (CSV or JSON)")
    out.add_argument("file", type=Path)
    args = ap.parse_args(argv)
    if args.cmd == "import-outages":
        return asyncio.run(import_outages(args.file, RouterSettings()))
    return asyncio.run(import_directory(args.files, RouterSettings()))


if __name__ == "__main__":
    raise SystemExit(main())
