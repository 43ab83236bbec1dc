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


def blend(
    own: Decayed | None, peer: Decayed | None, prior_weight: float, ts: float, half_life: float
) -> tuple[float, float, float]:
    """Mean, variance and effective weight of ``own`` shrunk towards ``peer``.

    The peer baseline counts as ``prior_weight`` observations, so a new outlet is judged by
    its peers and its own evidence takes over as it accrues. The variance includes the gap
    between the two means: while they disagree, the blend is honestly less certain.
    """
    w_own = own.decayed_weight(ts, half_life) if own is not None else 0.0
    if peer is None or peer.weight <= 0:
        if own is None or w_own <= 0:
            return 0.0, 0.0, 0.0
        return own.mean, own.variance, w_own
    w_peer = min(prior_weight, peer.weight)
    if own is None or w_own <= 0:
        return peer.mean, peer.variance, w_peer
    total = w_own + w_peer
    mean = (w_own * own.mean + w_peer * peer.mean) / total
    gap = own.mean - peer.mean
    variance = (
        w_own * own.variance + w_peer * peer.variance + w_own * w_peer / total * gap * gap
    ) / total
    return mean, variance, total
