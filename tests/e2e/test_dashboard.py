"""The dashboard page as a browser renders it: headless Chromium loads /dashboard from the served
analytics service (real broker and database, published lifecycle events) and the rendered DOM must
carry the published figures; a screenshot is taken too.

Set ZHKH_DASHBOARD_SCREENSHOT=docs/img/dashboard.png to keep the screenshot (how the one in the docs was made).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import uuid
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from tests.integration.test_analytics import EXPECTED, figures, poll, publish, scenario, settings_for
from tests.support.http import request
from tests.support.services import served
from zhkh_contracts import Category, Channel, ConsultationConverted, ConsultationRecorded, Envelope, Topics

pytestmark = pytest.mark.e2e
BROWSER_TIMEOUT_S = 60
SHOT_HEIGHT = 1500  # the screenshot: the whole page, down to the consultations


def chromium() -> str:
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    pytest.fail("Chromium is not installed: neither `chromium` nor `chromium-browser` is on PATH. The dashboard test "
                "needs a headless browser; scripts/setup installs Debian's `chromium` package under CI "
                "(locally: apt-get install -y chromium).")


async def browse(binary: str, profile: Path, *args: str, height: int = 1000) -> str:
    """Run headless Chromium without blocking the event loop (the service answers from the same loop)."""
    proc = await asyncio.create_subprocess_exec(
        binary, "--headless=new", "--no-sandbox", "--disable-gpu", f"--window-size=1280,{height}",
        "--virtual-time-budget=5000", "--hide-scrollbars", "--no-first-run", "--lang=ru-RU", "--disable-dev-shm-usage",
        f"--user-data-dir={profile}", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), BROWSER_TIMEOUT_S)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    assert proc.returncode == 0, err.decode(errors="replace")[-2000:]
    return out.decode("utf-8")


class Dom(HTMLParser):
    """What the test reads from the rendered page: body data, charts and their bars, KPI tiles."""

    def __init__(self) -> None:
        super().__init__()
        self.body: dict[str, str | None] = {}
        self.charts: dict[str, dict[str, int]] = {}
        self.chart_attrs: dict[str, dict[str, str | None]] = {}
        self.kpis: dict[str, str | None] = {}
        self.consult: dict[str, str | None] = {}
        self._chart: str | None = None
        self._depth = 0
        self.text: list[str] = []
        self.parties: dict[tuple[str, str], dict[str, str | None]] = {}
        self._row: dict[str, str | None] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "body":
            self.body = a
        if "data-kpi" in a:
            self.kpis[a["data-kpi"] or ""] = a.get("data-value")
        if "data-consult" in a:
            self.consult[a["data-consult"] or ""] = a.get("data-value")
        if tag == "div" and "data-chart" in a:
            self._chart = a["data-chart"]
            self.charts[self._chart or ""] = {}
            self.chart_attrs[self._chart or ""] = a
        if tag == "tr" and "data-party" in a:
            self._row = self.parties.setdefault((a.get("data-month") or "", a.get("data-party") or ""), {})
        if tag == "td" and self._row is not None and "data-field" in a:
            self._row[a["data-field"] or ""] = a.get("data-value")
        if tag == "rect" and self._chart and "data-value" in a:
            self.charts[self._chart][a.get("data-key") or ""] = int(a["data-value"] or 0)

    def handle_endtag(self, tag: str) -> None:
        if tag == "section":
            self._chart = None

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def row(assigned: int, answered: int, median: str, overdue: int, reopen_rate: str = "") -> dict[str, str | None]:
    """One table row's data-value attributes as the page's script writes them (JavaScript's String of
    the JSON numbers: 5.0 is "5"; null is ""). No bounces, escalations or ratings in this scenario."""
    return {"assigned": str(assigned), "answered": str(answered), "median_hours_to_answer": median,
            "overdue": str(overdue), "bounces": "0", "escalations": "0", "reopen_rate": reopen_rate,
            "satisfaction": ""}


# A, B, C at uk-zarechye (answered after 2, 5, 30 h; C overdue); D, G at uk-mira (G answered after
# 50 h; D overdue); E in the fallback queue; F at uk-tsentr (withdrawn, not overdue)
PARTIES = {
    ("2026-01", "fallback:operators"): row(1, 0, "", 0),
    ("2026-01", "uk-mira"): row(2, 1, "50", 1, reopen_rate="0"),
    ("2026-01", "uk-tsentr"): row(1, 0, "", 0),
    ("2026-01", "uk-zarechye"): row(3, 3, "5", 1, reopen_rate="0"),
}


def consultations() -> list[Envelope[Any]]:
    """Three consultations in January 2026 (two on the hotline, one resolved there; one at a reception,
    resolved) and the conversion of the unresolved one, as intake publishes them."""
    at = datetime(2026, 1, 20, 9, tzinfo=UTC)
    ids = [uuid.UUID(int=i + 1) for i in range(3)]
    rows = [("hotline", "heating", True), ("hotline", "billing", False), ("reception", "management", True)]
    out: list[Envelope[Any]] = [
        Envelope.new(ConsultationRecorded(consultation_id=cid, channel=Channel(ch), category=Category(cat),
                                          resolved_first_contact=ok, actor="operator:op-1", recorded_at=at),
                     source="/zhkh-appeals/intake", appeal_id=f"consultation:{cid}", occurred_at=at)
        for cid, (ch, cat, ok) in zip(ids, rows, strict=True)
    ]
    out.append(Envelope.new(ConsultationConverted(consultation_id=ids[1], appeal_id=uuid.UUID(int=99),
                                                  registration_number="ZH-2026-0000099", channel=Channel.HOTLINE,
                                                  category=Category.BILLING, actor="operator:op-1", converted_at=at),
                            source="/zhkh-appeals/intake", appeal_id=f"consultation:{ids[1]}", occurred_at=at))
    return out


async def test_dashboard_renders_the_published_figures(infra, prefix, tmp_path, issuer):
    from analytics.main import create_app

    binary = chromium()
    s = scenario()
    await publish(infra.bootstrap, Topics(prefix).lifecycle, s.events)
    await publish(infra.bootstrap, Topics(prefix).consultations, consultations())
    tok = issuer.token("analyst-1", "analyst")
    async with served(create_app(settings_for(infra, prefix, issuer))) as base:
        await poll(f"{base}/api/v1/analytics/summary", lambda b: figures(b) == EXPECTED
                   and b["consultations"]["converted"]["count"] == 1, token=tok)
        status, page = await asyncio.to_thread(request, "GET", f"{base}/dashboard")
        assert status == 200 and "Обращения по каналам".encode() in page

        shot = tmp_path / "dashboard.png"
        html = await browse(binary, tmp_path / "profile", "--dump-dom", f"--screenshot={shot}",
                            f"{base}/dashboard#access_token={tok}", height=SHOT_HEIGHT)
        filtered = await browse(binary, tmp_path / "profile", "--dump-dom",
                                f"{base}/dashboard?channel=hotline&from=2026-01-01#access_token={tok}")

    dom = Dom()
    dom.feed(html)
    assert dom.body.get("data-ready") == "1", html[-3000:]
    assert dom.charts["by_channel"] == EXPECTED["by_channel"]
    assert dom.charts["by_category"] == EXPECTED["by_category"]
    assert dom.charts["by_district"] == EXPECTED["by_district"]
    assert dom.charts["by_status"] == EXPECTED["by_status"]
    assert dom.charts["by_party"] == EXPECTED["by_party"]
    assert dom.charts["top_addresses"] == {a["house_key"]: a["count"] for a in EXPECTED["top_addresses"]}
    assert dom.chart_attrs["by_channel"]["data-total"] == "7"
    assert dom.kpis == {"total": "7", "overdue": "2", "answered": "4", "median": "17.5"}
    text = " ".join(" ".join(dom.text).split())
    for shown in ("Горячая линия", "Отопление", "Лифты", "г. Пермь, ул. Мира, д. 1", "доля просроченных: 28,6 %",
                  "17,5 ч", "район не указан"):
        assert shown in text, shown
    assert 'href="/api/v1/analytics/export.csv"' in html

    # the per-party table: every figure of the published scenario (all registered in January 2026)
    assert dom.parties == PARTIES, dom.parties
    for shown in ("Исполнители по месяцам", "uk-zarechye", "1 из 3 (33,3 %)", "1 из 2 (50 %)", "5 ч", "50 ч"):
        assert shown in text, shown
    assert 'href="/api/v1/analytics/parties.csv"' in html

    # consultations: counts, first-contact share, converted; by topic and channel
    assert dom.consult == {"total": "3", "resolved": str(round(2 / 3, 4)), "converted": "1"}
    assert dom.charts["consult_by_category"] == {"heating": 1, "billing": 1, "management": 1}
    assert dom.charts["consult_by_channel"] == {"hotline": 2, "reception": 1}
    for shown in ("Консультации", "Решено при первом обращении", "доля: 66,7 %", "доля: 33,3 %"):
        assert shown in text, shown
    assert 'href="/api/v1/analytics/consultations.csv"' in html

    # the page's query goes to the API and to the CSV link
    hot = Dom()
    hot.feed(filtered)
    assert hot.body.get("data-ready") == "1"
    assert hot.charts["by_channel"] == {"hotline": 2} and hot.kpis["total"] == "2"
    assert hot.charts["by_category"] == {"heating": 1, "lifts": 1}
    assert hot.consult["total"] == "2" and hot.charts["consult_by_channel"] == {"hotline": 2}
    assert 'href="/api/v1/analytics/export.csv?from=2026-01-01&amp;channel=hotline"' in filtered
    assert hot.parties == {  # B (uk-zarechye, answered after 5 h) and E (fallback queue)
        ("2026-01", "uk-zarechye"): row(1, 1, "5", 0, reopen_rate="0"),
        ("2026-01", "fallback:operators"): row(1, 0, "", 0),
    }

    png: Any = shot.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 20_000  # a real picture, not a blank page
    keep = os.environ.get("ZHKH_DASHBOARD_SCREENSHOT")
    if keep:
        Path(keep).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, keep)
