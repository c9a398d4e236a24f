"""When to alert about a deadline (no I/O here).

Thresholds (``ZHKH_ALERT_THRESHOLDS``, default ``50%,80%,1wd,overdue``):
* ``N%``: when N% of the time from the start of the term to the deadline has passed;
* ``1wd``: at the start (00:00, party's zone) of the last working day of a day-based term;
* ``overdue``: at the deadline itself (the router escalates on it).
A point not after the start of the term is skipped (a term re-planned late does not alert at once
for shares already past), except ``overdue``, which is never skipped.
"""

from __future__ import annotations

from datetime import datetime, time
from zoneinfo import ZoneInfo

from .calendar import ProductionCalendar
from .deadlines import RegimeKind


def alert_points(
    start: datetime, due_at: datetime, kind: RegimeKind, tz_name: str, thresholds: list[str], calendar: ProductionCalendar
) -> list[tuple[str, datetime]]:
    points: list[tuple[str, datetime]] = []
    for t in thresholds:
        if t.endswith("%"):
            at = start + (due_at - start) * (float(t[:-1]) / 100)
        elif t == "1wd":
            if kind is RegimeKind.MINUTES:
                continue
            tz = ZoneInfo(tz_name)
            last = due_at.astimezone(tz).date()
            if not calendar.is_working_day(last):
                continue
            at = datetime.combine(last, time(0, 0), tzinfo=tz)
        elif t == "overdue":
            points.append((t, due_at))
            continue
        else:
            raise ValueError(f"unknown alert threshold {t!r}")
        if start < at < due_at:
            points.append((t, at))
    return sorted(points, key=lambda p: p[1])
