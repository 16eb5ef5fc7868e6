"""The working-day calendar behind the statutory clocks (DOMAIN.md §1.4)."""

from __future__ import annotations

from datetime import datetime

import pytest

from flows.workdays import CHINA, Calendar


def at(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=CHINA).timestamp()


def day(ts: float) -> str:
    return datetime.fromtimestamp(ts, CHINA).strftime("%Y-%m-%d %H:%M:%S")


@pytest.mark.parametrize("received,days,deadline", [
    # an ordinary week: the day of receipt is not counted
    ("2026-12-03 10:00", 7, "2026-12-14 23:59:59"),
    # across National Day (10-01..10-07 off) and the 调休 Saturday 10-10, which is a working day
    ("2026-09-28 10:00", 7, "2026-10-13 23:59:59"),
    # received on the holiday itself
    ("2026-10-03 09:00", 1, "2026-10-08 23:59:59"),
    # 举报 核查: 15 working days
    ("2026-12-03 10:00", 15, "2026-12-24 23:59:59"),
])
def test_working_days(received, days, deadline):
    assert day(Calendar().add_workdays(at(received), days)) == deadline


def test_make_up_saturday_counts_and_an_ordinary_saturday_does_not():
    calendar = Calendar()
    assert calendar.is_workday(datetime(2026, 10, 10).date())  # 调休
    assert not calendar.is_workday(datetime(2026, 10, 17).date())
    assert not calendar.is_workday(datetime(2026, 10, 1).date())


def test_sixty_calendar_days_for_mediation():
    assert day(Calendar().add_days(at("2026-12-03 10:00"), 60)) == "2027-02-01 23:59:59"


def test_a_year_without_official_data_falls_back_and_config_can_fill_it():
    calendar = Calendar()
    if calendar.known(2027):
        pytest.skip("the installed chinesecalendar already knows 2027")
    assert not calendar.is_workday(datetime(2027, 1, 1).date())  # 元旦 is a fixed date
    assert calendar.is_workday(datetime(2027, 2, 8).date())  # a Monday; 春节 is lunar: needs config
    configured = Calendar(holidays=["2027-02-08"], workdays=["2027-02-06"])
    assert not configured.is_workday(datetime(2027, 2, 8).date())
    assert configured.is_workday(datetime(2027, 2, 6).date())  # a make-up Saturday


def test_workdays_between():
    assert Calendar().workdays_between(at("2026-09-28 10:00"), at("2026-10-13 12:00")) == 7
