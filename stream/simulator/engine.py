"""The pure simulation: config in, stream and ground truth out, no I/O.

Each stage draws from its own child of one ``SeedSequence(seed)``, so a stage's output
does not depend on how much randomness another stage consumed (e.g. turning on malformed
lines leaves every good line unchanged).
"""

from __future__ import annotations

import gc
import random
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from tqdm import tqdm

from stream.simulator.anomalies import Injector, inject
from stream.simulator.catalogue import fee_table
from stream.simulator.clock import Clock
from stream.simulator.config import SimulationConfig
from stream.simulator.delivery import assign_ids, deliver
from stream.simulator.demand import expected_counts
from stream.simulator.jobs import apply_batches, generate_normal
from stream.simulator.labels import anomaly_labels, pattern_records, summary
from stream.simulator.malformed import mix_in
from stream.simulator.patterns import plan_patterns
from stream.simulator.price_steps import apply_price_steps, plan_price_steps, price_step_rows
from stream.simulator.world import build_world

# Appended stages leave the earlier ones' seeds (and so their output) unchanged.
_STAGES = (
    "world",
    "patterns",
    "demand",
    "jobs",
    "anomalies",
    "delivery",
    "malformed",
    "price_steps",
)


@dataclass(slots=True)
class SimulationResult:
    """The stream (raw lines in arrival order) and its ground truth."""

    events: list[bytes]
    labels: list[dict[str, Any]]
    patterns: list[dict[str, Any]]
    malformed: list[dict[str, Any]]
    fee_table: list[dict[str, Any]]
    summary: dict[str, Any] = field(default_factory=dict)


def _streams(seed: int) -> dict[str, tuple[np.random.Generator, random.Random]]:
    children = np.random.SeedSequence(seed).spawn(len(_STAGES))
    out: dict[str, tuple[np.random.Generator, random.Random]] = {}
    for name, child in zip(_STAGES, children, strict=True):
        rng = np.random.Generator(np.random.PCG64(child))
        out[name] = (rng, random.Random(int(rng.integers(0, 2**63))))
    return out


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while building millions of acyclic objects (it
    would rescan them all repeatedly, ~20 % of the run); restore its previous state."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def simulate(config: SimulationConfig, progress: bool = False) -> SimulationResult:
    """Generate the stream for ``config``; the same config always gives the same bytes."""
    config.validate()
    with _collector_paused():
        return _simulate(config, progress)


def _simulate(config: SimulationConfig, progress: bool) -> SimulationResult:
    streams = _streams(config.seed)
    clock = Clock(config.start, config.days)
    world = build_world(streams["world"][0], config.outlets, config.volume_median)
    plan = plan_patterns(streams["patterns"][0], world, clock, config.warmup_days)
    lam = expected_counts(streams["demand"][0], world, clock, plan)
    days: Iterable[int] = range(config.days)
    if progress:
        days = tqdm(days, desc="days", unit="day")
    rng, py = streams["jobs"]
    biz = generate_normal(rng, py, world, clock, lam, config, plan, days)
    batches = apply_batches(py, biz, clock, plan)
    biz.claims = [c for c in biz.claims if c.time < clock.end]
    for uid, claim in enumerate(biz.claims):
        claim.uid = uid
    rng, py = streams["anomalies"]
    injector = Injector(rng, py, world, clock, biz, config.warmup_days, plan.batch_outlets)
    anomalies = inject(injector, config.anomaly_rate)
    # After injection: an anomaly on a stepped outlet is inflated from its new price level.
    steps = plan_price_steps(
        streams["price_steps"][0], world, clock, config.price_steps, config.warmup_days
    )
    apply_price_steps(steps, biz)
    assign_ids(biz, clock)
    delivered = deliver(streams["delivery"][0], biz, world, clock, config.duplicate_rate, progress)
    lines, malformed = mix_in(delivered.lines, config.malformed, streams["malformed"][1])
    labels = anomaly_labels(anomalies, world, clock)
    patterns = pattern_records(plan, batches, world, clock, price_step_rows(steps, world, clock))
    info = summary(
        seed=config.seed,
        outlets=config.outlets,
        days=config.days,
        start=config.start.isoformat(),
        lines=len(lines),
        kinds=delivered.kinds,
        statuses=delivered.statuses,
        redeliveries=delivered.redeliveries,
        late_completed=delivered.late_completed,
        labels=labels,
        patterns=patterns,
        malformed=malformed,
        regions=len(world.regions),
    )
    return SimulationResult(
        events=lines,
        labels=labels,
        patterns=patterns,
        malformed=malformed,
        fee_table=fee_table(),
        summary=info,
    )
