"""Consumer lag of the worker's input partitions, as a gauge refreshed every few seconds.

Faust's own sensor exports end and committed offsets per topic-partition
(``faust_topic_partition_end_offset``, ``faust_topic_partition_offset_commited``), but lag
cannot be computed from them reliably in PromQL: the end offset is only updated when
records are fetched, so a stuck consumer shows a frozen end and its lag stops growing
exactly when it matters, and both gauges are cleared at every rebalance until the next
fetch and commit. So the worker asks the broker for the end offsets of the partitions it
owns (one ListOffsets request) and subtracts the group's committed offsets, which Faust
keeps per assigned partition (read from the broker at assignment, updated at each commit).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from faust.exceptions import ConsumerNotStarted
from prometheus_client import Gauge

TopicPartition = tuple[str, int]


class ConsumerLag:
    """Keeps ``gauge{topic,partition}`` = end offset - committed offset for the assigned
    partitions of ``topics``; series of partitions that left are removed."""

    def __init__(self, gauge: Gauge, topics: Iterable[str]) -> None:
        self.gauge = gauge
        self.topics = frozenset(topics)
        self.shown: set[TopicPartition] = set()

    async def refresh(
        self, consumer: Any
    ) -> tuple[dict[TopicPartition, int], dict[TopicPartition, int | None]]:
        """Read the offsets from the Faust ``consumer``, update the gauge and return (lag,
        committed offset) per assigned partition (nothing while the consumer starts)."""
        try:
            tps = [tp for tp in consumer.assignment() if tp.topic in self.topics]
        except ConsumerNotStarted:
            return {}, {}
        ends = await consumer.highwaters(*tps) if tps else {}
        # Faust's committed offsets: None where the group never committed (reading starts
        # at the earliest offset then, which is where lag counts from).
        committed = getattr(consumer, "_committed_offset", {})
        unknown = [tp for tp in tps if committed.get(tp) is None]
        earliest = await consumer.earliest_offsets(*unknown) if unknown else {}
        lags = {
            (tp.topic, tp.partition): end - (committed.get(tp) or earliest.get(tp, 0))
            for tp, end in ends.items()
        }
        self.show(lags)
        return lags, {(tp.topic, tp.partition): committed.get(tp) for tp in tps}

    def show(self, lags: Mapping[TopicPartition, int]) -> None:
        """Set the gauge to ``lags`` (never below 0) and drop partitions not in it."""
        for topic, partition in self.shown - set(lags):
            self.gauge.remove(topic, str(partition))
        for (topic, partition), lag in lags.items():
            self.gauge.labels(topic, str(partition)).set(max(0, lag))
        self.shown = set(lags)
