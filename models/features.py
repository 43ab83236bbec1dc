"""A settlement claim taken apart into the quantities the detectors judge.

Amounts are judged on the log scale (``log1p``), where "twice the usual" is the same
distance whatever the outlet's price level. Each quantity has a *baseline key*: the
per-outlet baseline it is compared with, and (prefixed by region, or ``*`` for all outlets)
the peer baselines a new outlet starts from.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache

from models.events import SettlementEvent


@dataclass(slots=True)
class Quantity:
    """One judged quantity of a claim and how it compares with its baseline."""

    key: str  # baseline key, e.g. "install|air_conditioner|labor" or "part|P-AC-01"
    family: str  # what kind of quantity: total, labor, other, part, travel_km, travel_fee
    value: float  # on the judged scale (log1p of CNY or km)
    shown: float  # as a reviewer reads it (CNY or km)
    mean: float = 0.0
    sd: float = 0.0
    weight: float = 0.0  # evidence behind the baseline (0 = nothing known yet)
    z: float = 0.0
    scatter: float = 0.0  # how far an outlet's claims stray around its own level (log)


@dataclass(slots=True)
class ClaimFeatures:
    """The quantities of one claim, plus its shape (shares, counts) for the forest."""

    segment: str
    amount: float
    labor: float
    parts: float
    travel: float
    other: float
    n_items: int
    parts_quantity: int
    charged_parts: dict[str, int]  # part_code -> quantity charged
    uncoded_parts: bool  # a parts line without a part code
    quantities: list[Quantity] = field(default_factory=list)


@lru_cache(maxsize=1 << 12)
def segment_keys(service_type: str, product_category: str) -> tuple[str, str, str]:
    """A segment and the baseline keys of its service and labour charges. Cached: every
    claim of the segment gets the same strings, which the baselines are stored under, so
    looking them up never builds, hashes or compares a string."""
    segment = f"{service_type}|{product_category}"
    return segment, f"{segment}|service", f"{segment}|labor"


@lru_cache(maxsize=1 << 14)
def part_key(part_code: str) -> str:
    """The baseline key of a part's unit price (cached like ``segment_keys``)."""
    return f"part|{part_code}"


def claim_features(event: SettlementEvent) -> ClaimFeatures:
    """Take ``event`` apart; baselines are filled in later (models/baselines.py)."""
    segment, service_key, labor_key = segment_keys(event.service_type, event.product_category)
    totals = {"labor": 0.0, "parts": 0.0, "travel": 0.0, "other": 0.0}
    charged: dict[str, int] = {}
    part_lines: list[tuple[str, float, int]] = []
    uncoded = False
    quantity_total = 0
    for item in event.items:
        totals[item.code] += item.amount
        if item.code == "parts":
            quantity = item.quantity or 1
            quantity_total += quantity
            if item.part_code:
                charged[item.part_code] = charged.get(item.part_code, 0) + quantity
                part_lines.append((item.part_code, item.amount, quantity))
            else:
                uncoded = True
    claim = ClaimFeatures(
        segment,
        event.amount,
        totals["labor"],
        totals["parts"],
        totals["travel"],
        totals["other"],
        len(event.items),
        quantity_total,
        charged,
        uncoded,
    )
    add = claim.quantities.append
    # The service charge, labour plus travel: parts are judged by unit price and "other"
    # lines on their own; both vary far more than the service, and adding a legitimate
    # "other" line to it made a tight baseline look inflated.
    service = totals["labor"] + totals["travel"]
    add(Quantity(service_key, "service", math.log1p(service), round(service, 2)))
    if totals["labor"] > 0:
        add(Quantity(labor_key, "labor", math.log1p(totals["labor"]), totals["labor"]))
    if totals["other"] > 0:
        add(Quantity("other", "other", math.log1p(totals["other"]), totals["other"]))
    if totals["travel"] > 0:
        add(Quantity("travel|fee", "travel_fee", math.log1p(totals["travel"]), totals["travel"]))
    if event.travel_km is not None:
        add(Quantity("travel|km", "travel_km", math.log1p(event.travel_km), event.travel_km))
    for code, amount, quantity in part_lines:
        unit = amount / quantity
        add(Quantity(part_key(code), "part", math.log1p(unit), round(unit, 2)))
    return claim
