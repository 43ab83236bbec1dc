"""The worker's batch logic without a broker: dead letters, re-keying decisions, quiet
inputs advancing event time, rule switches; and the /healthz progress rules."""

from __future__ import annotations

import orjson
from events_factory import EventFactory
from prometheus_client import CollectorRegistry

from alerts.metrics import Metrics
from config.rules import Rules
from stream.health import Progress
from stream.pipeline import Message, Pipeline
from stream.replay import partition_for, partitioner
from stream.table_stores import TableStores

REKEY = "by-outlet"
VERDICTS = "test.verdicts"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def pipeline(clock: Clock, idle_seconds: float = 60.0) -> Pipeline:
    stores = TableStores({}, partitioner(4))
    metrics = Metrics(CollectorRegistry())
    return Pipeline(Rules(), stores, metrics, REKEY, VERDICTS, idle_seconds, clock=clock)


def message(obj: dict[str, object], partition: int | None = None, topic: str = "in") -> Message:
    outlet = str(obj["outlet_id"])
    own = partition_for(outlet, 4)
    return Message(
        topic, own if partition is None else partition, 0, outlet.encode(), orjson.dumps(obj)
    )


def test_bad_input_becomes_a_dead_letter_with_its_key() -> None:
    """Undecodable bytes go to the dead letter, keyed as they came."""
    out = pipeline(Clock()).process([Message("in", 0, 7, b"k", b"{not json")])
    assert [key for key, _ in out.dead_letters] == [b"k"]
    assert orjson.loads(out.dead_letters[0][1])["origin"]["offset"] == 7


def test_event_on_the_wrong_partition_is_forwarded_not_processed() -> None:
    """An event off its outlet's partition goes to the re-key topic (keyed by outlet, to
    the right partition); from the re-key topic it is processed wherever it arrives."""
    flow = pipeline(Clock())
    obj = EventFactory("W-R").settlement_dict("S1", "O1", at=0)
    right = partition_for("W-R", 4)
    wrong = (right + 1) % 4
    out = flow.process([message(obj, wrong)])
    assert out.rekeyed == [(right, b"W-R", orjson.dumps(obj))]
    assert flow.stores.partition(right) is None  # nothing judged yet
    flow.process([message(obj, right, topic=REKEY)])
    assert flow.stores.partition(right) is not None


def test_quiet_order_input_advances_to_the_settlements_time() -> None:
    """Settlements flow but no order event comes: after idle_seconds the order input's
    time follows the settlements', the grace period passes, the claim is flagged."""
    clock = Clock()
    flow = pipeline(clock, idle_seconds=30)
    target = EventFactory("W-Q")
    others = [
        o for o in (f"W-{i}" for i in range(100)) if partition_for(o, 4) == partition_for("W-Q", 4)
    ]
    flow.process([message(target.settlement_dict("S-LOST", "O-NEVER", at=0))])
    for hour, outlet in enumerate(others[:8], start=1):
        flow.process(
            [message(EventFactory(outlet).settlement_dict(f"S{hour}", f"O{hour}", at=hour))]
        )
    assert not flow.tick().alerts  # not quiet long enough yet
    clock.now += 31
    alerts = [orjson.loads(value) for _, value in flow.tick().alerts]
    assert "S-LOST" in {a["settlement_id"] for a in alerts if a["kind"] == "unmatched_settlement"}


def test_quiet_partition_follows_the_wall_clock_from_its_last_event() -> None:
    """No event at all on a partition: its event time runs on with the wall clock from the
    last event, so the grace period ends in real time."""
    clock = Clock()
    flow = pipeline(clock, idle_seconds=30)
    flow.process([message(EventFactory("W-Z").settlement_dict("S-Z", "O-Z", at=0))])
    clock.now += 5 * 3600
    assert not flow.tick().alerts
    clock.now += 3600 + 1
    alerts = [orjson.loads(value) for _, value in flow.tick().alerts]
    assert [a["settlement_id"] for a in alerts] == ["S-Z"]
    clock.now += 3600
    assert not flow.tick().alerts  # each check runs once


def test_new_rules_apply_to_what_is_processed_after() -> None:
    """Alerts carry the rule version in force when their event was processed."""
    flow = pipeline(Clock())
    factory = EventFactory("W-V")
    first = flow.process([message(factory.settlement_dict("S1", "O1", at=0))])
    new = Rules.model_validate({"version": "v2"})
    flow.use_rules(new)
    again = factory.settlement_dict("S1b", "O1", at=1)
    second = flow.process([message(again)])
    versions = {orjson.loads(v)["rule_version"] for _, v in first.alerts + second.alerts}
    assert flow.rules.rule_version == new.rule_version
    assert versions <= {Rules().rule_version, new.rule_version}
    assert {orjson.loads(v)["rule_version"] for _, v in second.alerts} == {new.rule_version}
    registry = flow.metrics.registry
    info = {"rule_version": new.rule_version}
    assert registry.get_sample_value("settleguard_rules_info", info) == 1.0
    alerts = len(first.alerts + second.alerts)
    count = registry.get_sample_value("settleguard_event_time_to_alert_seconds_count")
    assert count == alerts > 0


def test_health_fails_only_when_a_partition_has_lag_and_commits_nothing() -> None:
    """Idle is healthy; lag whose committed offset does not move for stall_seconds is
    not (and names the partition); committing again heals; a crashed agent never is."""
    clock = Clock()
    progress = Progress(stall_seconds=60, clock=clock)
    progress.observe({("in", 0): 0, ("in", 1): 0}, {("in", 0): 10, ("in", 1): None})
    clock.now += 120
    progress.observe({("in", 0): 0, ("in", 1): 0}, {("in", 0): 10, ("in", 1): None})
    assert progress.status()[0]  # nothing to read: idle
    progress.observe({("in", 0): 5, ("in", 1): 0}, {("in", 0): 10, ("in", 1): None})
    clock.now += 30
    progress.observe({("in", 0): 7, ("in", 1): 0}, {("in", 0): 10, ("in", 1): None})
    assert progress.status()[0]  # behind, but not for long
    assert progress.stuck_for(20) == [("in", 0)]
    clock.now += 31
    progress.observe({("in", 0): 9, ("in", 1): 0}, {("in", 0): 10, ("in", 1): None})
    healthy, details = progress.status()
    assert (healthy, details["status"], details["backlog"]) == (False, "stalled", 9)
    assert details["stalled_partitions"] == ["in:0"]
    progress.observe({("in", 0): 4, ("in", 1): 0}, {("in", 0): 15, ("in", 1): None})
    assert progress.status()[0]  # committed again
    progress.crashed("boom")
    assert progress.status()[1]["status"] == "crashed"
