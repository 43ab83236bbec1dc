"""Injected anomalies: wrong claims finance must catch, each recorded with the
settlements it touches so a detector can be scored against ground truth.

Most types edit one honest claim in exactly the way the type describes (the rest of the
claim stays normal); ``fabricated_burst``, ``duplicate_settlement`` and
``unmatched_settlement`` add claims (and orders). No claim carries two anomalies, none is
placed in the warm-up, and picks are spread over outlets of every size (an outlet's chance
grows only with the square root of its volume).
"""

from __future__ import annotations

import math
import random
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from stream.simulator.catalogue import (
    CATEGORIES,
    INSTALL,
    MAINTENANCE,
    N_CATEGORIES,
    PART_PRICE,
    REPAIR,
    segment,
    segment_parts,
    standard_fee,
)
from stream.simulator.clock import DAY, HOUR, MINUTE, Clock
from stream.simulator.jobs import Business
from stream.simulator.pricing import honest_km, normal_items, travel_fee, unit_price
from stream.simulator.records import Claim, Item, Job, item
from stream.simulator.world import Outlet, World

EXPECTED_KIND: dict[str, str] = {
    "amount_spike": "amount_spike",
    "subtle_inflation": "amount_spike",
    "travel_inflation": "amount_spike",
    "part_overprice": "amount_spike",
    "over_standard": "over_standard",
    "fabricated_burst": "frequency_spike",
    "duplicate_settlement": "duplicate_settlement",
    "unmatched_settlement": "unmatched_settlement",
    "parts_not_issued": "parts_not_issued",
    "multivariate_outlier": "multivariate_outlier",
}
"""Anomaly type -> the contract alert kind a detector should raise for it."""

ANOMALY_TYPES: tuple[str, ...] = tuple(EXPECTED_KIND)
SEGMENT_HISTORY = 8
"""Claims the outlet must already have in a segment before a per-segment norm is abused."""
OUTLET_HISTORY = 30


@dataclass(slots=True)
class Anomaly:
    """One injected anomaly and everything it touches."""

    type: str
    outlet: int
    claims: list[Claim]
    jobs: list[Job]
    detail: str
    related: list[Claim] = field(default_factory=list)

    @property
    def expected_kind(self) -> str:
        """The alert kind that should catch it."""
        return EXPECTED_KIND[self.type]


def _with_line(items: list[Item], code: str, amount: float) -> list[Item]:
    """Replace all lines of ``code`` by one line of ``amount`` (kept in place if present)."""
    out: list[Item] = []
    placed = False
    for line in items:
        if line.code == code:
            if not placed:
                out.append(item(code, amount))
                placed = True
            continue
        out.append(line)
    if not placed:
        out.append(item(code, amount))
    return out


class Injector:
    """Picks victims and rewrites them; one instance per run."""

    def __init__(
        self,
        rng: np.random.Generator,
        py: random.Random,
        world: World,
        clock: Clock,
        biz: Business,
        warmup_days: int,
        batch_outlets: list[int],
    ) -> None:
        self.rng = rng
        self.py = py
        self.world = world
        self.clock = clock
        self.biz = biz
        self.batch = set(batch_outlets)
        self.first = min(warmup_days, max(0, clock.days - 1)) * DAY
        self.touched: set[int] = set()  # job uids already part of an anomaly
        self.anomalies: list[Anomaly] = []
        ordered = sorted(biz.claims, key=lambda c: (c.time, c.uid))
        self.seg_rank: dict[int, int] = {}
        self.outlet_rank: dict[int, int] = {}
        seg_seen: dict[tuple[int, int], int] = {}
        outlet_seen: dict[int, int] = {}
        totals: dict[tuple[int, int], list[float]] = {}
        for c in ordered:
            key = (c.job.outlet, c.job.seg)
            self.seg_rank[c.uid] = seg_seen.get(key, 0)
            seg_seen[key] = self.seg_rank[c.uid] + 1
            self.outlet_rank[c.uid] = outlet_seen.get(c.job.outlet, 0)
            outlet_seen[c.job.outlet] = self.outlet_rank[c.uid] + 1
            totals.setdefault(key, []).append(c.amount)
        self.norm = {key: statistics.median(v) for key, v in totals.items()}
        self.pool = [c for c in ordered if c.time >= self.first]
        self._pool_weight = np.array([self._outlet_weight(c.job.outlet) for c in self.pool])

    # -- picking -------------------------------------------------------------------------

    def _outlet_weight(self, outlet: int) -> float:
        return 1.0 / math.sqrt(self.world.outlets[outlet].volume)

    def _free(self, claim: Claim) -> bool:
        return claim.anomaly is None and claim.job.uid not in self.touched

    def pick(self, count: int, accept: Callable[[Claim], bool]) -> list[Claim]:
        """Up to ``count`` untouched honest claims after the warm-up that ``accept``,
        drawn without replacement with the outlet weights (Efraimidis-Spirakis keys, so
        only as many claims are checked as needed)."""
        if count <= 0 or not self.pool:
            return []
        keys = np.log(self.rng.random(len(self.pool))) / self._pool_weight
        out: list[Claim] = []
        for i in np.argsort(-keys, kind="stable").tolist():
            c = self.pool[i]
            if self._free(c) and accept(c):
                self.touched.add(c.job.uid)
                out.append(c)
                if len(out) == count:
                    break
        return out

    def _record(
        self,
        kind: str,
        claims: list[Claim],
        jobs: list[Job],
        detail: str,
        related: list[Claim] | None = None,
    ) -> None:
        for c in claims:
            c.anomaly = kind
            self.touched.add(c.job.uid)
        self.anomalies.append(
            Anomaly(kind, claims[0].job.outlet, claims, jobs, detail, related or [])
        )

    def _outlet(self, claim: Claim) -> Outlet:
        return self.world.outlets[claim.job.outlet]

    def _seg_history(self, c: Claim) -> bool:
        return self.seg_rank[c.uid] >= SEGMENT_HISTORY

    # -- claim edits -------------------------------------------------------------------

    def amount_spike(self, count: int) -> None:
        """Total claim 3-10x the outlet's norm for the segment (labour and/or "other")."""

        def ok(c: Claim) -> bool:
            return self._seg_history(c) and c.amount <= 1.5 * self.norm[(c.job.outlet, c.job.seg)]

        for c in self.pick(count, ok):
            norm = self.norm[(c.job.outlet, c.job.seg)]
            factor = self.py.uniform(3.0, 10.0)
            extra = norm * factor - c.amount
            how = self.py.choice(("labor", "other", "both"))
            share = 1.0 if how == "labor" else 0.0 if how == "other" else self.py.uniform(0.5, 0.8)
            items = c.items
            if share > 0:
                items = _with_line(items, "labor", c.line("labor") + extra * share)
            if share < 1:
                items = _with_line(items, "other", c.line("other") + extra * (1 - share))
            c.items = items
            self._record(
                "amount_spike",
                [c],
                [c.job],
                f"total x{factor:.1f} of outlet norm {norm:.2f} via {how}",
            )

    def subtle_inflation(self, count: int) -> None:
        """Labour 1.5-2.5x the outlet's own tariff for the segment; half of them where that
        still stays within the fee-table standard (invisible to the standard check)."""

        def room(c: Claim) -> float:
            return standard_fee(c.job.seg) / self._outlet(c).tariff[c.job.seg]

        half = count // 2
        for variant, claims in (
            ("within_standard", self.pick(half, lambda c: self._seg_history(c) and room(c) >= 1.5)),
            ("any", self.pick(count - half, self._seg_history)),
        ):
            for c in claims:
                tariff = self._outlet(c).tariff[c.job.seg]
                top = min(2.5, room(c)) if variant == "within_standard" else 2.5
                factor = self.py.uniform(1.5, top)
                c.items = _with_line(c.items, "labor", tariff * factor)
                self._record(
                    "subtle_inflation",
                    [c],
                    [c.job],
                    f"labour x{factor:.2f} of outlet tariff {tariff:.2f} ({variant})",
                )

    def travel_inflation(self, count: int) -> None:
        """travel_km and the travel line 3-8x the outlet's usual distance."""

        def ok(c: Claim) -> bool:
            o = self._outlet(c)
            return (
                o.travel_rate is not None
                and self.outlet_rank[c.uid] >= OUTLET_HISTORY // 2
                and o.km_median * 3.0 > o.free_km + 2.0
            )

        for c in self.pick(count, ok):
            o = self._outlet(c)
            factor = self.py.uniform(3.0, 8.0)
            km = round(o.km_median * factor, 1)
            c.travel_km = km
            c.items = _with_line(c.items, "travel", travel_fee(o, km))
            self._record(
                "travel_inflation",
                [c],
                [c.job],
                f"travel {km} km, x{factor:.1f} of outlet median {o.km_median:.1f} km",
            )

    def part_overprice(self, count: int) -> None:
        """One part's unit price 3-6x its list price (the part was issued)."""

        def ok(c: Claim) -> bool:
            return any(i.code == "parts" for i in c.items)

        for c in self.pick(count, ok):
            lines = [n for n, i in enumerate(c.items) if i.code == "parts"]
            n = self.py.choice(lines)
            line = c.items[n]
            code, qty = line.part_code or "", line.quantity or 1
            factor = self.py.uniform(3.0, 6.0)
            unit = round(PART_PRICE[code] * factor, 2)
            c.items = [*c.items[:n], item("parts", unit * qty, code, qty), *c.items[n + 1 :]]
            self._record(
                "part_overprice",
                [c],
                [c.job],
                f"{code} unit {unit:.2f}, x{factor:.1f} of list {PART_PRICE[code]:.2f}",
            )

    def over_standard(self, count: int) -> None:
        """Labour 1.2-1.6x the fee-table standard for the segment."""
        for c in self.pick(count, lambda c: True):
            std = standard_fee(c.job.seg)
            factor = self.py.uniform(1.2, 1.6)
            c.items = _with_line(c.items, "labor", std * factor)
            self._record(
                "over_standard", [c], [c.job], f"labour x{factor:.2f} of standard {std:.2f}"
            )

    def parts_not_issued(self, count: int) -> None:
        """A parts line whose part_code is not in the order's parts_issued."""

        def no_parts(c: Claim) -> bool:
            return (
                not c.job.parts
                and c.job.seg // N_CATEGORIES in (REPAIR, MAINTENANCE)
                and bool(segment_parts(c.job.seg))
            )

        def other_part(c: Claim) -> bool:
            issued = {p for p, _ in c.job.parts}
            return bool(c.job.parts) and any(p.code not in issued for p in segment_parts(c.job.seg))

        half = count // 2
        for variant, claims in (
            ("no_parts_issued", self.pick(count - half, no_parts)),
            ("different_part", self.pick(half, other_part)),
        ):
            for c in claims:
                o = self._outlet(c)
                issued = {p for p, _ in c.job.parts}
                options = [p for p in segment_parts(c.job.seg) if p.code not in issued]
                part = self.py.choices(options, [p.weight for p in options])[0]
                line = item("parts", unit_price(o, part.code), part.code, 1)
                if variant == "no_parts_issued":
                    c.items = [*c.items[:1], line, *c.items[1:]]
                else:
                    n = next(n for n, i in enumerate(c.items) if i.code == "parts")
                    qty = c.items[n].quantity or 1
                    line = item("parts", unit_price(o, part.code) * qty, part.code, qty)
                    c.items = [*c.items[:n], line, *c.items[n + 1 :]]
                self._record("parts_not_issued", [c], [c.job], f"{variant}: {part.code}")

    def multivariate_outlier(self, count: int) -> None:
        """Total and every single feature inside the outlet's normal range, the mix not:
        a loaded install (two parts, high-normal travel, an "other" line, labour cut so
        the total stays near normal) or a maintenance job claimed like a repair (parts,
        reduced labour). A per-feature threshold passes them; an isolation forest over
        amount, labour/parts shares, km, item and part counts stands them apart."""

        def loaded(c: Claim) -> bool:
            return (
                c.job.seg // N_CATEGORIES == INSTALL
                and self.outlet_rank[c.uid] >= OUTLET_HISTORY
                and self.seg_rank[c.uid] >= SEGMENT_HISTORY
            )

        def maint(c: Claim) -> bool:
            return (
                c.job.seg // N_CATEGORIES == MAINTENANCE
                and self.outlet_rank[c.uid] >= OUTLET_HISTORY
                and self.seg_rank[c.uid] >= SEGMENT_HISTORY
                and len(segment_parts(segment(REPAIR, c.job.seg % N_CATEGORIES))) >= 2
            )

        half = count // 2
        for variant, claims in (
            ("loaded_install", self.pick(count - half, loaded)),
            ("maintenance_as_repair", self.pick(half, maint)),
        ):
            for c in claims:
                o = self._outlet(c)
                job = c.job
                category = job.seg % N_CATEGORIES
                target = self.norm[(job.outlet, job.seg)] * self.py.uniform(1.05, 1.35)
                if variant == "loaded_install":
                    pool = CATEGORIES[category].parts
                    n_parts = 2
                    km = round(o.km_median * math.exp(self.py.uniform(1.0, 1.4) * o.km_sigma), 1)
                else:
                    pool = segment_parts(segment(REPAIR, category))
                    n_parts = self.py.choice((1, 2))
                    km = c.travel_km if c.travel_km is not None else o.km_median
                chosen = sorted(pool, key=lambda p: (p.price, p.code))[:n_parts]
                job.parts = [(p.code, 1) for p in chosen]  # issued: only the mix is odd
                lines = [item("parts", unit_price(o, p.code), p.code, 1) for p in chosen]
                if o.travel_rate is not None:
                    c.travel_km = km
                    fee = travel_fee(o, km)
                    if fee > 0:
                        lines.append(item("travel", fee))
                else:
                    c.travel_km = None
                if variant == "loaded_install":
                    lines.append(item("other", max(5.0, 5.0 * round(o.other_level * 0.1))))
                tariff = o.tariff[job.seg]
                rest = target - sum(i.amount for i in lines)
                labour = min(max(rest, 0.4 * tariff), standard_fee(job.seg))
                c.items = [item("labor", labour), *lines]
                self._record("multivariate_outlier", [c], [job], variant)

    # -- added claims ------------------------------------------------------------------

    def duplicate_settlement(self, count: int) -> None:
        """A second claim (new id) for an already-settled order, hours to days later."""
        for c in self.pick(count, lambda c: c.time < self.clock.end - 3 * HOUR):
            room = min(5 * DAY, self.clock.end - 1 - c.time)
            t = c.time + self.py.randint(2 * HOUR, max(2 * HOUR, room))
            items = list(c.items)
            same = self.py.random() < 0.6
            if not same:
                factor = self.py.choice((self.py.uniform(0.9, 0.97), self.py.uniform(1.03, 1.1)))
                labour = c.line("labor")
                std = standard_fee(c.job.seg)
                items = _with_line(items, "labor", min(labour * factor, max(labour, std)))
            dup = self.biz.add_claim(Claim(job=c.job, time=t, items=items, travel_km=c.travel_km))
            self._record(
                "duplicate_settlement",
                [dup],
                [c.job],
                "same amount" if same else "slightly different amount",
                related=[c],
            )

    def unmatched_settlement(self, count: int) -> None:
        """Claims for an order that never existed, was cancelled, or never completed."""
        n_ghost = count - 2 * (count // 3)
        n_cancel = count // 3
        n_open = count // 3
        # never existed: an order id nobody ever created
        for _ in range(n_ghost):
            o = self._random_outlet()
            if o is None:
                break
            outlet = self.world.outlets[o]
            seg = int(self.rng.choice(len(self.world.mix[o]), p=self.world.mix[o]))
            created = self.py.randint(self.first, max(self.first, self.clock.end - 2 * DAY))
            t = min(created + self.py.randint(DAY, 4 * DAY), self.clock.end - 1)
            ghost = self.biz.add_job(
                Job(
                    outlet=o,
                    seg=seg,
                    created=created,
                    dispatched=None,
                    completed=None,
                    cancelled=None,
                    engineer=outlet.engineers[0],
                    exists=False,
                )
            )
            km = honest_km(outlet, self.py)
            items, travel_km = normal_items(outlet, seg, max(km, 0.1), [], self.py)
            claim = self.biz.add_claim(Claim(job=ghost, time=t, items=items, travel_km=travel_km))
            self._record("unmatched_settlement", [claim], [ghost], "never_existed")
        # cancelled orders
        cancelled = [
            j
            for j in self.biz.jobs
            if j.cancelled is not None
            and j.exists
            and j.uid not in self.touched
            and self.first <= j.cancelled < self.clock.end - 3 * HOUR
        ]
        if cancelled and n_cancel:
            w = np.array([self._outlet_weight(j.outlet) for j in cancelled])
            size = min(n_cancel, len(cancelled))
            for i in self.rng.choice(len(cancelled), size=size, replace=False, p=w / w.sum()):
                job = cancelled[int(i)]
                outlet = self.world.outlets[job.outlet]
                cancelled_at = job.cancelled or 0
                room = min(3 * DAY, self.clock.end - 1 - cancelled_at)
                t = cancelled_at + self.py.randint(2 * HOUR, max(2 * HOUR, room))
                km = honest_km(outlet, self.py)
                items, travel_km = normal_items(outlet, job.seg, max(km, 0.1), [], self.py)
                claim = self.biz.add_claim(Claim(job=job, time=t, items=items, travel_km=travel_km))
                self._record("unmatched_settlement", [claim], [job], "cancelled")
        # created/dispatched but never completed
        for c in self.pick(n_open, lambda c: c.job.dispatched is not None):
            job = c.job
            job.completed = None
            job.rating = None
            job.parts = []
            c.items = [i for i in c.items if i.code != "parts"]
            c.late_completed = False
            self._record("unmatched_settlement", [c], [job], "never_completed")

    def fabricated_burst(self, count: int) -> None:
        """8-25 orders created, dispatched and completed within minutes by one engineer,
        all settled within a few hours."""
        for _ in range(count):
            o = self._random_outlet(exclude=self.batch)
            if o is None:
                return
            outlet = self.world.outlets[o]
            last_day = max(self.first // DAY, self.clock.days - 1)
            day = self.py.randint(self.first // DAY, last_day)
            latest = max(9 * HOUR, min(17 * HOUR, self.clock.end - day * DAY - 6 * HOUR))
            t0 = day * DAY + self.py.randint(min(9 * HOUR, latest), latest)
            n = self.py.randint(8, 25)
            engineer = self.py.choice(outlet.engineers)
            seg = int(self.rng.choice(len(self.world.mix[o]), p=self.world.mix[o]))
            span = self.py.randint(15 * MINUTE, 50 * MINUTE)
            starts = sorted(self.py.randint(0, span) for _ in range(n))
            jobs: list[Job] = []
            claims: list[Claim] = []
            for s in starts:
                created = t0 + s
                dispatched = created + self.py.randint(1 * MINUTE, 5 * MINUTE)
                completed = dispatched + self.py.randint(5 * MINUTE, 25 * MINUTE)
                job = self.biz.add_job(
                    Job(
                        outlet=o,
                        seg=seg,
                        created=created,
                        dispatched=dispatched,
                        completed=completed,
                        cancelled=None,
                        engineer=engineer,
                    )
                )
                km = honest_km(outlet, self.py)
                items, travel_km = normal_items(outlet, seg, max(km, 0.1), [], self.py)
                t = min(completed + self.py.randint(20 * MINUTE, 3 * HOUR), self.clock.end - 1)
                claims.append(
                    self.biz.add_claim(Claim(job=job, time=t, items=items, travel_km=travel_km))
                )
                jobs.append(job)
            self._record(
                "fabricated_burst",
                claims,
                jobs,
                f"{n} orders by {engineer} within {span // MINUTE + 30} minutes",
            )

    def _random_outlet(self, exclude: set[int] | None = None) -> int | None:
        """An outlet, chance growing with the square root of its volume."""
        vols = np.array([o.volume for o in self.world.outlets])
        w = np.sqrt(vols)
        if exclude:
            w[list(exclude)] = 0.0
        if w.sum() <= 0:
            return None
        return int(self.rng.choice(len(vols), p=w / w.sum()))


def inject(injector: Injector, anomaly_rate: float) -> list[Anomaly]:
    """Inject every type; counts scale with the number of claims after the warm-up so that
    about ``anomaly_rate`` of settlements end up anomalous (at least one of each type)."""
    target = anomaly_rate * len(injector.pool)
    if target <= 0:
        return []
    per_type = max(1, round(target / len(ANOMALY_TYPES)))
    bursts = max(1, round(target / len(ANOMALY_TYPES) / 16))
    # structural types first, so edits never hit the claims they add
    injector.fabricated_burst(bursts)
    injector.unmatched_settlement(per_type)
    injector.duplicate_settlement(per_type)
    injector.multivariate_outlier(per_type)
    injector.parts_not_issued(per_type)
    injector.part_overprice(per_type)
    injector.travel_inflation(per_type)
    injector.over_standard(per_type)
    injector.subtle_inflation(per_type)
    injector.amount_spike(per_type)
    return injector.anomalies
