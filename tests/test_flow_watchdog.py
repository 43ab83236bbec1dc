"""The flow watchdog puts back only assigned input partitions Faust is not fetching, and
never during recovery or a rebalance (tested on a small stand-in for Faust's consumer)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from aiokafka.structs import TopicPartition as TP

from stream.flow_watchdog import drop_duplicate_acks, resume_left_out


class FakeConsumer:
    """The attributes of Faust's consumer the watchdog reads and the method it calls."""

    def __init__(self, assigned: list[TP], active: set[TP], buffered: set[TP]) -> None:
        self.app = SimpleNamespace(in_recovery=False)
        self.flow_active = True
        self._assigned = assigned
        self._active_partitions = active
        self._buffered_partitions = buffered

    def assignment(self) -> set[TP]:
        return set(self._assigned)

    def resume_partitions(self, tps: Any) -> None:
        self._active_partitions.update(tps)


def test_only_left_out_partitions_are_resumed_and_unbuffered() -> None:
    in0, in1, in2 = TP("in", 0), TP("in", 1), TP("in", 2)
    consumer = FakeConsumer([in0, in1, in2], active={in0}, buffered={in1})
    resumed = resume_left_out(consumer, [("in", 0), ("in", 1)])
    assert resumed == [in1]  # in0 is fetched already; in2 is not stuck
    assert consumer._active_partitions == {in0, in1}
    assert consumer._buffered_partitions == set()


def test_nothing_is_resumed_during_recovery_or_a_rebalance() -> None:
    stuck = TP("in", 1)
    consumer = FakeConsumer([stuck], active=set(), buffered={stuck})
    consumer.app.in_recovery = True
    assert resume_left_out(consumer, [("in", 1)]) == []
    consumer.app.in_recovery, consumer.flow_active = False, False
    assert resume_left_out(consumer, [("in", 1)]) == []
    assert consumer._active_partitions == set()


def test_repeated_acked_offsets_are_dropped_so_commits_can_advance() -> None:
    """With repeats, Faust's first run of consecutive offsets ends at the first repeat;
    without them the whole acked range commits at once."""
    consumer = SimpleNamespace(_acked={TP("in", 0): [7, 5, 5, 6, 6], TP("in", 1): [3, 4]})
    assert drop_duplicate_acks(consumer) == 2
    assert consumer._acked == {TP("in", 0): [5, 6, 7], TP("in", 1): [3, 4]}
    assert drop_duplicate_acks(consumer) == 0
