"""Legitimate-but-odd behaviour the detectors must NOT flag: a regional heatwave surge,
outlets whose volume steps up for good, and outlets that settle in a month-end batch.

Chosen here (which region, which outlets, which days); applied by demand.py (surge, step)
and jobs.py (batch timing); reported in patterns.jsonl by output.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from stream.simulator.clock import Clock
from stream.simulator.world import World


@dataclass(frozen=True, slots=True)
class RegionSurge:
    """Heatwave: air-conditioner install and repair demand x ``factor`` in one region."""

    region: int
    first_day: int
    last_day: int
    factor: float


@dataclass(frozen=True, slots=True)
class VolumeStep:
    """An outlet took over a neighbour's area: all its demand x ``factor`` from ``day`` on."""

    outlet: int
    day: int
    factor: float


@dataclass(slots=True)
class PatternPlan:
    """All legitimate patterns of one run."""

    surges: list[RegionSurge] = field(default_factory=list)
    steps: list[VolumeStep] = field(default_factory=list)
    batch_outlets: list[int] = field(default_factory=list)
    """Outlets that hold settlements and submit them on the last 1-2 days of the month."""


def _season_bump(clock: Clock, day: int) -> float:
    return float(np.exp(-0.5 * ((clock.day_of_year(day) - 201) / 30.0) ** 2))


def plan_patterns(
    rng: np.random.Generator, world: World, clock: Clock, warmup_days: int
) -> PatternPlan:
    """Choose the legitimate patterns for this run (may be empty for very short runs)."""
    plan = PatternPlan()
    days = clock.days
    n_out = len(world.outlets)
    first = min(warmup_days, max(0, days - 3))
    if days - first >= 3:
        n_surge = min(len(world.regions), max(1, round(days / 45)))
        starts = np.arange(first, days - 2)
        weight = np.array([_season_bump(clock, int(d)) + 0.05 for d in starts])
        regions = rng.choice(len(world.regions), size=n_surge, replace=False)
        for region in np.sort(regions):
            start = int(rng.choice(starts, p=weight / weight.sum()))
            length = int(rng.integers(5, 11))
            last = min(start + length - 1, days - 1)
            factor = round(float(rng.uniform(2.0, 4.0)), 2)
            plan.surges.append(RegionSurge(int(region), start, last, factor))
    n_step = min(int(rng.integers(2, 5)), n_out // 4)
    if n_step and days - first >= 5:
        chosen = rng.choice(n_out, size=n_step, replace=False)
        for outlet in np.sort(chosen):
            day = int(rng.integers(first + 1, days - 2))
            plan.steps.append(VolumeStep(int(outlet), day, round(float(rng.uniform(1.8, 2.3)), 2)))
    stepped = {s.outlet for s in plan.steps}
    free = np.array([o for o in range(n_out) if o not in stepped], dtype=np.int64)
    n_batch = min(max(2, round(n_out * 0.03)), n_out // 5, len(free))
    if n_batch:
        plan.batch_outlets = sorted(int(o) for o in rng.choice(free, size=n_batch, replace=False))
    return plan
