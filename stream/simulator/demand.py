"""How many jobs each outlet gets per segment and day: baseline volume x mix x season x
weekday x daily noise x legitimate patterns, as an expected-count array (days, outlets,
segments) from which jobs.py draws Poisson counts.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from stream.simulator.catalogue import (
    AC,
    INSTALL,
    MAINTENANCE,
    N_CATEGORIES,
    N_SEGMENTS,
    N_SERVICES,
    REPAIR,
    WEEKEND_FACTOR,
    segment,
)
from stream.simulator.clock import Clock
from stream.simulator.patterns import PatternPlan
from stream.simulator.world import World

WATER_HEATER = 3


def _bump(doy: float, centre: float, width: float) -> float:
    return float(np.exp(-0.5 * ((doy - centre) / width) ** 2))


def season_factors(clock: Clock) -> npt.NDArray[np.float64]:
    """(days, segments) seasonal multipliers: the summer air-conditioner peak ramps up
    through June to late July; water heaters dip in summer."""
    out = np.ones((clock.days, N_SEGMENTS))
    for day in range(clock.days):
        doy = clock.day_of_year(day)
        summer = _bump(doy, 201.0, 30.0)
        out[day, segment(INSTALL, AC)] = 1.0 + 1.8 * summer
        out[day, segment(REPAIR, AC)] = 1.0 + 0.9 * summer
        out[day, segment(MAINTENANCE, AC)] = 1.0 + 0.6 * _bump(doy, 160.0, 25.0)
        for service in range(N_SERVICES):
            out[day, segment(service, WATER_HEATER)] *= 1.0 - 0.2 * summer
    return out


def weekday_factors(clock: Clock) -> npt.NDArray[np.float64]:
    """(days, segments) weekday/weekend multipliers, per service."""
    weekend = np.repeat(np.array(WEEKEND_FACTOR), N_CATEGORIES)
    return np.array(
        [weekend if clock.is_weekend(d) else np.ones(N_SEGMENTS) for d in range(clock.days)]
    )


def pattern_factors(world: World, clock: Clock, plan: PatternPlan) -> npt.NDArray[np.float64]:
    """(days, outlets, segments) multipliers from region surges and volume steps."""
    out = np.ones((clock.days, len(world.outlets), N_SEGMENTS))
    region_of = np.array([o.region for o in world.outlets])
    ac_segments = [segment(INSTALL, AC), segment(REPAIR, AC)]
    for surge in plan.surges:
        members = np.flatnonzero(region_of == surge.region)
        for day in range(surge.first_day, surge.last_day + 1):
            edge = day in (surge.first_day, surge.last_day)
            factor = 1.0 + (surge.factor - 1.0) * (0.6 if edge else 1.0)
            for k in ac_segments:
                out[day, members, k] *= factor
    for step in plan.steps:
        out[step.day :, step.outlet, :] *= step.factor
    return out


def expected_counts(
    rng: np.random.Generator, world: World, clock: Clock, plan: PatternPlan
) -> npt.NDArray[np.float64]:
    """(days, outlets, segments) expected number of new jobs."""
    noise = rng.gamma(12.0, 1.0 / 12.0, size=(clock.days, len(world.outlets)))
    lam = (
        world.volume[None, :, None]
        * world.mix[None, :, :]
        * season_factors(clock)[:, None, :]
        * weekday_factors(clock)[:, None, :]
        * noise[:, :, None]
        * pattern_factors(world, clock, plan)
    )
    return np.asarray(lam, dtype=np.float64)
