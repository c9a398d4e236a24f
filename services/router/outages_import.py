"""Outage import: validation of a CSV or JSON file of outages (no I/O here).

CSV (UTF-8, header row, ``,``-separated; a BOM is allowed, as Excel writes it)::

    ref,resource,kind,houses,district_id,starts_at,expected_restore_at,party_id,restored_at
    ТС-2026-114,hot_water,planned,7c2f...-...;1b9e...-...,,2026-12-01T09:00:00+03:00,2026-12-01T21:00:00+03:00,vodokanal,

* ``ref``: the organisation's own reference, unique in the file (the outage id is derived from it, so a
  repeated import registers nothing new);
* ``resource``: heating, hot_water, cold_water, sewerage, electricity, gas; ``kind``: planned, emergency;
* ``houses``: FIAS house GUIDs separated by ``;`` and/or ``district_id`` (a district of the directory);
* ``starts_at``, ``expected_restore_at`` (after the start) and optional ``restored_at`` (a past outage,
  recorded for its durations: registered as restored, nobody is told): ISO 8601 with an offset;
* ``party_id``: the responsible party, a party of the directory.

JSON: ``{"outages": [{...the same fields; houses a list or a ;-string...}]}``.

Every bad row is reported with its line (CSV: ``line N``; JSON: ``outages[i]``) and the field names,
never the values. With any error nothing is imported.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from zhkh_contracts import OutageKind, OutageRegistered, OutageResource, house_key_of
from zhkh_runtime.engine import Emit

from .outages import OUTAGE_NS, outage_id_of

COLUMNS = ("ref", "resource", "kind", "houses", "district_id", "starts_at", "expected_restore_at", "party_id",
           "restored_at")
MAX_ROWS = 5000


class OutageRow(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    ref: str = Field(min_length=1, max_length=200)
    resource: OutageResource
    kind: OutageKind
    houses: tuple[uuid.UUID, ...] = Field(default=(), max_length=5000, description="FIAS house GUIDs")
    district_id: str | None = Field(default=None, min_length=1, max_length=200)
    starts_at: AwareDatetime
    expected_restore_at: AwareDatetime
    party_id: str = Field(min_length=1, max_length=200)
    restored_at: AwareDatetime | None = None

    @field_validator("houses", mode="before")
    @classmethod
    def _split(cls, v: Any) -> Any:
        if isinstance(v, str):
            return tuple(p.strip() for p in v.split(";") if p.strip())
        return v

    @model_validator(mode="after")
    def _consistent(self) -> OutageRow:
        if not self.houses and not self.district_id:
            raise ValueError("houses or district_id is required")
        if self.expected_restore_at <= self.starts_at:
            raise ValueError("expected_restore_at must be after starts_at")
        if self.restored_at is not None and self.restored_at < self.starts_at:
            raise ValueError("restored_at must not be before starts_at")
        return self

    @property
    def house_keys(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(k for k in (house_key_of(g, None) for g in self.houses) if k))

    @property
    def outage_id(self) -> uuid.UUID:
        return outage_id_of(self.ref)


@dataclass(frozen=True)
class Row:
    where: str  # "line N" or "outages[i]"
    row: OutageRow


class ImportFailed(Exception):
    def __init__(self, errors: list[str]) -> None:
        super().__init__(f"{len(errors)} error(s)")
        self.errors = errors


def _raw_rows(data: bytes, fmt: str) -> list[tuple[str, dict[str, Any]]]:
    text = data.decode("utf-8-sig")
    if fmt == "json":
        doc = json.loads(text)
        items = doc.get("outages") if isinstance(doc, dict) else None
        if not isinstance(items, list):
            raise ImportFailed(['document: expected {"outages": [...]}'])
        return [(f"outages[{i}]", it if isinstance(it, dict) else {"_": it}) for i, it in enumerate(items)]
    reader = csv.DictReader(io.StringIO(text))
    header = reader.fieldnames or []
    unknown = [h for h in header if h not in COLUMNS]
    if unknown or "ref" not in header:
        raise ImportFailed([f"header: unknown or missing columns (expected {', '.join(COLUMNS)})"])
    rows = []
    for raw in reader:
        rows.append((f"line {reader.line_num}", {k: (v if v not in ("", None) else None) for k, v in raw.items()
                                                 if k is not None}))
    return rows


def parse(data: bytes, fmt: str) -> list[Row]:
    """Every row validated, refs unique; raises :class:`ImportFailed` listing every bad row."""
    try:
        raw = _raw_rows(data, fmt)
    except (UnicodeDecodeError, json.JSONDecodeError, csv.Error):
        raise ImportFailed([f"document: not valid {fmt.upper()} in UTF-8"]) from None
    if not raw:
        raise ImportFailed(["document: no outages"])
    if len(raw) > MAX_ROWS:
        raise ImportFailed([f"document: more than {MAX_ROWS} outages"])
    errors: list[str] = []
    rows: list[Row] = []
    seen: dict[str, str] = {}
    for where, item in raw:
        item = {k: v for k, v in item.items() if v is not None}
        try:
            row = OutageRow.model_validate(item)
        except ValidationError as exc:
            for e in exc.errors():
                loc = ".".join(str(p) for p in e["loc"]) or "row"
                errors.append(f"{where}: {loc}: {e['msg']}")
            continue
        if row.ref in seen:
            errors.append(f"{where}: ref: duplicate of {seen[row.ref]}")
            continue
        seen[row.ref] = where
        rows.append(Row(where, row))
    if errors:
        raise ImportFailed(errors)
    return rows


def check_references(rows: list[Row], parties: set[str], districts: set[str],
                     may_register: Any = None) -> None:
    """Parties and districts must be in the directory; ``may_register(party_id)`` false: the caller may
    not register outages of that party (a party imports only its own)."""
    errors = []
    for r in rows:
        if r.row.party_id not in parties:
            errors.append(f"{r.where}: party_id: not in the directory")
        elif may_register is not None and not may_register(r.row.party_id):
            errors.append(f"{r.where}: party_id: not your party")
        if r.row.district_id is not None and r.row.district_id not in districts:
            errors.append(f"{r.where}: district_id: not in the directory")
    if errors:
        raise ImportFailed(errors)


def emits(rows: list[Row], actor: str, subject_now: datetime) -> list[Emit]:
    """The events of an import: each outage registered (a row with ``restored_at`` is a past outage,
    registered as restored: nobody is told), keyed by the outage, with ids derived from the event body
    (a repeated import with the same registration time publishes the same events again)."""
    out: list[Emit] = []
    for r in rows:
        x, oid = r.row, r.row.outage_id
        reg = OutageRegistered(outage_id=oid, resource=x.resource, actor=actor, kind=x.kind, house_keys=x.house_keys,
                               district_id=x.district_id, starts_at=x.starts_at,
                               expected_restore_at=x.expected_restore_at, party_id=x.party_id, ref=x.ref,
                               registered_at=subject_now, restored_at=x.restored_at)
        # the id from the whole body: the same event again is the same id (another body, another id)
        digest = hashlib.sha256(reg.model_dump_json().encode()).hexdigest()
        out.append(Emit(reg, key=reg.key, event_id=uuid.uuid5(OUTAGE_NS, f"{oid}:import:{digest}")))
    return out
