"""Containment of two Faust bugs seen after kill -9 and restart with a backlog: input
partitions left out of fetching, and commits held back by repeated acked offsets
(``drop_duplicate_acks``, run at every checkpoint).

Faust stops fetching a partition when its stream buffer is under pressure
(``Consumer.on_buffer_full``) and is meant to fetch it again when the pressure drops
(``on_buffer_drop``); around rebalances and restarts a partition can stay out of the
consumer's active set for good while the agent idles, and its lag never moves (seen here
after a kill -9 and restart with a backlog; faust-streaming issues #175 and #640 describe
consumers that "slowly die" the same way). The watchdog looks for input partitions that
have lag, have not committed for ``after_seconds``, are assigned and not being fetched,
while the agent has had nothing to process for as long, so it cannot be genuine
backpressure, and puts them back (``Consumer.resume_partitions``, and out of Faust's set
of buffer-full partitions). Each resumption is logged and counted.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

TopicPartition = tuple[str, int]

log = logging.getLogger(__name__)


def resume_left_out(consumer: Any, stuck: Iterable[TopicPartition]) -> list[Any]:
    """Resume the ``stuck`` partitions that ``consumer`` (Faust's) is not fetching;
    return them. Faust's active and buffer-full sets are private: read with care."""
    wanted = set(stuck)
    if not wanted or consumer.app.in_recovery or not consumer.flow_active:
        return []
    active = consumer._active_partitions or set()
    left_out = [
        tp
        for tp in consumer.assignment()
        if (tp.topic, tp.partition) in wanted and tp not in active
    ]
    if left_out:
        consumer._buffered_partitions.difference_update(left_out)
        consumer.resume_partitions(left_out)
        log.warning("resumed input partitions Faust had stopped fetching: %s", left_out)
    return left_out


def drop_duplicate_acks(consumer: Any) -> int:
    """Remove repeated offsets from Faust's per-partition lists of acked offsets; return
    how many were removed.

    Faust commits up to the first run of consecutive offsets in that list. Offsets it
    fills in for gaps it believes it saw can repeat offsets already acked; each repeat
    then splits the run, and the commit advances one offset per commit interval (seen
    after kill -9 and restart: commits trailing processing by thousands of offsets for
    minutes, so the lag stayed and a later crash would re-read all of it)."""
    removed = 0
    for acked in consumer._acked.values():
        unique = sorted(set(acked))
        if len(unique) != len(acked):
            removed += len(acked) - len(unique)
            acked[:] = unique
    if removed:
        log.warning("dropped %d repeated offsets from Faust's acked lists", removed)
    return removed
