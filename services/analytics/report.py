"""Reports over the read model (no I/O here): filters, the aggregation pipeline, the summary's
shape, the median, and CSV rows.

The summary is one aggregation in one round trip: a ``$match`` on the indexed ``registered_at``
(plus ``district_id`` / ``channel``) and one ``$facet`` of ``$group`` stages, so the database does
the counting and only counts travel. The median comes from the same facet as a histogram of the
answer times in whole minutes (one row per distinct duration, not per appeal): exact at minute
resolution, bounded in size by the spread of durations rather than by the number of appeals.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from zhkh_contracts import Channel
from zhkh_runtime.csvfile import csv_cell

from .readmodel import STOPPED, is_overdue

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
TOP_ADDRESSES = 10
UNKNOWN = "unknown"
"""Bucket name for a missing party or district (JSON keys cannot be null)."""

CSV_COLUMNS = (
    "registration_number", "channel", "category", "emergency", "party_id", "district_id", "house_key", "address",
    "registered_at", "due_at", "answered_at", "status", "overdue",
)
CSV_PROJECTION = {c: 1 for c in CSV_COLUMNS if c != "overdue"} | {"overdue_fixed": 1, "_id": 0}


FIRST_DAY = date(1970, 1, 1)
LAST_DAY = date(9998, 12, 31)
"""``from``/``to`` outside these are refused: the calendar's edges overflow in time zone arithmetic."""


class FilterError(ValueError):
    def __init__(self, fields: list[str]) -> None:
        super().__init__(",".join(fields))
        self.fields = fields


@dataclass(frozen=True)
class Filters:
    """``from``/``to`` are dates (inclusive) in the report time zone, on ``registered_at``."""

    date_from: date | None = None
    date_to: date | None = None
    district: str | None = None
    channel: str | None = None
    house_key: str | None = None
    tz: str = "Europe/Moscow"

    @property
    def start(self) -> datetime | None:
        return datetime.combine(self.date_from, time(), ZoneInfo(self.tz)).astimezone(UTC) if self.date_from else None

    @property
    def end(self) -> datetime | None:
        """Exclusive: the start of the day after ``to``."""
        if self.date_to is None:
            return None
        return datetime.combine(self.date_to + timedelta(days=1), time(), ZoneInfo(self.tz)).astimezone(UTC)

    def match(self) -> dict[str, Any]:
        """The ``$match``/find filter. Always bounds ``registered_at`` (at least from 1970), which
        both uses the index and leaves out partial documents that were never registered."""
        reg: dict[str, Any] = {"$gte": self.start or EPOCH}
        if self.end is not None:
            reg["$lt"] = self.end
        m: dict[str, Any] = {"registered_at": reg}
        if self.district is not None:
            m["district_id"] = None if self.district == UNKNOWN else self.district
        if self.channel is not None:
            m["channel"] = self.channel
        if self.house_key is not None:
            m["house_key"] = self.house_key
        return m

    def period(self) -> dict[str, Any]:
        return {
            "from": self.date_from.isoformat() if self.date_from else None,
            "to": self.date_to.isoformat() if self.date_to else None,
            "timezone": self.tz,
            "district": self.district,
            "channel": self.channel,
        }


def parse_filters(params: Mapping[str, Sequence[str]], tz: str, house_key: str | None = None) -> Filters:
    """Query parameters -> Filters. Raises FilterError naming every bad parameter."""

    def one(name: str) -> str | None:
        v = (params.get(name) or [""])[0].strip()
        return v or None

    bad: list[str] = []

    def day(name: str) -> date | None:
        v = one(name)
        if v is None:
            return None
        try:
            d = date.fromisoformat(v[:10]) if len(v) >= 10 else date.fromisoformat(v)
        except ValueError:
            bad.append(name)
            return None
        if not FIRST_DAY <= d <= LAST_DAY:  # year 1 or 9999 would overflow on the way to UTC
            bad.append(name)
            return None
        return d

    f, t = day("from"), day("to")
    channel = one("channel")
    if channel is not None and channel not in {c.value for c in Channel}:
        bad.append("channel")
    district = one("district")
    if district is not None and len(district) > 200:
        bad.append("district")
    if f and t and f > t:
        bad.append("to")
    if bad:
        raise FilterError(bad)
    return Filters(f, t, district, channel, house_key, tz)


def overdue_expr(now: datetime) -> dict[str, Any]:
    """``readmodel.is_overdue`` as an aggregation expression (every document has every field)."""
    return {"$or": [
        {"$eq": ["$overdue_fixed", True]},
        {"$and": [
            {"$ne": ["$due_at", None]},
            {"$lt": ["$due_at", now]},
            {"$not": [{"$in": ["$status", list(STOPPED)]}]},
        ]},
    ]}


def summary_pipeline(match: dict[str, Any], now: datetime, top: int = TOP_ADDRESSES) -> list[dict[str, Any]]:
    def by(field: str) -> list[dict[str, Any]]:
        return [{"$group": {"_id": f"${field}", "n": {"$sum": 1}}}]

    return [
        {"$match": match},
        {"$facet": {
            "totals": [{"$group": {
                "_id": None,
                "n": {"$sum": 1},
                "overdue": {"$sum": {"$cond": [overdue_expr(now), 1, 0]}},
                "answered": {"$sum": {"$cond": [{"$ne": ["$minutes_to_answer", None]}, 1, 0]}},
            }}],
            "channel": by("channel"),
            "category": by("category"),
            "party": by("party_id"),
            "district": by("district_id"),
            "status": by("status"),
            # $max, not $first: a deterministic, non-null address per house
            "houses": [
                {"$group": {"_id": "$house_key", "n": {"$sum": 1}, "address": {"$max": "$address"}}},
                {"$sort": {"n": -1, "_id": 1}},
                {"$limit": top},
            ],
            "minutes": [
                {"$match": {"minutes_to_answer": {"$ne": None}}},
                {"$group": {"_id": "$minutes_to_answer", "n": {"$sum": 1}}},
            ],
        }},
    ]


def median(values: Sequence[float]) -> float | None:
    if not values:
        return None
    s = sorted(values)
    mid = len(s) // 2
    return float(s[mid]) if len(s) % 2 else (s[mid - 1] + s[mid]) / 2


def weighted_median(histogram: Iterable[tuple[float, int]]) -> float | None:
    """The median of values given as (value, how many times): what ``median`` of the expanded list
    would give, without expanding it."""
    pairs = sorted((float(v), int(n)) for v, n in histogram if n > 0)
    total = sum(n for _, n in pairs)
    if not total:
        return None
    lo_rank, hi_rank = (total - 1) // 2, total // 2  # 0-based ranks of the middle value(s)
    lo = hi = None
    seen = 0
    for v, n in pairs:
        if lo is None and lo_rank < seen + n:
            lo = v
        if hi_rank < seen + n:
            hi = v
            break
        seen += n
    assert lo is not None and hi is not None
    return (lo + hi) / 2


def counts(rows: Iterable[Mapping[str, Any]]) -> dict[str, int]:
    """``$group`` rows -> {key: count}, largest first (ties by key), None as ``unknown``."""
    out: dict[str, int] = {}
    for r in rows:
        key = UNKNOWN if r["_id"] is None else str(r["_id"])
        out[key] = out.get(key, 0) + int(r["n"])
    return dict(sorted(out.items(), key=lambda kv: (-kv[1], kv[0])))


def top_addresses(rows: Iterable[Mapping[str, Any]], limit: int = TOP_ADDRESSES) -> list[dict[str, Any]]:
    """Houses with the most appeals: count descending, then house key (stable for equal counts)."""
    ranked = sorted((r for r in rows if r.get("_id")), key=lambda r: (-int(r["n"]), str(r["_id"])))
    return [{"house_key": r["_id"], "address": r.get("address"), "count": int(r["n"])} for r in ranked[:limit]]


def shape_summary(facet: Mapping[str, Any] | None, filters: Filters, now: datetime) -> dict[str, Any]:
    facet = facet or {}
    median_minutes = weighted_median((r["_id"], r["n"]) for r in facet.get("minutes", []) if r.get("_id") is not None)
    median_hours = None if median_minutes is None else median_minutes / 60
    totals = (facet.get("totals") or [{}])[0]
    total, overdue, answered = int(totals.get("n", 0)), int(totals.get("overdue", 0)), int(totals.get("answered", 0))
    return {
        "total": total,
        "by_channel": counts(facet.get("channel", [])),
        "by_category": counts(facet.get("category", [])),
        "by_party": counts(facet.get("party", [])),
        "by_district": counts(facet.get("district", [])),
        "by_status": counts(facet.get("status", [])),
        "overdue": {"count": overdue, "share": round(overdue / total, 4) if total else 0.0},
        "answered": {"count": answered,
                     "median_hours_to_answer": None if median_hours is None else round(median_hours, 2)},
        "top_addresses": top_addresses(facet.get("houses", [])),
        "period": filters.period(),
        "generated_at": now.isoformat(),
    }


# ---- CSV ----------------------------------------------------------------------------------------


def csv_row(doc: Mapping[str, Any], now: datetime) -> list[str]:
    values = {c: doc.get(c) for c in CSV_COLUMNS}
    values["overdue"] = is_overdue(dict(doc), now)
    return [csv_cell(values[c]) for c in CSV_COLUMNS]


