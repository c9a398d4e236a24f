"""The analytics read model: one document per appeal, folded from lifecycle events (no I/O here).

Each ``apply_*`` function takes the stored document (or None) and one event and returns the new
document. They are order-tolerant where the stream allows it: the latest status wins by the
router's version, the latest deadline by the notifier's generation, the first answer stays the
first answer, and an event that arrives before the registration creates a partial document that
the registration completes (partial documents have no ``registered_at`` and are not counted).

Only house-level facts are kept: never the applicant's name, phone, e-mail, postal address,
apartment or the appeal's text (see ``house_address``).
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from zhkh_contracts import (
    Appeal,
    AppealAnswered,
    AppealAssigned,
    AppealStatusChanged,
    DeadlineAlert,
    DeadlinePlanned,
    house_key_of,
)

STOPPED = ("answered", "closed", "withdrawn")
"""Statuses in which the appeal no longer waits for the responsible party (no deadline runs)."""
OVERDUE_THRESHOLD = "overdue"

FIELDS: tuple[str, ...] = (
    "registration_number", "channel", "category", "emergency", "house_key", "address", "registered_at",
    "party_id", "party_kind", "district_id", "assigned_at", "due_at", "deadline_generation", "answered_at",
    "minutes_to_answer", "status", "status_version", "overdue_alert", "answered_late", "overdue_fixed",
    "assignments", "answers", "transitions",
)
"""Every document has all of these (None when unknown, [] for the histories): the aggregation compares
them directly. The histories feed the party scorecards (``scorecards``): ``assignments`` (every
AppealAssigned: party, cause, previous party, time), ``answers`` (every AppealAnswered: party, time)
and ``transitions`` (every AppealStatusChanged: version, action, to, party, time). Each entry is
unique by its key (assignment time and party; answer party and time; version), so folding the same
event twice changes nothing."""
HISTORIES = ("assignments", "answers", "transitions")

# A sub-house unit and everything after it: "…, д. 10, кв. 15", "… кв.15 подъезд 2", "… офис 3".
_UNIT = re.compile(
    r"(?:^|[\s,;])(?:кв|квартира|комн|комната|ком|оф|офис|пом|помещение|apt|flat)(?:\.|\b)\s*№?\s*\d[\w/-]*.*$",
    re.IGNORECASE | re.DOTALL,
)
_TRIM = " \t\r\n,;."


def house_address(text: str | None) -> str | None:
    """The address text cut to the house: any apartment, room or office part and what follows it is
    dropped, so the read model holds a house, never a home."""
    if not text:
        return None
    cut = _UNIT.sub("", " ".join(text.split())).strip(_TRIM)
    return cut or None


def house_key(a: Appeal) -> str:
    """The appeal's house key, at house level. A ``fias:`` key is kept. An ``addr:`` key is made
    from the address text, which may name the flat ("…, кв. 15"): it is rebuilt from the text cut
    to the house, so the flats of one house group together and no flat number is stored."""
    if not a.house_key.startswith("addr:"):
        return a.house_key
    return house_key_of(None, house_address(a.address.text)) or "addr:unknown"


def empty(appeal_id: str) -> dict[str, Any]:
    doc: dict[str, Any] = {"_id": appeal_id, **dict.fromkeys(FIELDS)}
    doc.update(emergency=False, overdue_alert=False, answered_late=False, overdue_fixed=False)
    for h in HISTORIES:
        doc[h] = []
    return doc


def _derive(doc: dict[str, Any]) -> dict[str, Any]:
    reg, ans = doc.get("registered_at"), doc.get("answered_at")
    # whole minutes: the summary groups equal durations, so its median is exact at that resolution
    doc["minutes_to_answer"] = max(0, round((ans - reg).total_seconds() / 60)) if reg and ans else None
    doc["overdue_fixed"] = bool(doc.get("overdue_alert") or doc.get("answered_late"))
    return doc


def _base(doc: dict[str, Any] | None, appeal_id: str) -> dict[str, Any]:
    out = empty(appeal_id)
    if doc:
        out.update({k: v for k, v in doc.items() if k in FIELDS or k == "_id"})
        for h in HISTORIES:
            out[h] = list(out.get(h) or [])
    return out


def _add(entries: list[dict[str, Any]], entry: dict[str, Any], *key: str) -> None:
    """Append ``entry`` unless one with the same ``key`` fields is there (a redelivery), keeping the
    list sorted by its key so the stored document does not depend on the order of arrival."""
    k = tuple(entry[f] for f in key)
    if any(tuple(e.get(f) for f in key) == k for e in entries):
        return
    entries.append(entry)
    entries.sort(key=lambda e: tuple(e[f] for f in key))


def apply_registered(doc: dict[str, Any] | None, a: Appeal) -> dict[str, Any]:
    d = _base(doc, str(a.appeal_id))
    d.update(
        registration_number=a.registration_number,
        channel=a.channel.value,
        category=a.category.value,
        emergency=bool(a.emergency),
        house_key=house_key(a),
        address=house_address(a.address.text),
        registered_at=a.registered_at,
    )
    if d["status"] is None:  # the router's first AppealStatusChanged is registered -> assigned
        d["status"] = "registered"
    return _derive(d)


def apply_assigned(doc: dict[str, Any] | None, e: AppealAssigned) -> dict[str, Any]:
    d = _base(doc, str(e.appeal_id))
    _add(d["assignments"], {"at": e.assigned_at, "party_id": e.party_id, "cause": e.cause.value,
                            "previous_party_id": e.previous_party_id}, "at", "party_id")
    if d["assigned_at"] is None or e.assigned_at >= d["assigned_at"]:
        d.update(party_id=e.party_id, party_kind=e.party_kind.value, assigned_at=e.assigned_at)
        if e.district_id is not None or d["district_id"] is None:
            d["district_id"] = e.district_id
    return _derive(d)


def apply_planned(doc: dict[str, Any] | None, e: DeadlinePlanned) -> dict[str, Any]:
    d = _base(doc, str(e.appeal_id))
    if d["deadline_generation"] is None or e.generation >= d["deadline_generation"]:
        d.update(due_at=e.due_at, deadline_generation=e.generation)
    return _derive(d)


def apply_answered(doc: dict[str, Any] | None, e: AppealAnswered) -> dict[str, Any]:
    """The first answer counts: a later one (after a reopening) does not move ``answered_at``.
    An answer after the deadline then in force marks the appeal overdue for good."""
    d = _base(doc, str(e.appeal_id))
    _add(d["answers"], {"at": e.answered_at, "party_id": e.party_id}, "at", "party_id")
    if d["answered_at"] is None or e.answered_at < d["answered_at"]:
        d["answered_at"] = e.answered_at
    if d["due_at"] is not None and e.answered_at > d["due_at"]:
        d["answered_late"] = True
    return _derive(d)


def apply_status(doc: dict[str, Any] | None, e: AppealStatusChanged) -> dict[str, Any]:
    d = _base(doc, str(e.appeal_id))
    _add(d["transitions"], {"version": e.version, "action": e.action, "to": e.to_status.value,
                            "party_id": e.party_id, "at": e.changed_at}, "version")
    if d["status_version"] is None or e.version > d["status_version"]:
        d.update(status=e.to_status.value, status_version=e.version)
    return _derive(d)


def apply_alert(doc: dict[str, Any] | None, e: DeadlineAlert) -> dict[str, Any]:
    d = _base(doc, str(e.appeal_id))
    if e.threshold == OVERDUE_THRESHOLD:
        d["overdue_alert"] = True
    return _derive(d)


def is_overdue(doc: dict[str, Any], now: datetime) -> bool:
    """The overdue rule (docs/analytics.md). Mirrored by ``report.overdue_expr`` for the database."""
    if doc.get("overdue_fixed"):
        return True
    due = doc.get("due_at")
    return due is not None and due < now and doc.get("status") not in STOPPED
