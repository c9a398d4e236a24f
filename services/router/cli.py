"""Directory import: ``python -m router.cli import-directory FILE [FILE ...]``.

FILEs are parties.csv / districts.csv / houses.csv, or one JSON document (see directory.py).
Every bad row is reported with its file and line; with any error nothing is written. On success the
whole directory is replaced in one transaction. Settings (MongoDB URI, database) come from ZHKH_*.
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


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m router.cli", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    imp = sub.add_parser("import-directory", help="validate and import the directory of responsible parties")
    imp.add_argument("files", nargs="+", type=Path)
    args = ap.parse_args(argv)
    return asyncio.run(import_directory(args.files, RouterSettings()))


if __name__ == "__main__":
    raise SystemExit(main())
