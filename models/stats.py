"""Time-decayed, outlier-robust running statistics: the building block of every baseline.

A ``Decayed`` keeps four floats — weight, mean, sum of squared deviations, last event time —
so thousands fit in an outlet's state. Old evidence fades with a half-life in *event* time
(not arrival time), so replaying history gives the same baselines as living through it.
Updates are winsorised at ``CLIP_SIGMAS`` once a baseline has some weight, so a single
extreme value cannot drag the baseline towards itself; values the detectors flagged are not
learned at all (the caller decides, see models/engine.py).
"""

from __future__ import annotations

import math

LN10 = math.log(10.0)
CLIP_SIGMAS = 3.0
CLIP_AFTER_WEIGHT = 4.0
"""Winsorise only once this much weight is in: before that the spread is not known yet."""


class Decayed:
    """Exponentially time-decayed mean and variance of a stream of values."""

    __slots__ = ("mean", "ss", "ts", "weight")

    def __init__(
        self, weight: float = 0.0, mean: float = 0.0, ss: float = 0.0, ts: float = 0.0
    ) -> None:
        self.weight = weight
        self.mean = mean
        self.ss = ss
        self.ts = ts

    @property
    def variance(self) -> float:
        return self.ss / self.weight if self.weight > 0 else 0.0

    def decayed_weight(self, ts: float, half_life: float) -> float:
        """The weight the evidence will have at event time ``ts``."""
        if ts <= self.ts:
            return self.weight
        return self.weight * 2.0 ** (-(ts - self.ts) / half_life)

    def update(self, value: float, ts: float, half_life: float, floor: float = 0.0) -> None:
        """Learn ``value`` observed at event time ``ts``; late events do not rewind time."""
        if ts > self.ts:
            decay = 2.0 ** (-(ts - self.ts) / half_life) if self.weight else 1.0
            self.weight *= decay
            self.ss *= decay
            self.ts = ts
        if self.weight >= CLIP_AFTER_WEIGHT:
            limit = CLIP_SIGMAS * max(math.sqrt(self.variance), floor)
            value = min(max(value, self.mean - limit), self.mean + limit)
        self.weight += 1.0
        delta = value - self.mean
        self.mean += delta / self.weight
        self.ss += delta * (value - self.mean)

    def to_list(self) -> list[float]:
        return [round(self.weight, 4), self.mean, self.ss, self.ts]

    @classmethod
    def from_list(cls, values: list[float]) -> Decayed:
        return cls(*values)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Decayed) and self.to_list() == other.to_list()

    def __repr__(self) -> str:
        return f"Decayed(w={self.weight:.2f}, mean={self.mean:.4f}, sd={self.variance**0.5:.4f})"


Estimate = tuple[float, float, float]
"""(mean, variance, weight) of a baseline as it stands at some event time."""

NOTHING: Estimate = (0.0, 0.0, 0.0)


def estimate(stat: Decayed | None, ts: float, half_life: float) -> Estimate:
    """``stat`` as it stands at event time ``ts`` (NOTHING when absent)."""
    if stat is None or stat.weight <= 0:
        return NOTHING
    return stat.mean, stat.variance, stat.decayed_weight(ts, half_life)


def shrink(own: Estimate, prior: Estimate, prior_weight: float) -> Estimate:
    """``own`` shrunk towards ``prior``, which counts as at most ``prior_weight``
    observations: a newcomer is judged by the prior and its own evidence takes over as it
    accrues. The variance includes the gap between the two means: while they disagree,
    the estimate is honestly less certain."""
    own_mean, own_var, own_weight = own
    prior_mean, prior_var, prior_weight = prior[0], prior[1], min(prior_weight, prior[2])
    if prior_weight <= 0:
        return own
    if own_weight <= 0:
        return prior_mean, prior_var, prior_weight
    total = own_weight + prior_weight
    gap = own_mean - prior_mean
    mean = (own_weight * own_mean + prior_weight * prior_mean) / total
    variance = (
        own_weight * own_var
        + prior_weight * prior_var
        + own_weight * prior_weight / total * gap * gap
    ) / total
    return mean, variance, total


class Tail:
    """How often a detector's statistic exceeds ``START`` on normal traffic and by how much:
    an exponential tail fitted online and decayed in event time. It turns a statistic into
    a probability calibrated on this data rather than on an assumed law, so a heavy-tailed
    feature earns no more alarms than a tight one. Starts from a prior (5% beyond START,
    0.5 beyond it on average) so the first scores are neither wild nor mute."""

    __slots__ = ("excess", "over", "total", "ts")

    START = 2.0
    PRIOR_TOTAL = 200.0
    PRIOR_OVER = 10.0
    PRIOR_EXCESS = 5.0
    EXCESS_CAP = 2.0

    def __init__(
        self,
        total: float = PRIOR_TOTAL,
        over: float = PRIOR_OVER,
        excess: float = PRIOR_EXCESS,
        ts: float = 0.0,
    ) -> None:
        self.total = total
        self.over = over
        self.excess = excess
        self.ts = ts

    def learn(self, value: float, ts: float, half_life: float) -> None:
        """Count ``value`` (a statistic of a claim judged normal) at event time ``ts``."""
        if ts > self.ts:
            if self.ts:
                # Decay towards the prior, not towards nothing: a quiet spell forgets old
                # evidence without making the tail overconfident.
                decay = 2.0 ** (-(ts - self.ts) / half_life)
                self.total = self.PRIOR_TOTAL + (self.total - self.PRIOR_TOTAL) * decay
                self.over = self.PRIOR_OVER + (self.over - self.PRIOR_OVER) * decay
                self.excess = self.PRIOR_EXCESS + (self.excess - self.PRIOR_EXCESS) * decay
            self.ts = ts
        self.total += 1.0
        if value > self.START:
            self.over += 1.0
            # Capped: a few extreme values (anomalies that slipped through) must not make
            # the tail look heavy and blunt every later judgement.
            self.excess += min(value - self.START, self.EXCESS_CAP)

    def surprise(self, value: float) -> float:
        """-log10 of the probability of a statistic at least ``value`` on normal traffic."""
        if value <= self.START:
            return 0.0
        mean_excess = self.excess / self.over
        return -math.log10(self.over / self.total) + (value - self.START) / mean_excess / LN10

    def z_for(self, surprise: float) -> float:
        """The statistic at which ``surprise`` is reached (inverse of ``surprise``)."""
        base = -math.log10(self.over / self.total)
        return self.START + max(0.0, surprise - base) * LN10 * self.excess / self.over

    def to_list(self) -> list[float]:
        return [self.total, self.over, self.excess, self.ts]

    @classmethod
    def from_list(cls, values: list[float]) -> Tail:
        return cls(*values)
