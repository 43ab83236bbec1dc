"""Silences: alerts that match are not mailed while a time window holds.

A window is judged at the alert's ``event_time`` (when the claim was made), converted to
the window's time zone, not at the time the mail would go out: the decision is then the
same however late the mail sink reads the alert (after an SMTP outage, a restart or a
rebalance), and a month-end window silences month-end claims. Every condition given must
hold: ``starts_at``/``ends_at`` bound a one-off window; ``weekdays``, ``days_of_month``
and ``times`` make it recur (e.g. month-end: ``days_of_month: ["28-31", 1]``; weekends:
``weekdays: [sat, sun]``; nights: ``times: "22:00-06:00"``).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, time
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AwareDatetime, Field, field_validator, model_validator

from config.base import Strict
from config.matchers import Matcher

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


def _day_range(item: int | str) -> range:
    """``12`` or ``"28-31"`` as the days of the month it names."""
    if isinstance(item, int):
        first = last = item
    else:
        text_first, _, text_last = item.partition("-")
        try:
            first, last = int(text_first), int(text_last or text_first)
        except ValueError:
            raise ValueError(f"expected a day 1-31 or a range like '28-31', got {item!r}") from None
    if not 1 <= first <= last <= 31:
        raise ValueError(f"days must be 1-31 and a range must rise, got {item!r}")
    return range(first, last + 1)


def _clock(text: str) -> time:
    try:
        return time.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"expected a time of day like 22:00, got {text!r}") from None


class TimeWindow(Strict):
    """When a silence holds; no condition at all means always."""

    starts_at: AwareDatetime | None = None
    ends_at: AwareDatetime | None = None
    weekdays: tuple[Weekday, ...] = ()
    days_of_month: tuple[int | str, ...] = ()
    times: str | None = Field(None, description='"HH:MM-HH:MM", may wrap past midnight')
    timezone: str = Field("Asia/Shanghai", description="IANA zone the recurring parts use")

    @field_validator("days_of_month")
    @classmethod
    def _days(cls, value: tuple[int | str, ...]) -> tuple[int | str, ...]:
        for item in value:
            _day_range(item)
        return value

    @field_validator("times")
    @classmethod
    def _times(cls, value: str | None) -> str | None:
        if value is not None:
            start, sep, end = value.partition("-")
            if not sep:
                raise ValueError(f"expected a range like 22:00-06:00, got {value!r}")
            _clock(start), _clock(end)
        return value

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r} (e.g. Asia/Shanghai)") from None
        return value

    @model_validator(mode="after")
    def _ordered(self) -> TimeWindow:
        if self.starts_at and self.ends_at and self.ends_at <= self.starts_at:
            raise ValueError(f"ends_at {self.ends_at} must be after starts_at {self.starts_at}")
        return self

    def contains(self, moment: datetime) -> bool:
        """Whether the aware datetime ``moment`` lies in this window."""
        if self.starts_at is not None and moment < self.starts_at:
            return False
        if self.ends_at is not None and moment >= self.ends_at:
            return False
        local = moment.astimezone(ZoneInfo(self.timezone))
        if self.weekdays and WEEKDAYS[local.weekday()] not in self.weekdays:
            return False
        if self.days_of_month and not any(
            local.day in _day_range(item) for item in self.days_of_month
        ):
            return False
        if self.times is not None:
            start_text, _, end_text = self.times.partition("-")
            start, end, now = _clock(start_text), _clock(end_text), local.time()
            inside = start <= now < end if start <= end else (now >= start or now < end)
            if not inside:
                return False
        return True


class Silence(Strict):
    """Matching alerts are not mailed while ``window`` holds (their records settle)."""

    match: Matcher = Matcher()
    window: TimeWindow = TimeWindow()
    comment: str = Field("", description="why, and who to ask")

    def silences(self, alert: Mapping[str, Any]) -> bool:
        """Whether this silence applies to ``alert`` (judged at its event time)."""
        if not self.match.matches(alert):
            return False
        try:
            moment = datetime.fromisoformat(str(alert.get("event_time")))
        except ValueError:
            return False  # only the worker writes alerts: their event times parse
        return self.window.contains(moment)
