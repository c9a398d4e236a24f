"""The directory of responsible parties: models and import validation (no I/O here).

Three tables, as CSV files (``parties.csv``, ``districts.csv``, ``houses.csv``, UTF-8, header row)
or one JSON document ``{"parties": [...], "districts": [...], "houses": [...]}``:

* parties: ``party_id, kind, name, timezone`` (+ optional ``district_id``). Kinds:
  managing_organisation (УК / ТСЖ / ЖСК), resource_supplier, district_administration,
  city_department, housing_inspection (ГЖИ).
* districts: ``district_id, name, administration_id`` and default resource suppliers
  (``heating, hot_water, cold_water, sewerage, electricity, gas, waste``: party ids).
* houses: ``fias_guid`` and/or ``address``, ``district_id``, ``managing_org_id`` (may be empty),
  ``direct_contracts`` (resources whose residents contract the supplier directly, ``;``-separated)
  and per-resource supplier overrides.

Validation reports every bad row with its file and line and checks references (a house's managing
organisation must be a party of that kind, ...). An import with any error writes nothing.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from zhkh_contracts import Category, PartyKind, house_key_of

RESOURCES = ("heating", "hot_water", "cold_water", "sewerage", "electricity", "gas", "waste")
RESOURCE_OF: dict[Category, str] = {Category(r): r for r in RESOURCES}
PARTY_ID = r"^[A-Za-z0-9][A-Za-z0-9:._-]{0,63}$"


class Party(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    party_id: str = Field(pattern=PARTY_ID)
    kind: PartyKind
    name: str = Field(min_length=1, max_length=300)
    timezone: str = "Europe/Moscow"
    district_id: str | None = None

    @field_validator("kind")
    @classmethod
    def _real_party(cls, v: PartyKind) -> PartyKind:
        if v is PartyKind.FALLBACK_QUEUE:
            raise ValueError("fallback_queue is not a directory party")
        return v

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: str) -> str:
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {v!r}") from exc
        return v


class District(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    district_id: str = Field(pattern=PARTY_ID)
    name: str = Field(min_length=1, max_length=300)
    administration_id: str = Field(pattern=PARTY_ID)
    suppliers: dict[str, str] = Field(default_factory=dict, description="resource -> party id")


class House(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    house_key: str
    address: str | None = None
    district_id: str | None = None
    managing_org_id: str | None = None
    direct_contracts: frozenset[str] = frozenset()
    suppliers: dict[str, str] = Field(default_factory=dict, description="resource -> party id")

    @field_validator("direct_contracts")
    @classmethod
    def _resources(cls, v: frozenset[str]) -> frozenset[str]:
        unknown = set(v) - set(RESOURCES)
        if unknown:
            raise ValueError(f"unknown resources {sorted(unknown)}")
        return v


@dataclass
class Directory:
    parties: dict[str, Party] = field(default_factory=dict)
    districts: dict[str, District] = field(default_factory=dict)
    houses: dict[str, House] = field(default_factory=dict)


@dataclass(frozen=True)
class RowError:
    where: str  # file:line
    message: str

    def __str__(self) -> str:
        return f"{self.where}: {self.message}"


class ImportFailed(Exception):
    def __init__(self, errors: list[RowError]) -> None:
        super().__init__(f"{len(errors)} error(s)")
        self.errors = errors


# ---- rows from files -----------------------------------------------------------------------------


def _blank_to_none(row: dict[str, Any]) -> dict[str, Any]:
    return {k.strip(): (v.strip() if isinstance(v, str) else v) or None for k, v in row.items() if k}


def _party_row(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if v is not None}


def _supplier_split(row: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in row.items() if k not in RESOURCES and v is not None}
    suppliers = {r: row[r] for r in RESOURCES if row.get(r)}
    if isinstance(row.get("suppliers"), dict):
        suppliers.update(row["suppliers"])
    out["suppliers"] = suppliers
    return out


def _house_row(row: dict[str, Any]) -> dict[str, Any]:
    out = _supplier_split(row)
    key = house_key_of(out.pop("fias_guid", None), out.get("address"))
    if key is None:
        raise ValueError("needs fias_guid or address")
    out["house_key"] = key
    dc = out.get("direct_contracts")
    if isinstance(dc, str):
        out["direct_contracts"] = [x.strip() for x in dc.split(";") if x.strip()]
    return out


_TABLES = {"parties": (Party, _party_row), "districts": (District, _supplier_split), "houses": (House, _house_row)}


def read_rows(path: Path) -> Iterable[tuple[str, str, dict[str, Any]]]:
    """(table, 'file:line', row) from a CSV table file (named after the table) or a JSON document."""
    if path.suffix.lower() == ".json":
        doc = json.loads(path.read_text(encoding="utf-8"))
        for table in _TABLES:
            for i, row in enumerate(doc.get(table, []), start=1):
                yield table, f"{path.name}:{table}[{i}]", dict(row)
        return
    table = path.stem
    if table not in _TABLES:
        raise ValueError(f"{path.name}: CSV file must be named parties.csv, districts.csv or houses.csv")
    reader = csv.DictReader(io.StringIO(path.read_text(encoding="utf-8-sig")))
    for row in reader:
        yield table, f"{path.name}:{reader.line_num}", _blank_to_none(row)


def parse(paths: Iterable[Path]) -> Directory:
    """Parse and validate the files into a Directory, or raise ImportFailed with every error."""
    d, errors = Directory(), []
    rows = []
    where_of: dict[tuple[str, str], str] = {}
    for path in paths:
        try:
            rows.extend(read_rows(path))
        except (OSError, ValueError, json.JSONDecodeError, UnicodeDecodeError, csv.Error) as exc:
            errors.append(RowError(path.name, str(exc)))
    for table, where, row in rows:
        model, prepare = _TABLES[table]
        try:
            item = model.model_validate(prepare(row))
        except ValidationError as exc:
            for e in exc.errors(include_url=False, include_input=False):
                errors.append(RowError(where, f"{'.'.join(map(str, e['loc'])) or table}: {e['msg']}"))
            continue
        except ValueError as exc:
            errors.append(RowError(where, str(exc)))
            continue
        target = {"parties": d.parties, "districts": d.districts, "houses": d.houses}[table]
        key = getattr(item, {"parties": "party_id", "districts": "district_id", "houses": "house_key"}[table])
        if key in target:
            errors.append(RowError(where, f"duplicate {table[:-1] if table != 'parties' else 'party'} {key!r}"))
            continue
        target[key] = item
        where_of[(table, key)] = where
    errors += check_references(d, where_of)
    if errors:
        raise ImportFailed(errors)
    return d


def check_references(d: Directory, where_of: dict[tuple[str, str], str] | None = None) -> list[RowError]:
    where_of = where_of or {}
    errors = []

    def need(where: str, pid: str | None, kind: PartyKind, what: str) -> None:
        if pid is None:
            return
        p = d.parties.get(pid)
        if p is None:
            errors.append(RowError(where, f"{what} {pid!r} is not in the directory"))
        elif p.kind is not kind:
            errors.append(RowError(where, f"{what} {pid!r} is a {p.kind.value}, not a {kind.value}"))

    for dist in d.districts.values():
        w = where_of.get(("districts", dist.district_id), dist.district_id)
        need(w, dist.administration_id, PartyKind.DISTRICT_ADMINISTRATION, "administration_id")
        for res, pid in dist.suppliers.items():
            if res not in RESOURCES:
                errors.append(RowError(w, f"unknown resource {res!r}"))
            need(w, pid, PartyKind.RESOURCE_SUPPLIER, f"{res} supplier")
    for h in d.houses.values():
        w = where_of.get(("houses", h.house_key), h.house_key)
        if h.district_id is not None and h.district_id not in d.districts:
            errors.append(RowError(w, f"district_id {h.district_id!r} is not in the directory"))
        need(w, h.managing_org_id, PartyKind.MANAGING_ORGANISATION, "managing_org_id")
        for res, pid in h.suppliers.items():
            if res not in RESOURCES:
                errors.append(RowError(w, f"unknown resource {res!r}"))
            need(w, pid, PartyKind.RESOURCE_SUPPLIER, f"{res} supplier")
    for kind in (PartyKind.CITY_DEPARTMENT, PartyKind.HOUSING_INSPECTION):
        n = sum(1 for p in d.parties.values() if p.kind is kind)
        if n > 1:
            errors.append(RowError("parties", f"more than one {kind.value} ({n}); escalation needs exactly one"))
    return errors


SINGLETON_KINDS = (PartyKind.CITY_DEPARTMENT, PartyKind.HOUSING_INSPECTION)


def context_of(d: Directory, house_key: str) -> Any:
    """What routing needs about one house (rules.Context), from the directory held in memory."""
    from .rules import Context  # rules imports this module

    house = d.houses.get(house_key)
    district = d.districts.get(house.district_id) if house and house.district_id else None
    ids: set[str | None] = set()
    if house:
        ids |= {house.managing_org_id, *house.suppliers.values()}
    if district:
        ids |= {district.administration_id, *district.suppliers.values()}
    parties = {pid: d.parties[pid] for pid in sorted(i for i in ids if i) if pid in d.parties}
    for p in d.parties.values():
        if p.kind in SINGLETON_KINDS:
            parties.setdefault(p.party_id, p)
    return Context(house, district, parties)
