"""Simulated time: integer seconds since the first midnight of the run, in China Standard
Time (+08:00), and its RFC 3339 text.

Integer seconds keep generation vectorised and ordering exact; formatting is cached per
day because it runs once per event.
"""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import numpy.typing as npt

DAY = 86_400
HOUR = 3_600
MINUTE = 60
OFFSET = "+08:00"


class Clock:
    """Converts run seconds to calendar facts and RFC 3339 strings for one start date."""

    def __init__(self, start: date, days: int) -> None:
        self.start = start
        self.days = days
        self.end = days * DAY
        self._day_text: dict[int, str] = {}

    def date_of(self, day: int) -> date:
        """Calendar date of run day ``day`` (0 = start)."""
        return self.start + timedelta(days=day)

    def is_weekend(self, day: int) -> bool:
        """Saturday or Sunday."""
        return self.date_of(day).weekday() >= 5

    def day_of_year(self, day: int) -> int:
        """1-based day of the year of run day ``day``."""
        return self.date_of(day).timetuple().tm_yday

    def month_last_days(self) -> list[int]:
        """Run days (possibly beyond the window) that are the last day of a month touching
        the window."""
        out: list[int] = []
        for day in range(self.days):
            if self.date_of(day + 1).day == 1:
                out.append(day)
        if not out or out[-1] < self.days - 1:
            day = self.days - 1
            while self.date_of(day + 1).day != 1:
                day += 1
            out.append(day)
        return out

    def fmt(self, t: int) -> str:
        """RFC 3339 text, seconds precision, +08:00 offset."""
        day, sec = divmod(t, DAY)
        text = self._day_text.get(day)
        if text is None:
            text = self.date_of(day).isoformat()
            self._day_text[day] = text
        hour, rem = divmod(sec, HOUR)
        minute, second = divmod(rem, MINUTE)
        return f"{text}T{hour:02d}:{minute:02d}:{second:02d}{OFFSET}"

    def fmt_many(self, times: npt.NDArray[np.int64]) -> list[str]:
        """``fmt`` for a whole array at once (vectorised)."""
        base = np.datetime64(self.start.isoformat(), "s")
        stamps = np.datetime_as_string(base + times.astype("timedelta64[s]"), unit="s")
        return [text + OFFSET for text in stamps.tolist()]
