"""Build-time check of an installed (non-editable) zhkh-appeals: every service imports and every
data file it reads at start is really installed next to its code.

    python deploy/verify_image.py        # run by deploy/Dockerfile right after `pip install .`

A plain `pip install .` ships only what setuptools packs into the wheel: the rules (TOML), the
ГИС ЖКХ WSDL/XSD and the analytics dashboard's static files are there only if pyproject.toml lists
them as package data. Without this check the image builds fine and the services fail at start.
Exit status 0 when everything is there, 1 with one line per problem otherwise.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import tomllib
from pathlib import Path

SERVICES = ("intake", "router", "notifier", "gis_sync", "analytics")


def problems() -> list[str]:
    out: list[str] = []
    for svc in SERVICES:  # what `python -m <svc>` runs, without running it
        if importlib.util.find_spec(f"{svc}.__main__") is None:
            out.append(f"{svc}: no {svc}.__main__ (python -m {svc} would fail)")
        try:
            importlib.import_module(f"{svc}.main")
        except Exception as exc:  # noqa: BLE001 - report every service, not the first failure
            out.append(f"{svc}: import {svc}.main failed: {exc.__class__.__name__}: {exc}")

    from intake.settings import IntakeSettings
    from notifier.settings import NotifierSettings
    from router.settings import RouterSettings

    tomls = [
        ("intake", IntakeSettings().classifier_rules),
        ("intake", IntakeSettings().knowledge_base),
        ("router", RouterSettings().routing_rules),
        ("notifier", NotifierSettings().deadline_table),
        ("notifier", NotifierSettings().calendar_overrides),
    ]
    for svc, path in tomls:
        try:
            tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            out.append(f"{svc}: default rules file {path}: {exc.__class__.__name__}: {exc}")

    from gis_sync.soap import WSDL
    from lxml import etree

    schemas = [Path(WSDL), *sorted(Path(WSDL).parent.glob("*.xsd"))]
    if len(schemas) < 2:
        out.append(f"gis_sync: no XSD next to {WSDL}")
    for path in schemas:
        try:
            etree.parse(str(path))
        except (OSError, etree.XMLSyntaxError) as exc:
            out.append(f"gis_sync: {path}: {exc.__class__.__name__}: {exc}")

    # The deadline regimes and the directory use IANA zones; there is no tzdata wheel in
    # constraints.txt, so the base image must carry /usr/share/zoneinfo (Debian bookworm does;
    # trixie-based slim images do not).
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    for zone in ("Europe/Moscow", "Asia/Yekaterinburg", "Asia/Vladivostok"):
        try:
            ZoneInfo(zone)
        except ZoneInfoNotFoundError:
            out.append(f"time zone {zone} not found: install tzdata in the image")

    spec = importlib.util.find_spec("analytics")
    if spec is not None and spec.submodule_search_locations:
        static = Path(next(iter(spec.submodule_search_locations))) / "static"
        if not static.is_dir() or not any(p.is_file() for p in static.rglob("*")):
            out.append(f"analytics: no dashboard files in {static}")
    return out


def main() -> int:
    found = problems()
    for line in found:
        print(f"verify_image: {line}", file=sys.stderr)
    if found:
        print("verify_image: FAILED (see [tool.setuptools.package-data] in pyproject.toml)", file=sys.stderr)
        return 1
    print("verify_image: OK: five services import; rules, WSDL/XSD, dashboard files and time zones are there")
    return 0


if __name__ == "__main__":
    sys.exit(main())
