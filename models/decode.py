"""Raw bytes -> typed event, or a precise rejection saying which field, what value, what was
expected. Never raises: anything the contract does not allow is *bad input* (CONTRACT.md
section 1) and comes back as a ``Rejection`` for the dead letter.

Validation is hand-written rather than driven by a JSON Schema engine because it runs on
every event (see bench/bench_decode.py); tests/test_decode.py keeps it in agreement with
config/schemas/*.json.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from models.events import (
    ITEM_CODES,
    ORDER_STATUSES,
    Event,
    OrderEvent,
    PartIssued,
    SettlementEvent,
    SettlementItem,
)

MAX_EVENT_BYTES = 64 * 1024
"""Larger payloads are rejected before parsing: no real event is near this size."""

MAX_EVENT_ID_CHARS = 128
ITEMS_SUM_TOLERANCE = 0.01

# Reason codes are a small fixed set (they become metric labels); ``detail`` says the rest.
REASONS = (
    "too_large",
    "not_utf8",
    "not_json",
    "not_object",
    "missing_field",
    "wrong_type",
    "invalid_value",
    "bad_timestamp",
    "items_not_summing",
)

_RFC3339 = re.compile(
    r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?(?:[Zz]|[+-]\d{2}:\d{2})"
)
_VALUE_PREVIEW_CHARS = 80


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why a payload is bad input: a reason code plus field, offending value and expectation."""

    reason: str
    detail: str
    field: str | None = None
    value: str | None = None

    def __str__(self) -> str:
        where = f" at {self.field}" if self.field else ""
        return f"{self.reason}{where}: {self.detail}"


class _Bad(Exception):
    """Internal: carries a Rejection out of nested field checks."""

    def __init__(self, rejection: Rejection) -> None:
        self.rejection = rejection


def _preview(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= _VALUE_PREVIEW_CHARS else text[:_VALUE_PREVIEW_CHARS] + "…"


def _fail(reason: str, field: str, value: Any, expected: str) -> _Bad:
    detail = f"expected {expected}, got {_preview(value)}"
    return _Bad(Rejection(reason, detail, field, _preview(value)))


def _required(obj: dict[str, Any], key: str, path: str) -> Any:
    try:
        return obj[key]
    except KeyError:
        raise _Bad(
            Rejection("missing_field", f"required field {path}{key!r} is missing", path + key)
        ) from None


def _get(obj: dict[str, Any], key: str, path: str, optional: bool) -> Any:
    """The field's value; a missing optional field reads as None."""
    return obj.get(key) if optional else _required(obj, key, path)


def _string(obj: dict[str, Any], key: str, path: str = "", optional: bool = False) -> Any:
    value = _get(obj, key, path, optional)
    if value is None and optional:
        return None
    if type(value) is not str:
        raise _fail("wrong_type", path + key, value, "a string")
    if not value:
        raise _fail("invalid_value", path + key, value, "a non-empty string")
    return value


def _number(obj: dict[str, Any], key: str, path: str = "", optional: bool = False) -> Any:
    value = _get(obj, key, path, optional)
    if value is None and optional:
        return None
    kind = type(value)
    if kind is not float and kind is not int:
        raise _fail("wrong_type", path + key, value, "a number")
    if value < 0 or not math.isfinite(value):
        raise _fail("invalid_value", path + key, value, "a finite number >= 0")
    return float(value)


def _integer(
    obj: dict[str, Any],
    key: str,
    low: int,
    high: int | None,
    path: str = "",
    optional: bool = False,
) -> Any:
    value = _get(obj, key, path, optional)
    if value is None and optional:
        return None
    if type(value) is not int:
        raise _fail("wrong_type", path + key, value, "an integer")
    if value < low or (high is not None and value > high):
        bounds = f"an integer >= {low}" if high is None else f"an integer {low}..{high}"
        raise _fail("invalid_value", path + key, value, bounds)
    return value


def _list(obj: dict[str, Any], key: str, path: str = "", optional: bool = False) -> Any:
    value = _get(obj, key, path, optional)
    if value is None and optional:
        return None
    if type(value) is not list:
        raise _fail("wrong_type", path + key, value, "a list")
    return value


def _object(value: Any, path: str) -> dict[str, Any]:
    if type(value) is not dict:
        raise _fail("wrong_type", path, value, "an object")
    return value


def _timestamp(obj: dict[str, Any]) -> tuple[str, float]:
    text = _required(obj, "event_time", "")
    if type(text) is not str:
        raise _fail("wrong_type", "event_time", text, "an RFC 3339 string")
    if _RFC3339.fullmatch(text) is None:
        raise _fail("bad_timestamp", "event_time", text, "RFC 3339 with offset")
    try:
        moment = datetime.fromisoformat(text.upper())
    except ValueError:
        raise _fail("bad_timestamp", "event_time", text, "a real calendar time") from None
    return text, moment.timestamp()


def _amount(value: float, field: str) -> float:
    if abs(value * 100.0 - round(value * 100.0)) > 1e-6 * max(1.0, value):
        raise _fail("invalid_value", field, value, "CNY with at most 2 decimals")
    return value


def _part(raw: Any, index: int) -> PartIssued:
    path = f"parts_issued[{index}]."
    part = _object(raw, path[:-1])
    return PartIssued(_string(part, "part_code", path), _integer(part, "quantity", 1, None, path))


def _order(obj: dict[str, Any], head: dict[str, Any]) -> OrderEvent:
    status = _string(obj, "status")
    if status not in ORDER_STATUSES:
        raise _fail("invalid_value", "status", status, f"one of {', '.join(ORDER_STATUSES)}")
    raw_parts = _list(obj, "parts_issued", optional=True)
    parts = None if raw_parts is None else tuple(_part(raw, i) for i, raw in enumerate(raw_parts))
    return OrderEvent(
        **head,
        order_id=_string(obj, "order_id"),
        status=status,
        service_type=_string(obj, "service_type"),
        product_category=_string(obj, "product_category"),
        engineer_id=_string(obj, "engineer_id", optional=True),
        parts_issued=parts,
        customer_rating=_integer(obj, "customer_rating", 1, 5, optional=True),
    )


def _item(raw: Any, index: int) -> SettlementItem:
    path = f"items[{index}]."
    item = _object(raw, path[:-1])
    code = _string(item, "code", path)
    if code not in ITEM_CODES:
        raise _fail("invalid_value", path + "code", code, f"one of {', '.join(ITEM_CODES)}")
    return SettlementItem(
        code=code,
        amount=_amount(_number(item, "amount", path), path + "amount"),
        part_code=_string(item, "part_code", path, optional=True),
        quantity=_integer(item, "quantity", 1, None, path, optional=True),
    )


def _settlement(obj: dict[str, Any], head: dict[str, Any]) -> SettlementEvent:
    amount = _amount(_number(obj, "amount"), "amount")
    items = tuple(_item(raw, i) for i, raw in enumerate(_list(obj, "items")))
    total = sum(item.amount for item in items)
    if abs(total - amount) > ITEMS_SUM_TOLERANCE + 1e-9:
        raise _Bad(
            Rejection(
                "items_not_summing",
                f"items sum to {total:.2f} but amount is {amount:.2f} (tolerance 0.01)",
                "items",
                _preview(round(total, 2)),
            )
        )
    return SettlementEvent(
        **head,
        settlement_id=_string(obj, "settlement_id"),
        order_id=_string(obj, "order_id"),
        service_type=_string(obj, "service_type"),
        product_category=_string(obj, "product_category"),
        amount=amount,
        items=items,
        currency=_string(obj, "currency", optional=True) or "CNY",
        travel_km=_number(obj, "travel_km", optional=True),
    )


def _event(obj: dict[str, Any]) -> Event:
    kind = _required(obj, "kind", "")
    if kind != "order" and kind != "settlement":
        raise _fail("invalid_value", "kind", kind, '"order" or "settlement"')
    event_id = _string(obj, "event_id")
    if len(event_id) > MAX_EVENT_ID_CHARS:
        raise _fail("invalid_value", "event_id", event_id, "1..128 characters")
    event_time, ts = _timestamp(obj)
    head = {
        "event_id": event_id,
        "event_time": event_time,
        "ts": ts,
        "outlet_id": _string(obj, "outlet_id"),
        "region": _string(obj, "region", optional=True),
    }
    return _order(obj, head) if kind == "order" else _settlement(obj, head)


def _unparsable(raw: bytes) -> Rejection:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return Rejection("not_utf8", f"not valid UTF-8 at byte {exc.start}", None, None)
    return Rejection("not_json", "not a JSON document", None, _preview(raw[:60]))


def decode(raw: bytes) -> Event | Rejection:
    """Decode one message value or file line; return the typed event or why it is bad."""
    if len(raw) > MAX_EVENT_BYTES:
        return Rejection("too_large", f"{len(raw)} bytes, limit is {MAX_EVENT_BYTES}")
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return _unparsable(raw)
    if type(obj) is not dict:
        return Rejection("not_object", f"expected a JSON object, got {type(obj).__name__}")
    try:
        return _event(obj)
    except _Bad as bad:
        return bad.rejection
    except RecursionError:
        return Rejection("invalid_value", "nesting too deep")
