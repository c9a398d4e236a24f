"""The router's read side for its HTTP API: appeals by number, scoped listings with cursor
pagination, one appeal's details (personal data: only for those allowed to see them) and its history.
Reads only; every write goes through the actions topic and the lifecycle handlers."""

from __future__ import annotations

import base64
import binascii
import re
from datetime import datetime
from typing import Any

from pymongo import ASCENDING


from .repository import DirectoryCache, RouterRepository, _history_entry

FLAT = re.compile(r"\b(кв|квартира|комн|комната|ком|офис|оф|пом|помещение|apt|flat)\b\.?\s*[\w/-]*", re.I)


def public_house_key(key: str | None) -> str | None:
    """A house key without a flat or room number (``addr:`` keys are the address as given; a
    FIAS key never has one)."""
    if not key or not key.startswith("addr:"):
        return key
    return " ".join(FLAT.sub(" ", key).split())


def encode_cursor(number: str) -> str:
    return base64.urlsafe_b64encode(number.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> str | None:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    return raw if 0 < len(raw) <= 64 else None


def _iso(v: Any) -> str | None:
    return v.isoformat() if isinstance(v, datetime) else v


def summary_view(d: dict[str, Any]) -> dict[str, Any]:
    """What any staff listing shows: no personal data, no flat number."""
    dl = d.get("deadline")
    return {
        "appeal_id": d["_id"],
        "registration_number": d["registration_number"],
        "status": d["status"],
        "category": d["category"],
        "house_key": public_house_key(d.get("house_key")),
        "district_id": d.get("district_id"),
        "party_id": d.get("party_id"),
        "party_kind": d.get("party_kind"),
        "level": d.get("level", 0),
        "incident_id": d.get("incident_id"),
        "emergency": d.get("emergency", False),
        "version": d["version"],
        "deadline": ({"due_at": _iso(dl["due_at"]), "regime": dl["regime"], "timezone": dl["timezone"]} if dl else None),
        "updated_at": _iso(d.get("updated_at")),
    }


def details_view(doc: dict[str, Any] | None) -> dict[str, Any] | None:
    if doc is None:
        return None
    return {
        "text": doc.get("text"),
        "channel": doc.get("channel"),
        "registered_at": _iso(doc.get("registered_at")),
        "address": doc.get("address"),
        "applicant": doc.get("applicant"),
        "attachments": doc.get("attachments", []),
    }


class Queries:
    def __init__(self, repo: RouterRepository, directory: DirectoryCache) -> None:
        self.repo, self.directory = repo, directory

    async def ensure_indexes(self) -> None:
        await self.repo.appeals.create_index([("level", ASCENDING), ("open", ASCENDING)])

    async def by_number(self, number: str) -> dict[str, Any] | None:
        return await self.repo.appeals.find_one({"registration_number": number})

    async def details(self, appeal_id: str) -> dict[str, Any] | None:
        return await self.repo.details.find_one({"_id": appeal_id})

    async def access_code_hash(self, appeal_id: str) -> str | None:
        doc = await self.repo.details.find_one({"_id": appeal_id}, {"access_code_hash": 1})
        return doc.get("access_code_hash") if doc else None

    async def party_name(self, party_id: str | None) -> str | None:
        """From the directory the router routes by (held in memory: no read)."""
        party = (await self.directory.current()).parties.get(party_id) if party_id else None
        return party.name if party else None

    async def party_exists(self, party_id: str) -> bool:
        return party_id in (await self.directory.current()).parties

    async def page(self, query: dict[str, Any], limit: int, cursor: str | None) -> tuple[list[dict[str, Any]], str | None]:
        """One page ordered by registration number; the cursor is the last number seen (opaque)."""
        q = dict(query)
        if cursor:
            after = decode_cursor(cursor)
            if after is None:
                raise ValueError("cursor")
            q["registration_number"] = {**q.get("registration_number", {}), "$gt": after} \
                if isinstance(q.get("registration_number"), dict) else {"$gt": after}
        docs = await self.repo.appeals.find(q).sort("registration_number", ASCENDING).limit(limit + 1).to_list()
        more = len(docs) > limit
        docs = docs[:limit]
        return docs, (encode_cursor(docs[-1]["registration_number"]) if more and docs else None)

    async def history(self, appeal_id: str, limit: int = 500) -> list[dict[str, Any]]:
        return [e.as_dict() for e in await self.repo.history(appeal_id, limit)]

    async def outcome(self, appeal_id: str, cause_event_id: str) -> dict[str, Any] | None:
        """The history entry the router wrote for this action (applied or refused), if any yet."""
        doc = await self.repo.history_col.find_one({"_id": f"{appeal_id}:{cause_event_id}"})
        return _history_entry(doc).as_dict() if doc else None

