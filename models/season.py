"""Seasonal activity profiles: when in the week an outlet's jobs get done.

Jobs follow the clock — they are done in working hours, and weekends differ by service —
so a rate averaged over the week underestimates what is usual at 14:00 on a Tuesday and
overestimates it at 03:00. A profile is compact and multiplicative: the shares of
completed orders by local hour of day (24) and by day of week (7), by the event's own
clock (``event_time`` with its UTC offset), decayed in event time. An hour of the week
has the factor 24 x its hour share x 7 x its day share, so factors average 1 over a week:
a rate per second times a window's length times its mean factor is what the window is
expected to hold.

Robust by construction: a new outlet starts from its region's profile, itself shrunk
towards all outlets', in turn shrunk towards a flat week (each prior worth at most
``peer_prior_weight`` completions, the pattern of ``models.stats.shrink``), so a few
completions never make a sharp profile, and an outlet's own takes over as they accrue.
Quick jobs (models/detectors/frequency.py) are not counted (models/engine.py): a burst of
fabricated jobs must not raise what is usual at its own hour. No hour counts as less than
``min_factor`` of the average, so a quiet hour is unusual, never impossible.

Only the frequency detector uses profiles. Amounts, line items, parts and travel are
deliberately not seasonal: a job's price and distance do not depend on the hour it is
done, and splitting those baselines by hour would only thin out their evidence.
"""

from __future__ import annotations

import math

from config.rules import SeasonRules
from models.events import OrderEvent, utc_offset
from models.state import OutletState, PartitionState
from models.stats import DecayedCounts

HOURS, DAYS = 24, 7
SIZE = HOURS + DAYS  # bins of a profile: hours of day, then days of week (Monday first)
HOUR, DAY = 3600.0, 86400.0
THURSDAY = 3  # 1970-01-01, epoch day 0
ALL = "*"
Shares = tuple[list[float], float]
"""Shares of each bin (hours sum to 1, days sum to 1) and the evidence behind them."""
FLAT: Shares = ([1.0 / HOURS] * HOURS + [1.0 / DAYS] * DAYS, math.inf)
"""The prior of all: the same activity at every hour, as certain as a peer can be."""


def local_time(event: OrderEvent) -> float:
    """The event's time on its own local clock, as epoch seconds."""
    return event.ts + utc_offset(event)


def slot(local: float) -> tuple[int, int]:
    """Hour of day and day of week (Monday 0) of a local time."""
    hours = int(local // HOUR)
    return hours % HOURS, (hours // HOURS + THURSDAY) % DAYS


def learn(
    outlet: OutletState, partition: PartitionState, event: OrderEvent, rules: SeasonRules
) -> None:
    """Count a completed (not quick) order in its outlet's, its region's and all outlets'
    profiles."""
    hour, day = slot(local_time(event))
    bins = (hour, HOURS + day)
    half_life = rules.half_life_days * DAY
    outlet.season.add(bins, SIZE, event.ts, half_life)
    seasons = partition.seasons
    for key in (ALL,) if outlet.region is None else (outlet.region, ALL):
        found = seasons.get(key)
        if found is None:
            found = seasons[key] = DecayedCounts()
        found.add(bins, SIZE, event.ts, half_life)


def _shrunk(counts: list[float], prior: Shares, prior_weight: float) -> Shares:
    """The shares of ``counts`` shrunk towards ``prior``, which counts as at most
    ``prior_weight`` observations (and at most the evidence it has)."""
    if not counts:
        return prior
    weight = min(prior_weight, prior[1])
    own_hours, own_days = sum(counts[:HOURS]), sum(counts[HOURS:])
    if own_hours <= 0 or own_days <= 0:
        return prior
    hours, days = own_hours + weight, own_days + weight
    shares = [
        (count + weight * share) / (hours if index < HOURS else days)
        for index, (count, share) in enumerate(zip(counts, prior[0], strict=True))
    ]
    return shares, hours


class Profile:
    """An outlet's activity by hour of the week, relative to its weekly average."""

    __slots__ = ("days", "floor", "hours")

    def __init__(self, shares: list[float], floor: float) -> None:
        self.hours = [HOURS * share for share in shares[:HOURS]]
        self.days = [DAYS * share for share in shares[HOURS:]]
        self.floor = floor

    def factor(self, local: float) -> float:
        """Activity in the hour of ``local`` (a local time) relative to the average."""
        hour, day = slot(local)
        return max(self.floor, self.hours[hour] * self.days[day])

    def mean(self, start: float, end: float) -> float:
        """The mean factor over the local times from ``start`` to ``end``."""
        if end <= start:
            return self.factor(end)
        total, at = 0.0, start
        while at < end:
            step = min((at // HOUR + 1.0) * HOUR, end)
            total += (step - at) * self.factor(at)
            at = step
        return total / (end - start)


def profile(
    outlet: OutletState, partition: PartitionState, ts: float, rules: SeasonRules
) -> Profile:
    """The outlet's profile as of event time ``ts``: all outlets' shares, shrunk into its
    region's, shrunk into its own (flat, every factor 1, when profiles are disabled)."""
    if not rules.enabled:
        return Profile(FLAT[0], 1.0)
    half_life = rules.half_life_days * DAY
    shares = FLAT
    region = [] if outlet.region is None else [partition.seasons.get(outlet.region)]
    for counts in [partition.seasons.get(ALL), *region, outlet.season]:
        if counts is not None:
            shares = _shrunk(counts.at(ts, half_life), shares, rules.peer_prior_weight)
    return Profile(shares[0], rules.min_factor)
