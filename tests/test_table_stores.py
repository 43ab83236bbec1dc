"""The engine's state in a changelogged table, written back per batch: the same findings
as replay's live state, a batch cut short by a crash reads as if it never started, and
expiry and rebalance hand-offs keep the table consistent."""

from __future__ import annotations

import functools

import pytest
from events_factory import simulated_lines

from alerts.build import alert_id
from config.rules import Rules
from models.decode import decode
from models.engine import Engine
from models.events import Event
from models.memory_stores import MemoryStores
from stream.checkpoint import current, pack
from stream.replay import partition_for
from stream.table_stores import Batch, TableStores, partition_key

PARTITIONS = 4
partition_of = functools.lru_cache(maxsize=None)(lambda o: partition_for(o, PARTITIONS))


def events() -> list[Event]:
    decoded = [decode(line) for line in simulated_lines(outlets=16, days=20, seed=5)]
    return [e for e in decoded if not hasattr(e, "reason")]  # type: ignore[misc]


def found(engine: Engine, event: Event) -> set[tuple[str, str, str | None]]:
    severity = engine.rules.severity.severity
    findings = engine.process(event, partition_of(event.outlet_id))
    return {(alert_id(f), f.kind, severity(f.score)) for f in findings}


def deliver(changelog: dict[bytes, bytes], batch: Batch, stores: TableStores) -> None:
    """What the broker keeps of a fully acknowledged batch (latest value per key)."""
    for _, key, value in batch.state + batch.closing:  # type: ignore[operator]
        if value is None:
            changelog.pop(key, None)
        else:
            changelog[key] = value
    stores.finished(batch)


def live_run(stream: list[Event]) -> set[tuple[str, str, str | None]]:
    stores = MemoryStores()
    stores.partition_of = partition_of
    engine = Engine(Rules(), stores)
    return set().union(*(found(engine, e) for e in stream))


def test_checkpointed_value_reads_the_replaced_state_until_its_batch_closes() -> None:
    """A value from batch 5 reads as itself at checkpoint 5 and as its undo image at 4."""
    value = pack(5, 1.0, b"new", b"old")
    assert current(value, 5) == b"new"
    assert current(value, 4) == b"old"
    assert current(pack(5, 1.0, b"new", None), 4) is None


def test_batched_table_state_finds_what_live_state_finds() -> None:
    """Engine over table stores, a batch taken every 97 events and acknowledged 40 events
    later (detection goes on meanwhile) = engine over replay's dicts."""
    stream = events()
    changelog: dict[bytes, bytes] = {}
    stores = TableStores(dict(changelog), partition_of)
    engine = Engine(Rules(), stores)
    alerts: set[tuple[str, str, str | None]] = set()
    in_flight: Batch | None = None
    for index, event in enumerate(stream, start=1):
        alerts |= found(engine, event)
        if index % 97 == 0:
            in_flight = stores.take_batch()
        elif index % 97 == 40 and in_flight is not None:
            deliver(changelog, in_flight, stores)
            in_flight = None
    assert alerts == live_run(stream)
    assert len(alerts) > 10


@pytest.mark.parametrize("cut", [0, 1, 7, 10_000])
def test_batch_cut_short_by_a_crash_is_replayed_exactly(cut: int) -> None:
    """Crash after ``cut`` state writes of a batch (closing record lost), recover from the
    changelog, re-read from the last closed batch: same findings and same final state."""
    stream = events()
    changelog: dict[bytes, bytes] = {}
    stores = TableStores(dict(changelog), partition_of)
    engine = Engine(Rules(), stores)
    alerts: set[tuple[str, str, str | None]] = set()
    crash_batch, batch_size, committed = 9, 211, 0
    for index, event in enumerate(stream, start=1):
        alerts |= found(engine, event)
        if index % batch_size:
            continue
        batch = stores.take_batch()
        if index // batch_size == crash_batch:
            for _, key, value in batch.state[:cut]:
                if value is None:
                    changelog.pop(key, None)
                else:
                    changelog[key] = value
            break
        deliver(changelog, batch, stores)
        committed = index
    # restart: state from the changelog, events from the last committed offset
    stores = TableStores(dict(changelog), partition_of)
    engine = Engine(Rules(), stores)
    for event in stream[committed:]:
        alerts |= found(engine, event)
    assert alerts == live_run(stream)
    expected = MemoryStores()
    expected.partition_of = partition_of
    reference = Engine(Rules(), expected)
    for event in stream:
        reference.process(event, partition_of(event.outlet_id))
    for outlet_id, state in expected.outlets.items():
        recovered = stores.outlet(outlet_id)
        assert recovered is not None and recovered.to_bytes() == state.to_bytes()


def test_expired_orders_are_deleted_from_the_table() -> None:
    """Orders older than the retention are tombstoned in the next batch and stay gone."""
    stream = events()
    changelog: dict[bytes, bytes] = {}
    stores = TableStores(dict(changelog), partition_of)
    engine = Engine(Rules(), stores)
    first = stream[0]
    for event in stream:
        engine.process(event, partition_of(event.outlet_id))
    deliver(changelog, stores.take_batch(), stores)
    partition = partition_of(first.outlet_id)
    expired = stores.expire_orders(partition, before=stream[-1].ts + 1)
    batch = stores.take_batch()
    deleted = [key for _, key, value in batch.state if value is None]
    assert expired == len(deleted) > 0
    assert stores.order(first.outlet_id, first.order_id) is None
    deliver(changelog, batch, stores)
    assert not [k for k in changelog if k.startswith(f"r{partition}:".encode())]
    assert partition_key(partition) in changelog


def test_forget_drops_a_moved_partition_and_reads_it_back() -> None:
    """After a hand-off the partition's keys are gone locally; recovered, they read back."""
    stream = events()
    changelog: dict[bytes, bytes] = {}
    stores = TableStores({}, partition_of)
    engine = Engine(Rules(), stores)
    for event in stream[:500]:
        engine.process(event, partition_of(event.outlet_id))
    deliver(changelog, stores.take_batch(), stores)
    outlet_id = stream[0].outlet_id
    partition = partition_of(outlet_id)
    before = stores.outlet(outlet_id)
    assert before is not None
    stores.forget({partition})
    assert stores.outlet(outlet_id) is None
    stores.data.update({k: v for k, v in changelog.items() if k[1:].startswith(b"%d:" % partition)})
    after = stores.outlet(outlet_id)
    assert after is not None and after.to_bytes() == before.to_bytes()
    with pytest.raises(RuntimeError, match="not yet taken"):
        engine.process(stream[600], partition_of(stream[600].outlet_id))
        stores.forget()


def test_next_batch_waits_for_the_previous_one() -> None:
    """A partition's next batch cannot be taken before the previous one is acknowledged
    (its undo images would be computed against an unfinished checkpoint)."""
    stream = events()
    stores = TableStores({}, partition_of)
    engine = Engine(Rules(), stores)
    one, two = [e for e in stream if e.outlet_id == stream[0].outlet_id][:2]
    engine.process(one, partition_of(one.outlet_id))
    first = stores.take_batch()
    engine.process(two, partition_of(two.outlet_id))
    with pytest.raises(RuntimeError, match="previous batch"):
        stores.take_batch()
    stores.finished(first)
    assert stores.take_batch().sequences
