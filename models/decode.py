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
from functools import lru_cache
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


_MISSING: Any = object()
"""Stands for an absent field, so that JSON null and absence can be told apart."""


def _explain(value: Any, field: str, expected: str) -> _Bad:
    """The precise rejection for a value that failed a fast check."""
    if value is _MISSING:
        return _Bad(Rejection("missing_field", f"required field {field!r} is missing", field))
    if expected == "a non-empty string" and type(value) is str:
        return _fail("invalid_value", field, value, expected)
    return _fail("wrong_type", field, value, expected)


def _string(value: Any, field: str) -> str:
    if type(value) is str and value:
        return value
    raise _explain(value, field, "a non-empty string")


def _optional_string(value: Any, field: str) -> str | None:
    if value is _MISSING or value is None:
        return None
    return _string(value, field)


def _number(value: Any, field: str) -> float:
    kind = type(value)
    if kind is not float and kind is not int:
        raise _explain(value, field, "a number")
    if value < 0 or not math.isfinite(value):
        raise _fail("invalid_value", field, value, "a finite number >= 0")
    return float(value)


def _integer(value: Any, field: str, low: int, high: int | None = None) -> int:
    if type(value) is not int:
        raise _explain(value, field, "an integer")
    if value < low or (high is not None and value > high):
        bounds = f"an integer >= {low}" if high is None else f"an integer {low}..{high}"
        raise _fail("invalid_value", field, value, bounds)
    return value


def _list(value: Any, field: str) -> list[Any]:
    if type(value) is list:
        return value
    raise _explain(value, field, "a list")


def _object(value: Any, field: str) -> dict[str, Any]:
    if type(value) is dict:
        return value
    raise _explain(value, field, "an object")


@lru_cache(maxsize=4096)
def _midnight(day: str, offset: str) -> float:
    """Epoch seconds of local midnight of ``day`` at UTC ``offset`` (cached: few distinct).
    Raises ValueError unless ``day`` is YYYY-MM-DD and ``offset`` is +HH:MM or -HH:MM."""
    if _RFC3339.fullmatch(f"{day}T00:00:00{offset}") is None:
        raise ValueError(day + offset)
    return datetime.fromisoformat(f"{day}T00:00:00{offset}").timestamp()


def _timestamp(text: Any) -> float:
    """Epoch seconds of an RFC 3339 time with offset.

    The usual layout (``2026-07-01T09:30:00+08:00``) is read field by field with the
    calendar part cached; anything else goes through the full pattern and ``fromisoformat``
    (the pattern comes first because ``fromisoformat`` also takes ISO forms RFC 3339 does
    not allow).
    """
    if type(text) is not str:
        raise _explain(text, "event_time", "an RFC 3339 string")
    if (
        len(text) == 25
        and text[10] in "Tt"
        and text[13] == ":"
        and text[16] == ":"
        and text[19] in "+-"
        and (clock := text[11:13] + text[14:16] + text[17:19]).isdigit()
        and clock.isascii()
    ):
        hours, minutes, seconds = int(clock[:2]), int(clock[2:4]), int(clock[4:])
        if hours < 24 and minutes < 60 and seconds < 60:
            try:
                return _midnight(text[:10], text[19:]) + hours * 3600 + minutes * 60 + seconds
            except ValueError:
                pass  # not a calendar date: the full path below says so
    if _RFC3339.fullmatch(text) is None:
        raise _fail("bad_timestamp", "event_time", text, "RFC 3339 with offset")
    try:
        return datetime.fromisoformat(text.upper()).timestamp()
    except ValueError:
        raise _fail("bad_timestamp", "event_time", text, "a real calendar time") from None


def _amount(value: float, field: str) -> float:
    cents = value * 100.0
    if abs(cents - round(cents)) > 1e-6 * max(1.0, value):
        raise _fail("invalid_value", field, value, "CNY with at most 2 decimals")
    return value


def _part(raw: Any, index: int) -> PartIssued:
    path = f"parts_issued[{index}]"
    part = _object(raw, path)
    return PartIssued(
        _string(part.get("part_code", _MISSING), path + ".part_code"),
        _integer(part.get("quantity", _MISSING), path + ".quantity", 1),
    )


def _order(obj: dict[str, Any], head: tuple[str, str, float, str, str | None]) -> OrderEvent:
    get = obj.get
    status = get("status", _MISSING)
    if status not in ORDER_STATUSES:
        raise (
            _explain(status, "status", "a string")
            if type(status) is not str
            else _fail("invalid_value", "status", status, f"one of {', '.join(ORDER_STATUSES)}")
        )
    raw_parts = get("parts_issued")
    parts = None
    if raw_parts is not None:
        parts = tuple(_part(raw, i) for i, raw in enumerate(_list(raw_parts, "parts_issued")))
    rating = get("customer_rating")
    return OrderEvent(  # positional: measurably faster than keywords on this hot path
        *head,
        _string(get("order_id", _MISSING), "order_id"),
        status,
        _string(get("service_type", _MISSING), "service_type"),
        _string(get("product_category", _MISSING), "product_category"),
        _optional_string(get("engineer_id", _MISSING), "engineer_id"),
        parts,
        None if rating is None else _integer(rating, "customer_rating", 1, 5),
    )


def _item(raw: Any, index: int) -> SettlementItem:
    path = f"items[{index}]"
    item = _object(raw, path)
    get = item.get
    code = get("code", _MISSING)
    if code not in ITEM_CODES:
        raise (
            _explain(code, path + ".code", "a string")
            if type(code) is not str
            else _fail("invalid_value", path + ".code", code, f"one of {', '.join(ITEM_CODES)}")
        )
    quantity = get("quantity")
    return SettlementItem(
        code,
        _amount(_number(get("amount", _MISSING), path + ".amount"), path + ".amount"),
        _optional_string(get("part_code", _MISSING), path + ".part_code"),
        None if quantity is None else _integer(quantity, path + ".quantity", 1),
    )


def _settlement(
    obj: dict[str, Any], head: tuple[str, str, float, str, str | None]
) -> SettlementEvent:
    get = obj.get
    amount = _amount(_number(get("amount", _MISSING), "amount"), "amount")
    items = tuple(_item(raw, i) for i, raw in enumerate(_list(get("items", _MISSING), "items")))
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
    travel_km = get("travel_km")
    return SettlementEvent(  # positional, as in _order
        *head,
        _string(get("settlement_id", _MISSING), "settlement_id"),
        _string(get("order_id", _MISSING), "order_id"),
        _string(get("service_type", _MISSING), "service_type"),
        _string(get("product_category", _MISSING), "product_category"),
        amount,
        items,
        _optional_string(get("currency", _MISSING), "currency") or "CNY",
        None if travel_km is None else _number(travel_km, "travel_km"),
    )


def _event(obj: dict[str, Any]) -> Event:
    get = obj.get
    kind = get("kind", _MISSING)
    if kind != "order" and kind != "settlement":
        if kind is _MISSING:
            raise _explain(kind, "kind", "")
        raise _fail("invalid_value", "kind", kind, '"order" or "settlement"')
    event_id = _string(get("event_id", _MISSING), "event_id")
    if len(event_id) > MAX_EVENT_ID_CHARS:
        raise _fail("invalid_value", "event_id", event_id, "1..128 characters")
    event_time = get("event_time", _MISSING)
    head = (
        event_id,
        event_time,
        _timestamp(event_time),
        _string(get("outlet_id", _MISSING), "outlet_id"),
        _optional_string(get("region", _MISSING), "region"),
    )
    return _order(obj, head) if kind == "order" else _settlement(obj, head)


def _usual_timestamp(text: Any) -> float | None:
    """Epoch seconds of a time in the usual layout ``2026-07-01T09:30:00+08:00``, or None
    for anything else (then ``_timestamp`` decides). The date-hour-offset part is cached."""
    if type(text) is not str or len(text) != 25 or text[13] != ":" or text[16] != ":":
        return None
    minutes, seconds = text[14:16], text[17:19]
    if not (minutes.isdigit() and seconds.isdigit() and minutes < "60" and seconds < "60"):
        return None
    hour = _hour_start(text[:13] + text[19:])
    if hour is None:
        return None
    return hour + int(minutes) * 60 + int(seconds)


@lru_cache(maxsize=16384)
def _hour_start(key: str) -> float | None:
    """Epoch seconds of ``YYYY-MM-DDTHH±HH:MM``'s hour, or None when it is not one."""
    text = f"{key[:13]}:00:00{key[13:]}"
    if _RFC3339.fullmatch(text) is None or not text.isascii():
        return None
    try:
        return datetime.fromisoformat(text.upper()).timestamp()
    except ValueError:
        return None


def _usual_items(raw_items: Any) -> tuple[SettlementItem, ...] | None:
    if type(raw_items) is not list:
        return None
    items = []
    for raw in raw_items:
        if type(raw) is not dict:
            return None
        get = raw.get
        code, amount, part_code, quantity = (
            get("code"),
            get("amount"),
            get("part_code"),
            get("quantity"),
        )
        if not (
            code in ITEM_CODES
            and (type(amount) is float or type(amount) is int)
            and 0 <= amount < 1e12
            and abs(amount * 100.0 - round(amount * 100.0)) <= 1e-6 * max(1.0, amount)
            and (part_code is None or (type(part_code) is str and part_code))
            and (quantity is None or (type(quantity) is int and quantity >= 1))
        ):
            return None
        items.append(SettlementItem(code, float(amount), part_code, quantity))
    return tuple(items)


def _usual_event(obj: dict[str, Any]) -> Event | None:
    """The happy path, every check inline: the event when ``obj`` is plainly valid, None
    when anything is unusual — then the field-by-field path decides and says why.
    tests/test_decode.py checks that both paths accept exactly the same inputs."""
    get = obj.get
    kind, event_id, outlet_id, region = (
        get("kind"),
        get("event_id"),
        get("outlet_id"),
        get("region"),
    )
    service_type, category = get("service_type"), get("product_category")
    order_id = get("order_id")
    if not (
        type(event_id) is str
        and 0 < len(event_id) <= MAX_EVENT_ID_CHARS
        and type(outlet_id) is str
        and outlet_id
        and (region is None or (type(region) is str and region))
        and type(service_type) is str
        and service_type
        and type(category) is str
        and category
        and type(order_id) is str
        and order_id
    ):
        return None
    text: Any = get("event_time")
    ts = _usual_timestamp(text)
    if ts is None:
        return None
    if kind == "order":
        status, engineer, parts, rating = (
            get("status"),
            get("engineer_id"),
            get("parts_issued"),
            get("customer_rating"),
        )
        if not (
            status in ORDER_STATUSES
            and (engineer is None or (type(engineer) is str and engineer))
            and (rating is None or (type(rating) is int and 1 <= rating <= 5))
        ):
            return None
        if parts is not None:
            if type(parts) is not list:
                return None
            issued = []
            for part in parts:
                if type(part) is not dict:
                    return None
                code, quantity = part.get("part_code"), part.get("quantity")
                if not (type(code) is str and code and type(quantity) is int and quantity >= 1):
                    return None
                issued.append(PartIssued(code, quantity))
            parts = tuple(issued)
        return OrderEvent(
            event_id,
            text,
            ts,
            outlet_id,
            region,
            order_id,
            status,
            service_type,
            category,
            engineer,
            parts,
            rating,
        )
    if kind != "settlement":
        return None
    settlement_id, amount, currency, travel_km = (
        get("settlement_id"),
        get("amount"),
        get("currency"),
        get("travel_km"),
    )
    items = _usual_items(get("items"))
    if not (
        items is not None
        and type(settlement_id) is str
        and settlement_id
        and (type(amount) is float or type(amount) is int)
        and 0 <= amount < 1e12
        and abs(amount * 100.0 - round(amount * 100.0)) <= 1e-6 * max(1.0, amount)
        and abs(sum(item.amount for item in items) - amount) <= ITEMS_SUM_TOLERANCE + 1e-9
        and (currency is None or (type(currency) is str and currency))
        and (
            travel_km is None
            or ((type(travel_km) is float or type(travel_km) is int) and 0 <= travel_km < 1e12)
        )
    ):
        return None
    return SettlementEvent(
        event_id,
        text,
        ts,
        outlet_id,
        region,
        settlement_id,
        order_id,
        service_type,
        category,
        float(amount),
        items,
        currency or "CNY",
        None if travel_km is None else float(travel_km),
    )


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
    event = _usual_event(obj)
    if event is not None:
        return event
    try:
        return _event(obj)
    except _Bad as bad:
        return bad.rejection
    except RecursionError:
        return Rejection("invalid_value", "nesting too deep")
