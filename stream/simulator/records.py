"""In-memory records of the simulation before they become events: a job (one order's
whole lifecycle) and a claim (one settlement), plus a claim line.

Plain mutable slotted objects: anomaly injection edits them in place, delivery.py turns
them into contract events at the end.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple


class Item(NamedTuple):
    """One settlement line; ``amount`` is already rounded to 2 decimals."""

    code: str
    amount: float
    part_code: str | None = None
    quantity: int | None = None


def item(
    code: str, amount: float, part_code: str | None = None, quantity: int | None = None
) -> Item:
    """Build a line with its amount rounded to 2 decimals (the contract's precision)."""
    return Item(code, round(amount, 2), part_code, quantity)


@dataclass(slots=True)
class Job:
    """One order (服务工单): its lifecycle times in run seconds, engineer and parts."""

    outlet: int
    seg: int
    created: int
    dispatched: int | None
    completed: int | None
    cancelled: int | None
    engineer: str
    parts: list[tuple[str, int]] = field(default_factory=list)
    rating: int | None = None
    exists: bool = True
    """False for a fabricated order id that no order event ever carried."""
    order_id: str = ""
    uid: int = -1


@dataclass(slots=True)
class Claim:
    """One settlement (结算单) for a job."""

    job: Job
    time: int
    items: list[Item]
    travel_km: float | None
    late_completed: bool = False
    anomaly: str | None = None
    settlement_id: str = ""
    uid: int = -1

    @property
    def amount(self) -> float:
        """Total claimed: the sum of the (already rounded) lines, rounded to 2 decimals."""
        return round(sum(i.amount for i in self.items), 2)

    def line(self, code: str) -> float:
        """Sum of the lines with this code."""
        return round(sum(i.amount for i in self.items if i.code == code), 2)
