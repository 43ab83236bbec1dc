"""Bad input to mix into the stream: lines a consumer must send to the dead letter
(CONTRACT.md section 1), one of each defect at least, at random line positions.

Each bad line is derived from a real event of the run (so it looks like the real thing),
with a fresh event_id where it still has one, so it can never be mistaken for a
re-delivery of a good event.
"""

from __future__ import annotations

import random
from typing import Any

import orjson

from config.contract import load_schema
from stream.simulator.delivery import uuid4_text

DEFECTS: tuple[str, ...] = (
    "not_json",
    "not_utf8",
    "missing_field",
    "wrong_type",
    "negative_amount",
    "items_not_summing",
    "bad_timestamp",
    "garbage",
)

_BAD_TIMES = (
    ("month_13", "2026-13-02T09:30:00+08:00"),
    ("hour_25", "2026-07-01T25:10:00+08:00"),
    ("no_offset", "2026-07-01T09:30:00"),
    ("us_format", "07/01/2026 09:30"),
    ("epoch_text", "1782869400"),
    ("empty", ""),
)


def _settlements(lines: list[bytes]) -> list[int]:
    return [i for i, line in enumerate(lines) if line.startswith(b'{"kind":"settlement"')]


def _as_settlement(order: dict[str, Any]) -> dict[str, Any]:
    """A plausible settlement built from an order event."""
    keys: tuple[str, ...] = ("event_id", "event_time", "outlet_id", "region")
    head = {k: order[k] for k in keys if k in order}
    return {
        "kind": "settlement",
        **head,
        "settlement_id": "JS" + str(order["order_id"])[2:],
        "order_id": order["order_id"],
        "service_type": order["service_type"],
        "product_category": order["product_category"],
        "amount": 100.0,
        "currency": "CNY",
        "items": [{"code": "labor", "amount": 100.0}],
    }


def _dump(obj: dict[str, Any]) -> bytes:
    return orjson.dumps(obj)


def corrupt(defect: str, base: bytes, py: random.Random) -> tuple[bytes, str]:
    """A bad line with ``defect`` made from the good line ``base``; returns (line, detail)."""
    if defect == "garbage":
        size = py.randint(1800, 2300)
        raw = py.randbytes(size)
        return raw.replace(b"\n", b" ").replace(b"\r", b" "), f"{size} random bytes"
    obj: dict[str, Any] = orjson.loads(base)
    obj["event_id"] = uuid4_text(py)
    if defect in ("negative_amount", "items_not_summing") and obj["kind"] != "settlement":
        obj = _as_settlement(obj)  # only in runs too small to have any settlement
    fresh = _dump(obj)
    if defect == "not_json":
        cut = py.randint(len(fresh) // 3, len(fresh) - 2)
        while 0x80 <= fresh[cut] < 0xC0:  # never split a UTF-8 character: stay "not JSON"
            cut -= 1
        return fresh[:cut], f"truncated at byte {cut}"
    if defect == "not_utf8":
        region = str(obj.get("region") or "")
        gbk = region.encode("gbk", errors="ignore")
        if region and gbk != region.encode("utf-8"):
            bad = fresh.replace(region.encode("utf-8"), gbk, 1)
            try:
                bad.decode("utf-8")
            except UnicodeDecodeError:
                return bad, "region in GBK"
        return fresh.replace(b'"kind"', b'"kind\xff\xfe"', 1), "invalid byte in key"
    if defect == "missing_field":
        name = py.choice(load_schema(obj["kind"])["required"])
        del obj[name]
        return _dump(obj), name
    if defect == "wrong_type":
        if obj["kind"] == "settlement":
            choice = py.choice(("amount", "items", "travel_km"))
            if choice == "amount":
                obj["amount"] = f"{obj['amount']:.2f}"
            elif choice == "items":
                obj["items"] = ";".join(f"{i['code']}:{i['amount']}" for i in obj["items"])
            else:
                obj["travel_km"] = f"{obj.get('travel_km', 3.5)}km"
        else:
            choice = py.choice(("status", "order_id", "outlet_id"))
            obj[choice] = 3 if choice == "status" else 20260701
        return _dump(obj), choice
    if defect == "negative_amount":
        obj["amount"] = -obj["amount"]
        obj["items"] = [{**i, "amount": -i["amount"]} for i in obj["items"]]
        return _dump(obj), "amount and items negated"
    if defect == "items_not_summing":
        extra = round(py.uniform(1.0, 200.0), 2)
        obj["amount"] = round(obj["amount"] + extra, 2)
        return _dump(obj), f"amount +{extra:.2f} over items"
    if defect == "bad_timestamp":
        detail, text = py.choice(_BAD_TIMES)
        obj["event_time"] = text
        return _dump(obj), detail
    raise ValueError(f"defect must be one of {DEFECTS}, got {defect!r}")


def mix_in(
    lines: list[bytes], fraction: float, py: random.Random
) -> tuple[list[bytes], list[dict[str, Any]]]:
    """Insert bad lines at random positions; returns (all lines, records with the 1-based
    line number and defect of each bad line)."""
    if fraction <= 0 or not lines:
        return lines, []
    n_bad = max(len(DEFECTS), round(fraction * len(lines)))
    defects = list(DEFECTS) + [py.choice(DEFECTS) for _ in range(n_bad - len(DEFECTS))]
    py.shuffle(defects)
    settlements = _settlements(lines) or list(range(len(lines)))
    total = len(lines) + n_bad
    positions = sorted(py.sample(range(total), n_bad))
    bad_at: dict[int, tuple[bytes, str, str]] = {}
    for pos, defect in zip(positions, defects, strict=True):
        needs_settlement = defect in ("negative_amount", "items_not_summing")
        pool = settlements if needs_settlement else range(len(lines))
        base = lines[py.choice(pool)]
        bad, detail = corrupt(defect, base, py)
        bad_at[pos] = (bad, defect, detail)
    out: list[bytes] = []
    records: list[dict[str, Any]] = []
    good = iter(lines)
    for pos in range(total):
        hit = bad_at.get(pos)
        if hit is None:
            out.append(next(good))
        else:
            out.append(hit[0])
            records.append({"line": pos + 1, "defect": hit[1], "detail": hit[2]})
    return out, records
