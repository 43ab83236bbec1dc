"""The event simulator (stream/simulator): contract-valid events, determinism, ground truth
that matches the stream, legitimate patterns, malformed lines where recorded, publishing."""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import re
from collections import Counter, defaultdict
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar

import orjson
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stream.simulator import SimulationConfig, SimulationResult, simulate, write_outputs
from stream.simulator.anomalies import ANOMALY_TYPES, EXPECTED_KIND
from stream.simulator.cli import simulate as simulate_command
from stream.simulator.kafka import MALFORMED_KEY, Pacer, publish, route
from stream.simulator.malformed import DEFECTS
from stream.simulator.output import FILES

try:  # the lead's decoder, if present: cross-check against it as well
    from models.decode import Rejection, decode
except ImportError:  # pragma: no cover - depends on the rest of the project
    decode = None  # type: ignore[assignment]
    Rejection = None  # type: ignore[assignment,misc]

SMALL = SimulationConfig(outlets=20, days=10, seed=11, start=date(2026, 6, 25), malformed=0.02)
MEDIUM = SimulationConfig(outlets=100, days=30, seed=3)
TIME_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\+08:00$")
ORDER_STATUSES = {"created", "dispatched", "completed", "cancelled"}
ITEM_CODES = {"labor", "parts", "travel", "other"}


# -- helpers ---------------------------------------------------------------------------------


def contract_problems(obj: Any) -> list[str]:
    """Everything in ``obj`` that CONTRACT.md section 1 does not allow (empty = valid)."""
    if not isinstance(obj, dict):
        return ["not an object"]
    bad: list[str] = []

    def string(key: str, optional: bool = False) -> None:
        value = obj.get(key)
        if value is None and optional and key not in obj:
            return
        if not isinstance(value, str) or not value:
            bad.append(f"{key} not a non-empty string: {value!r}")

    def money(value: Any, where: str) -> None:
        if type(value) not in (int, float) or value < 0:
            bad.append(f"{where} not a number >= 0: {value!r}")
        elif abs(value * 100 - round(value * 100)) > 1e-6:
            bad.append(f"{where} has more than 2 decimals: {value!r}")

    kind = obj.get("kind")
    if kind not in ("order", "settlement"):
        return [f"kind {kind!r}"]
    string("event_id")
    if isinstance(obj.get("event_id"), str) and len(obj["event_id"]) > 128:
        bad.append("event_id longer than 128")
    string("outlet_id")
    string("region", optional=True)
    event_time = obj.get("event_time")
    if not isinstance(event_time, str) or not TIME_RE.match(event_time):
        bad.append(f"event_time {event_time!r}")
    else:
        try:
            datetime.fromisoformat(event_time)
        except ValueError:
            bad.append(f"event_time not a calendar time {event_time!r}")
    for key in ("order_id", "service_type", "product_category"):
        string(key)
    if kind == "order":
        if obj.get("status") not in ORDER_STATUSES:
            bad.append(f"status {obj.get('status')!r}")
        string("engineer_id", optional=True)
        if "parts_issued" in obj:
            parts = obj["parts_issued"]
            if not isinstance(parts, list) or not parts:
                bad.append("parts_issued not a non-empty list")
            else:
                for p in parts:
                    if not isinstance(p, dict) or not isinstance(p.get("part_code"), str):
                        bad.append(f"part {p!r}")
                    elif type(p.get("quantity")) is not int or p["quantity"] < 1:
                        bad.append(f"part quantity {p!r}")
            if obj.get("status") != "completed":
                bad.append("parts_issued on a non-completed event")
        if "customer_rating" in obj:
            rating = obj["customer_rating"]
            if type(rating) is not int or not 1 <= rating <= 5:
                bad.append(f"customer_rating {rating!r}")
    else:
        string("settlement_id")
        money(obj.get("amount"), "amount")
        if obj.get("currency", "CNY") != "CNY":
            bad.append(f"currency {obj.get('currency')!r}")
        items = obj.get("items")
        if not isinstance(items, list) or not items:
            return [*bad, "items not a non-empty list"]
        for n, it in enumerate(items):
            if not isinstance(it, dict) or it.get("code") not in ITEM_CODES:
                bad.append(f"item {n} code {it!r}")
                continue
            money(it.get("amount"), f"items[{n}].amount")
            if it["code"] == "parts":
                if not isinstance(it.get("part_code"), str):
                    bad.append(f"parts item {n} without part_code")
                if type(it.get("quantity")) is not int or it["quantity"] < 1:
                    bad.append(f"parts item {n} quantity {it.get('quantity')!r}")
        if not bad and abs(sum(i["amount"] for i in items) - obj["amount"]) > 0.01 + 1e-9:
            bad.append("items do not sum to amount")
        if "travel_km" in obj and (
            type(obj["travel_km"]) not in (int, float) or obj["travel_km"] < 0
        ):
            bad.append(f"travel_km {obj['travel_km']!r}")
    return bad


class Stream:
    """A simulated result parsed once: unique events by id, with arrival positions."""

    def __init__(self, result: SimulationResult) -> None:
        self.result = result
        self.bad_lines = {m["line"] for m in result.malformed}
        self.events: dict[str, dict[str, Any]] = {}
        self.first_line: dict[str, int] = {}
        self.raw: dict[str, bytes] = {}
        self.redelivered: list[tuple[bytes, bytes]] = []
        for number, line in enumerate(result.events, start=1):
            if number in self.bad_lines:
                continue
            obj = orjson.loads(line)
            eid = obj["event_id"]
            if eid in self.events:
                self.redelivered.append((self.raw[eid], line))
                continue
            self.events[eid] = obj
            self.first_line[eid] = number
            self.raw[eid] = line
        self.orders: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)
        self.order_line: dict[tuple[str, str], int] = {}
        self.settlements: dict[str, dict[str, Any]] = {}
        self.settlement_line: dict[str, int] = {}
        for eid, obj in self.events.items():
            if obj["kind"] == "order":
                assert obj["status"] not in self.orders[obj["order_id"]], "status repeated"
                self.orders[obj["order_id"]][obj["status"]] = obj
                self.order_line[(obj["order_id"], obj["status"])] = self.first_line[eid]
            else:
                assert obj["settlement_id"] not in self.settlements, "settlement id reused"
                self.settlements[obj["settlement_id"]] = obj
                self.settlement_line[obj["settlement_id"]] = self.first_line[eid]
        self.anomalous = {s: lab for lab in result.labels for s in lab["settlement_ids"]}
        self.standard = {
            (r["service_type"], r["product_category"]): r["max_amount"] for r in result.fee_table
        }


def labour(settlement: dict[str, Any]) -> float:
    """Sum of the labour lines of a settlement."""
    return sum(i["amount"] for i in settlement["items"] if i["code"] == "labor")


def ts(text: str) -> float:
    """Epoch seconds of an RFC 3339 string."""
    return datetime.fromisoformat(text).timestamp()


@pytest.fixture(scope="module")
def small() -> Stream:
    """20 outlets x 10 days around a month end, 2 % malformed lines."""
    return Stream(simulate(SMALL))


@pytest.fixture(scope="module")
def medium() -> Stream:
    """100 outlets x 30 days, no malformed lines: enough for every anomaly type."""
    return Stream(simulate(MEDIUM))


# -- determinism -----------------------------------------------------------------------------


def _digest(out: Path) -> dict[str, str]:
    return {name: hashlib.sha256((out / name).read_bytes()).hexdigest() for name in FILES}


def test_same_config_gives_identical_files(tmp_path: Path) -> None:
    """The same config written twice gives byte-identical output files."""
    write_outputs(simulate(SMALL), tmp_path / "a")
    write_outputs(simulate(SMALL), tmp_path / "b")
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b")


def test_different_seed_gives_different_stream() -> None:
    """Another seed gives another stream."""
    one = simulate(SimulationConfig(outlets=20, days=10, seed=1))
    two = simulate(SimulationConfig(outlets=20, days=10, seed=2))
    assert one.events != two.events


def test_malformed_option_leaves_good_lines_unchanged() -> None:
    """Turning on malformed lines only inserts lines: the good ones are the same bytes."""
    clean = simulate(SimulationConfig(outlets=20, days=10, seed=11, start=SMALL.start))
    dirty = simulate(SMALL)
    bad = {m["line"] for m in dirty.malformed}
    kept = [line for n, line in enumerate(dirty.events, start=1) if n not in bad]
    assert kept == clean.events


@pytest.mark.slow
def test_default_run_is_deterministic_and_sized() -> None:
    """The default 200 x 60 day run is reproducible and 200k-400k events, ~1-2 % anomalous."""
    first = simulate(SimulationConfig())
    second = simulate(SimulationConfig())
    assert (
        hashlib.sha256(b"\n".join(first.events)).digest()
        == hashlib.sha256(b"\n".join(second.events)).digest()
    )
    assert first.labels == second.labels
    assert 200_000 <= len(first.events) <= 400_000
    share = first.summary["anomalous_settlements"] / first.summary["events_by_kind"]["settlement"]
    assert 0.01 <= share <= 0.02


# -- the contract ----------------------------------------------------------------------------


def test_every_good_line_matches_the_contract(small: Stream, medium: Stream) -> None:
    """Every line not recorded as malformed is a valid contract event."""
    for stream in (small, medium):
        for eid, obj in stream.events.items():
            assert contract_problems(obj) == [], (eid, obj)


def test_good_lines_match_the_json_schemas(small: Stream) -> None:
    """Good lines validate against the project's JSON Schemas (config/schemas)."""
    jsonschema = pytest.importorskip("jsonschema")
    contract = pytest.importorskip("config.contract")
    validators = {
        kind: jsonschema.Draft202012Validator(contract.load_schema(kind))
        for kind in ("order", "settlement")
    }
    for obj in small.events.values():
        validators[obj["kind"]].validate(obj)


@pytest.mark.skipif(decode is None, reason="models.decode not available")
def test_decoder_accepts_good_lines_and_rejects_malformed(small: Stream) -> None:
    """The project's decoder accepts every good line and rejects every recorded bad one."""
    assert decode is not None and Rejection is not None
    for number, line in enumerate(small.result.events, start=1):
        outcome = decode(line)
        assert isinstance(outcome, Rejection) == (number in small.bad_lines), (number, outcome)


def test_items_sum_to_amount(medium: Stream) -> None:
    """Settlement lines are rounded to cents and sum to the amount within 0.01."""
    for s in medium.settlements.values():
        total = sum(i["amount"] for i in s["items"])
        assert abs(total - s["amount"]) <= 0.01 + 1e-9
        assert all(round(i["amount"], 2) == i["amount"] for i in s["items"])


def test_event_times_are_chronological_per_order(medium: Stream) -> None:
    """created <= dispatched <= completed/cancelled, and honest settlements follow completion."""
    for statuses in medium.orders.values():
        times = [
            ts(statuses[s]["event_time"])
            for s in ("created", "dispatched", "completed", "cancelled")
            if s in statuses
        ]
        assert "completed" not in statuses or "cancelled" not in statuses
        assert times[0] == ts(statuses["created"]["event_time"]) if "created" in statuses else 1
        assert times == sorted(times)
    for sid, s in medium.settlements.items():
        done = medium.orders.get(s["order_id"], {}).get("completed")
        if done is not None:
            assert ts(s["event_time"]) > ts(done["event_time"]), sid


def test_stream_is_in_arrival_order_roughly_by_time(medium: Stream) -> None:
    """Lines are in arrival order: event time mostly increases, never wildly out of order."""
    times = [ts(o["event_time"]) for o in medium.events.values()]
    backwards = sum(1 for a, b in itertools.pairwise(times) if b < a - 60)
    assert backwards < 0.1 * len(times)


def test_outlets_are_heavy_tailed(medium: Stream) -> None:
    """Outlet volumes range from under one to dozens of jobs a day."""
    created = Counter(o["created"]["outlet_id"] for o in medium.orders.values() if "created" in o)
    per_day = sorted(n / MEDIUM.days for n in created.values())
    assert per_day[0] < 1.0 and per_day[-1] > 20.0


def test_summer_air_conditioner_peak(medium: Stream) -> None:
    """Air-conditioner installs rise from early June to late June."""
    daily: Counter[int] = Counter()
    for statuses in medium.orders.values():
        c = statuses.get("created")
        if c and c["service_type"] == "install" and c["product_category"] == "air_conditioner":
            daily[int(c["event_time"][8:10])] += 1
    assert sum(daily[d] for d in range(24, 31)) > 1.3 * sum(daily[d] for d in range(1, 8))


# -- delivery --------------------------------------------------------------------------------


def test_redeliveries_repeat_identical_bytes(medium: Stream) -> None:
    """About 1-2 % of events are delivered twice, with the same id and the same bytes."""
    assert medium.redelivered
    assert all(first == again for first, again in medium.redelivered)
    assert 0.01 <= len(medium.redelivered) / len(medium.events) <= 0.02


def test_some_completed_events_arrive_after_their_settlement(medium: Stream) -> None:
    """3-8 % of settlements arrive before their order's completed event."""
    late = sum(
        1
        for sid, s in medium.settlements.items()
        if (s["order_id"], "completed") in medium.order_line
        and medium.order_line[(s["order_id"], "completed")] > medium.settlement_line[sid]
    )
    assert 0.03 <= late / len(medium.settlements) <= 0.08


# -- ground truth ----------------------------------------------------------------------------


def test_labels_reference_existing_settlements(medium: Stream) -> None:
    """Every label names settlements that are in the stream, of its outlet, in its time span."""
    seen: set[str] = set()
    for lab in medium.result.labels:
        assert lab["expected_kind"] == EXPECTED_KIND[lab["type"]]
        assert lab["settlement_ids"] and len(lab["settlement_ids"]) == len(lab["order_ids"])
        assert TIME_RE.match(lab["start"]) and TIME_RE.match(lab["end"])
        for sid, oid in zip(lab["settlement_ids"], lab["order_ids"], strict=True):
            s = medium.settlements[sid]
            assert s["outlet_id"] == lab["outlet_id"] and s["order_id"] == oid
            assert ts(lab["start"]) <= ts(s["event_time"]) <= ts(lab["end"])
            assert sid not in seen, "a settlement carries two anomalies"
            seen.add(sid)
    assert [lab["id"] for lab in medium.result.labels] == [
        f"anom-{n:06d}" for n in range(1, len(medium.result.labels) + 1)
    ]


def test_every_anomaly_type_appears_and_share_is_about_one_percent(medium: Stream) -> None:
    """All ten anomaly types are injected, after the warm-up, 1-2 % of settlements."""
    types = Counter(lab["type"] for lab in medium.result.labels)
    assert set(types) == set(ANOMALY_TYPES)
    assert all(types[t] >= 3 for t in ANOMALY_TYPES if t != "fabricated_burst")
    assert 0.01 <= len(medium.anomalous) / len(medium.settlements) <= 0.02
    warmup_end = ts(f"{MEDIUM.start + timedelta(days=MEDIUM.warmup_days)}T00:00:00+08:00")
    assert all(ts(lab["start"]) >= warmup_end for lab in medium.result.labels)
    outlets = {lab["outlet_id"] for lab in medium.result.labels}
    assert len(outlets) >= 30


def test_over_standard_is_consistent_with_fee_table(medium: Stream) -> None:
    """Honest labour never exceeds the fee-table standard; over_standard always does."""
    for sid, s in medium.settlements.items():
        std = medium.standard[(s["service_type"], s["product_category"])]
        lab = medium.anomalous.get(sid)
        if lab is None:
            assert labour(s) <= std + 1e-9, sid
        elif lab["type"] == "over_standard":
            assert 1.2 * std - 0.01 <= labour(s) <= 1.6 * std + 0.01, sid


def test_parts_claims_match_parts_issued(medium: Stream) -> None:
    """Claimed part codes are issued on the order, except for parts_not_issued labels."""
    flagged = 0
    for sid, s in medium.settlements.items():
        done = medium.orders.get(s["order_id"], {}).get("completed")
        issued = {p["part_code"] for p in (done or {}).get("parts_issued", [])}
        claimed = {i["part_code"] for i in s["items"] if i["code"] == "parts"}
        lab = medium.anomalous.get(sid)
        if lab is not None and lab["type"] == "parts_not_issued":
            assert claimed - issued, sid
            flagged += 1
        elif done is not None:
            assert claimed <= issued, sid
    assert flagged


def test_unmatched_settlements_cover_three_reasons(medium: Stream) -> None:
    """Unmatched claims point at a missing, a cancelled or a never-completed order."""
    details: Counter[str] = Counter()
    for lab in medium.result.labels:
        if lab["type"] != "unmatched_settlement":
            continue
        statuses = medium.orders.get(lab["order_ids"][0], {})
        details[lab["detail"]] += 1
        if lab["detail"] == "never_existed":
            assert not statuses
        elif lab["detail"] == "cancelled":
            assert "cancelled" in statuses and "completed" not in statuses
        else:
            assert lab["detail"] == "never_completed"
            assert "created" in statuses and "completed" not in statuses
    assert set(details) == {"never_existed", "cancelled", "never_completed"}
    honest = [s for sid, s in medium.settlements.items() if sid not in medium.anomalous]
    assert all("completed" in medium.orders.get(s["order_id"], {}) for s in honest)


def test_fabricated_bursts_are_one_engineer_within_minutes(medium: Stream) -> None:
    """A burst is 8-25 orders by one engineer completed within about an hour."""
    bursts = [lab for lab in medium.result.labels if lab["type"] == "fabricated_burst"]
    assert bursts
    for lab in bursts:
        assert 8 <= len(lab["order_ids"]) <= 25
        done = [medium.orders[o]["completed"] for o in lab["order_ids"]]
        assert len({d["engineer_id"] for d in done}) == 1
        times = [ts(d["event_time"]) for d in done]
        assert max(times) - min(times) <= 90 * 60
        assert ts(lab["end"]) - ts(lab["start"]) <= 6 * 3600


def test_duplicate_settlements_claim_an_already_settled_order(medium: Stream) -> None:
    """A duplicate_settlement is a new settlement for the order of an earlier one."""
    dups = [lab for lab in medium.result.labels if lab["type"] == "duplicate_settlement"]
    assert dups
    for lab in dups:
        dup = medium.settlements[lab["settlement_ids"][0]]
        (orig_id,) = lab["related_settlement_ids"]
        orig = medium.settlements[orig_id]
        assert orig["order_id"] == dup["order_id"] and orig_id != dup["settlement_id"]
        assert ts(dup["event_time"]) > ts(orig["event_time"])
        assert abs(dup["amount"] - orig["amount"]) <= 0.1 * orig["amount"] + 0.01


# -- legitimate patterns ---------------------------------------------------------------------


def test_legitimate_patterns_are_present(small: Stream, medium: Stream) -> None:
    """Region surge, volume step and month-end batch all appear and none is labelled."""
    for stream in (small, medium):
        types = Counter(p["type"] for p in stream.result.patterns)
        assert {"region_surge", "volume_step"} <= set(types)
    assert "month_end_batch" in Counter(p["type"] for p in small.result.patterns)


def test_region_surge_raises_air_conditioner_volume(medium: Stream) -> None:
    """During a surge the region's air-conditioner install+repair orders clearly rise."""
    surge = next(p for p in medium.result.patterns if p["type"] == "region_surge")
    start, end = ts(surge["start"]), ts(surge["end"])
    days = (end + 1 - start) / 86400
    during = before = 0
    for statuses in medium.orders.values():
        c = statuses.get("created")
        if (
            not c
            or c["region"] != surge["region"]
            or c["product_category"] != "air_conditioner"
            or c["service_type"] not in ("install", "repair")
        ):
            continue
        t = ts(c["event_time"])
        if start <= t <= end:
            during += 1
        elif start - 5 * 86400 <= t < start:
            before += 1
    assert during / days > 1.5 * before / 5


def test_month_end_batch_settles_old_completed_jobs(small: Stream) -> None:
    """Batch outlets submit many settlements in the batch window, for long-completed orders."""
    batch = next(p for p in small.result.patterns if p["type"] == "month_end_batch")
    start, end = ts(batch["start"]), ts(batch["end"])
    inside = [
        s
        for s in small.settlements.values()
        if s["outlet_id"] in batch["outlet_ids"] and start <= ts(s["event_time"]) <= end
    ]
    assert len(inside) >= 10
    honest = [s for s in inside if s["settlement_id"] not in small.anomalous]
    for s in honest:
        done = small.orders[s["order_id"]]["completed"]
        assert ts(s["event_time"]) - ts(done["event_time"]) > 12 * 3600


# -- malformed lines -------------------------------------------------------------------------


def test_malformed_lines_are_where_recorded(small: Stream) -> None:
    """Every recorded line is bad in the recorded way; every defect type is present."""
    records = small.result.malformed
    assert {m["defect"] for m in records} == set(DEFECTS)
    for m in records:
        line = small.result.events[m["line"] - 1]
        try:
            obj = orjson.loads(line)
        except orjson.JSONDecodeError:
            obj = None
        defect = m["defect"]
        if defect == "not_utf8":
            with pytest.raises(UnicodeDecodeError):
                line.decode("utf-8")
        elif defect == "garbage":
            assert obj is None and 1500 <= len(line) <= 2500
        elif defect == "not_json":
            line.decode("utf-8")
            assert obj is None
        else:
            assert isinstance(obj, dict) and contract_problems(obj), m
        assert b"\n" not in line
    good = {n for n in range(1, len(small.result.events) + 1)} - small.bad_lines
    assert len(good) == len(small.result.events) - len(records)


def test_malformed_lines_do_not_reuse_event_ids(small: Stream) -> None:
    """A bad line never carries the event_id of a good event (it is not a re-delivery)."""
    for m in small.result.malformed:
        try:
            obj = orjson.loads(small.result.events[m["line"] - 1])
        except orjson.JSONDecodeError:
            continue
        if isinstance(obj, dict) and isinstance(obj.get("event_id"), str):
            assert obj["event_id"] not in small.events


# -- randomised --------------------------------------------------------------------------------


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    outlets=st.integers(1, 12),
    days=st.integers(1, 12),
    seed=st.integers(0, 2**32),
    malformed=st.sampled_from([0.0, 0.05]),
)
def test_any_small_config_gives_valid_events(
    outlets: int, days: int, seed: int, malformed: float
) -> None:
    """Whatever the size and seed, good lines are valid and labels point at real claims."""
    stream = Stream(
        simulate(SimulationConfig(outlets=outlets, days=days, seed=seed, malformed=malformed))
    )
    for obj in stream.events.values():
        assert contract_problems(obj) == []
    for lab in stream.result.labels:
        assert all(s in stream.settlements for s in lab["settlement_ids"])


def test_config_errors_name_the_parameter() -> None:
    """A bad config value is reported with its name and value."""
    with pytest.raises(ValueError, match=r"outlets must be >= 1, got 0"):
        simulate(SimulationConfig(outlets=0))
    with pytest.raises(ValueError, match=r"malformed must be in \[0, 0.5\], got 0.9"):
        simulate(SimulationConfig(malformed=0.9))


# -- output, CLI, Kafka ------------------------------------------------------------------------


def test_cli_writes_all_files(tmp_path: Path) -> None:
    """`simulate` writes every output file and a consistent summary."""
    out = tmp_path / "run"
    result = CliRunner().invoke(
        simulate_command,
        [
            "--outlets",
            "8",
            "--days",
            "6",
            "--seed",
            "5",
            "--out",
            str(out),
            "--malformed",
            "0.01",
            "--no-progress",
        ],
    )
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == sorted(FILES)
    summary = orjson.loads((out / "summary.json").read_bytes())
    lines = (out / "events.jsonl").read_bytes().split(b"\n")
    assert lines[-1] == b"" and len(lines) - 1 == summary["lines"]
    assert summary["outlets"] == 8 and summary["days"] == 6 and summary["seed"] == 5
    malformed = [orjson.loads(x) for x in (out / "malformed.jsonl").read_bytes().splitlines()]
    assert len(malformed) == summary["malformed"] >= len(DEFECTS)
    fee = orjson.loads((out / "fee_table.json").read_bytes())
    assert all(r["code"] == "labor" and r["max_amount"] > 0 for r in fee)


def test_cli_help_documents_every_option() -> None:
    """Every option of `simulate` has help text."""
    for param in simulate_command.params:
        assert getattr(param, "help", None), param.name


def test_route_sends_orders_and_settlements_to_their_topics() -> None:
    """Orders go to the orders topic, settlements and bad lines to settlements; key = outlet."""
    order = b'{"kind":"order","outlet_id":"W00001"}'
    settlement = b'{"kind":"settlement","outlet_id":"W00002"}'
    assert route(order, False, "o", "s") == ("o", b"W00001")
    assert route(settlement, False, "o", "s") == ("s", b"W00002")
    assert route(order, True, "o", "s") == ("s", b"W00001")
    assert route(b"\xff{garbage", True, "o", "s") == ("s", MALFORMED_KEY)
    assert route(b"[1, 2]", True, "o", "s") == ("s", MALFORMED_KEY)


class FakeProducer:
    """Records sends like AIOKafkaProducer would accept them."""

    instances: ClassVar[list[FakeProducer]] = []

    def __init__(self, **config: Any) -> None:
        self.config = config
        self.sent: list[tuple[str, bytes, bytes]] = []
        self.flushed = self.started = self.stopped = False
        FakeProducer.instances.append(self)

    async def start(self) -> None:
        self.started = True

    async def send(self, topic: str, value: bytes, key: bytes) -> asyncio.Future[None]:
        self.sent.append((topic, key, value))
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done

    async def flush(self) -> None:
        self.flushed = True

    async def stop(self) -> None:
        self.stopped = True


async def test_publish_sends_every_line_in_file_order(small: Stream) -> None:
    """publish() sends each line's exact bytes in order, keyed by outlet, then flushes."""
    FakeProducer.instances.clear()
    lines = small.result.events
    stats = await publish(
        lines,
        small.bad_lines,
        "127.0.0.1:9",
        "orders",
        "settlements",
        rate=0,
        producer_factory=FakeProducer,
    )
    (producer,) = FakeProducer.instances
    assert producer.started and producer.flushed and producer.stopped
    assert [value for _, _, value in producer.sent] == lines
    assert stats.sent == len(lines) and stats.orders + stats.settlements == len(lines)
    for number, (topic, key, value) in enumerate(producer.sent, start=1):
        if number in small.bad_lines:
            assert topic == "settlements"
            continue
        obj = orjson.loads(value)
        assert topic == ("orders" if obj["kind"] == "order" else "settlements")
        assert key == obj["outlet_id"].encode()


async def test_pacer_sleeps_once_per_chunk_when_ahead() -> None:
    """The pacer sleeps at chunk boundaries only, for as long as it is ahead of schedule."""
    now = [0.0]
    sleeps: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        sleeps.append(seconds)
        now[0] += seconds

    pacer = Pacer(100.0, clock=lambda: now[0], sleep=fake_sleep)
    assert pacer.chunk == 5
    for sent in range(1, 101):
        await pacer.tick(sent)
    assert len(sleeps) == 20
    assert now[0] == pytest.approx(1.0)
