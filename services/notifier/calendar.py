"""The Russian production calendar: working days, with the government's transfers.

Base: the ``holidays`` package (``RU``): public holidays and transferred days off. A transferred
*working* Saturday appears there only as the source of a transfer ("Day off (substituted from
02/20/2027)") that is not itself a holiday, and is read from it. ``rules/calendar_overrides.toml``
wins over both, per year, and records whether a year was checked against the decree.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from functools import lru_cache
from pathlib import Path

import holidays

DEFAULT_OVERRIDES = Path(__file__).with_name("rules") / "calendar_overrides.toml"
_SUBSTITUTED = re.compile(r"substituted from (\d{2})/(\d{2})/(\d{4})")


@dataclass(frozen=True)
class YearOverride:
    verified: bool
    source: str = ""
    days_off: frozenset[date] = frozenset()
    working_days: frozenset[date] = frozenset()


@dataclass
class ProductionCalendar:
    overrides: dict[int, YearOverride] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path = DEFAULT_OVERRIDES) -> ProductionCalendar:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
        years = {}
        for year, spec in raw.get("years", {}).items():
            years[int(year)] = YearOverride(
                verified=bool(spec.get("verified", False)),
                source=spec.get("source", ""),
                days_off=frozenset(date.fromisoformat(str(d)) for d in spec.get("days_off", [])),
                working_days=frozenset(date.fromisoformat(str(d)) for d in spec.get("working_days", [])),
            )
        return cls(years)

    def __post_init__(self) -> None:
        self._year = lru_cache(maxsize=64)(self._year_sets)

    def _year_sets(self, year: int) -> tuple[frozenset[date], frozenset[date]]:
        """(days off that fall on weekdays or weekends by law, working weekend days) for a year."""
        ru = holidays.country_holidays("RU", years=[year - 1, year, year + 1])
        off = {d for d in ru if d.year == year}
        working = set()
        for name in ru.values():
            for m in _SUBSTITUTED.finditer(name):
                src = date(int(m.group(3)), int(m.group(1)), int(m.group(2)))
                if src.year == year and src not in ru and src.weekday() >= 5:
                    working.add(src)
        o = self.overrides.get(year)
        if o is not None:
            off = (off | o.days_off) - o.working_days
            working = (working | o.working_days) - o.days_off
        return frozenset(off), frozenset(working)

    def verified(self, year: int) -> bool:
        o = self.overrides.get(year)
        return bool(o and o.verified)

    def is_working_day(self, d: date) -> bool:
        off, working = self._year(d.year)
        if d in working:
            return True
        if d in off:
            return False
        return d.weekday() < 5

    def next_working_day(self, d: date) -> date:
        """``d`` itself if it is a working day, else the first working day after it."""
        while not self.is_working_day(d):
            d += timedelta(days=1)
        return d

    def add_working_days(self, start: date, n: int) -> date:
        """The ``n``-th working day after ``start`` (``start`` itself not counted)."""
        d, left = start, n
        while left > 0:
            d += timedelta(days=1)
            if self.is_working_day(d):
                left -= 1
        return d

    def working_days_in(self, year: int) -> int:
        d, n = date(year, 1, 1), 0
        while d.year == year:
            n += self.is_working_day(d)
            d += timedelta(days=1)
        return n


def end_of_day(d: date, tz: object) -> datetime:
    """23:59:59 of ``d`` in the zone ``tz`` (a tzinfo). Whole seconds: MongoDB keeps milliseconds
    only, and the stored deadline must equal the published one."""
    return datetime.combine(d, time(23, 59, 59), tzinfo=tz)  # type: ignore[arg-type]
