"""HTTP API and dashboard of the analytics service (served on its ZHKH_HTTP_PORT, default 8005).
Every /api route needs a bearer token with role ``analyst``, ``inspector`` or ``admin``.

    GET /api/v1/analytics/summary?from=2026-01-01&to=2026-01-31&district=…&channel=…
        counts by channel, category, party, district and status; overdue count and share; answered
        count and median hours to the first answer; the ten houses with most appeals
    GET /api/v1/analytics/houses?house_key=fias:…   (same filters)
        one house: its summary and its latest 100 appeals
    GET /api/v1/analytics/export.csv   (same filters)
        one row per appeal, UTF-8 with a BOM (Excel), streamed in chunks; no personal data
    GET /api/v1/analytics/parties   (same filters)
        per responsible party and registration month: assigned, answered and median hours to the
        first answer, overdue share, "not ours" bounces, escalations, reopen rate, satisfaction
    GET /api/v1/analytics/parties.csv   (same filters)
        the same rows as CSV, UTF-8 with a BOM
    GET /api/v1/analytics/consultations.csv   (period and channel filters; a district leaves none)
        one row per consultation (channel, topic, articles, resolved at first contact, converted, the
        appeal's number), UTF-8 with a BOM; the summary's ``consultations`` block has their counts
    GET /dashboard
        the dashboard page (static/dashboard.html, no data in it): its script takes the access token
        from the URL fragment (``#access_token=…``, as an IdP redirect or a portal link gives it), keeps
        it in sessionStorage and sends it as a bearer token; vanilla JS draws SVG bar charts

``from``/``to`` are dates (inclusive) in ZHKH_REPORT_TIMEZONE on the registration time.
"""

from __future__ import annotations

import base64
import hashlib
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import structlog
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response, StreamingResponse

from zhkh_runtime.auth import Principal
from zhkh_runtime.csvfile import BOM, CSV_MEDIA_TYPE, attachment_headers
from zhkh_runtime.http import Auth, Problem, problem_responses

from .report import FilterError, Filters, parse_filters
from .scorecards import scorecards_csv
from .service import AnalyticsService
from .settings import AnalyticsSettings

log = structlog.get_logger(__name__)
STATIC = Path(__file__).with_name("static")
DASHBOARD = STATIC / "dashboard.html"
MAX_HOUSE_KEY = 600


def _sha256(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode() + "'"


def dashboard_page(path: Path = DASHBOARD) -> tuple[bytes, dict[str, str]]:
    """The page and its headers. The CSP allows exactly the page's own inline script and style
    (by hash) and requests to this origin: nothing is loaded from anywhere else."""
    html = path.read_text(encoding="utf-8")
    scripts = [_sha256(s) for s in re.findall(r"<script>(.*?)</script>", html, re.S)]
    styles = [_sha256(s) for s in re.findall(r"<style>(.*?)</style>", html, re.S)]
    none = "'none'"
    csp = (f"default-src 'none'; script-src {' '.join(scripts) or none}; style-src {' '.join(styles) or none}; "
           "connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
    headers = {"content-type": "text/html; charset=utf-8", "content-security-policy": csp,
               "x-content-type-options": "nosniff", "cache-control": "no-cache", "referrer-policy": "no-referrer"}
    return html.encode("utf-8"), headers


def _bad(exc: FilterError) -> Problem:
    return Problem(400, "invalid_data", "Параметры отчёта заданы неверно.", exc.fields)


def _params(request: Request) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for k, v in request.query_params.multi_items():
        out.setdefault(k, []).append(v)
    return out


READERS = ("analyst", "inspector", "admin")
ERRORS = problem_responses(400, 401, 403, 429)


def routes(service: AnalyticsService, settings: AnalyticsSettings, auth: Auth) -> APIRouter:
    tz = settings.report_timezone
    page, page_headers = dashboard_page()
    api = APIRouter(tags=["analytics"])
    reader = Depends(auth.require(*READERS))

    def filters(request: Request, house_key: str | None = None) -> Filters:
        try:
            return parse_filters(_params(request), tz, house_key=house_key)
        except FilterError as exc:
            raise _bad(exc) from None

    def exported(what: str, event: str, p: Principal, f: Filters) -> dict[str, str]:
        """An export's audit line (role and period, no values) and its download headers."""
        log.info(event, role=p.role_for_audit(), **{k: v for k, v in f.period().items() if v is not None})
        return attachment_headers(f"zhkh-{what}-{datetime.now(UTC):%Y%m%d-%H%M%S}.csv")

    q_from = Query(None, alias="from", description="First day (YYYY-MM-DD), inclusive")
    q_to = Query(None, alias="to", description="Last day (YYYY-MM-DD), inclusive")
    q_district = Query(None, max_length=200, description="District id from the directory")
    q_channel = Query(None, description="Channel (site_form, hotline, ...)")

    @api.get("/api/v1/analytics/summary", operation_id="analytics_summary", responses=ERRORS,
             summary="Counts, overdue share, median time to answer and problem addresses")
    async def summary(request: Request, _: Principal = reader, date_from: str | None = q_from,  # noqa: ARG001
                      date_to: str | None = q_to, district: str | None = q_district,  # noqa: ARG001
                      channel: str | None = q_channel) -> dict[str, Any]:  # noqa: ARG001
        return await service.summary(filters(request))

    @api.get("/api/v1/analytics/houses", operation_id="analytics_house", responses=ERRORS,
             summary="One house: its summary and latest appeals")
    async def house(request: Request, house_key: str = Query(min_length=1, max_length=MAX_HOUSE_KEY),
                    _: Principal = reader, date_from: str | None = q_from, date_to: str | None = q_to,  # noqa: ARG001
                    district: str | None = q_district, channel: str | None = q_channel) -> dict[str, Any]:  # noqa: ARG001
        key = house_key.strip()
        if not key:
            raise Problem(400, "missing_filter", "Укажите дом (house_key).", ["house_key"])
        f = filters(request, key)
        body = await service.summary(f)
        body["house_key"] = key
        body["address"] = body["top_addresses"][0]["address"] if body["top_addresses"] else None
        body["appeals"] = await service.house_appeals(f)
        return body

    @api.get("/api/v1/analytics/export.csv", operation_id="analytics_export_csv",
             responses={**ERRORS, 200: {"content": {"text/csv": {"schema": {"type": "string"}}},
                                        "description": "One row per appeal"}},
             summary="One CSV row per appeal (UTF-8 with BOM), no personal data", response_class=StreamingResponse)
    async def export(request: Request, p: Principal = reader, date_from: str | None = q_from,  # noqa: ARG001
                     date_to: str | None = q_to, district: str | None = q_district,  # noqa: ARG001
                     channel: str | None = q_channel) -> StreamingResponse:  # noqa: ARG001
        f = filters(request)
        return StreamingResponse(service.export_csv(f, settings.export_batch), media_type=CSV_MEDIA_TYPE,
                                 headers=exported("appeals", "csv_export", p, f))

    @api.get("/api/v1/analytics/parties", operation_id="analytics_parties", responses=ERRORS,
             summary="Per-party scorecards by registration month")
    async def parties(request: Request, _: Principal = reader, date_from: str | None = q_from,  # noqa: ARG001
                      date_to: str | None = q_to, district: str | None = q_district,  # noqa: ARG001
                      channel: str | None = q_channel) -> dict[str, Any]:  # noqa: ARG001
        return await service.parties(filters(request), tz)

    @api.get("/api/v1/analytics/parties.csv", operation_id="analytics_parties_csv",
             responses={**ERRORS, 200: {"content": {"text/csv": {"schema": {"type": "string"}}},
                                        "description": "One row per party and month"}},
             summary="Per-party scorecards as CSV (UTF-8 with BOM)", response_class=Response)
    async def parties_csv(request: Request, p: Principal = reader, date_from: str | None = q_from,  # noqa: ARG001
                          date_to: str | None = q_to, district: str | None = q_district,  # noqa: ARG001
                          channel: str | None = q_channel) -> Response:  # noqa: ARG001
        f = filters(request)
        body = await service.parties(f, tz)
        return Response((BOM + scorecards_csv(body["parties"])).encode("utf-8"), 200, media_type=CSV_MEDIA_TYPE,
                        headers=exported("parties", "parties_csv", p, f))

    @api.get("/api/v1/analytics/consultations.csv", operation_id="analytics_consultations_csv",
             responses={**ERRORS, 200: {"content": {"text/csv": {"schema": {"type": "string"}}},
                                        "description": "One row per consultation"}},
             summary="One CSV row per consultation (UTF-8 with BOM), no personal data or text",
             response_class=StreamingResponse)
    async def consultations_csv(request: Request, p: Principal = reader, date_from: str | None = q_from,  # noqa: ARG001
                                date_to: str | None = q_to, district: str | None = q_district,  # noqa: ARG001
                                channel: str | None = q_channel) -> StreamingResponse:  # noqa: ARG001
        f = filters(request)
        return StreamingResponse(
            service.consultations_csv(f, settings.export_batch), media_type=CSV_MEDIA_TYPE,
            headers=exported("consultations", "consultations_csv", p, f),
        )

    @api.get("/dashboard", include_in_schema=False)
    async def dashboard() -> Response:
        return Response(page, 200, headers=page_headers)

    return api
