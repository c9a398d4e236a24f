"""The outage register's HTTP API (the router's; see services/router/outages.py).

    staff, party  GET  /api/v1/outages                       outages (active only by default; district, house,
                                                             resource, party filters); a party sees its own
                  GET  /api/v1/outages/{outage_id}           one outage with its log and linked appeals count
                  POST /api/v1/outages                       register (operator, admin; a party as the responsible)
                  POST /api/v1/outages/{outage_id}/restore-time   change the expected restore time
                  POST /api/v1/outages/{outage_id}/restored  mark it restored
                  POST /api/v1/outages/import                CSV (text/csv) or JSON: all or nothing, errors per row
    staff         GET  /api/v1/outages/durations             duration per house (ПП 354 evidence): JSON or ?format=csv

Writes are checked against the outage's current state (404, 403 for another party's, 409 once restored),
then published on the outages topic with the principal as actor; the router's handlers apply them (and
check again) and log the outcome, which the answer carries when it comes within ``ZHKH_API_WAIT_S``. Every
write needs an ``Idempotency-Key`` (the same key and body publish the same event again).
"""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, datetime
from typing import Any, Literal

import structlog
from fastapi import APIRouter, Depends, Header, Path, Query, Request
from fastapi.responses import Response
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from zhkh_contracts import (
    OutageBase,
    OutageKind,
    OutageRegistered,
    OutageResource,
    OutageRestoreTimeChanged,
    OutageRestored,
    house_key_of,
)
from zhkh_runtime.app import ServiceRuntime
from zhkh_runtime.auth import Principal
from zhkh_runtime.engine import Emit
from zhkh_runtime.csvfile import BOM, CSV_MEDIA_TYPE, attachment_headers, csv_cell, csv_text
from zhkh_runtime.http import Problem, problem_responses

from . import access
from .access import STAFF
from .api_writes import ApiWrites
from .outages import STAFF_ROLES, OutageState, duration_rows, outage_id_of
from .outages_import import ImportFailed, check_references, emits, parse
from .outages_store import OutageRepository
from .queries import Queries
from .settings import RouterSettings

log = structlog.get_logger(__name__)
OUTAGE_API_NS = uuid.UUID("b7a4f3d2-2e61-4f0c-8d3a-9c1e5b7f4a22")
WRITERS = ("operator", "admin", "party")
OUTAGE_ID = Path(pattern=r"^[0-9a-fA-F-]{36}$", description="The outage id (UUID)")
NOT_FOUND_RU = "Отключение не найдено."
MAX_EXPORT = 5000
DURATION_COLUMNS = ("outage_id", "ref", "resource", "kind", "house_key", "district_id", "party_id", "starts_at",
                    "expected_restore_at", "restored_at", "open", "duration_hours")


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RegisterBody(Body):
    resource: OutageResource
    kind: OutageKind
    houses: list[uuid.UUID] = Field(default_factory=list, max_length=5000, description="FIAS house GUIDs")
    district_id: str | None = Field(default=None, min_length=1, max_length=200)
    starts_at: AwareDatetime
    expected_restore_at: AwareDatetime
    party_id: str = Field(min_length=1, max_length=200, description="The party responsible for restoring it")
    ref: str | None = Field(default=None, min_length=1, max_length=200,
                            description="Your own reference: the same ref always names the same outage")

    @model_validator(mode="after")
    def _consistent(self) -> RegisterBody:
        if not self.houses and not self.district_id:
            raise ValueError("houses or district_id is required")
        if self.expected_restore_at <= self.starts_at:
            raise ValueError("expected_restore_at must be after starts_at")
        return self


class RestoreTimeBody(Body):
    expected_restore_at: AwareDatetime
    reason: str = Field(default="", max_length=2000)


class RestoredBody(Body):
    restored_at: AwareDatetime | None = Field(default=None, description="Default: now")


class LogEntry(BaseModel):
    outage_id: str
    action: str
    actor: str
    at: str
    outcome: Literal["applied", "refused"]
    code: str | None = None
    via: str | None = None
    cause_event_id: str


class OutageView(BaseModel):
    outage_id: str
    ref: str | None
    resource: str
    kind: str
    house_keys: list[str]
    district_id: str | None
    party_id: str
    starts_at: str
    expected_restore_at: str
    restored_at: str | None
    active: bool
    registered_at: str
    restore_time_changes: int


class OutageDetails(OutageView):
    linked_appeals: int
    log: list[LogEntry]


class OutageList(BaseModel):
    count: int
    outages: list[OutageView]


class Written(BaseModel):
    status: Literal["accepted", "applied", "refused"]
    event_id: str
    action: str
    outage_id: str
    outcome: LogEntry | None = None
    outage_url: str


class Imported(BaseModel):
    published: int = Field(description="Events published (one registration per row; a row with restored_at is a "
                           "past outage, registered as restored)")
    outages: list[dict[str, str]] = Field(description="where (line N / outages[i]), ref, outage_id")


class Durations(BaseModel):
    count: int
    rows: list[dict[str, Any]]


def view(s: OutageState) -> dict[str, Any]:
    return {
        "outage_id": str(s.outage_id), "ref": s.ref, "resource": s.resource.value, "kind": s.kind.value,
        "house_keys": list(s.house_keys), "district_id": s.district_id, "party_id": s.party_id,
        "starts_at": s.starts_at.isoformat(), "expected_restore_at": s.expected_restore_at.isoformat(),
        "restored_at": s.restored_at.isoformat() if s.restored_at else None, "active": s.active,
        "registered_at": s.registered_at.isoformat(), "restore_time_changes": len(s.changes),
    }


def _entry(d: dict[str, Any] | None) -> dict[str, Any] | None:
    if d is None:
        return None
    at = d.get("at")
    return {**d, "at": at.isoformat() if isinstance(at, datetime) else str(at)}


class OutagesApi:
    def __init__(self, rt: ServiceRuntime, repo: OutageRepository, queries: Queries, settings: RouterSettings) -> None:
        self.rt, self.repo, self.q, self.settings = rt, repo, queries, settings
        # the appeals API's key store (and TTL), in a scope of its own
        self.writes = ApiWrites(rt, OUTAGE_API_NS, scope="outage\n", wait_s=settings.api_wait_s)

    async def claim(self, principal: str, key: str, action: str, body: Any) -> tuple[uuid.UUID, datetime]:
        """The event id and time of (principal, Idempotency-Key): a repeat with the same body gets the
        first request's id and time (so it republishes the very same event), another body 422."""
        return await self.writes.claim(principal, key, [action, body])

    async def publish(self, out: list[Emit]) -> None:
        await self.writes.publish(out, "outage")

    async def write(self, event: OutageBase, event_id: uuid.UUID, action: str) -> dict[str, Any]:
        await self.publish([Emit(event, key=event.key, event_id=event_id)])
        log.info("outage_action", action=action, event_id=str(event_id), actor_role=event.actor.split(":", 1)[0])
        entry = await self.writes.outcome(lambda: self.repo.entry(str(event_id)))
        return {"status": "accepted" if entry is None else entry["outcome"], "event_id": str(event_id),
                "action": action, "outage_id": str(event.outage_id), "outcome": _entry(entry),
                "outage_url": f"/api/v1/outages/{event.outage_id}"}

    async def outage(self, outage_id: str) -> OutageState:
        s = await self.repo.get(outage_id.lower())
        if s is None:
            raise Problem(404, "not_found", NOT_FOUND_RU)
        return s

    def router(self) -> APIRouter:  # noqa: C901 - one place lists every route
        auth = self.rt.auth
        api = APIRouter()
        readers = Depends(auth.require(*STAFF, "party"))
        writers = Depends(auth.require(*WRITERS))
        staff = Depends(auth.require(*STAFF))
        idem = Header(alias="Idempotency-Key", min_length=1, max_length=200,
                      description="Unique per intended action; a retry sends the same key")
        read_errors = problem_responses(401, 403, 404, 422)
        write_errors = problem_responses(400, 401, 403, 404, 409, 422, 503)

        @api.get("/api/v1/outages", tags=["outages"], response_model=OutageList, responses=read_errors,
                 operation_id="list_outages", summary="Outages (active ones unless all=true); a party sees its own")
        async def list_outages(p: Principal = readers, all_: bool = Query(False, alias="all"),
                               district_id: str | None = Query(None, max_length=200),
                               house: str | None = Query(None, max_length=100, description="FIAS house GUID or key"),
                               resource: OutageResource | None = None,
                               party_id: str | None = Query(None, max_length=200),
                               limit: int = Query(100, ge=1, le=500)) -> dict[str, Any]:
            query: dict[str, Any] = {} if all_ else {"active": True}
            if district_id:
                query["district_id"] = district_id
            if house:
                query["house_keys"] = _house_key(house)
            if resource is not None:
                query["resource"] = resource.value
            access.scope(p, query, party_id)
            found = await self.repo.find(query, limit)
            return {"count": len(found), "outages": [view(s) for s in found]}

        @api.get("/api/v1/outages/durations", tags=["outages"], response_model=Durations,
                 responses={**read_errors, 200: {"content": {"text/csv": {}}, "description": "JSON, or CSV for Excel"}},
                 operation_id="outage_durations",
                 summary="Outage duration per house (evidence for a recalculation under ПП 354)")
        async def durations(_: Principal = staff, fmt: Literal["json", "csv"] = Query("json", alias="format"),
                            since: AwareDatetime | None = Query(None, alias="from", description="Outages ending after"),
                            until: AwareDatetime | None = Query(None, alias="to", description="...and starting before"),
                            district_id: str | None = Query(None, max_length=200),
                            house: str | None = Query(None, max_length=100),
                            resource: OutageResource | None = None) -> Any:
            query: dict[str, Any] = {}
            if resource is not None:
                query["resource"] = resource.value
            if district_id:
                query["district_id"] = district_id
            if until is not None:
                query["starts_at"] = {"$lt": until}
            found = await self.repo.find(query, MAX_EXPORT + 1)
            if len(found) > MAX_EXPORT:  # never a silently cut export
                raise Problem(422, "too_many_outages", f"Больше {MAX_EXPORT} отключений: сузьте выборку (from, to, "
                              "resource, district_id).", ["from", "to"])
            if since is not None:
                found = [s for s in found if s.restored_at is None or s.restored_at > since]
            directory = await self.q.directory.current()
            houses: dict[str, list[str]] = {}
            for h in directory.houses.values():
                if h.district_id:
                    houses.setdefault(h.district_id, []).append(h.house_key)
            now = datetime.now(UTC)
            rows = [r for s in found for r in duration_rows(s, houses.get(s.district_id or "", []), now)]
            if house:
                key = _house_key(house)
                rows = [r for r in rows if r["house_key"] == key]
            rows.sort(key=lambda r: (r["starts_at"], r["outage_id"], r["house_key"] or ""))
            if fmt == "json":
                return {"count": len(rows), "rows": rows}
            cells = ({**r, "open": "да" if r["open"] else "нет",  # Excel in a Russian locale: ';', a decimal comma
                      "duration_hours": f"{r['duration_hours']:.2f}".replace(".", ",")} for r in rows)
            text = csv_text(([csv_cell(r.get(c)) for c in DURATION_COLUMNS] for r in cells), DURATION_COLUMNS,
                            delimiter=";")
            return Response(BOM + text, media_type=CSV_MEDIA_TYPE, headers=attachment_headers("outage-durations.csv"))

        @api.get("/api/v1/outages/{outage_id}", tags=["outages"], response_model=OutageDetails, responses=read_errors,
                 operation_id="get_outage", summary="One outage, with its log")
        async def get_outage(outage_id: str = OUTAGE_ID, p: Principal = readers) -> dict[str, Any]:
            s = await self.outage(outage_id)
            if not access.may_read(p, s.party_id):
                raise Problem(403, "forbidden")
            entries = [_entry(e) for e in await self.repo.entries(str(s.outage_id))]
            return {**view(s), "linked_appeals": await self.repo.linked_count(str(s.outage_id)), "log": entries}

        @api.post("/api/v1/outages", tags=["outages"], response_model=Written, status_code=202,
                  responses=write_errors, operation_id="register_outage",
                  summary="Register an outage (operator, admin; a party for its own)")
        async def register_outage(body: RegisterBody, key: str = idem, p: Principal = writers) -> dict[str, Any]:
            actor = access.actor(p, STAFF_ROLES, body.party_id)
            directory = await self.q.directory.current()
            if body.party_id not in directory.parties:
                raise Problem(422, "unknown_party", "Такой организации нет в справочнике.", ["party_id"])
            if body.district_id is not None and body.district_id not in directory.districts:
                raise Problem(422, "unknown_district", "Такого района нет в справочнике.", ["district_id"])
            dumped = body.model_dump(mode="json")
            event_id, now = await self.claim(p.subject, key, "register", dumped)
            oid = outage_id_of(body.ref) if body.ref else uuid.uuid5(OUTAGE_API_NS, f"outage:{event_id}")
            e = OutageRegistered(
                outage_id=oid, resource=body.resource, actor=actor, kind=body.kind,
                house_keys=tuple(dict.fromkeys(f"fias:{g}" for g in body.houses)), district_id=body.district_id,
                starts_at=body.starts_at, expected_restore_at=body.expected_restore_at, party_id=body.party_id,
                ref=body.ref, registered_at=now)
            return await self.write(e, event_id, "register")

        async def change(outage_id: str, p: Principal, key: str, action: str, body: BaseModel,
                         make: Any) -> dict[str, Any]:
            s = await self.outage(outage_id)
            actor = access.actor(p, STAFF_ROLES, s.party_id)
            if not s.active:
                raise Problem(409, "already_restored", "Отключение уже завершено.")
            event_id, now = await self.claim(p.subject, key, f"{action}:{s.outage_id}", body.model_dump(mode="json"))
            return await self.write(make(s, actor, now), event_id, action)

        @api.post("/api/v1/outages/{outage_id}/restore-time", tags=["outages"], response_model=Written,
                  status_code=202, responses=write_errors, operation_id="change_outage_restore_time",
                  summary="Change the expected restore time")
        async def restore_time(body: RestoreTimeBody, outage_id: str = OUTAGE_ID, key: str = idem,
                               p: Principal = writers) -> dict[str, Any]:
            return await change(outage_id, p, key, "change_restore_time", body, lambda s, actor, now: (
                OutageRestoreTimeChanged(outage_id=s.outage_id, resource=s.resource, actor=actor,
                                         expected_restore_at=body.expected_restore_at, changed_at=now,
                                         reason=body.reason)))

        @api.post("/api/v1/outages/{outage_id}/restored", tags=["outages"], response_model=Written,
                  status_code=202, responses=write_errors, operation_id="restore_outage",
                  summary="The resource is back: the outage is over")
        async def restored(body: RestoredBody, outage_id: str = OUTAGE_ID, key: str = idem,
                           p: Principal = writers) -> dict[str, Any]:
            return await change(outage_id, p, key, "restore", body, lambda s, actor, now: (
                OutageRestored(outage_id=s.outage_id, resource=s.resource, actor=actor,
                               restored_at=body.restored_at or now)))

        @api.post("/api/v1/outages/import", tags=["outages"], response_model=Imported, status_code=202,
                  responses={**write_errors, **problem_responses(413, 415)}, operation_id="import_outages",
                  openapi_extra={"requestBody": {"required": True, "content": {
                      "text/csv": {"schema": {"type": "string"}},
                      "application/json": {"schema": {"type": "object"}}}}},
                  summary="Import outages from CSV or JSON: validated, all or nothing, errors per row")
        async def import_outages(request: Request, key: str = idem, p: Principal = writers) -> dict[str, Any]:
            ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
            fmt = {"text/csv": "csv", "application/json": "json"}.get(ctype)
            if fmt is None:
                raise Problem(415, "unsupported_media_type", "Пришлите файл в формате CSV (text/csv) или JSON.",
                              ["Content-Type"])
            data = await request.body()
            if len(data) > 5_000_000:
                raise Problem(413, "too_large", "Файл больше 5 МБ.")
            directory = await self.q.directory.current()
            try:
                rows = parse(data, fmt)
                check_references(rows, set(directory.parties), set(directory.districts),
                                 None if p.has(*STAFF_ROLES) else (lambda pid: pid in p.party_ids))
            except ImportFailed as exc:
                raise Problem(422, "invalid_import", f"Импорт отклонён: ошибок — {len(exc.errors)}; ничего не "
                              "загружено.", exc.errors[:200]) from None
            # the same key and file: the same events again (ids from the bodies, registered_at from the first try)
            _, now = await self.claim(p.subject, key, "import", hashlib.sha256(data).hexdigest())
            actor = access.actor(p, STAFF_ROLES) if p.has(*STAFF_ROLES) else ""
            out: list[Emit] = []
            for r in rows:
                out += emits([r], actor or f"party:{r.row.party_id}", now)
            await self.publish(out)
            log.info("outage_import", rows=len(rows), events=len(out), actor_role=(actor or "party:").split(":")[0])
            return {"published": len(out), "outages": [{"where": r.where, "ref": r.row.ref,
                                                         "outage_id": str(r.row.outage_id)} for r in rows]}

        return api


def _house_key(house: str) -> str:
    """A FIAS GUID or a ``fias:`` key as intake normalises it."""
    raw = house[5:] if house.lower().startswith("fias:") else house
    try:
        return house_key_of(uuid.UUID(raw), None) or ""
    except ValueError:
        raise Problem(422, "invalid_data", "Дом: ожидается GUID дома по ФИАС.", ["house"]) from None
