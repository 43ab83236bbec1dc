"""Hand-made contract events for engine and detector tests.

Events are built as the contract's JSON objects and decoded with ``models.decode.decode``,
so the tests run on the same typed events the service sees. Times are given as hours after
a fixed start (Beijing time), which keeps scenarios readable: ``f.order("O1", "created",
at=2.5)`` is an order created at 11:30 on the first day.
"""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta, timezone
from functools import lru_cache
from typing import Any

import orjson

from models.decode import Rejection, decode
from models.events import Event, OrderEvent, SettlementEvent
from stream.simulator import SimulationConfig, simulate

BEIJING = timezone(timedelta(hours=8))
START = datetime(2026, 7, 1, 9, 0, 0, tzinfo=BEIJING)


def rfc3339(hours: float) -> str:
    """The contract's event time ``hours`` after START, to the second."""
    moment = START + timedelta(seconds=round(hours * 3600))
    return moment.isoformat()


def typed(obj: dict[str, Any]) -> Event:
    """Decode a contract object as the service would; fail loudly if it is bad input."""
    event = decode(orjson.dumps(obj))
    assert not isinstance(event, Rejection), f"factory built bad input: {event}"
    return event


class EventFactory:
    """Builds typed events for one outlet; event ids are unique unless given."""

    def __init__(
        self,
        outlet_id: str = "W-TEST-1",
        region: str | None = "华东-上海",
        service_type: str = "repair",
        product_category: str = "air_conditioner",
    ) -> None:
        self.outlet_id = outlet_id
        self.region = region
        self.service_type = service_type
        self.product_category = product_category
        self._ids = itertools.count(1)

    def _head(self, kind: str, at: float, event_id: str | None) -> dict[str, Any]:
        head: dict[str, Any] = {
            "kind": kind,
            "event_id": event_id or f"{self.outlet_id}-ev-{next(self._ids)}",
            "event_time": rfc3339(at),
            "outlet_id": self.outlet_id,
        }
        if self.region is not None:
            head["region"] = self.region
        return head

    def order_dict(
        self,
        order_id: str,
        status: str,
        at: float,
        *,
        engineer_id: str | None = "E-1",
        parts_issued: dict[str, int] | None = None,
        customer_rating: int | None = None,
        event_id: str | None = None,
    ) -> dict[str, Any]:
        """The contract object of an order status change."""
        obj = self._head("order", at, event_id) | {
            "order_id": order_id,
            "status": status,
            "service_type": self.service_type,
            "product_category": self.product_category,
        }
        if engineer_id is not None:
            obj["engineer_id"] = engineer_id
        if parts_issued is not None:
            obj["parts_issued"] = [
                {"part_code": code, "quantity": quantity} for code, quantity in parts_issued.items()
            ]
        if customer_rating is not None:
            obj["customer_rating"] = customer_rating
        return obj

    def order(self, order_id: str, status: str, at: float, **kwargs: Any) -> OrderEvent:
        """A typed order event (see ``order_dict``)."""
        event = typed(self.order_dict(order_id, status, at, **kwargs))
        assert isinstance(event, OrderEvent)
        return event

    def settlement_dict(
        self,
        settlement_id: str,
        order_id: str,
        at: float,
        *,
        labor: float = 150.0,
        parts: dict[str, tuple[float, int]] | None = None,
        travel: float = 0.0,
        travel_km: float | None = None,
        event_id: str | None = None,
    ) -> dict[str, Any]:
        """The contract object of a claim: a labour line, part lines (code -> (amount,
        quantity)) and an optional travel line; ``amount`` is their sum."""
        items: list[dict[str, Any]] = [{"code": "labor", "amount": labor}]
        for code, (amount, quantity) in (parts or {}).items():
            items.append(
                {"code": "parts", "amount": amount, "part_code": code, "quantity": quantity}
            )
        if travel:
            items.append({"code": "travel", "amount": travel})
        obj = self._head("settlement", at, event_id) | {
            "settlement_id": settlement_id,
            "order_id": order_id,
            "service_type": self.service_type,
            "product_category": self.product_category,
            "amount": round(sum(item["amount"] for item in items), 2),
            "currency": "CNY",
            "items": items,
        }
        if travel_km is not None:
            obj["travel_km"] = travel_km
        return obj

    def settlement(
        self, settlement_id: str, order_id: str, at: float, **kwargs: Any
    ) -> SettlementEvent:
        """A typed settlement event (see ``settlement_dict``)."""
        event = typed(self.settlement_dict(settlement_id, order_id, at, **kwargs))
        assert isinstance(event, SettlementEvent)
        return event

    def tick(self, name: str, at: float) -> list[Event]:
        """A quick job of this outlet whose order events and settlement all arrive by
        ``at``: it moves both inputs' event time there (grace checks follow the slower of
        the order and settlement inputs, as they come from separate topics)."""
        return [
            self.order(name, "created", at - 0.02),
            self.order(name, "completed", at - 0.01),
            self.settlement(f"{name}-s", name, at),
        ]

    def job(
        self,
        n: int,
        at: float,
        *,
        labor: float = 150.0,
        engineer_id: str | None = "E-1",
        hours_to_complete: float = 2.0,
    ) -> list[Event]:
        """A normal job: created at ``at``, completed ``hours_to_complete`` later, claimed
        half an hour after that (order ``O<n>``, settlement ``S<n>``)."""
        order_id, settlement_id = f"O{n}", f"S{n}"
        done = at + hours_to_complete
        return [
            self.order(order_id, "created", at, engineer_id=engineer_id),
            self.order(order_id, "completed", done, engineer_id=engineer_id),
            self.settlement(settlement_id, order_id, done + 0.5, labor=labor),
        ]


OPTIONAL_FIELDS = (
    "region",
    "engineer_id",
    "parts_issued",
    "customer_rating",
    "travel_km",
    "currency",
)


@lru_cache(maxsize=4)
def simulated_lines(outlets: int = 30, days: int = 12, seed: int = 11) -> tuple[bytes, ...]:
    """The JSON lines of a small simulated stream (cached: simulating is pure)."""
    return tuple(simulate(SimulationConfig(outlets=outlets, days=days, seed=seed)).events)


def strip_optional(line: bytes) -> bytes:
    """``line`` without any of the contract's optional fields."""
    obj = orjson.loads(line)
    for name in OPTIONAL_FIELDS:
        obj.pop(name, None)
    return orjson.dumps(obj)
