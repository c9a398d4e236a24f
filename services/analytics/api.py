"""HTTP API and dashboard of the analytics service (served on its ZHKH_HTTP_PORT, default 8005).

    GET /api/v1/analytics/summary?from=2026-01-01&to=2026-01-31&district=…&channel=…
        counts by channel, category, party, district and status; overdue count and share; answered
        count and median hours to the first answer; the ten houses with most appeals
    GET /api/v1/analytics/houses?house_key=fias:…   (same filters)
        one house: its summary and its latest 100 appeals (FastStream's router matches exact paths,
        so the house key is a query parameter, not a path segment)
    GET /api/v1/analytics/export.csv   (same filters)
        one row per appeal, UTF-8 with a BOM (Excel), streamed in chunks; no personal data
    GET /dashboard
        the dashboard page (static/dashboard.html): vanilla JS draws SVG bar charts from the summary

``from``/``to`` are dates (inclusive) in ZHKH_REPORT_TIMEZONE on the registration time.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import structlog
from faststream.asgi import AsgiResponse, get
from faststream.asgi.types import Receive, Scope, Send

from zhkh_runtime.app import error_response, json_response, query_params

from .report import FilterError, parse_filters
from .service import AnalyticsService
from .settings import AnalyticsSettings

log = structlog.get_logger(__name__)
STATIC = Path(__file__).with_name("static")
DASHBOARD = STATIC / "dashboard.html"
MAX_HOUSE_KEY = 600


class StreamingResponse:
    """An ASGI response sent chunk by chunk (the CSV export never sits in memory whole)."""

    def __init__(self, chunks: AsyncIterator[bytes], headers: dict[str, str], status: int = 200) -> None:
        self.chunks, self.status = chunks, status
        self.headers = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:  # noqa: ARG002
        await send({"type": "http.response.start", "status": self.status, "headers": self.headers})
        if scope.get("method") != "HEAD":
            async for chunk in self.chunks:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})


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


def _bad(exc: FilterError) -> AsgiResponse:
    return error_response("invalid_data", 400, exc.fields, "Параметры отчёта заданы неверно.")


def routes(service: AnalyticsService, settings: AnalyticsSettings) -> list[tuple[str, Any]]:
    tz = settings.report_timezone
    page, page_headers = dashboard_page()

    @get(description="Counts, overdue share, median time to answer and problem addresses")
    async def summary(scope: Any) -> AsgiResponse:
        try:
            filters = parse_filters(query_params(scope), tz)
        except FilterError as exc:
            return _bad(exc)
        return json_response(await service.summary(filters))

    @get(description="One house: its summary and latest appeals")
    async def house(scope: Any) -> AsgiResponse:
        params = query_params(scope)
        key = (params.get("house_key") or [""])[0].strip()
        if not key or len(key) > MAX_HOUSE_KEY:
            return error_response("missing_filter", 400, ["house_key"], "Укажите дом (house_key).")
        try:
            filters = parse_filters(params, tz, house_key=key)
        except FilterError as exc:
            return _bad(exc)
        body = await service.summary(filters)
        body["house_key"] = key
        body["address"] = body["top_addresses"][0]["address"] if body["top_addresses"] else None
        body["appeals"] = await service.house_appeals(filters)
        return json_response(body)

    @get(description="One CSV row per appeal (UTF-8 with BOM), no personal data")
    async def export(scope: Any) -> Any:
        try:
            filters = parse_filters(query_params(scope), tz)
        except FilterError as exc:
            return _bad(exc)
        name = f"zhkh-appeals-{datetime.now(UTC):%Y%m%d-%H%M%S}.csv"
        log.info("csv_export", **{k: v for k, v in filters.period().items() if v is not None})
        return StreamingResponse(
            service.export_csv(filters, settings.export_batch),
            {"content-type": "text/csv; charset=utf-8", "content-disposition": f'attachment; filename="{name}"',
             "cache-control": "no-store", "x-content-type-options": "nosniff"},
        )

    @get(include_in_schema=False)
    async def dashboard(scope: Any) -> AsgiResponse:  # noqa: ARG001
        return AsgiResponse(page, 200, headers=page_headers)

    return [
        ("/api/v1/analytics/summary", summary),
        ("/api/v1/analytics/houses", house),
        ("/api/v1/analytics/export.csv", export),
        ("/dashboard", dashboard),
    ]
