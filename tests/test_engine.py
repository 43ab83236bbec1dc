"""The detection engine on hand-made events: re-deliveries, cross-checks and their grace
period, the fee table, amount spikes that do not teach the baseline, bursts, scores and
severities, alert ids, state serialisation, and replay's determinism and partitioning."""

from __future__ import annotations

import io
import pickle
from collections.abc import Iterable

import orjson
import pytest
from aiokafka.partitioner import DefaultPartitioner
from events_factory import EventFactory, simulated_lines

from alerts.build import alert_id, build_alert
from config.rules import SEVERITIES, Rules, parse_rules
from models.decode import Rejection, decode
from models.detectors.forest import train_forest
from models.engine import Engine
from models.events import Event
from models.findings import Finding
from models.memory_stores import MemoryStores
from models.state import (
    STATE_VERSION,
    OrderRecord,
    OutletState,
    PartitionState,
    StateVersionError,
)
from stream.replay import partition_for, replay

SEGMENT = "repair|air_conditioner"
FEE_RULES = """
version: fee-test
fee_table:
  - service_type: repair
    product_category: air_conditioner
    code: labor
    max_amount: 200
"""


def new_engine(rules: Rules | None = None) -> Engine:
    return Engine(rules or Rules(), MemoryStores())


def feed(engine: Engine, events: Iterable[Event]) -> list[Finding]:
    """Process ``events`` in order (all in partition 0); return every finding."""
    found: list[Finding] = []
    for event in events:
        found += engine.process(event, 0)
    return found


def of_kind(findings: Iterable[Finding], kind: str) -> list[Finding]:
    return [f for f in findings if f.kind == kind]


def outlet(engine: Engine, outlet_id: str) -> OutletState:
    state = engine.stores.outlet(outlet_id)
    assert state is not None
    return state


def peer(engine: Engine, key: str) -> list[float]:
    """The all-outlets peer baseline ``key`` of partition 0, as a list."""
    part = engine.stores.partition(0)
    assert part is not None
    return part.peers[f"*|{key}"].to_list()


# ---------------------------------------------------------------------- re-deliveries


def test_redelivered_events_are_ignored_and_counted() -> None:
    """An event delivered again (same event_id) yields nothing, changes no state and is
    counted in engine.redeliveries — a re-delivered settlement is no duplicate claim."""
    f = EventFactory()
    engine = new_engine()
    created, completed, claim = f.job(1, at=1.0)
    assert feed(engine, [created, completed, claim]) == []
    before = outlet(engine, f.outlet_id).to_bytes()

    assert engine.process(created, 0) == []
    again = decode(orjson.dumps(f.settlement_dict("S1", "O1", 3.5, event_id=claim.event_id)))
    assert isinstance(again, type(claim)) and again.event_id == claim.event_id
    assert engine.process(again, 0) == []

    assert engine.redeliveries == 2
    assert outlet(engine, f.outlet_id).to_bytes() == before


def test_second_settlement_for_an_order_is_a_duplicate() -> None:
    """Another settlement id for an already claimed order gives duplicate_settlement naming
    every settlement of the order."""
    f = EventFactory()
    engine = new_engine()
    feed(engine, f.job(1, at=1.0))

    found = engine.process(f.settlement("S1-bis", "O1", 5.0), 0)
    [duplicate] = of_kind(found, "duplicate_settlement")
    assert duplicate.settlement_id == "S1-bis" and duplicate.order_id == "O1"
    assert set(duplicate.settlement_ids) == {"S1", "S1-bis"}

    [third] = of_kind(engine.process(f.settlement("S1-ter", "O1", 6.0), 0), "duplicate_settlement")
    assert set(third.settlement_ids) == {"S1", "S1-bis", "S1-ter"}
    assert engine.redeliveries == 0


# ---------------------------------------------------------------------- unmatched claims


@pytest.mark.parametrize("grace_yaml", ["", "crosscheck: {grace_hours: 2}"], ids=["6h", "2h"])
@pytest.mark.parametrize("detail", ["cancelled", "not_completed", "unknown_order"])
def test_unmatched_settlement_is_decided_after_the_grace_period(
    detail: str, grace_yaml: str
) -> None:
    """A claim for a cancelled, never completed or unknown order yields unmatched_settlement
    once the partition's event time passes the claim by grace_hours, not before, with the
    detail as the reason's value."""
    rules = parse_rules(grace_yaml)
    grace = rules.crosscheck.grace_hours
    f, other = EventFactory(), EventFactory(outlet_id="W-TEST-2")
    engine = new_engine(rules)
    feed(engine, [other.order("anchor", "created", 0.0)])  # the partition starts here
    if detail != "unknown_order":
        feed(engine, [f.order("O1", "created", 90.0)])
    if detail == "cancelled":
        feed(engine, [f.order("O1", "cancelled", 91.0)])

    at_claim = engine.process(f.settlement("S1", "O1", 96.0), 0)
    assert of_kind(at_claim, "unmatched_settlement") == []
    before_grace = feed(engine, other.tick("tick-1", 96.0 + grace - 0.1))
    assert of_kind(before_grace, "unmatched_settlement") == []

    after_grace = feed(engine, other.tick("tick-2", 96.0 + grace + 0.1))
    [unmatched] = of_kind(after_grace, "unmatched_settlement")
    assert unmatched.settlement_id == "S1" and unmatched.order_id == "O1"
    assert [reason.value for reason in unmatched.reasons] == [detail]
    assert unmatched.score >= rules.severity.info


def test_unknown_order_counts_fully_once_the_partition_is_warm() -> None:
    """An unknown order early in a partition's life may predate the stream and scores lower
    than the same claim days after the partition's first event."""
    f, other = EventFactory(), EventFactory(outlet_id="W-TEST-2")
    engine = new_engine()
    found = feed(
        engine,
        [
            other.order("anchor", "created", 0.0),
            f.settlement("S-early", "O-early", 10.0),
            *other.tick("tick-1", 20.0),
            f.settlement("S-late", "O-late", 100.0),
            *other.tick("tick-2", 110.0),
        ],
    )
    by_settlement = {x.settlement_id: x for x in of_kind(found, "unmatched_settlement")}
    assert by_settlement["S-late"].score > by_settlement["S-early"].score


def test_completion_after_the_settlement_within_grace_is_not_unmatched() -> None:
    """A claim whose order's completed event arrives after it, within the grace period,
    yields no unmatched_settlement (nor anything else)."""
    f, other = EventFactory(), EventFactory(outlet_id="W-TEST-2")
    engine = new_engine()
    found = feed(
        engine,
        [
            other.order("anchor", "created", 0.0),
            f.order("O1", "created", 90.0),
            f.settlement("S1", "O1", 96.0),
            f.order("O1", "completed", 97.0),
            *other.tick("tick", 96.0 + Rules().crosscheck.grace_hours + 1.0),
        ],
    )
    assert found == []


# ---------------------------------------------------------------------- parts


PARTS_CASES = {
    "issued": ({"P-AC-01": 1}, {"P-AC-01": (80.0, 1)}, []),
    "other_part": ({"P-AC-01": 1}, {"P-AC-02": (80.0, 1)}, ["part|P-AC-02"]),
    "more_than_issued": ({"P-AC-01": 1}, {"P-AC-01": (160.0, 2)}, ["part|P-AC-01"]),
    "nothing_issued": (None, {"P-AC-01": (80.0, 1)}, ["part|P-AC-01"]),
}


@pytest.mark.parametrize("case", PARTS_CASES, ids=list(PARTS_CASES))
def test_parts_charged_against_parts_issued(case: str) -> None:
    """Parts charged beyond what was issued for the order give parts_not_issued naming the
    part; parts that were issued give nothing."""
    issued, charged, expected = PARTS_CASES[case]
    f = EventFactory()
    engine = new_engine()
    feed(
        engine,
        [f.order("O1", "created", 1.0), f.order("O1", "completed", 3.0, parts_issued=issued)],
    )
    found = engine.process(f.settlement("S1", "O1", 3.5, parts=charged), 0)
    flagged = of_kind(found, "parts_not_issued")
    assert [r.feature for x in flagged for r in x.reasons] == expected
    assert all(x.settlement_id == "S1" for x in flagged)


@pytest.mark.parametrize("case", PARTS_CASES, ids=list(PARTS_CASES))
def test_parts_are_checked_at_grace_when_the_completion_arrives_late(case: str) -> None:
    """When the completed event (with the parts issued) arrives after the settlement, the
    parts check is made once the grace period has passed, with the same outcome."""
    issued, charged, expected = PARTS_CASES[case]
    f, other = EventFactory(), EventFactory(outlet_id="W-TEST-2")
    engine = new_engine()
    early = feed(
        engine,
        [
            other.order("anchor", "created", 0.0),
            f.order("O1", "created", 90.0),
            f.settlement("S1", "O1", 96.0, parts=charged),
            f.order("O1", "completed", 96.5, parts_issued=issued),
        ],
    )
    assert early == []
    grace = Rules().crosscheck.grace_hours
    later = feed(engine, other.tick("tick", 96.0 + grace + 0.1))
    flagged = of_kind(later, "parts_not_issued")
    assert [r.feature for x in flagged for r in x.reasons] == expected
    assert of_kind(later, "unmatched_settlement") == []


# ---------------------------------------------------------------------- fee table


def test_labour_above_the_fee_table_is_over_standard() -> None:
    """With a fee table, labour above max_amount gives over_standard with value and
    threshold; labour at the standard, or in a segment without a fee, gives none."""
    rules = parse_rules(FEE_RULES)
    f, install = EventFactory(), EventFactory(outlet_id="W-TEST-2", service_type="install")
    engine = new_engine(rules)
    assert of_kind(feed(engine, install.job(1, at=1.0, labor=260.0)), "over_standard") == []
    assert feed(engine, f.job(2, at=1.0, labor=200.0)) == []
    assert feed(engine, f.job(3, at=5.0, labor=200.0)) == []

    found = feed(engine, f.job(4, at=9.0, labor=260.0))
    [over] = of_kind(found, "over_standard")
    assert over.settlement_id == "S4"
    [reason] = over.reasons
    assert (reason.feature, reason.value, reason.threshold) == ("standard|labor", 260.0, 200.0)
    assert over.score >= rules.severity.info


def test_without_a_fee_table_nothing_is_over_standard() -> None:
    """Without a fee table no claim is ever over_standard, however high."""
    f = EventFactory()
    engine = new_engine(Rules())
    found = []
    for n, labor in enumerate([150.0, 260.0, 2_000.0, 50_000.0]):
        found += feed(engine, f.job(n, at=4.0 * n, labor=labor))
    assert of_kind(found, "over_standard") == []


# ---------------------------------------------------------------------- amounts


def normal_history(f: EventFactory, engine: Engine, claims: int = 60) -> None:
    """``claims`` normal jobs of one segment, one every 4 hours, labour 146-154 CNY."""
    for n in range(claims):
        assert feed(engine, f.job(n, at=4.0 * n, labor=150.0 + (n % 5 - 2) * 2.0)) == []


def test_labour_spike_is_flagged_with_reasons_and_not_learned() -> None:
    """After 60 normal claims, a claim at 4x the usual labour gives amount_spike with a
    reason naming the labour feature, its value, expected value and threshold, and leaves
    the outlet's and the peers' baselines untouched."""
    f = EventFactory()
    engine = new_engine()
    normal_history(f, engine)
    key = f"{SEGMENT}|labor"
    own_before = outlet(engine, f.outlet_id).stats[key].to_list()
    peer_before = peer(engine, key)

    found = feed(engine, f.job(100, at=400.0, labor=600.0))
    [spike] = of_kind(found, "amount_spike")
    assert spike.settlement_id == "S100" and spike.detector == "amount"
    [labour] = [r for r in spike.reasons if r.feature == key]
    assert labour.value == 600.0
    assert 140.0 <= labour.expected <= 160.0
    assert labour.expected < labour.threshold < 600.0
    assert "600" in labour.message

    assert outlet(engine, f.outlet_id).stats[key].to_list() == own_before
    assert peer(engine, key) == peer_before


def test_usual_labour_is_not_flagged_and_is_learned() -> None:
    """After the same history, a claim at the usual labour gives no finding and is learned
    into the outlet's baseline."""
    f = EventFactory()
    engine = new_engine()
    normal_history(f, engine)
    key = f"{SEGMENT}|labor"
    before = outlet(engine, f.outlet_id).stats[key].to_list()
    assert feed(engine, f.job(100, at=400.0, labor=151.0)) == []
    assert outlet(engine, f.outlet_id).stats[key].to_list() != before


def test_a_claim_of_an_outlet_without_region_counts_once_among_its_peers() -> None:
    """Without a region an outlet's peers are all outlets: its claim is one observation
    of the all-outlets baseline, not two (region and all-outlets keys coincide)."""
    f = EventFactory(region=None)
    engine = new_engine()
    feed(engine, f.job(1, at=0.0, labor=150.0))
    assert peer(engine, f"{SEGMENT}|labor")[0] == 1.0  # weight


def test_outlet_cheaper_than_its_peers_is_not_flagged_for_ever() -> None:
    """An outlet whose labour in a segment is a third of its peers' is odd at first, but
    a flagged claim still teaches the baselines what lies below them: its own level is
    learned within a few claims and it stops alerting (before, every claim alerted)."""
    engine = new_engine()
    peers = [EventFactory(outlet_id=f"W-PEER-{i}") for i in range(4)]
    at = 0.0
    for n in range(150):
        for i, f in enumerate(peers):
            feed(engine, f.job(n, at=at + i * 0.1, labor=150.0 + ((7 * n + i) % 9 - 4) * 3.0))
        at += 4.0
    cheap = EventFactory(outlet_id="W-CHEAP")
    flagged = []
    for n in range(20):
        found = feed(engine, cheap.job(n, at=at + 4.0 * n, labor=50.0))
        flagged += [n for finding in found if finding.score >= engine.rules.severity.low]
    assert flagged and max(flagged) < 8, flagged
    assert outlet(engine, cheap.outlet_id).stats[f"{SEGMENT}|labor"].weight > 10


# ---------------------------------------------------------------------- bursts


def burst(f: EventFactory, engine: Engine, engineer: str, minutes_per_job: float) -> list[int]:
    """Ten jobs by ``engineer``, one every 5 minutes from hour 1, each completed
    ``minutes_per_job`` after creation; the job numbers at which a burst was flagged."""
    flagged = []
    for n in range(10):
        created = 1.0 + n * 5 / 60
        found = feed(
            engine,
            [
                f.order(f"B{n}", "created", created, engineer_id=engineer),
                f.order(f"B{n}", "completed", created + minutes_per_job / 60, engineer_id=engineer),
            ],
        )
        flagged += [n] * len(of_kind(found, "frequency_spike"))
    return flagged


def test_burst_of_quick_jobs_is_flagged_early_and_taints_its_claims() -> None:
    """One engineer completing ten jobs minutes after creating them within an hour gives one
    frequency_spike before the tenth completion, and every later claim for one of those
    jobs gives a frequency_spike of its own."""
    f = EventFactory()
    engine = new_engine()
    flagged = burst(f, engine, "E-9", minutes_per_job=3.0)
    assert len(flagged) == 1 and flagged[0] < 9
    claims = [f.settlement(f"BS{n}", f"B{n}", 20.0 + n / 10) for n in range(10)]
    for claim in claims:
        [spike] = of_kind(engine.process(claim, 0), "frequency_spike")
        assert spike.settlement_id == claim.settlement_id
        assert spike.settlement_ids == [claim.settlement_id]
        assert spike.order_id == claim.order_id


def test_claims_read_before_their_burst_are_flagged_when_it_is_seen() -> None:
    """Settlements may be read ahead of the order events (two topics): claims for a
    burst's jobs already judged are flagged once the burst is seen, each exactly once."""
    f = EventFactory()
    engine = new_engine()
    early = [f.settlement(f"BS{n}", f"B{n}", 0.5 + n / 100) for n in range(10)]
    assert of_kind(feed(engine, early), "frequency_spike") == []
    spikes: list[Finding] = []
    for n in range(10):
        created = 1.0 + n * 5 / 60
        spikes += of_kind(
            feed(
                engine,
                [
                    f.order(f"B{n}", "created", created, engineer_id="E-9"),
                    f.order(f"B{n}", "completed", created + 3 / 60, engineer_id="E-9"),
                ],
            ),
            "frequency_spike",
        )
    claims = [s.settlement_id for s in spikes if s.settlement_id is not None]
    assert sorted(claims) == sorted(c.settlement_id for c in early)
    assert len(spikes) == len(claims) + 1  # and the burst itself


def test_jobs_at_a_normal_pace_are_no_burst() -> None:
    """The same ten jobs each taking 90 minutes are no burst."""
    f = EventFactory()
    engine = new_engine()
    assert burst(f, engine, "E-9", minutes_per_job=90.0) == []
    claims = [f.settlement(f"BS{n}", f"B{n}", 20.0 + n / 10) for n in range(10)]
    assert of_kind(feed(engine, claims), "frequency_spike") == []


# ---------------------------------------------------------------------- scores, alerts


def scenario_findings(rules: Rules) -> list[Finding]:
    """Findings of every hand-made kind: duplicate, unmatched, parts, over standard, amount
    spike and burst."""
    f, other = EventFactory(), EventFactory(outlet_id="W-TEST-2")
    engine = new_engine(rules)
    normal_history(f, engine, claims=40)
    found = feed(engine, f.job(100, at=170.0, labor=600.0))  # amount spike + over standard
    found += feed(engine, [f.settlement("S100-bis", "O100", 173.0)])  # duplicate
    found += feed(engine, [f.settlement("S-none", "O-none", 174.0, parts={"P-9": (50.0, 1)})])
    burst(other, engine, "E-9", minutes_per_job=3.0)
    found += feed(engine, other.tick("tick", 190.0))  # past grace of S-none
    found += feed(engine, [other.settlement("BS1", "B1", 191.0)])
    feed(engine, [f.order("O-p", "created", 192.0), f.order("O-p", "completed", 194.0)])
    found += feed(engine, [f.settlement("S-p", "O-p", 195.0, parts={"P-1": (30.0, 1)})])
    return found


def expected_severity(rules: Rules, score: float) -> str | None:
    reached = [name for name in SEVERITIES if score >= getattr(rules.severity, name)]
    return reached[-1] if reached else None


SEVERITY_RULES = """
severity: {info: 30, low: 40, medium: 60, high: 86, critical: 89}
fee_table:
  - {service_type: repair, product_category: air_conditioner, code: labor, max_amount: 200}
"""


@pytest.mark.parametrize("rules_yaml", [FEE_RULES, SEVERITY_RULES], ids=["default", "custom"])
def test_scores_are_bounded_and_severities_follow_the_rules(rules_yaml: str) -> None:
    """Every finding scores within 0..100 and its alert's severity is the highest whose
    threshold in rules.severity the score reaches."""
    rules = parse_rules(rules_yaml)
    found = scenario_findings(rules)
    kinds = {x.kind for x in found}
    assert kinds >= {
        "amount_spike",
        "over_standard",
        "duplicate_settlement",
        "unmatched_settlement",
        "parts_not_issued",
        "frequency_spike",
    }
    for finding in found:
        assert 0.0 <= finding.score <= 100.0
        alert = build_alert(finding, rules, detected_at=finding.ts)
        assert alert["score"] == finding.score
        assert alert["severity"] == expected_severity(rules, finding.score), finding


def test_severity_thresholds_change_severities() -> None:
    """The same findings get different severities under different thresholds, and a
    finding below info cannot become an alert."""
    default, custom = parse_rules(FEE_RULES), parse_rules(SEVERITY_RULES)
    found = [x for x in scenario_findings(default) if x.score >= custom.severity.info]
    changed = [
        x
        for x in found
        if build_alert(x, default, x.ts)["severity"] != build_alert(x, custom, x.ts)["severity"]
    ]
    assert changed, "no finding changed severity with the thresholds"
    quiet = parse_rules(
        "severity: {info: 99.9, low: 99.9, medium: 99.9, high: 99.9, critical: 100}"
    )
    below = next(x for x in found if x.score < 99.9)
    with pytest.raises(ValueError, match="below the info threshold"):
        build_alert(below, quiet, below.ts)


def test_alert_ids_are_deterministic_and_differ_across_kinds() -> None:
    """The same finding gets the same alert id whenever and however often it is found;
    different kinds about one settlement get different ids."""
    rules = parse_rules(FEE_RULES)
    first, second = scenario_findings(rules), scenario_findings(rules)
    assert [alert_id(x) for x in first] == [alert_id(x) for x in second]
    for finding in first:
        early = build_alert(finding, rules, detected_at=finding.ts)
        late = build_alert(finding, rules, detected_at=finding.ts + 86400.0)
        assert early["alert_id"] == late["alert_id"] == alert_id(finding)
    on_s100 = [x for x in first if x.settlement_id == "S100"]  # over standard and inflated
    kinds = {x.kind for x in on_s100}
    assert "over_standard" in kinds and len(kinds) == len(on_s100) >= 2
    assert len({alert_id(x) for x in on_s100}) == len(on_s100)
    assert len({alert_id(x) for x in first}) == len({(x.kind, x.key) for x in first})


# ---------------------------------------------------------------------- state


@pytest.fixture(scope="module")
def simulated_stores() -> MemoryStores:
    """Stores after two thirds of a small simulated stream (grace checks still pending)."""
    lines = simulated_lines(outlets=20, days=8, seed=5)
    engine = new_engine()
    for line in lines[: 2 * len(lines) // 3]:
        event = decode(line)
        assert not isinstance(event, Rejection), event
        engine.process(event, 0)
    assert isinstance(engine.stores, MemoryStores)
    return engine.stores


def test_state_round_trips_byte_identically(simulated_stores: MemoryStores) -> None:
    """OutletState, OrderRecord and PartitionState bytes load back into objects that
    serialise to the same bytes."""
    stores = simulated_stores
    assert any(state.engineers and state.stats for state in stores.outlets.values())
    assert any(record.parts_issued and record.settlements for record in stores.orders.values())
    [part] = stores.partitions.values()
    assert part.pending and part.peers and part.tails and part.forest_rows
    for state in stores.outlets.values():
        assert OutletState.from_bytes(state.to_bytes()).to_bytes() == state.to_bytes()
    for record in stores.orders.values():
        assert OrderRecord.from_bytes(record.to_bytes()).to_bytes() == record.to_bytes()
    assert PartitionState.from_bytes(part.to_bytes()).to_bytes() == part.to_bytes()


@pytest.mark.parametrize("cls", [OutletState, OrderRecord, PartitionState])
def test_state_of_another_version_is_rejected(
    cls: type[OutletState | OrderRecord | PartitionState], simulated_stores: MemoryStores
) -> None:
    """State serialised by another version is refused with a message naming the version."""
    sample = {
        OutletState: next(iter(simulated_stores.outlets.values())),
        OrderRecord: next(iter(simulated_stores.orders.values())),
        PartitionState: next(iter(simulated_stores.partitions.values())),
    }[cls]
    data = orjson.loads(sample.to_bytes())
    data["v"] = STATE_VERSION + 1
    with pytest.raises(StateVersionError, match=f"version {STATE_VERSION + 1}") as caught:
        cls.from_bytes(orjson.dumps(data))
    assert str(STATE_VERSION) in str(caught.value).replace(str(STATE_VERSION + 1), "")


# ---------------------------------------------------------------------- replay


def test_replay_is_deterministic() -> None:
    """Replaying the same simulated stream twice writes identical alert lines, ids
    included."""
    data = b"\n".join(simulated_lines()) + b"\n"
    outputs = []
    for _ in range(2):
        out = io.BytesIO()
        summary = replay(io.BytesIO(data), "sim.jsonl", out, None, Rules())
        outputs.append(out.getvalue())
        assert summary.alerts > 0
    first, second = outputs
    assert first == second
    lines = first.splitlines()
    assert len(lines) == summary.alerts
    assert all(orjson.loads(line)["alert_id"].startswith("sg-") for line in lines)


KAFKA_MURMUR2 = {
    # Kafka's own test vectors (clients UtilsTest.testMurmur2), as signed Java ints.
    "21": -973932308,
    "foobar": -790332482,
    "a-little-bit-long-string": -985981536,
    "a-little-bit-longer-string": -1486304829,
    "lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
    "abc": 479470107,
}


@pytest.mark.parametrize("partitions", [1, 3, 4, 12])
def test_partition_for_matches_kafkas_default_partitioner(partitions: int) -> None:
    """partition_for gives the partition aiokafka's DefaultPartitioner (and Java Kafka's
    toPositive(murmur2(key)) % n) gives a message keyed by the outlet id."""
    everything = list(range(partitions))
    for key in ["W00001", "W00017", "网点-上海-001", "outlet with spaces", *KAFKA_MURMUR2]:
        assert partition_for(key, partitions) == DefaultPartitioner()(
            key.encode(), everything, everything
        )
    for key, java_hash in KAFKA_MURMUR2.items():
        assert partition_for(key, partitions) == (java_hash & 0x7FFFFFFF) % partitions


def test_shipped_rules_file_is_the_default_rule_set() -> None:
    """config/rules.yaml spells out exactly the defaults, so copying it changes nothing."""
    from pathlib import Path

    from config.rules import Rules, load_rules

    shipped = load_rules(Path(__file__).resolve().parent.parent / "config" / "rules.yaml")
    assert shipped == Rules()
    assert shipped.rule_version == Rules().rule_version


def test_bad_rule_file_names_the_key_and_value() -> None:
    """A rule file with an unknown key or an out-of-range value fails naming both."""
    import pytest

    from config.rules import RulesError, parse_rules

    with pytest.raises(RulesError) as error:
        parse_rules("severity:\n  low: 250\nbaseline: {}\n", "r.yaml")
    message = str(error.value)
    assert "severity.low" in message and "250" in message
    assert "baseline" in message and "Extra inputs are not permitted" in message


def test_grace_checks_wait_for_the_slower_input() -> None:
    """Order events and settlements come from separate topics: while the order input lags,
    a claim is not judged unmatched even if settlements have run past its grace period, so
    a completion read late (but on time in event time) still matches it."""
    f, other = EventFactory(), EventFactory(outlet_id="W-TEST-2")
    engine = new_engine()
    grace = Rules().crosscheck.grace_hours
    feed(engine, [other.order("anchor", "created", 0.0), f.order("O1", "created", 90.0)])
    engine.process(f.settlement("S1", "O1", 96.0), 0)
    # the settlement input races ahead (another outlet's claims far past the grace period)
    ahead = feed(engine, [other.settlement("S-x", "O-x", 96.0 + 3 * grace)])
    assert of_kind(ahead, "unmatched_settlement") == []
    # the order input catches up: the completion (on time in event time) comes first
    caught_up = feed(
        engine,
        [f.order("O1", "completed", 95.0), other.order("late", "created", 96.0 + 3 * grace)],
    )
    assert [x.settlement_id for x in of_kind(caught_up, "unmatched_settlement")] == []


def test_a_trained_forest_survives_pickling() -> None:
    """The worker trains forests in another process, which sends them back pickled: the
    model comes back scoring alike (on the compiled build too, tests/test_compiled_build)."""
    rows = [[float((i * 7 + j) % 13) for j in range(7)] for i in range(300)]
    model = train_forest(rows, Rules().forest, generation=0)
    back = pickle.loads(pickle.dumps(model))
    assert back.version == model.version
    assert [back.statistic(row) for row in rows[:20]] == [model.statistic(r) for r in rows[:20]]
