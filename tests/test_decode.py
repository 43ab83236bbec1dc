"""The decoder against the contract: valid events round-trip, every kind of bad input is
rejected with a reason (and by the JSON Schemas too), and the decoder never raises."""

from __future__ import annotations

import copy
import random
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import jsonschema
import orjson
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from config.contract import load_schema
from models.decode import REASONS, Rejection, decode
from models.events import OrderEvent, SettlementEvent, event_to_dict

VALIDATORS = {
    kind: jsonschema.Draft202012Validator(load_schema(kind)) for kind in ("order", "settlement")
}

ids = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), min_size=1, max_size=20)
cents = st.integers(min_value=0, max_value=5_000_000)


@st.composite
def timestamps(draw: st.DrawFn) -> str:
    moment = draw(
        st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2099, 12, 31))
    ).replace(microsecond=0)
    minutes = draw(st.integers(min_value=-12 * 60, max_value=14 * 60).map(lambda m: m - m % 15))
    offset = timezone(timedelta(minutes=minutes))
    text = moment.replace(tzinfo=offset).isoformat()
    return text.replace("+00:00", "Z") if draw(st.booleans()) else text


def common(draw: st.DrawFn, kind: str) -> dict[str, Any]:
    event = {
        "kind": kind,
        "event_id": draw(ids),
        "event_time": draw(timestamps()),
        "outlet_id": draw(ids),
    }
    if draw(st.booleans()):
        event["region"] = draw(ids)
    return event


@st.composite
def orders(draw: st.DrawFn) -> dict[str, Any]:
    event = common(draw, "order") | {
        "order_id": draw(ids),
        "status": draw(st.sampled_from(["created", "dispatched", "completed", "cancelled"])),
        "service_type": draw(ids),
        "product_category": draw(ids),
    }
    if draw(st.booleans()):
        event["engineer_id"] = draw(ids)
    if draw(st.booleans()):
        parts = st.fixed_dictionaries(
            {"part_code": ids, "quantity": st.integers(min_value=1, max_value=50)}
        )
        event["parts_issued"] = draw(st.lists(parts, max_size=4))
    if draw(st.booleans()):
        event["customer_rating"] = draw(st.integers(min_value=1, max_value=5))
    return event


@st.composite
def items(draw: st.DrawFn) -> dict[str, Any]:
    item: dict[str, Any] = {
        "code": draw(st.sampled_from(["labor", "parts", "travel", "other"])),
        "amount": draw(cents) / 100,
    }
    if item["code"] == "parts":
        item["part_code"] = draw(ids)
        item["quantity"] = draw(st.integers(min_value=1, max_value=9))
    return item


@st.composite
def settlements(draw: st.DrawFn) -> dict[str, Any]:
    lines = draw(st.lists(items(), min_size=1, max_size=5))
    event = common(draw, "settlement") | {
        "settlement_id": draw(ids),
        "order_id": draw(ids),
        "service_type": draw(ids),
        "product_category": draw(ids),
        "amount": round(sum(line["amount"] for line in lines), 2),
        "items": lines,
    }
    if draw(st.booleans()):
        event["currency"] = "CNY"
    if draw(st.booleans()):
        event["travel_km"] = draw(st.floats(min_value=0, max_value=500, allow_nan=False))
    return event


events = st.one_of(orders(), settlements())


def canonical(event: dict[str, Any]) -> dict[str, Any]:
    """The dict as the decoder normalises it: numbers as floats, currency defaulted."""
    out = copy.deepcopy(event)
    if out["kind"] == "settlement":
        out.setdefault("currency", "CNY")
        out["amount"] = float(out["amount"])
        for item in out["items"]:
            item["amount"] = float(item["amount"])
    return out


@given(events)
def test_valid_events_round_trip(event: dict[str, Any]) -> None:
    """Every valid event decodes to a typed event that re-encodes to the same object."""
    decoded = decode(orjson.dumps(event))
    assert isinstance(decoded, OrderEvent | SettlementEvent), decoded
    assert event_to_dict(decoded) == canonical(event)
    assert decode(orjson.dumps(event_to_dict(decoded))) == decoded


@given(events)
def test_valid_events_match_the_json_schema(event: dict[str, Any]) -> None:
    """The shipped JSON Schemas accept everything the decoder accepts."""
    VALIDATORS[event["kind"]].validate(event)


@given(events)
def test_event_time_is_parsed_to_epoch_seconds(event: dict[str, Any]) -> None:
    """ts is the absolute instant of event_time, whatever its offset."""
    decoded = decode(orjson.dumps(event))
    assert not isinstance(decoded, Rejection)
    expected = datetime.fromisoformat(event["event_time"].replace("Z", "+00:00"))
    assert datetime.fromtimestamp(decoded.ts, UTC) == expected


REQUIRED = {kind: load_schema(kind)["required"] for kind in ("order", "settlement")}


def assert_rejected(raw: bytes, reason: str, field: str | None = None) -> Rejection:
    result = decode(raw)
    assert isinstance(result, Rejection), f"accepted bad input {raw[:200]!r}"
    assert result.reason == reason, result
    assert result.reason in REASONS
    assert result.detail
    if field is not None:
        assert result.field == field, result
    return result


def assert_schema_rejects(event: Any) -> None:
    kind = event.get("kind") if isinstance(event, dict) else None
    validator = VALIDATORS.get(kind, VALIDATORS["order"])
    assert not validator.is_valid(event), event


@given(events, st.data())
def test_missing_required_field_is_rejected(event: dict[str, Any], data: st.DataObject) -> None:
    """Dropping any required field gives missing_field naming it."""
    field = data.draw(st.sampled_from(REQUIRED[event["kind"]][1:]))
    del event[field]
    assert_rejected(orjson.dumps(event), "missing_field", field)
    assert_schema_rejects(event)


int64 = st.integers(-(2**63), 2**63 - 1)
WRONG_TYPES = st.one_of(
    int64,
    st.booleans(),
    st.lists(int64, max_size=2),
    st.dictionaries(st.text(max_size=3), int64, max_size=2),
)


@given(events, st.data())
def test_wrongly_typed_string_field_is_rejected(event: dict[str, Any], data: st.DataObject) -> None:
    """A non-string where the contract wants a string is wrong_type, naming the field."""
    field = data.draw(
        st.sampled_from(
            [
                f
                for f in REQUIRED[event["kind"]]
                if f not in ("kind", "status", "amount", "items", "event_time")
            ]
        )
    )
    event[field] = data.draw(WRONG_TYPES)
    assert_rejected(orjson.dumps(event), "wrong_type", field)
    assert_schema_rejects(event)


@given(settlements(), st.data())
def test_wrongly_typed_amount_is_rejected(event: dict[str, Any], data: st.DataObject) -> None:
    """A string, bool or list amount is wrong_type."""
    event["amount"] = data.draw(st.one_of(st.text(max_size=5), st.booleans(), st.just([1])))
    assert_rejected(orjson.dumps(event), "wrong_type", "amount")
    assert_schema_rejects(event)


@given(settlements(), st.integers(min_value=1, max_value=10**6))
def test_negative_amount_is_rejected(event: dict[str, Any], cents_: int) -> None:
    """A negative total is invalid_value."""
    event["amount"] = -cents_ / 100
    assert_rejected(orjson.dumps(event), "invalid_value", "amount")
    assert_schema_rejects(event)


@given(settlements(), st.integers(min_value=1, max_value=10**6))
def test_negative_item_amount_is_rejected(event: dict[str, Any], cents_: int) -> None:
    """A negative line amount is invalid_value at that line."""
    event["items"][0]["amount"] = -cents_ / 100
    assert_rejected(orjson.dumps(event), "invalid_value", "items[0].amount")
    assert_schema_rejects(event)


@given(settlements(), st.integers(min_value=2, max_value=10**6), st.booleans())
def test_items_not_summing_are_rejected(event: dict[str, Any], off: int, up: bool) -> None:
    """Items that miss the total by more than 0.01 are items_not_summing."""
    new_total = event["amount"] + off / 100 if up else event["amount"] - off / 100
    assume(new_total >= 0)
    event["amount"] = round(new_total, 2)
    assert_rejected(orjson.dumps(event), "items_not_summing", "items")


@given(settlements())
def test_amount_with_three_decimals_is_rejected(event: dict[str, Any]) -> None:
    """CNY has at most 2 decimals."""
    event["items"][0]["amount"] += 0.005
    event["amount"] = event["amount"] + 0.005
    assert_rejected(orjson.dumps(event), "invalid_value")


BAD_TIMES = st.one_of(
    st.sampled_from(
        [
            "2026-07-01T09:30:00",  # no offset
            "2026-07-01",  # date only
            "2026-13-01T09:30:00+08:00",  # month 13
            "2026-02-30T09:30:00+08:00",  # no such day
            "2026-07-01T25:30:00+08:00",  # hour 25
            "20260701T093000+0800",  # ISO basic, not RFC 3339
            "yesterday",
            "",
        ]
    ),
    st.text(max_size=30).filter(lambda s: not s[:4].isdigit()),
)


@given(events, BAD_TIMES)
def test_bad_timestamp_is_rejected(event: dict[str, Any], text: str) -> None:
    """Anything but a real RFC 3339 time with offset is bad_timestamp."""
    event["event_time"] = text
    assert_rejected(orjson.dumps(event), "bad_timestamp", "event_time")


@given(events, st.sampled_from([12, 1.5, None, ["2026"]]))
def test_non_string_timestamp_is_rejected(event: dict[str, Any], value: Any) -> None:
    """A timestamp that is not a string is wrong_type."""
    event["event_time"] = value
    assert_rejected(orjson.dumps(event), "wrong_type", "event_time")


@given(
    orders(),
    st.text(max_size=12).filter(
        lambda s: s not in ("created", "dispatched", "completed", "cancelled")
    ),
)
def test_unknown_status_is_rejected(event: dict[str, Any], status: str) -> None:
    """Order status is a closed set."""
    event["status"] = status
    assert decode(orjson.dumps(event)).__class__ is Rejection
    assert_schema_rejects(event)


@given(orders(), int64.filter(lambda n: not 1 <= n <= 5))
def test_customer_rating_out_of_range_is_rejected(event: dict[str, Any], rating: int) -> None:
    """customer_rating is 1..5."""
    event["customer_rating"] = rating
    assert_rejected(orjson.dumps(event), "invalid_value", "customer_rating")
    assert_schema_rejects(event)


@given(events, st.text(min_size=129, max_size=200))
def test_overlong_event_id_is_rejected(event: dict[str, Any], event_id: str) -> None:
    """event_id is at most 128 characters."""
    event["event_id"] = event_id
    assert_rejected(orjson.dumps(event), "invalid_value", "event_id")
    assert_schema_rejects(event)


@given(events)
def test_truncated_json_is_rejected(event: dict[str, Any]) -> None:
    """A cut-off message is not_json (or not_utf8 when the cut splits a character)."""
    raw = orjson.dumps(event)[: len(orjson.dumps(event)) // 2]
    expected = "not_json"
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        expected = "not_utf8"
    assert_rejected(raw, expected)


@given(st.binary(min_size=1, max_size=200))
def test_arbitrary_bytes_never_raise(raw: bytes) -> None:
    """Whatever the bytes, decode returns an event or a Rejection and never raises."""
    result = decode(raw)
    assert isinstance(result, OrderEvent | SettlementEvent | Rejection)


@given(events, st.integers(min_value=0, max_value=10_000), st.binary(min_size=1, max_size=4))
def test_corrupted_bytes_never_raise(event: dict[str, Any], position: int, junk: bytes) -> None:
    """Flipping bytes inside a valid event never makes the decoder raise."""
    raw = bytearray(orjson.dumps(event))
    position %= len(raw)
    raw[position : position + len(junk)] = junk
    result = decode(bytes(raw))
    assert isinstance(result, OrderEvent | SettlementEvent | Rejection)


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"\xff\xfe{}", "not_utf8"),
        (b'{"kind": "order", "event_id": "\xc3\x28"}', "not_utf8"),
        (b"not json at all", "not_json"),
        (b"", "not_json"),
        (b"[1, 2, 3]", "not_object"),
        (b'"a string"', "not_object"),
        (b"null", "not_object"),
        (b'{"kind": "refund"}', "invalid_value"),
        (b"[" * 100_000 + b"]" * 100_000, "too_large"),
    ],
)
def test_unparsable_payloads_are_rejected(raw: bytes, reason: str) -> None:
    """Bytes that are not a JSON object get a precise reason."""
    assert_rejected(raw, reason)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_megabyte_of_garbage_is_rejected(seed: int) -> None:
    """1 MB of random bytes, or a 1 MB JSON string, is rejected (too_large) unparsed."""
    assert_rejected(random.Random(seed).randbytes(1024 * 1024), "too_large")
    assert_rejected(orjson.dumps({"kind": "order", "x": "a" * 1024 * 1024}), "too_large")


def test_deeply_nested_json_is_rejected() -> None:
    """A small but deeply nested document is rejected, not a crash."""
    raw = b'{"kind": "order", "x": ' + b"[" * 5000 + b"]" * 5000 + b"}"
    result = decode(raw)
    assert isinstance(result, Rejection)


def test_rejection_names_field_value_and_expectation() -> None:
    """The reason a reviewer sees says the field, the offending value and what was expected."""
    event = {
        "kind": "order",
        "event_id": "e",
        "event_time": "2026-07-01T09:30:00+08:00",
        "outlet_id": "o",
        "order_id": "x",
        "status": "done",
        "service_type": "install",
        "product_category": "tv",
    }
    rejection = assert_rejected(orjson.dumps(event), "invalid_value", "status")
    assert rejection.value == "'done'"
    assert "completed" in rejection.detail
    assert str(rejection).startswith("invalid_value at status: expected one of created")


@given(events, st.data())
def test_fast_path_agrees_with_the_explaining_path(event: dict[str, Any], data: Any) -> None:
    """The inline happy path never accepts what the field-by-field path rejects, and
    returns the same event when both accept (here on valid and on mutated events)."""
    from models.decode import _Bad, _event, _usual_event

    if data.draw(st.booleans()):
        field = data.draw(st.sampled_from(sorted(event)))
        event[field] = data.draw(st.one_of(WRONG_TYPES, st.none(), st.just(""), st.just(-1)))
    fast = _usual_event(event)
    try:
        slow: Any = _event(event)
    except _Bad:
        slow = None
    assert fast is None or fast == slow
    if slow is not None and event["event_time"][-6] == "+" and len(event["event_time"]) == 25:
        assert fast == slow  # the usual layout is always taken by the fast path
