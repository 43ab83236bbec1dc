"""Liveness for ``/healthz``: is the worker making progress?

A worker is stuck when input is waiting and no batch has finished for ``stall_seconds``:
either events it has seen arrive are not processed (a known backlog), or its partitions'
end offsets keep growing while nothing finishes (lag growing with no commits). An idle
worker with nothing to read is healthy; a crashed agent is not, whatever the offsets.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

TopicPartition = tuple[str, int]


class Progress:
    """Tracks finished batches and the input's end offsets."""

    def __init__(self, stall_seconds: float, clock: Callable[[], float] = time.monotonic):
        self.stall_seconds = stall_seconds
        self.clock = clock
        self.last_progress = clock()
        self.done: dict[TopicPartition, int] = {}  # next offset to process
        self.ends: dict[TopicPartition, int] = {}
        self.waiting_since: float | None = None  # input waiting, no batch finished since
        self.failure: str | None = None

    def processed(self, offsets: Iterable[tuple[str, int, int]]) -> None:
        """A batch finished: ``offsets`` are its (topic, partition, offset) triples."""
        self.last_progress = self.clock()
        done = self.done
        for topic, partition, offset in offsets:
            key = (topic, partition)
            if offset >= done.get(key, 0):
                done[key] = offset + 1

    def observe_ends(self, ends: Mapping[TopicPartition, int]) -> None:
        """The broker's end offsets of the assigned input partitions, as of now."""
        grew = any(end > self.ends.get(tp, end) for tp, end in ends.items())
        self.ends = dict(ends)
        if not (grew or self.backlog() > 0):
            self.waiting_since = None
        elif self.waiting_since is None or self.waiting_since < self.last_progress:
            self.waiting_since = self.clock()  # input waits since now, not since progress

    def crashed(self, reason: str) -> None:
        """The processing agent died: the worker must be restarted."""
        self.failure = reason

    def backlog(self) -> int:
        """Input seen on the broker but not processed, for partitions processed before."""
        return sum(max(0, end - self.done[tp]) for tp, end in self.ends.items() if tp in self.done)

    def status(self) -> tuple[bool, dict[str, Any]]:
        """(healthy, details for the response body)."""
        now = self.clock()
        details: dict[str, Any] = {
            "seconds_since_progress": round(now - self.last_progress, 1),
            "backlog": self.backlog(),
        }
        if self.failure is not None:
            return False, {**details, "status": "crashed", "reason": self.failure}
        since = self.waiting_since
        if since is not None and since >= self.last_progress and now - since > self.stall_seconds:
            return False, {**details, "status": "stalled"}
        return True, {**details, "status": "ok"}
