"""Frequency detector: bursts of fabricated jobs — many orders created and completed within
minutes by one engineer.

A real job takes travel and work, so one engineer rarely completes a job soon after it was
created (a *quick* job), and almost never many within a few hours. Each engineer's usual
rate of quick jobs is learned (decayed in event time) and spread over the week by the
outlet's activity profile (models/season.py): more is usual at 14:00 on a weekday than at
03:00. The number of quick jobs in the current window is judged against that with a
Poisson tail. The expectation has a floor for engineers with little history,
``min_rate_per_window``, lowered in windows quieter than the outlet's average (at night
even a newcomer's quick jobs are rarer) but never raised in busy ones: a floor guards
against an unknown rate, and busy hours are where fabricated jobs hide. A region surge,
an outlet taking over a neighbour's area or a month-end batch of settlements adds volume
but not quick jobs by one engineer, so they do not alert.

The burst is flagged on the order event that makes it surprising — minutes into the
burst, before its settlements arrive — and every settlement claiming one of its jobs is
flagged too (models/engine.py).
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

from config.rules import Rules
from models import season
from models.detectors.base import DAY, Context
from models.events import OrderEvent
from models.findings import Finding, Reason
from models.state import EngineerActivity

LN2 = math.log(2.0)
QUICK_RATE_HALF_LIFE = 14 * DAY
WINDOWS_ALLOWANCE = math.log10(24.0)
"""Multiple-test allowance: windows are judged continually, about a day's worth at a time."""


def poisson_surprise(count: int, rate: float) -> float:
    """-log10 P(X >= count) for X ~ Poisson(rate), stable for small probabilities."""
    if count <= 0:
        return 0.0
    # P(X >= k) = sum_{j>=k} e^-r r^j / j!; sum the first terms in log space.
    log_term = -rate + count * math.log(rate) - math.lgamma(count + 1)
    total, term = 1.0, 1.0
    for j in range(count + 1, count + 60):
        term *= rate / j
        total += term
        if term < 1e-12 * total:
            break
    return -(log_term + math.log(total)) / math.log(10.0)


class FrequencyDetector:
    """Quick jobs by one engineer piling up in a window, against that engineer's usual."""

    name: ClassVar[str] = "frequency"

    def __init__(self, rules: Rules) -> None:
        self.rules = rules
        self.quick_seconds = rules.frequency.quick_job_minutes * 60.0
        self.window_seconds = rules.frequency.window_minutes * 60.0

    def is_quick_completion(self, ctx: Context) -> bool:
        event, record = ctx.event, ctx.record
        return (
            isinstance(event, OrderEvent)
            and event.status == "completed"
            and event.engineer_id is not None
            and record.created_ts is not None
            and event.ts - record.created_ts <= self.quick_seconds
        )

    def window(self, ctx: Context) -> tuple[EngineerActivity | None, list[list[Any]]]:
        """The engineer's activity and their quick jobs in the window ending at this event
        (this one included), without changing the state."""
        event = ctx.event
        assert isinstance(event, OrderEvent) and event.engineer_id is not None
        activity = ctx.outlet.engineers.get(event.engineer_id)
        start = event.ts - self.window_seconds
        recent = [job for job in (activity.recent if activity else []) if job[0] >= start]
        if not any(job[1] == event.order_id for job in recent):
            recent.append([event.ts, event.order_id])
        return activity, recent

    def expected(self, ctx: Context, activity: EngineerActivity | None) -> tuple[float, float]:
        """Quick jobs this engineer usually completes in the window ending at this event,
        and the outlet's activity over the window relative to its weekly average."""
        event = ctx.event
        assert isinstance(event, OrderEvent)
        count = (
            activity.quick_rate.decayed_weight(event.ts, QUICK_RATE_HALF_LIFE) if activity else 0.0
        )
        per_second = count / (QUICK_RATE_HALF_LIFE / LN2)
        profile = season.profile(ctx.outlet, ctx.partition, event.ts, self.rules.season)
        end = season.local_time(event)
        factor = profile.mean(end - self.window_seconds, end)
        floor = self.rules.frequency.min_rate_per_window * min(1.0, factor)
        return max(floor, per_second * self.window_seconds * factor), factor

    def surprise(self, ctx: Context) -> tuple[float, int, float, float]:
        """Surprise, count and expected count of the engineer's quick jobs in the window
        ending at this (quick) completion, and the outlet's activity then (see expected)."""
        activity, recent = self.window(ctx)
        rate, factor = self.expected(ctx, activity)
        if len(recent) < self.rules.frequency.min_burst_jobs:
            return 0.0, len(recent), rate, factor
        surprise = poisson_surprise(len(recent), rate) - WINDOWS_ALLOWANCE
        return surprise, len(recent), rate, factor

    def score_one(self, ctx: Context) -> list[Finding]:
        """A burst finding when the window's quick jobs reach ``low`` severity: a burst
        only worth an info note would just add noise to every one of its claims."""
        if not self.rules.frequency.enabled or not self.is_quick_completion(ctx):
            return []
        event = ctx.event
        assert isinstance(event, OrderEvent) and event.engineer_id is not None
        surprise, count, rate, factor = self.surprise(ctx)
        if surprise * 10.0 < self.rules.severity.low:
            return []
        _, recent = self.window(ctx)
        first = min(recent, key=lambda job: float(job[0]))
        minutes = self.rules.frequency.window_minutes
        return [
            Finding(
                kind="frequency_spike",
                detector=self.name,
                surprise=surprise,
                outlet_id=event.outlet_id,
                key=f"burst|{event.engineer_id}|{first[1]}",
                event_time=event.event_time,
                ts=event.ts,
                order_id=event.order_id,
                reasons=[
                    Reason(
                        detector=self.name,
                        feature="quick_jobs_per_engineer",
                        value=count,
                        expected=round(rate, 2),
                        message=(
                            f"engineer {event.engineer_id} completed {count} jobs within "
                            f"{self.rules.frequency.quick_job_minutes:.0f} min of their creation "
                            f"in {minutes:.0f} min; usual for this engineer at this hour and "
                            f"weekday: {rate:.2f} per {minutes:.0f} min (the outlet's activity "
                            f"then: x{factor:.2f} its weekly average; orders "
                            f"{', '.join(str(j[1]) for j in recent[:12])}"
                            f"{' …' if count > 12 else ''})"
                        ),
                    )
                ],
            )
        ]

    def learn_one(self, ctx: Context) -> None:
        """Remember a quick job in the engineer's window; count it in their usual rate unless
        it belongs to a flagged burst (the engine tells by calling ``remember`` only)."""
        if not self.is_quick_completion(ctx):
            return
        self.remember(ctx, usual=True)

    def remember(self, ctx: Context, usual: bool) -> None:
        """Put this quick job in the engineer's window; ``usual`` also counts it in the rate."""
        event = ctx.event
        assert isinstance(event, OrderEvent) and event.engineer_id is not None
        activity = ctx.outlet.engineers.get(event.engineer_id)
        if activity is None:
            activity = ctx.outlet.engineers[event.engineer_id] = EngineerActivity()
        _, activity.recent = self.window(ctx)
        if usual:
            activity.quick_rate.update(0.0, event.ts, QUICK_RATE_HALF_LIFE)
