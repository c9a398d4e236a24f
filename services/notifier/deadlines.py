"""Legal deadlines (no I/O here). Regimes and the table choosing them: rules/deadlines.toml.

* ``calendar_days``: the end of the N-th calendar day after registration in the party's time zone;
  if that day is not a working day, the end of the next working day (ГК РФ ст. 193).
* ``working_days``: the end of the N-th working day after the day of registration.
* ``minutes``: registration time + N minutes (wall clock; emergencies do not wait for Monday).

Dates are computed in the responsible party's IANA time zone and returned in UTC.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from zoneinfo import ZoneInfo

from zhkh_contracts import Category, PartyKind

from .calendar import ProductionCalendar, end_of_day

DEFAULT_TABLE = Path(__file__).with_name("rules") / "deadlines.toml"
DEFAULT_TZ = "Europe/Moscow"


class RegimeKind(StrEnum):
    CALENDAR_DAYS = "calendar_days"
    WORKING_DAYS = "working_days"
    MINUTES = "minutes"


@dataclass(frozen=True)
class Regime:
    name: str
    kind: RegimeKind
    amount: int
    extendable_days: int = 0


@dataclass(frozen=True)
class Apply:
    regime: str
    party_kinds: frozenset[PartyKind] | None = None
    categories: frozenset[Category] | None = None
    emergency: bool | None = None
    emergency_rules: frozenset[str] | None = None

    def matches(self, kind: PartyKind, category: Category, emergency: bool, rule: str | None) -> bool:
        return (
            (self.party_kinds is None or kind in self.party_kinds)
            and (self.categories is None or category in self.categories)
            and (self.emergency is None or emergency == self.emergency)
            and (self.emergency_rules is None or rule in self.emergency_rules)
        )


@dataclass(frozen=True)
class Deadline:
    regime: str
    due_at: datetime  # UTC
    local_due: datetime  # in the party's zone, for messages


class DeadlineTable:
    def __init__(self, regimes: dict[str, Regime], table: list[Apply], calendar: ProductionCalendar) -> None:
        unknown = {a.regime for a in table} - set(regimes)
        if unknown:
            raise ValueError(f"deadline table names unknown regimes {sorted(unknown)}")
        self.regimes, self.table, self.calendar = regimes, table, calendar

    @classmethod
    def load(cls, path: Path = DEFAULT_TABLE, calendar: ProductionCalendar | None = None) -> DeadlineTable:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
        regimes = {
            name: Regime(name, RegimeKind(r["kind"]), int(r["amount"]), int(r.get("extendable_days", 0)))
            for name, r in raw.get("regimes", {}).items()
        }

        def opt(values: list[str] | None, conv: type) -> frozenset | None:  # noqa: ANN401
            return frozenset(conv(v) for v in values) if values is not None else None

        table = [
            Apply(
                regime=a["regime"],
                party_kinds=opt(a.get("party_kinds"), PartyKind),
                categories=opt(a.get("categories"), Category),
                emergency=a.get("emergency"),
                emergency_rules=opt(a.get("emergency_rules"), str),
            )
            for a in raw.get("apply", [])
        ]
        return cls(regimes, table, calendar or ProductionCalendar.load())

    def regime_for(self, kind: PartyKind, category: Category, emergency: bool, rule: str | None) -> Regime:
        for a in self.table:
            if a.matches(kind, category, emergency, rule):
                return self.regimes[a.regime]
        raise LookupError(f"no deadline regime for {kind.value}/{category.value}")

    def due(self, regime: Regime, registered_at: datetime, tz_name: str | None) -> Deadline:
        tz = ZoneInfo(tz_name or DEFAULT_TZ)
        local = registered_at.astimezone(tz)
        if regime.kind is RegimeKind.MINUTES:
            local_due = local + timedelta(minutes=regime.amount)
        elif regime.kind is RegimeKind.WORKING_DAYS:
            local_due = end_of_day(self.calendar.add_working_days(local.date(), regime.amount), tz)
        else:
            last = self.calendar.next_working_day(local.date() + timedelta(days=regime.amount))
            local_due = end_of_day(last, tz)
        return Deadline(regime.name, local_due.astimezone(UTC), local_due)

    def extended(self, deadline: Deadline, days: int, tz_name: str | None) -> Deadline:
        """A one-time extension by ``days`` calendar days (capped by the regime), ending on a working day."""
        regime = self.regimes[deadline.regime]
        days = min(days, regime.extendable_days) if regime.extendable_days else days
        tz = ZoneInfo(tz_name or DEFAULT_TZ)
        last = self.calendar.next_working_day(deadline.local_due.astimezone(tz).date() + timedelta(days=days))
        local_due = end_of_day(last, tz)
        return Deadline(regime.name, local_due.astimezone(UTC), local_due)
