"""Working days on the Chinese State Council calendar, for the statutory clocks.

The national rules count in working days (受理 within 7, 举报 核查 within 15) and in calendar
days (mediation ends within 60 days of 受理), DOMAIN.md §1.4. Public holidays and the
make-up working days (调休, often a Saturday) come from the ``chinesecalendar`` package,
which is updated each year after the State Council publishes the next year's schedule.

For a year the package does not know yet, the calendar falls back to Monday–Friday and says
so (``Calendar.known(year)``); the config can add holidays and make-up days by hand
(``calendar.holidays`` / ``calendar.workdays``) until the package is upgraded. README
"Clocks" says how to update it.

Counting follows the usual rule for legal periods: the day of receipt is not counted; the
period ends at the end (24:00 China time) of its last day.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone
from typing import Iterable

import chinese_calendar

CHINA = timezone(timedelta(hours=8))
FIXED_HOLIDAYS = {(1, 1), (5, 1), (10, 1), (10, 2), (10, 3)}


class Calendar:
    def __init__(self, holidays: Iterable[str | date] = (), workdays: Iterable[str | date] = ()):
        self.holidays = {_as_date(d) for d in holidays}
        self.workdays = {_as_date(d) for d in workdays}

    def known(self, year: int) -> bool:
        """Whether the package has the official schedule for this year."""
        try:
            chinese_calendar.is_workday(date(year, 6, 1))
            return True
        except NotImplementedError:
            return False

    def is_workday(self, day: date) -> bool:
        if day in self.workdays:
            return True
        if day in self.holidays:
            return False
        try:
            return chinese_calendar.is_workday(day)
        except NotImplementedError:
            # No official schedule for this year yet: the fixed-date statutory holidays
            # (元旦, 劳动节, 国庆) and Monday–Friday; lunar holidays need calendar.holidays.
            return (day.month, day.day) not in FIXED_HOLIDAYS and day.weekday() < 5

    def add_workdays(self, start: float, days: int) -> float:
        """End of the ``days``-th working day after the day of ``start`` (a timestamp)."""
        day = datetime.fromtimestamp(start, CHINA).date()
        counted = 0
        while counted < days:
            day += timedelta(days=1)
            if self.is_workday(day):
                counted += 1
        return end_of(day)

    def add_days(self, start: float, days: int) -> float:
        """End of the ``days``-th calendar day after the day of ``start``."""
        return end_of(datetime.fromtimestamp(start, CHINA).date() + timedelta(days=days))

    def workdays_between(self, start: float, end: float) -> int:
        """Working days after the day of ``start`` up to and including the day of ``end``."""
        day = datetime.fromtimestamp(start, CHINA).date()
        last = datetime.fromtimestamp(end, CHINA).date()
        count = 0
        while day < last:
            day += timedelta(days=1)
            count += self.is_workday(day)
        return count


def end_of(day: date) -> float:
    return datetime.combine(day + timedelta(days=1), time(0), CHINA).timestamp() - 1


def _as_date(value: str | date) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value))
