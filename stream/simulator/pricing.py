"""What an honest claim for a job looks like at a given outlet: labour at the outlet's
tariff (sometimes discounted), parts at list price x the outlet's markup, travel beyond a
free radius, and a rare "other" line.

The same functions build the normal claims and the starting point of most anomalies, so
an anomaly differs from normal in exactly the way its label says.
"""

from __future__ import annotations

import math
import random

from stream.simulator.catalogue import AC, INSTALL, PART_PRICE, segment, segment_parts
from stream.simulator.records import Item, item
from stream.simulator.world import SERVICE_RADIUS, Outlet

_N_PARTS = (1, 2, 3)
_N_PARTS_W = (0.78, 0.18, 0.04)
_BULK_QTY = (1, 2, 3, 4)
_BULK_QTY_W = (0.45, 0.3, 0.15, 0.1)


def unit_price(outlet: Outlet, part_code: str) -> float:
    """The outlet's usual unit price for a part (list price x its markup)."""
    return round(PART_PRICE[part_code] * outlet.parts_markup, 2)


def draw_parts(seg: int, chance: float, py: random.Random) -> list[tuple[str, int]]:
    """Parts issued for a job of this segment: usually none or one, quantity mostly 1."""
    candidates = segment_parts(seg)
    if not candidates or py.random() >= chance:
        return []
    n = min(py.choices(_N_PARTS, _N_PARTS_W)[0], len(candidates))
    pool = list(candidates)
    out: list[tuple[str, int]] = []
    for _ in range(n):
        part = py.choices(pool, [p.weight for p in pool])[0]
        pool.remove(part)
        single = 2 if py.random() < 0.05 else 1
        qty = py.choices(_BULK_QTY, _BULK_QTY_W)[0] if part.bulk else single
        out.append((part.code, qty))
    return out


def travel_fee(outlet: Outlet, km: float) -> float:
    """Travel fee for ``km``: per-km rate beyond the outlet's free radius."""
    if outlet.travel_rate is None:
        return 0.0
    return round(max(0.0, km - outlet.free_km) * outlet.travel_rate, 2)


def normal_items(
    outlet: Outlet, seg: int, km: float, parts: list[tuple[str, int]], py: random.Random
) -> tuple[list[Item], float | None]:
    """Lines and claimed km of an honest claim."""
    labour = outlet.tariff[seg]
    if py.random() < 0.15:
        labour *= py.uniform(0.8, 1.0)
    items = [item("labor", labour)]
    jitter = py.random() < 0.1
    for code, qty in parts:
        unit = unit_price(outlet, code)
        if jitter:
            unit = round(unit * py.uniform(0.95, 1.05), 2)
        items.append(item("parts", unit * qty, code, qty))
    travel_km: float | None = None
    if outlet.travel_rate is not None:
        travel_km = km
        fee = travel_fee(outlet, km)
        if fee > 0:
            items.append(item("travel", fee))
    chance = outlet.other_prob * (2.0 if seg == segment(INSTALL, AC) else 1.0)
    if py.random() < chance:
        items.append(item("other", other_amount(outlet, py)))
    return items, travel_km


def other_amount(outlet: Outlet, py: random.Random) -> float:
    """A typical "other" line (high-altitude work, disposal) for this outlet."""
    return float(max(5, round(outlet.other_level * py.uniform(0.6, 1.6) / 5.0) * 5))


def honest_km(outlet: Outlet, py: random.Random) -> float:
    """A distance inside the outlet's area: around its median, stopping at its edge."""
    spread = min(math.exp(py.gauss(0.0, outlet.km_sigma)), SERVICE_RADIUS)
    return round(outlet.km_median * spread, 1)
