"""Consultations in analytics: one document per consultation (``analytics_consultations``), folded from
ConsultationRecorded and ConsultationConverted (no personal data or text travels in them), and the counts
the summary, the CSV and the dashboard show: by topic and channel, the share resolved at first contact,
and how many became appeals.

The fold is order-tolerant: a conversion that arrives before its recording makes a partial document
(no ``recorded_at``), which the recording completes; partial documents are not counted. Folding the same
event twice changes nothing. Period filters (``from``/``to``) apply to the time the consultation was
recorded, the channel filter to its channel; consultations have no house, so a district filter leaves
them all out.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from zhkh_contracts import ConsultationConverted, ConsultationRecorded

from .report import EPOCH, Filters, csv_cell

FIELDS = ("channel", "category", "article_ids", "resolved_first_contact", "recorded_at", "converted",
          "converted_at", "appeal_id", "registration_number")
CSV_COLUMNS = ("consultation_id", "recorded_at", "channel", "category", "resolved_first_contact", "article_ids",
               "converted", "converted_at", "registration_number")


def empty(cid: str) -> dict[str, Any]:
    return {"_id": cid, **dict.fromkeys(FIELDS), "article_ids": [], "converted": False}


def apply_recorded(doc: dict[str, Any] | None, e: ConsultationRecorded) -> dict[str, Any]:
    d = dict(doc) if doc else empty(str(e.consultation_id))
    d.update(channel=e.channel.value, category=e.category.value, article_ids=list(e.article_ids),
             resolved_first_contact=e.resolved_first_contact, recorded_at=e.recorded_at)
    return d


def apply_converted(doc: dict[str, Any] | None, e: ConsultationConverted) -> dict[str, Any]:
    d = dict(doc) if doc else empty(str(e.consultation_id))
    d.update(converted=True, converted_at=e.converted_at, appeal_id=str(e.appeal_id),
             registration_number=e.registration_number)
    if d.get("channel") is None:  # before its recording: what the conversion knows
        d.update(channel=e.channel.value, category=e.category.value)
    return d


def match(filters: Filters) -> dict[str, Any] | None:
    """The find filter, or None when the filters leave every consultation out (a district or a house)."""
    if filters.district is not None or filters.house_key is not None:
        return None
    rec: dict[str, Any] = {"$gte": filters.start or EPOCH}
    if filters.end is not None:
        rec["$lt"] = filters.end
    m: dict[str, Any] = {"recorded_at": rec}
    if filters.channel is not None:
        m["channel"] = filters.channel
    return m


PIPELINE_GROUP = {"$group": {"_id": {"category": "$category", "channel": "$channel",
                                     "resolved": "$resolved_first_contact", "converted": "$converted"},
                             "n": {"$sum": 1}}}


def shape(groups: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """The ``consultations`` block of the summary from the grouped counts."""
    total = resolved = converted = 0
    by_category: dict[str, int] = {}
    by_channel: dict[str, int] = {}
    for g in groups:
        k, n = g["_id"], int(g["n"])
        total += n
        resolved += n if k.get("resolved") else 0
        converted += n if k.get("converted") else 0
        by_category[k.get("category") or "unknown"] = by_category.get(k.get("category") or "unknown", 0) + n
        by_channel[k.get("channel") or "unknown"] = by_channel.get(k.get("channel") or "unknown", 0) + n
    return {
        "total": total,
        "by_category": dict(sorted(by_category.items(), key=lambda kv: (-kv[1], kv[0]))),
        "by_channel": dict(sorted(by_channel.items(), key=lambda kv: (-kv[1], kv[0]))),
        "resolved_first_contact": {"count": resolved, "share": round(resolved / total, 4) if total else 0.0},
        "converted": {"count": converted, "share": round(converted / total, 4) if total else 0.0},
    }


def csv_row(doc: Mapping[str, Any]) -> list[str]:
    values: dict[str, Any] = {c: doc.get(c) for c in CSV_COLUMNS}
    values["consultation_id"] = doc["_id"]
    values["article_ids"] = " ".join(doc.get("article_ids") or [])
    return [csv_cell(values[c]) for c in CSV_COLUMNS]
