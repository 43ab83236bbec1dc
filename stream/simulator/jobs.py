"""Normal business: draw each day's jobs from the expected counts, give every job its
lifecycle (created -> dispatched -> completed or cancelled), engineer, parts, rating, and
an honest claim submitted hours to days after completion.

Per-day arrays are drawn with numpy (vectorised); only the per-job record building is a
Python loop. Month-end batch outlets get their claim times re-timed in ``apply_batches``.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from stream.simulator.catalogue import N_SEGMENTS, parts_probability
from stream.simulator.clock import DAY, HOUR, MINUTE, Clock
from stream.simulator.config import SimulationConfig
from stream.simulator.patterns import PatternPlan
from stream.simulator.pricing import draw_parts, normal_items
from stream.simulator.records import Claim, Job
from stream.simulator.world import SERVICE_RADIUS, World

_COMPLETION_DAY_P = np.array([0.40, 0.33, 0.14, 0.07, 0.04, 0.02])
_RATINGS = np.array([5, 4, 3, 2, 1])
_RATING_P = np.array([0.65, 0.20, 0.08, 0.04, 0.03])


@dataclass(slots=True)
class Business:
    """All jobs and claims of a run, in creation order (uids are list positions)."""

    jobs: list[Job] = field(default_factory=list)
    claims: list[Claim] = field(default_factory=list)

    def add_job(self, job: Job) -> Job:
        """Append a job, giving it the next uid."""
        job.uid = len(self.jobs)
        self.jobs.append(job)
        return job

    def add_claim(self, claim: Claim) -> Claim:
        """Append a claim, giving it the next uid."""
        claim.uid = len(self.claims)
        self.claims.append(claim)
        return claim


@dataclass(slots=True)
class MonthEndBatch:
    """The claims one set of outlets uploaded at one month end (a legitimate pattern)."""

    month_end: int
    outlets: list[int] = field(default_factory=list)
    first: int = 0
    last: int = 0


def _created_seconds(rng: np.random.Generator, n: int) -> npt.NDArray[np.int64]:
    """Time of day orders come in: morning and afternoon peaks, 07:00-21:30."""
    morning = rng.random(n) < 0.55
    hours = np.where(morning, rng.normal(10.2, 1.6, n), rng.normal(15.3, 2.0, n))
    outside = (hours < 7.0) | (hours >= 21.5)
    hours = np.where(outside, rng.uniform(8.0, 20.0, n), hours)  # no pile-up at the edges
    return np.asarray(hours * HOUR, dtype=np.int64)


def submission_gap(rng: np.random.Generator, n: int) -> npt.NDArray[np.float64]:
    """Seconds from completion to the settlement: most within 1-3 days, a tail to 10."""
    u = rng.random(n)
    quick = rng.uniform(0.5 * HOUR, 6 * HOUR, n)
    usual = np.clip(rng.lognormal(np.log(26 * HOUR), 0.5, n), 6 * HOUR, 3 * DAY)
    slow = rng.uniform(3 * DAY, 10 * DAY, n)
    return np.where(u < 0.15, quick, np.where(u < 0.8, usual, slow))


def office_hours(rng: np.random.Generator, t: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """Move submissions that fall at night (22:00-08:00) to the next morning."""
    sec = t % DAY
    late = sec >= 22 * HOUR
    early = sec < 8 * HOUR
    morning = (t // DAY + late.astype(np.int64)) * DAY + 8 * HOUR
    shifted = morning + rng.integers(0, 2 * HOUR, t.shape[0])
    return np.where(late | early, shifted, t)


def generate_normal(
    rng: np.random.Generator,
    py: random.Random,
    world: World,
    clock: Clock,
    lam: npt.NDArray[np.float64],
    config: SimulationConfig,
    plan: PatternPlan,
    days: Iterable[int],
) -> Business:
    """Honest jobs and claims for every day in ``days`` (pass a tqdm to show progress)."""
    biz = Business()
    outlets = world.outlets
    chance = [parts_probability(k) for k in range(N_SEGMENTS)]
    batch = set(plan.batch_outlets)
    km_median = np.array([o.km_median for o in outlets])
    km_sigma = np.array([o.km_sigma for o in outlets])
    for day in days:
        counts = rng.poisson(lam[day])
        o_idx, k_idx = np.nonzero(counts)
        reps = counts[o_idx, k_idx]
        o_arr = np.repeat(o_idx, reps)
        k_arr = np.repeat(k_idx, reps)
        n = int(o_arr.shape[0])
        if n == 0:
            continue
        order = rng.permutation(n)  # interleave outlets within the day
        o_arr, k_arr = o_arr[order], k_arr[order]
        created = day * DAY + _created_seconds(rng, n)
        dispatched = created + np.clip(
            rng.lognormal(np.log(40 * MINUTE), 0.9, n), 2 * MINUTE, 10 * HOUR
        ).astype(np.int64)
        cancel = rng.random(n) < config.cancel_rate
        cancel_early = rng.random(n) < 0.3
        cancel_at = np.where(cancel_early, created, dispatched) + np.clip(
            rng.lognormal(np.log(3 * HOUR), 1.0, n), 10 * MINUTE, 3 * DAY
        ).astype(np.int64)
        offset = rng.choice(len(_COMPLETION_DAY_P), size=n, p=_COMPLETION_DAY_P)
        completed = (day + offset) * DAY + rng.integers(int(8.5 * HOUR), 20 * HOUR, n)
        for _ in range(3):  # the visit happens on a later day if dispatch came too late
            too_soon = completed < dispatched + 40 * MINUTE
            completed = np.where(too_soon, completed + DAY, completed)
        engineer_u = rng.random(n)
        # An outlet serves a bounded area: distances spread around its median and stop at
        # its edge (SERVICE_RADIUS x the median).
        spread = rng.lognormal(0.0, km_sigma[o_arr])
        km = np.maximum(0.1, np.round(km_median[o_arr] * np.minimum(spread, SERVICE_RADIUS), 1))
        rated = rng.random(n) < 0.6
        rating = rng.choice(_RATINGS, size=n, p=_RATING_P)
        late = rng.random(n) < config.late_completed_rate
        on_site = late & (rng.random(n) < 0.7)
        gap = submission_gap(rng, n)
        submitted = office_hours(rng, completed + gap.astype(np.int64))
        submitted = np.where(on_site, completed + rng.integers(5 * MINUTE, 2 * HOUR, n), submitted)
        cols = zip(
            o_arr.tolist(),
            k_arr.tolist(),
            created.tolist(),
            dispatched.tolist(),
            cancel.tolist(),
            cancel_early.tolist(),
            cancel_at.tolist(),
            completed.tolist(),
            engineer_u.tolist(),
            km.tolist(),
            rated.tolist(),
            rating.tolist(),
            late.tolist(),
            submitted.tolist(),
            strict=True,
        )
        for (
            o,
            k,
            c_t,
            d_t,
            canc,
            early,
            canc_t,
            comp_t,
            eng_u,
            km_j,
            has_rating,
            stars,
            is_late,
            sub_t,
        ) in cols:
            outlet = outlets[o]
            engineer = outlet.engineers[int(eng_u * len(outlet.engineers))]
            if canc:
                biz.add_job(
                    Job(
                        outlet=o,
                        seg=k,
                        created=c_t,
                        dispatched=None if early else d_t,
                        completed=None,
                        cancelled=canc_t,
                        engineer=engineer,
                    )
                )
                continue
            parts = draw_parts(k, chance[k], py)
            job = biz.add_job(
                Job(
                    outlet=o,
                    seg=k,
                    created=c_t,
                    dispatched=d_t,
                    completed=comp_t,
                    cancelled=None,
                    engineer=engineer,
                    parts=parts,
                    rating=stars if has_rating else None,
                )
            )
            items, travel_km = normal_items(outlet, k, km_j, parts, py)
            biz.add_claim(
                Claim(
                    job=job,
                    time=sub_t,
                    items=items,
                    travel_km=travel_km,
                    late_completed=is_late and o not in batch,
                )
            )
    return biz


def apply_batches(
    py: random.Random, biz: Business, clock: Clock, plan: PatternPlan
) -> list[MonthEndBatch]:
    """Re-time the claims of month-end batch outlets: held until the last 1-2 days of the
    month, then uploaded one after another. Returns the batches that fall in the window."""
    if not plan.batch_outlets:
        return []
    month_ends = clock.month_last_days()
    by_outlet: dict[int, list[Claim]] = {o: [] for o in plan.batch_outlets}
    for claim in biz.claims:
        if claim.job.outlet in by_outlet:
            by_outlet[claim.job.outlet].append(claim)
    batches = [MonthEndBatch(m) for m in month_ends]
    for outlet, claims in by_outlet.items():
        claims.sort(key=lambda c: (c.job.completed or 0, c.uid))
        cursor = 0
        for batch in batches:
            batch_day = batch.month_end - py.choice((0, 1))
            start = batch_day * DAY + py.randint(9 * HOUR, 14 * HOUR)
            cutoff = (batch_day - 1) * DAY  # jobs completed at least a day before
            t = start
            taken = 0
            while cursor < len(claims) and (claims[cursor].job.completed or 0) < cutoff:
                t += py.randint(15, 150)
                claims[cursor].time = t
                claims[cursor].late_completed = False
                cursor += 1
                taken += 1
            if taken and start < clock.end:
                last = min(t, clock.end - 1)
                if not batch.outlets:
                    batch.first, batch.last = start, last
                batch.outlets.append(outlet)
                batch.first = min(batch.first, start)
                batch.last = max(batch.last, last)
        for claim in claims[cursor:]:
            claim.time = clock.end + DAY  # held for a batch after the window: not in the stream
    return [b for b in batches if b.outlets]
