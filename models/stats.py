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
from typing import ClassVar

LN10 = math.log(10.0)
CLIP_SIGMAS = 3.0
CLIP_SIGMAS_SQUARED = CLIP_SIGMAS * CLIP_SIGMAS
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
        """Learn ``value`` observed at event time ``ts``; late events do not rewind time.
        (Written with locals and without min/max calls: it runs a few times per claim.)"""
        weight, ss, mean = self.weight, self.ss, self.mean
        if ts > self.ts:
            if weight:
                decay = 2.0 ** ((self.ts - ts) / half_life)
                weight *= decay
                ss *= decay
            self.ts = ts
        if weight >= CLIP_AFTER_WEIGHT:
            variance = ss / weight
            floor2 = floor * floor
            limit2 = CLIP_SIGMAS_SQUARED * (variance if variance > floor2 else floor2)
            delta = value - mean
            if delta * delta > limit2:
                value = mean + math.sqrt(limit2) if delta > 0 else mean - math.sqrt(limit2)
        weight += 1.0
        delta = value - mean
        mean += delta / weight
        self.ss = ss + delta * (value - mean)
        self.mean, self.weight = mean, weight

    def to_list(self) -> list[float]:
        return [self.weight, self.mean, self.ss, self.ts]

    @classmethod
    def from_list(cls, values: list[float]) -> Decayed:
        return cls(*values)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Decayed) and self.to_list() == other.to_list()

    def __repr__(self) -> str:
        return f"Decayed(w={self.weight:.2f}, mean={self.mean:.4f}, sd={self.variance**0.5:.4f})"


class DecayedCounts:
    """Counts in a fixed number of bins, decayed in event time: a histogram of *when*
    things happen (models/season.py). All bins share one reference time, so an observation
    adds its weight relative to it (``2 ** ((ts - ref) / half_life)``) to its bins only;
    the bins are brought to a newer reference once a half-life has passed. Kept as whole
    thousandths (integers): exact and short in the serialised form, and cheap to add.
    Empty until the first observation."""

    __slots__ = ("counts", "ref")

    def __init__(self, counts: list[int] | None = None, ref: float = 0.0) -> None:
        self.counts: list[int] = counts or []  # thousandths of a count
        self.ref = ref

    def add(self, bins: tuple[int, ...], size: int, ts: float, half_life: float) -> None:
        """Count one observation at event time ``ts`` in each of ``bins`` (of ``size``)."""
        counts = self.counts
        if not counts:
            counts = self.counts = [0] * size
            self.ref = ts
        elif ts - self.ref > half_life:
            scale = 2.0 ** ((self.ref - ts) / half_life)
            self.counts = counts = [int(count * scale + 0.5) for count in counts]
            self.ref = ts
        weight = int(1000.0 * 2.0 ** ((ts - self.ref) / half_life) + 0.5)
        for index in bins:
            counts[index] += weight

    def at(self, ts: float, half_life: float) -> list[float]:
        """The counts as they stand at event time ``ts`` (empty when nothing was counted)."""
        scale = 0.001 if ts <= self.ref else 0.001 * 2.0 ** ((self.ref - ts) / half_life)
        return [count * scale for count in self.counts]

    def to_list(self) -> list[float]:
        return [self.ref, *self.counts] if self.counts else []

    @classmethod
    def from_list(cls, values: list[float]) -> DecayedCounts:
        return cls([int(count) for count in values[1:]], values[0]) if values else cls()


Estimate = tuple[float, float, float]
"""(mean, variance, weight) of a baseline as it stands at some event time."""

NOTHING: Estimate = (0.0, 0.0, 0.0)


def estimate(stat: Decayed | None, ts: float, half_life: float) -> Estimate:
    """``stat`` as it stands at event time ``ts`` (NOTHING when absent). ``variance``
    and ``decayed_weight`` written out: this runs a dozen times per claim."""
    if stat is None:
        return NOTHING
    weight = stat.weight
    if weight <= 0:
        return NOTHING
    if ts <= stat.ts:
        return stat.mean, stat.ss / weight, weight
    return stat.mean, stat.ss / weight, weight * 2.0 ** (-(ts - stat.ts) / half_life)


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


TAIL_PRIOR = (200.0, 10.0, 5.0, 0.5, 0.25)
"""A new tail's counts: total, over START, excess over it, over SECOND, excess over it."""


class Tail:
    """How often a detector's statistic exceeds two levels on normal traffic, and by how
    much: a two-piece exponential tail (beyond ``START`` and beyond ``SECOND``) fitted
    online and decayed in event time. It turns a statistic into a probability calibrated
    on this data rather than on an assumed law: a heavy-tailed feature earns no more alarms
    than a tight one, and a bounded one (nothing normal beyond some level) is recognised as
    such. Starts from a prior (5% beyond START, 0.25% beyond SECOND, each exceeded by 0.5
    on average) so the first scores are neither wild nor mute."""

    __slots__ = ("excess", "excess2", "over", "over2", "total", "ts")

    START: ClassVar[float] = 2.0
    SECOND: ClassVar[float] = 3.5
    EXCESS_CAP: ClassVar[float] = 2.0

    def __init__(
        self,
        total: float = TAIL_PRIOR[0],
        over: float = TAIL_PRIOR[1],
        excess: float = TAIL_PRIOR[2],
        over2: float = TAIL_PRIOR[3],
        excess2: float = TAIL_PRIOR[4],
        ts: float = 0.0,
    ) -> None:
        self.total, self.over, self.excess = total, over, excess
        self.over2, self.excess2 = over2, excess2
        self.ts = ts

    def learn(self, value: float, ts: float, half_life: float) -> None:
        """Count ``value`` (a statistic of a claim judged normal) at event time ``ts``."""
        if ts > self.ts:
            if self.ts:
                # Decay towards the prior, not towards nothing: a quiet spell forgets old
                # evidence without making the tail overconfident.
                decay = 2.0 ** (-(ts - self.ts) / half_life)
                p_total, p_over, p_excess, p_over2, p_excess2 = TAIL_PRIOR
                self.total = p_total + (self.total - p_total) * decay
                self.over = p_over + (self.over - p_over) * decay
                self.excess = p_excess + (self.excess - p_excess) * decay
                self.over2 = p_over2 + (self.over2 - p_over2) * decay
                self.excess2 = p_excess2 + (self.excess2 - p_excess2) * decay
            self.ts = ts
        self.total += 1.0
        # Excesses are capped: a few extreme values (anomalies that slipped through) must
        # not make the tail look heavy and blunt every later judgement.
        if value > self.START:
            self.over += 1.0
            self.excess += min(value - self.START, self.EXCESS_CAP)
        if value > self.SECOND:
            self.over2 += 1.0
            self.excess2 += min(value - self.SECOND, self.EXCESS_CAP)

    def surprise(self, value: float) -> float:
        """-log10 of the probability of a statistic at least ``value`` on normal traffic."""
        if value <= self.START:
            return 0.0
        if value <= self.SECOND:
            base, level, rate = self.over / self.total, self.START, self.over / self.excess
        else:
            base, level, rate = self.over2 / self.total, self.SECOND, self.over2 / self.excess2
        return -math.log10(base) + (value - level) * rate / LN10

    def z_for(self, surprise: float) -> float:
        """The statistic at which ``surprise`` is reached (inverse of ``surprise``)."""
        second = self.surprise(self.SECOND)
        if surprise <= second:
            base, level, rate = self.over / self.total, self.START, self.over / self.excess
        else:
            base, level, rate = self.over2 / self.total, self.SECOND, self.over2 / self.excess2
        return level + max(0.0, surprise + math.log10(base)) * LN10 / rate

    def to_list(self) -> list[float]:
        return [self.total, self.over, self.excess, self.over2, self.excess2, self.ts]

    @classmethod
    def from_list(cls, values: list[float]) -> Tail:
        return cls(*values)
