"""ConsumerLag: end minus committed offsets per assigned input partition, on a small fake
of Faust's consumer (the real one is exercised by tests/test_observability_e2e.py)."""

from __future__ import annotations

from typing import Any

from faust.types import TP
from prometheus_client import CollectorRegistry

from alerts.metrics import Metrics
from stream.lag import ConsumerLag


class FakeConsumer:
    def __init__(self, ends: dict[TP, int], committed: dict[TP, int | None], first: int = 0):
        self.ends = ends
        self._committed_offset = committed
        self.first = first

    def assignment(self) -> set[TP]:
        return set(self.ends)

    async def highwaters(self, *tps: TP) -> dict[TP, int]:
        return {tp: self.ends[tp] for tp in tps}

    async def earliest_offsets(self, *tps: TP) -> dict[TP, int]:
        return dict.fromkeys(tps, self.first)


def lag_of(registry: CollectorRegistry, topic: str, partition: int) -> Any:
    return registry.get_sample_value(
        "settleguard_consumer_lag", {"topic": topic, "partition": str(partition)}
    )


async def test_lag_is_end_minus_committed_for_input_topics_only() -> None:
    registry = CollectorRegistry()
    lag = ConsumerLag(Metrics(registry).consumer_lag, ["orders"])
    ends = {TP("orders", 0): 120, TP("orders", 1): 50, TP("state-changelog", 0): 999}
    await lag.refresh(FakeConsumer(ends, {TP("orders", 0): 100, TP("orders", 1): 50}))
    assert lag_of(registry, "orders", 0) == 20
    assert lag_of(registry, "orders", 1) == 0
    assert lag_of(registry, "state-changelog", 0) is None


async def test_never_committed_counts_from_the_earliest_offset() -> None:
    registry = CollectorRegistry()
    lag = ConsumerLag(Metrics(registry).consumer_lag, ["orders"])
    await lag.refresh(FakeConsumer({TP("orders", 0): 70}, {TP("orders", 0): None}, first=30))
    assert lag_of(registry, "orders", 0) == 40


async def test_partitions_that_left_lose_their_series() -> None:
    registry = CollectorRegistry()
    lag = ConsumerLag(Metrics(registry).consumer_lag, ["orders"])
    both = {TP("orders", 0): 10, TP("orders", 1): 10}
    await lag.refresh(FakeConsumer(both, dict.fromkeys(both, 5)))
    await lag.refresh(FakeConsumer({TP("orders", 0): 12}, {TP("orders", 0): 5}))
    assert lag_of(registry, "orders", 0) == 7
    assert lag_of(registry, "orders", 1) is None
