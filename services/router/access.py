"""Who may see and act on what in the router's HTTP APIs (appeals, outages, control cards): one place.

Staff (operators, inspectors, admins) see every record; a party sees the records of one of its
token's ``party_ids``. A write carries the actor the token earns: ``<role>:<subject>`` for the first
staff role it holds that the action allows, else ``party:<party_id>`` when the record is the
token's party's. The router checks the actor again against the record's state when it applies the
action (``lifecycle``, ``outages``, ``controlcards``); this module only keeps a caller from asking
for what the token cannot have."""

from __future__ import annotations

from typing import Any

from zhkh_runtime.auth import Principal
from zhkh_runtime.http import Problem

STAFF = ("operator", "inspector", "admin")


def may_read(p: Principal, party_id: str | None) -> bool:
    """Staff read any record; a party the records of its own parties."""
    return p.has(*STAFF) or (p.has("party") and party_id in p.party_ids)


def own_parties(p: Principal, query: dict[str, Any], party_id: str | None) -> None:
    """Narrow ``query`` to the token's parties (or the one asked for, if it is the token's; else 403)."""
    if party_id and party_id not in p.party_ids:
        raise Problem(403, "forbidden")
    query["party_id"] = party_id or {"$in": sorted(p.party_ids)}


def scope(p: Principal, query: dict[str, Any], party_id: str | None) -> None:
    """Narrow a listing's ``query``: staff by the ``party_id`` filter if given, a party to its own."""
    if p.has(*STAFF):
        if party_id:
            query["party_id"] = party_id
        return
    own_parties(p, query, party_id)


def actor(p: Principal, roles: tuple[str, ...] = STAFF, party_id: str | None = None) -> str:
    """The actor a write carries: the first of ``roles`` the token holds (``<role>:<subject>``), else
    ``party:<party_id>`` when the token is that party's, else 403."""
    for role in roles:
        if p.has(role):
            return f"{role}:{p.subject}"
    if party_id is not None and party_id in p.party_ids:
        return f"party:{party_id}"
    raise Problem(403, "forbidden")
