"""Read API of the router (HTTP, served on the router's ZHKH_HTTP_PORT).

    GET /api/v1/appeals/by-number?number=ZH-2026-0000001
        where is my appeal, who handles it: status, party (id, kind, name), level, incident
    GET /api/v1/appeals?party_id=…&house_key=…&status=…&open=true&limit=100
        lists for operators: by party, by house (open=true: every unresolved appeal of a house), by status

The deadline is the notifier's latest DeadlinePlanned (null until the notifier has planned one).
"""

from __future__ import annotations

from typing import Any

from faststream.asgi import AsgiResponse, get

from zhkh_runtime.app import json_response, query_params

from .repository import RouterRepository

MAX_LIMIT = 500


def _view(d: dict[str, Any], party: dict[str, Any] | None = None) -> dict[str, Any]:
    out = {
        "appeal_id": d["_id"],
        "registration_number": d["registration_number"],
        "status": d["status"],
        "category": d["category"],
        "house_key": d["house_key"],
        "party_id": d.get("party_id"),
        "party_kind": d.get("party_kind"),
        "level": d.get("level", 0),
        "incident_id": d.get("incident_id"),
        "emergency": d.get("emergency", False),
        "version": d["version"],
        "deadline": (
            {"due_at": d["deadline"]["due_at"].isoformat(), "regime": d["deadline"]["regime"],
             "timezone": d["deadline"]["timezone"]}
            if d.get("deadline") else None
        ),
        "updated_at": d["updated_at"].isoformat() if d.get("updated_at") else None,
    }
    if party is not None:
        out["party_name"] = party.get("name")
    return out


def routes(repo: RouterRepository) -> list[tuple[str, Any]]:
    @get(description="Status of one appeal by its registration number")
    async def by_number(scope: Any) -> AsgiResponse:
        number = (query_params(scope).get("number") or [""])[0]
        doc = await repo.by_number(number) if number else None
        if doc is None:
            return json_response({"status": "not_found", "message": "Обращение с таким номером не найдено."}, 404)
        party = await repo.parties.find_one({"_id": doc.get("party_id")}) if doc.get("party_id") else None
        return json_response(_view(doc, party or {}))

    @get(description="Appeals by party, house and status")
    async def listing(scope: Any) -> AsgiResponse:
        q = {k: v[0] for k, v in query_params(scope).items() if v}
        query: dict[str, Any] = {k: q[k] for k in ("party_id", "house_key", "status") if k in q}
        if q.get("open", "").lower() in ("1", "true", "yes"):
            query["open"] = True
        if not query:
            return json_response({"error": {"code": "missing_filter", "fields": ["party_id", "house_key", "status"]}}, 400)
        try:
            limit = min(MAX_LIMIT, max(1, int(q.get("limit", "100"))))
        except ValueError:
            return json_response({"error": {"code": "invalid_data", "fields": ["limit"]}}, 400)
        docs = await repo.find(query, limit)
        return json_response({"count": len(docs), "appeals": [_view(d) for d in docs]})

    return [("/api/v1/appeals/by-number", by_number), ("/api/v1/appeals", listing)]
