"""Per-party effectiveness ("scorecards") by registration month, from the read model's histories
(no I/O here). Definitions: docs/analytics.md, "Party scorecards".

For every responsible party and every month (the appeals' registration month in the report time
zone) a row counts:

* ``assigned``: appeals ever assigned to the party (any AppealAssigned naming it);
* ``answered`` and ``median_hours_to_answer``: appeals the party answered (an AppealAnswered naming
  it), hours from the registration to the party's first answer on the appeal;
* ``current``, ``overdue``, ``overdue_share``: appeals now with the party (latest assignment), those
  overdue by the summary's rule, and their share of ``current``;
* ``bounces``: "not ours" reassignments away from the party (an AppealAssigned with cause
  ``reroute``, or one made by the same transition as an AppealStatusChanged ``reject_not_responsible``;
  each transition counted once), charged to the party that rejected it (``previous_party_id``);
* ``escalations``: AppealAssigned with cause ``escalation``, charged to the party it was taken from;
* ``reopened``, ``reopen_rate``: appeals the citizen reopened (status ``reopened``) while with the
  party, share of ``answered``;
* ``satisfied``, ``unsatisfied``, ``satisfaction``: ratings (action ``rate``: to ``closed`` is
  satisfied, to ``reopened`` unsatisfied) while the appeal was with the party; satisfied / rated.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from .readmodel import is_overdue
from zhkh_runtime.csvfile import csv_cell, csv_text

from .report import UNKNOWN, weighted_median

PROJECTION = {f: 1 for f in ("registered_at", "party_id", "status", "due_at", "overdue_fixed", "assignments",
                             "answers", "transitions")}
COLUMNS = (
    "month", "party_id", "assigned", "answered", "median_hours_to_answer", "current", "overdue", "overdue_share",
    "bounces", "escalations", "reopened", "reopen_rate", "satisfied", "unsatisfied", "satisfaction",
)
REJECT = "reject_not_responsible"


class _Acc:
    def __init__(self) -> None:
        self.assigned = self.current = self.overdue = self.bounces = self.escalations = 0
        self.reopened = self.satisfied = self.unsatisfied = 0
        self.minutes: list[int] = []


def _ratio(n: int, d: int) -> float | None:
    return round(n / d, 4) if d else None


def month_of(at: datetime, tz: str) -> str:
    return at.astimezone(ZoneInfo(tz)).strftime("%Y-%m")


def bounces_of(doc: Mapping[str, Any]) -> list[str | None]:
    """The parties that said "not ours", one per rejecting transition."""
    rejected_at = {t.get("at") for t in doc.get("transitions") or () if t.get("action") == REJECT}
    return [a.get("previous_party_id") for a in doc.get("assignments") or ()
            if a.get("previous_party_id") and (a.get("cause") == "reroute" or a.get("at") in rejected_at)]


def scorecards(docs: Iterable[Mapping[str, Any]], tz: str, now: datetime) -> list[dict[str, Any]]:
    acc: dict[tuple[str, str], _Acc] = {}

    def row(month: str, party: str | None) -> _Acc:
        return acc.setdefault((month, party or UNKNOWN), _Acc())

    for d in docs:
        reg = d.get("registered_at")
        if reg is None:
            continue
        month = month_of(reg, tz)
        assignments = d.get("assignments") or []
        for party in {a.get("party_id") for a in assignments}:
            row(month, party).assigned += 1
        if d.get("party_id") is not None:
            r = row(month, d.get("party_id"))
            r.current += 1
            r.overdue += is_overdue(dict(d), now)
        first: dict[str, datetime] = {}
        for a in d.get("answers") or []:
            p = a.get("party_id") or UNKNOWN
            if p not in first or a["at"] < first[p]:
                first[p] = a["at"]
        for p, at in first.items():
            row(month, p).minutes.append(max(0, round((at - reg).total_seconds() / 60)))
        for p in bounces_of(d):
            row(month, p).bounces += 1
        for a in assignments:
            if a.get("cause") == "escalation" and a.get("previous_party_id"):
                row(month, a["previous_party_id"]).escalations += 1
        reopened: set[str] = set()
        for t in d.get("transitions") or []:
            if t.get("to") == "reopened" and t.get("party_id"):
                reopened.add(t["party_id"])
            if t.get("action") == "rate" and t.get("to") in ("closed", "reopened"):
                r = row(month, t.get("party_id"))
                if t["to"] == "closed":
                    r.satisfied += 1
                else:
                    r.unsatisfied += 1
        for p in reopened:
            row(month, p).reopened += 1

    out = []
    for (month, party), r in sorted(acc.items()):
        med = weighted_median((m, 1) for m in r.minutes)
        answered = len(r.minutes)
        out.append({
            "month": month, "party_id": party, "assigned": r.assigned, "answered": answered,
            "median_hours_to_answer": None if med is None else round(med / 60, 2),
            "current": r.current, "overdue": r.overdue, "overdue_share": _ratio(r.overdue, r.current),
            "bounces": r.bounces, "escalations": r.escalations,
            "reopened": r.reopened, "reopen_rate": _ratio(r.reopened, answered),
            "satisfied": r.satisfied, "unsatisfied": r.unsatisfied,
            "satisfaction": _ratio(r.satisfied, r.satisfied + r.unsatisfied),
        })
    return out


def scorecards_csv(rows: Iterable[Mapping[str, Any]]) -> str:
    """The scorecards as CSV text (header first; RFC 4180, CRLF; empty cell for a null ratio)."""
    return csv_text(([csv_cell(r[c]) for c in COLUMNS] for r in rows), COLUMNS)
