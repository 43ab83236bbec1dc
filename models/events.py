"""Typed input events (CONTRACT.md section 1) and their canonical JSON form.

Events are slotted dataclasses, built once per message on the hot path and never changed
after decoding (not ``frozen``: that makes construction several times slower). ``ts`` is
the event time as epoch seconds, derived from ``event_time``, which keeps the source's
text and offset so the event re-encodes byte-for-byte.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal

ORDER_STATUSES = ("created", "dispatched", "completed", "cancelled")
ITEM_CODES = ("labor", "parts", "travel", "other")

OrderStatus = Literal["created", "dispatched", "completed", "cancelled"]
ItemCode = Literal["labor", "parts", "travel", "other"]


@dataclass(slots=True)
class PartIssued:
    """A part the warehouse issued for a job."""

    part_code: str
    quantity: int


@dataclass(slots=True)
class SettlementItem:
    """One line of a settlement claim."""

    code: ItemCode
    amount: float
    part_code: str | None = None
    quantity: int | None = None


@dataclass(slots=True)
class OrderEvent:
    """One status change of a job (服务工单)."""

    event_id: str
    event_time: str
    ts: float
    outlet_id: str
    region: str | None
    order_id: str
    status: OrderStatus
    service_type: str
    product_category: str
    engineer_id: str | None = None
    parts_issued: tuple[PartIssued, ...] | None = None
    customer_rating: int | None = None

    kind = "order"


@dataclass(slots=True)
class SettlementEvent:
    """An outlet's claim for payment for one order (结算单)."""

    event_id: str
    event_time: str
    ts: float
    outlet_id: str
    region: str | None
    settlement_id: str
    order_id: str
    service_type: str
    product_category: str
    amount: float
    items: tuple[SettlementItem, ...]
    currency: str = "CNY"
    travel_km: float | None = None

    kind = "settlement"


Event = OrderEvent | SettlementEvent


@lru_cache(maxsize=64)
def _offset_seconds(suffix: str) -> int:
    if suffix[-1] in "Zz":
        return 0
    sign = -1 if suffix[0] == "-" else 1
    return sign * (int(suffix[1:3]) * 3600 + int(suffix[4:6]) * 60)


def utc_offset(event: Event) -> int:
    """Seconds east of UTC of the event's own ``event_time`` (``+08:00`` -> 28800): its
    local clock is ``ts + utc_offset(event)``. Read from the text's last six characters,
    which a decoded event's time always ends with (``Z`` or ``±HH:MM``)."""
    return _offset_seconds(event.event_time[-6:])


def _drop_none(pairs: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in pairs.items() if value is not None}


def event_to_dict(event: Event) -> dict[str, Any]:
    """The contract's JSON object for ``event`` (optional fields left out when absent)."""
    head = {
        "kind": event.kind,
        "event_id": event.event_id,
        "event_time": event.event_time,
        "outlet_id": event.outlet_id,
        "region": event.region,
    }
    if isinstance(event, OrderEvent):
        parts = (
            None
            if event.parts_issued is None
            else [{"part_code": p.part_code, "quantity": p.quantity} for p in event.parts_issued]
        )
        body: dict[str, Any] = {
            "order_id": event.order_id,
            "status": event.status,
            "service_type": event.service_type,
            "product_category": event.product_category,
            "engineer_id": event.engineer_id,
            "parts_issued": parts,
            "customer_rating": event.customer_rating,
        }
    else:
        body = {
            "settlement_id": event.settlement_id,
            "order_id": event.order_id,
            "service_type": event.service_type,
            "product_category": event.product_category,
            "amount": event.amount,
            "currency": event.currency,
            "items": [
                _drop_none(
                    {
                        "code": i.code,
                        "amount": i.amount,
                        "part_code": i.part_code,
                        "quantity": i.quantity,
                    }
                )
                for i in event.items
            ],
            "travel_km": event.travel_km,
        }
    return _drop_none(head | body)
