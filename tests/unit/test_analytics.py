"""Analytics without I/O: folding events, the overdue rule, median, filters, top addresses, CSV."""

from __future__ import annotations

import csv
import io
import uuid
from datetime import UTC, date, datetime, timedelta

import pytest

from zhkh_runtime.csvfile import csv_text
from analytics import readmodel as rm
from analytics import report
from analytics.api import dashboard_page
from zhkh_contracts import (
    Address,
    Appeal,
    AppealAnswered,
    AppealAssigned,
    AppealStatus,
    AppealStatusChanged,
    Applicant,
    Category,
    Channel,
    Consent,
    DeadlineAlert,
    DeadlinePlanned,
    PartyKind,
)

T0 = datetime(2026, 1, 12, 9, 0, tzinfo=UTC)
AID = uuid.UUID("11111111-2222-4333-8444-555555555555")


def appeal(text: str | None = "г. Пермь, ул. Ленина, д. 10, кв. 15", at: datetime = T0) -> Appeal:
    return Appeal(
        appeal_id=AID, registration_number="ZH-2026-0000001", channel=Channel.HOTLINE, source_id="s1",
        received_at=at, registered_at=at,
        applicant=Applicant(name="Иванова Мария Петровна", phone="+79123456789", email="ivanova@example.ru"),
        consent=Consent(personal_data=True), address=Address(text=text, apartment="15"),
        house_key="addr:г пермь ул ленина д 10 кв 15", category=Category.HEATING, category_source="channel",
        emergency=True, text="Холодные батареи в квартире 15, звоните 8 912 345-67-89",
    )


def assigned(at: datetime = T0, party: str = "uk-1", district: str | None = "d-len") -> AppealAssigned:
    return AppealAssigned(appeal_id=AID, registration_number="N", party_id=party,
                          party_kind=PartyKind.MANAGING_ORGANISATION,
                          reason="r", assigned_at=at, district_id=district)


def planned(due: datetime, generation: int = 1) -> DeadlinePlanned:
    return DeadlinePlanned(appeal_id=AID, registration_number="N", party_id="uk-1", regime="pp416_written", due_at=due,
                           party_timezone="Europe/Moscow", generation=generation, reason="assigned")


def answered(at: datetime) -> AppealAnswered:
    return AppealAnswered(appeal_id=AID, registration_number="N", party_id="uk-1", text="Исправлено", answered_at=at)


def status(to: AppealStatus, version: int) -> AppealStatusChanged:
    return AppealStatusChanged(appeal_id=AID, registration_number="N", from_status=AppealStatus.ASSIGNED, to_status=to,
                               action="x", party_id="uk-1", version=version, changed_at=T0)


def alert(threshold: str, due: datetime) -> DeadlineAlert:
    return DeadlineAlert(appeal_id=AID, registration_number="N", party_id="uk-1", threshold=threshold, due_at=due,
                         alert_at=due, generation=1)


# ---- the read model ---------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "house"), [
    ("г. Пермь, ул. Ленина, д. 10, кв. 15", "г. Пермь, ул. Ленина, д. 10"),
    ("г. Пермь, ул. Ленина, д.10 кв.15 подъезд 2", "г. Пермь, ул. Ленина, д.10"),
    ("Пермь, Комсомольский пр-т, 5, квартира 7", "Пермь, Комсомольский пр-т, 5"),
    ("ул. Офицерская, 3, офис 12", "ул. Офицерская, 3"),
    ("ул. Мира 1 комн. 4", "ул. Мира 1"),
    ("ул. Мира, 1", "ул. Мира, 1"),
    ("  ", None),
    (None, None),
])
def test_address_is_cut_to_the_house(text, house):
    assert rm.house_address(text) == house


def test_registration_keeps_house_level_facts_only():
    d = rm.apply_registered(None, appeal())
    assert set(d) == {"_id", *rm.FIELDS}
    assert (d["channel"], d["category"], d["emergency"], d["status"]) == ("hotline", "heating", True, "registered")
    assert d["address"] == "г. Пермь, ул. Ленина, д. 10"
    assert d["house_key"] == "addr:г пермь ул ленина д 10"  # intake's key had the flat in it
    flat = repr(d)
    for personal in ("Иванова", "+7912", "example.ru", "кв. 15", "кв 15", "Холодные батареи", "345-67-89"):
        assert personal not in flat


def test_fias_house_keys_are_kept():
    a = appeal().model_copy(update={"house_key": "fias:5e2a3b4c-1d2e-4f50-8a9b-0c1d2e3f4a5b"})
    assert rm.house_key(a) == "fias:5e2a3b4c-1d2e-4f50-8a9b-0c1d2e3f4a5b"
    assert rm.house_key(appeal("кв. 15")) == "addr:unknown"


def test_events_fold_in_any_order_and_the_latest_version_wins():
    d = rm.apply_status(None, status(AppealStatus.IN_PROGRESS, 3))  # before the registration: a partial document
    assert d["registered_at"] is None
    d = rm.apply_registered(d, appeal())
    assert d["status"] == "in_progress"  # registration does not reset a later status
    d = rm.apply_status(d, status(AppealStatus.ASSIGNED, 2))  # an older version is ignored
    assert (d["status"], d["status_version"]) == ("in_progress", 3)
    d = rm.apply_assigned(d, assigned(T0 + timedelta(hours=2), "adm-1", None))
    d = rm.apply_assigned(d, assigned(T0 + timedelta(hours=1), "uk-1", "d-len"))  # older assignment: ignored
    assert (d["party_id"], d["district_id"]) == ("adm-1", None)
    d = rm.apply_planned(d, planned(T0 + timedelta(days=10), 2))
    d = rm.apply_planned(d, planned(T0 + timedelta(days=5), 1))  # an older generation is ignored
    assert d["due_at"] == T0 + timedelta(days=10)


def test_first_answer_counts_for_time_to_answer():
    d = rm.apply_registered(None, appeal())
    d = rm.apply_answered(d, answered(T0 + timedelta(hours=30)))
    d = rm.apply_answered(d, answered(T0 + timedelta(hours=90)))  # after a reopening
    assert d["answered_at"] == T0 + timedelta(hours=30) and d["minutes_to_answer"] == 30 * 60


def test_applying_the_same_event_twice_changes_nothing():
    d = rm.apply_registered(None, appeal())
    for fold, ev in ((rm.apply_answered, answered(T0 + timedelta(hours=5))), (rm.apply_alert, alert("overdue", T0)),
                     (rm.apply_status, status(AppealStatus.ANSWERED, 4)), (rm.apply_planned, planned(T0))):
        once = fold(d, ev)
        assert fold(once, ev) == once
        d = once


# ---- the overdue rule -------------------------------------------------------------------------


NOW = T0 + timedelta(days=20)


def test_overdue_when_the_deadline_passed_and_the_appeal_is_still_open():
    d = rm.apply_planned(rm.apply_registered(None, appeal()), planned(NOW - timedelta(seconds=1)))
    assert rm.is_overdue(d, NOW)
    assert not rm.is_overdue(d, NOW - timedelta(seconds=2))  # not yet
    for s in ("answered", "closed", "withdrawn"):
        assert not rm.is_overdue(rm.apply_status(d, status(AppealStatus(s), 9)), NOW)
    assert rm.is_overdue(rm.apply_status(d, status(AppealStatus.REOPENED, 9)), NOW)


def test_overdue_alert_and_late_answer_stay_overdue():
    base = rm.apply_planned(rm.apply_registered(None, appeal()), planned(T0 + timedelta(days=10)))
    d = rm.apply_alert(base, alert("overdue", T0 + timedelta(days=10)))
    d = rm.apply_status(d, status(AppealStatus.CLOSED, 5))
    d = rm.apply_planned(d, planned(NOW + timedelta(days=30), 2))
    assert rm.is_overdue(d, NOW)  # the alert sticks: closing or replanning does not clear it
    assert not rm.is_overdue(rm.apply_alert(base, alert("80%", T0)), T0)  # other thresholds count nothing
    late = rm.apply_answered(base, answered(T0 + timedelta(days=11)))
    late = rm.apply_status(late, status(AppealStatus.ANSWERED, 5))
    assert rm.is_overdue(late, NOW)
    on_time = rm.apply_answered(base, answered(T0 + timedelta(days=9)))
    on_time = rm.apply_status(on_time, status(AppealStatus.ANSWERED, 5))
    assert not rm.is_overdue(on_time, NOW)
    assert not rm.is_overdue(rm.apply_registered(None, appeal()), NOW)  # no deadline yet: not overdue


# ---- median, counts, top addresses --------------------------------------------------------------


@pytest.mark.parametrize(("values", "expected"), [
    ([], None), ([4.0], 4.0), ([5.0, 1.0], 3.0), ([30.0, 2.0, 50.0, 5.0], 17.5), ([3, 1, 2], 2.0),
])
def test_median(values, expected):
    assert report.median(values) == expected


@pytest.mark.parametrize("histogram", [
    [], [(4, 1)], [(5, 1), (1, 1)], [(30, 1), (2, 1), (50, 1), (5, 1)], [(7, 3)], [(1, 1), (9, 2)], [(1, 2), (9, 2)],
    [(3, 5), (1, 4), (8, 0), (2, 1)], [(i, i % 3) for i in range(30)], [(10, 1000), (20, 999)],
])
def test_weighted_median_equals_the_median_of_the_expanded_values(histogram):
    expanded = [float(v) for v, n in histogram for _ in range(n)]
    assert report.weighted_median(histogram) == report.median(expanded)


def test_counts_name_missing_keys_and_order_by_size():
    rows = [{"_id": "b", "n": 2}, {"_id": None, "n": 1}, {"_id": "a", "n": 2}, {"_id": "c", "n": 5}]
    assert list(report.counts(rows).items()) == [("c", 5), ("a", 2), ("b", 2), ("unknown", 1)]


def test_top_addresses_rank_by_count_then_house_key_and_cut_at_the_limit():
    rows = [{"_id": f"h{i:02d}", "n": i % 4, "address": f"ул. {i}"} for i in range(20)] + [{"_id": None, "n": 99}]
    top = report.top_addresses(rows, 5)
    assert [(t["house_key"], t["count"]) for t in top] == [("h03", 3), ("h07", 3), ("h11", 3), ("h15", 3), ("h19", 3)]
    assert top[0] == {"house_key": "h03", "address": "ул. 3", "count": 3}


def test_summary_shape_from_facet_rows():
    facet = {"totals": [{"_id": None, "n": 4, "overdue": 1, "answered": 3}], "channel": [{"_id": "gis", "n": 4}],
             "category": [], "party": [{"_id": None, "n": 4}], "district": [], "status": [],
             "houses": [{"_id": "fias:x", "n": 4, "address": "ул. Мира, 1"}],
             "minutes": [{"_id": 120, "n": 1}, {"_id": 1047, "n": 1}, {"_id": 3000, "n": 1}]}
    s = report.shape_summary(facet, report.Filters(tz="Asia/Yekaterinburg"), NOW)
    assert s["overdue"] == {"count": 1, "share": 0.25}
    assert s["answered"] == {"count": 3, "median_hours_to_answer": 17.45}
    assert s["by_party"] == {"unknown": 4} and s["top_addresses"][0]["count"] == 4
    empty = report.shape_summary(None, report.Filters(), NOW)
    assert (empty["total"], empty["overdue"]["share"], empty["answered"]["median_hours_to_answer"]) == (0, 0.0, None)


# ---- filters ------------------------------------------------------------------------------------


def test_filters_are_local_days_on_the_registration_time():
    f = report.parse_filters({"from": ["2026-01-10"], "to": ["2026-01-12"], "channel": ["hotline"],
                              "district": ["d-len"]}, "Asia/Yekaterinburg")
    m = f.match()
    assert m["registered_at"] == {"$gte": datetime(2026, 1, 9, 19, 0, tzinfo=UTC),
                                  "$lt": datetime(2026, 1, 12, 19, 0, tzinfo=UTC)}
    assert (m["channel"], m["district_id"]) == ("hotline", "d-len")
    assert f.period()["from"] == "2026-01-10"
    assert report.parse_filters({}, "Europe/Moscow").match() == {"registered_at": {"$gte": report.EPOCH}}
    assert report.parse_filters({"district": ["unknown"]}, "UTC").match()["district_id"] is None
    assert report.parse_filters({"from": ["2026-01-10T08:00:00+05:00"]}, "UTC").date_from == date(2026, 1, 10)


@pytest.mark.parametrize(("params", "bad"), [
    ({"from": ["yesterday"]}, ["from"]),
    ({"channel": ["pigeon"]}, ["channel"]),
    ({"from": ["2026-02-01"], "to": ["2026-01-01"]}, ["to"]),
    ({"from": ["x"], "to": ["y"], "channel": ["z"]}, ["from", "to", "channel"]),
])
def test_bad_filters_are_named(params, bad):
    with pytest.raises(report.FilterError) as e:
        report.parse_filters(params, "UTC")
    assert e.value.fields == bad


# ---- CSV ----------------------------------------------------------------------------------------


def test_csv_escapes_quotes_commas_newlines_and_formulas():
    assert report.csv_cell("=HYPERLINK(\"http://x\")") == "'=HYPERLINK(\"http://x\")"
    assert report.csv_cell("-1+2") == "'-1+2" and report.csv_cell("@SUM(A1)") == "'@SUM(A1)"
    assert (report.csv_cell(None), report.csv_cell(True), report.csv_cell(False)) == ("", "true", "false")
    text = csv_text([["ул. Мира, 1", 'дом "А"', "строка\nвторая", "'=1"]], report.CSV_COLUMNS)
    assert text.startswith(",".join(report.CSV_COLUMNS) + "\r\n")
    assert text.endswith('"ул. Мира, 1","дом ""А""","строка\nвторая",\'=1\r\n')
    assert list(csv.reader(io.StringIO(text)))[1] == ["ул. Мира, 1", 'дом "А"', "строка\nвторая", "'=1"]


def test_csv_row_has_the_columns_in_order_and_the_overdue_verdict():
    d = rm.apply_assigned(rm.apply_registered(None, appeal()), assigned())
    d = rm.apply_planned(d, planned(NOW - timedelta(days=1)))
    row = report.csv_row(d, NOW)
    assert dict(zip(report.CSV_COLUMNS, row, strict=True)) == {
        "registration_number": "ZH-2026-0000001", "channel": "hotline", "category": "heating", "emergency": "true",
        "party_id": "uk-1", "district_id": "d-len", "house_key": "addr:г пермь ул ленина д 10",
        "address": "г. Пермь, ул. Ленина, д. 10", "registered_at": "2026-01-12T09:00:00+00:00",
        "due_at": "2026-01-31T09:00:00+00:00", "answered_at": "", "status": "registered", "overdue": "true",
    }


# ---- the dashboard page -------------------------------------------------------------------------


def test_dashboard_page_is_self_contained_and_its_csp_allows_only_itself():
    body, headers = dashboard_page()
    html = body.decode()
    assert "<script src" not in html and "http://" not in html.replace("http://www.w3.org/2000/svg", "")
    assert "https://" not in html
    for label in ("Обращения по каналам", "по категориям", "Просрочено", "Медиана времени ответа", "Проблемные адреса"):
        assert label in html
    csp = headers["content-security-policy"]
    assert "default-src 'none'" in csp and csp.count("'sha256-") == 2 and "unsafe" not in csp


def test_csv_downloads_share_one_shape():
    """Every CSV download of every service: an attachment, never cached, never sniffed; a ';' file for Excel in a
    Russian locale quotes as RFC 4180 says."""
    from zhkh_runtime.csvfile import attachment_headers

    assert attachment_headers("x.csv") == {"content-disposition": 'attachment; filename="x.csv"',
                                           "cache-control": "no-store", "x-content-type-options": "nosniff"}
    assert csv_text([["a;b", "1,5"]], ("x", "y"), delimiter=";") == 'x;y\r\n"a;b";1,5\r\n'
