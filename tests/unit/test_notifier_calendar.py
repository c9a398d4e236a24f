"""Production calendar and deadline regimes on real calendar edge cases."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from notifier.calendar import ProductionCalendar
from notifier.deadlines import DeadlineTable
from zhkh_contracts import Category, PartyKind


@pytest.fixture(scope="module")
def cal() -> ProductionCalendar:
    return ProductionCalendar.load()


@pytest.fixture(scope="module")
def table(cal) -> DeadlineTable:  # noqa: ANN001
    return DeadlineTable.load(calendar=cal)


def test_2026_matches_the_government_decree(cal):
    # Decree of 24.09.2025: 3 and 4 January moved to Fri 9 January and Thu 31 December; 247 working days.
    assert cal.verified(2026)
    assert cal.working_days_in(2026) == 247
    off = [date(2026, 1, d) for d in range(1, 12)] + [date(2026, 12, 31), date(2026, 11, 4), date(2026, 2, 23),
                                                       date(2026, 3, 9), date(2026, 5, 11), date(2026, 6, 12)]
    assert not any(cal.is_working_day(d) for d in off)
    assert cal.is_working_day(date(2026, 1, 12)) and cal.is_working_day(date(2026, 12, 30))


def test_transferred_working_saturday_is_a_working_day(cal):
    assert cal.is_working_day(date(2025, 11, 1))  # Sat 1 Nov 2025 worked, Mon 3 Nov off
    assert not cal.is_working_day(date(2025, 11, 3))
    assert cal.working_days_in(2025) == 247


def test_2027_is_marked_unverified(cal):
    assert not cal.verified(2027)


def test_overrides_win(tmp_path: Path):
    f = tmp_path / "o.toml"
    f.write_text('[years.2027]\nverified = true\ndays_off = ["2027-03-01"]\nworking_days = ["2027-11-13"]\n')
    cal = ProductionCalendar.load(f)
    assert not cal.is_working_day(date(2027, 3, 1)) and cal.is_working_day(date(2027, 11, 13))


def test_add_working_days_across_new_year(cal):
    assert cal.add_working_days(date(2025, 12, 29), 1) == date(2025, 12, 30)
    assert cal.add_working_days(date(2025, 12, 30), 1) == date(2026, 1, 12)  # 31.12 and 1–11.01 are off
    assert cal.add_working_days(date(2026, 12, 30), 1) == date(2027, 1, 11)


YEKAT, MSK, VLAD = "Asia/Yekaterinburg", "Europe/Moscow", "Asia/Vladivostok"


@pytest.mark.parametrize(
    ("kind", "category", "emergency", "rule", "regime"),
    [
        (PartyKind.MANAGING_ORGANISATION, Category.HEATING, False, None, "pp416_written"),
        (PartyKind.MANAGING_ORGANISATION, Category.GAS, True, "gas_smell", "pp416_emergency_localise"),
        (PartyKind.MANAGING_ORGANISATION, Category.SEWERAGE, True, "sewer_flooding", "pp416_sewer_blockage"),
        (PartyKind.RESOURCE_SUPPLIER, Category.HOT_WATER, False, None, "pp354_quality_check"),
        (PartyKind.RESOURCE_SUPPLIER, Category.WASTE, False, None, "pp416_written"),
        (PartyKind.DISTRICT_ADMINISTRATION, Category.LAND, False, None, "fz59"),
        (PartyKind.HOUSING_INSPECTION, Category.MANAGEMENT, False, None, "fz59"),
    ],
)
def test_regime_choice(table, kind, category, emergency, rule, regime):
    assert table.regime_for(kind, category, emergency, rule).name == regime


def due(table, regime, local_registration, tz):  # noqa: ANN001, ANN201
    return table.due(table.regimes[regime], local_registration.replace(tzinfo=ZoneInfo(tz)), tz)


def test_ten_working_days_skip_the_new_year_holidays(table):
    d = due(table, "pp416_written", datetime(2025, 12, 30, 15, 0), YEKAT)
    assert d.local_due.date() == date(2026, 1, 23)
    assert d.due_at == datetime(2026, 1, 23, 18, 59, 59, tzinfo=UTC)  # 23:59:59 at UTC+5


def test_thirty_days_ending_on_a_holiday_move_to_the_next_working_day(table):
    d = due(table, "fz59", datetime(2026, 12, 2, 11, 0), MSK)  # +30 days = 1 January 2027
    assert d.local_due.date() == date(2027, 1, 11)
    plain = due(table, "fz59", datetime(2026, 3, 2, 11, 0), MSK)  # +30 = Wed 1 April 2026
    assert plain.local_due.date() == date(2026, 4, 1)


def test_minutes_are_wall_clock_even_on_holidays(table):
    d = due(table, "pp416_emergency_localise", datetime(2026, 1, 1, 0, 10), VLAD)
    assert d.due_at == datetime(2026, 1, 1, 0, 40, tzinfo=ZoneInfo(VLAD)).astimezone(UTC)


def test_the_party_time_zone_decides_the_day(table):
    # 19:30 UTC on Thursday 15 Jan is 22:30 Thursday in Moscow but 05:30 Friday in Vladivostok.
    at = datetime(2026, 1, 15, 19, 30, tzinfo=UTC)
    msk = table.due(table.regimes["pp416_disclosed_info"], at, MSK)
    vlad = table.due(table.regimes["pp416_disclosed_info"], at, VLAD)
    assert msk.local_due.date() == date(2026, 1, 16)  # next working day after Thursday: Friday
    assert vlad.local_due.date() == date(2026, 1, 19)  # next working day after Friday: Monday


def test_extension_once_by_at_most_the_regime_allows(table):
    d = due(table, "fz59", datetime(2026, 3, 2, 11, 0), MSK)
    e = table.extended(d, 45, MSK)  # 59-ФЗ: at most 30 days
    assert e.local_due.date() == date(2026, 5, 4)  # 1 April + 30 = 1 May (holiday) -> Mon 4 May
    assert e.due_at - d.due_at >= timedelta(days=30)


def test_table_naming_an_unknown_regime_is_refused(tmp_path: Path, cal):
    f = tmp_path / "t.toml"
    f.write_text('[regimes.a]\nkind = "minutes"\namount = 1\n[[apply]]\nregime = "b"\n')
    with pytest.raises(ValueError, match="unknown regimes"):
        DeadlineTable.load(f, cal)


def test_alert_points_for_a_day_term(cal):
    from notifier.planning import alert_points
    from notifier.deadlines import RegimeKind

    start = datetime(2026, 1, 12, 9, 0, tzinfo=ZoneInfo(MSK))
    due = datetime(2026, 1, 26, 23, 59, 59, tzinfo=ZoneInfo(MSK))
    pts = dict(alert_points(start, due, RegimeKind.WORKING_DAYS, MSK, ["50%", "80%", "1wd", "overdue"], cal))
    assert list(pts) == ["50%", "80%", "1wd", "overdue"]
    assert pts["50%"] == start + (due - start) / 2
    assert pts["1wd"] == datetime(2026, 1, 26, 0, 0, tzinfo=ZoneInfo(MSK))  # Mon 26 Jan, a working day
    assert pts["overdue"] == due


def test_minute_terms_have_no_working_day_point_and_late_plans_keep_overdue(cal):
    from notifier.planning import alert_points
    from notifier.deadlines import RegimeKind

    start = datetime(2026, 1, 1, 0, 10, tzinfo=UTC)
    pts = alert_points(start, start + timedelta(minutes=30), RegimeKind.MINUTES, MSK, ["50%", "1wd", "overdue"], cal)
    assert [p for p, _ in pts] == ["50%", "overdue"]
    late = alert_points(start, start, RegimeKind.MINUTES, MSK, ["50%", "overdue"], cal)
    assert late == [("overdue", start)]
    with pytest.raises(ValueError):
        alert_points(start, start, RegimeKind.MINUTES, MSK, ["soon"], cal)


def test_citizen_is_answered_the_way_they_came():
    from notifier.delivery import citizen_target

    hooks = {"chatbot": "http://bot/notify"}
    assert citizen_target("chatbot", "a@b.ru", "+79120000000", hooks).kind == "webhook"
    assert citizen_target("site_form", "a@b.ru", "+79120000000", hooks).address == "a@b.ru"
    assert citizen_target("hotline", None, "+79120000000", hooks).kind == "sms"
    assert citizen_target("paper", None, None, hooks) is None
    assert citizen_target("site_form", "a@b.ru", "+79120000000", hooks, email_enabled=False).kind == "sms"
    assert citizen_target("site_form", "a@b.ru", None, hooks, email_enabled=False, sms_enabled=False) is None


@pytest.mark.parametrize(
    ("utc", "urgent", "expected_utc"),
    [
        (datetime(2026, 1, 15, 20, 30, tzinfo=UTC), False, datetime(2026, 1, 16, 5, 0, tzinfo=UTC)),  # 23:30 MSK
        (datetime(2026, 1, 15, 2, 0, tzinfo=UTC), False, datetime(2026, 1, 15, 5, 0, tzinfo=UTC)),  # 05:00 MSK
        (datetime(2026, 1, 15, 12, 0, tzinfo=UTC), False, datetime(2026, 1, 15, 12, 0, tzinfo=UTC)),  # 15:00 MSK
        (datetime(2026, 1, 15, 20, 30, tzinfo=UTC), True, datetime(2026, 1, 15, 20, 30, tzinfo=UTC)),  # emergency
    ],
)
def test_quiet_hours_hold_citizen_messages_until_morning(utc, urgent, expected_utc):
    from notifier.delivery import not_before, parse_quiet_hours

    assert not_before(utc, MSK, parse_quiet_hours("22:00-08:00"), urgent) == expected_utc
    assert not_before(utc, MSK, parse_quiet_hours(""), urgent) == utc


@pytest.mark.parametrize(
    ("regime", "registered_msk", "due_msk"),
    [
        ("fz59", datetime(2026, 4, 10, 10, 0), datetime(2026, 5, 12, 23, 59, 59)),  # 10.05 Sun, 11.05 off
        ("pp416_written", datetime(2026, 2, 20, 16, 0), datetime(2026, 3, 10, 23, 59, 59)),  # 21–23.02, 7–9.03 off
        ("pp416_disclosed_info", datetime(2026, 6, 11, 12, 0), datetime(2026, 6, 15, 23, 59, 59)),  # 12.06 Fri off
        ("pp416_emergency_localise", datetime(2026, 5, 9, 23, 50), datetime(2026, 5, 10, 0, 20)),
        ("pp416_sewer_blockage", datetime(2026, 12, 31, 23, 0), datetime(2027, 1, 1, 1, 0)),
        ("pp416_emergency_repair", datetime(2026, 11, 1, 9, 0), datetime(2026, 11, 5, 23, 59, 59)),  # 04.11 off
        ("pp354_quality_check", datetime(2026, 3, 8, 20, 30), datetime(2026, 3, 8, 22, 30)),
    ],
)
def test_every_regime_on_holiday_edges(table, regime, registered_msk, due_msk):
    d = due(table, regime, registered_msk, MSK)
    assert d.local_due.replace(tzinfo=None) == due_msk


def test_a_transferred_working_saturday_counts_as_a_working_day(table):
    # Friday 31 Oct 2025: the next working day is Saturday 1 November 2025 (worked instead of Mon 3 Nov)
    d = due(table, "pp416_disclosed_info", datetime(2025, 10, 31, 10, 0), MSK)
    assert d.local_due.date() == date(2025, 11, 1)
    ten = due(table, "pp416_written", datetime(2025, 10, 31, 10, 0), MSK)
    assert ten.local_due.date() == date(2025, 11, 17)  # 1, 5, 6, 7, 10–14, 17 Nov: Sat 1 counted, 3 and 4 not
