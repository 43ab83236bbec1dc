"""Legitimate price steps: an outlet's labour tariff rises for good on one day (a new
service contract), by 1.5-1.8x. Its claims look inflated to any detector that learns only
from the data — exactly what reviewers' dismissals must teach (models/feedback.py). Off by
default (``--price-steps``): the default stream's quality bar counts only patterns a
detector can tell from fraud without a reviewer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from stream.simulator.clock import DAY, Clock
from stream.simulator.jobs import Business
from stream.simulator.records import item
from stream.simulator.world import World


@dataclass(frozen=True, slots=True)
class PriceStep:
    """Outlet ``outlet``'s labour x ``factor`` on claims from ``day`` on."""

    outlet: int
    day: int
    factor: float


def plan_price_steps(
    rng: np.random.Generator, world: World, clock: Clock, count: int, warmup_days: int
) -> list[PriceStep]:
    """``count`` outlets (among the busier half, so the pattern repeats) and their days."""
    if count <= 0 or clock.days - warmup_days < 6:
        return []
    by_volume = sorted(range(len(world.outlets)), key=lambda o: -world.outlets[o].volume)
    busy = by_volume[: max(count, len(by_volume) // 2)]
    chosen = rng.choice(busy, size=min(count, len(busy)), replace=False)
    last_day = warmup_days + max(1, (clock.days - warmup_days) // 3)
    return [
        PriceStep(
            int(outlet),
            int(rng.integers(warmup_days + 1, last_day + 1)),
            round(float(rng.uniform(1.5, 1.8)), 2),
        )
        for outlet in np.sort(chosen)
    ]


def apply_price_steps(steps: list[PriceStep], business: Business) -> None:
    """Raise the labour lines of the stepped outlets' claims from their day on."""
    by_outlet = {step.outlet: step for step in steps}
    for claim in business.claims:
        step = by_outlet.get(claim.job.outlet)
        if step is None or claim.time < step.day * DAY:
            continue
        claim.items = [
            item(line.code, line.amount * step.factor, line.part_code, line.quantity)
            if line.code == "labor"
            else line
            for line in claim.items
        ]


def price_step_rows(
    steps: list[PriceStep], world: World, clock: Clock
) -> list[tuple[int, dict[str, Any]]]:
    """(start second, patterns.jsonl row without ``id``) of each step."""
    return [
        (
            step.day * DAY,
            {
                "type": "price_step",
                "region": world.outlets[step.outlet].region_name,
                "outlet_ids": [world.outlets[step.outlet].outlet_id],
                "start": clock.fmt(step.day * DAY),
                "end": clock.fmt(clock.end - 1),
                "factor": step.factor,
                "line": "labor",
            },
        )
        for step in steps
    ]
