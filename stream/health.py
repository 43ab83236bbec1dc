"""Liveness for ``/healthz``: is the worker making progress on every input partition?

A partition is stuck when it has lag (the broker holds events past the group's committed
offset) and its committed offset has not moved for ``stall_seconds``: input is waiting
and nothing of it finishes. An idle worker (no lag) is healthy; a crashed agent is not,
whatever the offsets. The figures come from the broker (``stream/lag.py``), not from what
the consumer has fetched: a consumer that stopped fetching sees no new input at all.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

TopicPartition = tuple[str, int]


class Progress:
    """Per input partition: its lag, and when it last moved (caught up or committed)."""

    def __init__(self, stall_seconds: float, clock: Callable[[], float] = time.monotonic):
        self.stall_seconds = stall_seconds
        self.clock = clock
        self.lags: dict[TopicPartition, int] = {}
        self.committed: dict[TopicPartition, int | None] = {}
        self.moved: dict[TopicPartition, float] = {}
        self.failure: str | None = None

    def observe(
        self, lags: Mapping[TopicPartition, int], committed: Mapping[TopicPartition, int | None]
    ) -> None:
        """The assigned input partitions' lag and committed offsets, as of now."""
        now = self.clock()
        for tp, lag in lags.items():
            if lag <= 0 or tp not in self.moved or committed.get(tp) != self.committed.get(tp):
                self.moved[tp] = now
        self.moved = {tp: at for tp, at in self.moved.items() if tp in lags}
        self.lags, self.committed = dict(lags), dict(committed)

    def stuck_for(self, seconds: float) -> list[TopicPartition]:
        """Partitions with lag whose committed offset has not moved for ``seconds``."""
        now = self.clock()
        return sorted(
            tp for tp, lag in self.lags.items() if lag > 0 and now - self.moved[tp] > seconds
        )

    def crashed(self, reason: str) -> None:
        """The processing agent died: the worker must be restarted."""
        self.failure = reason

    def status(self) -> tuple[bool, dict[str, Any]]:
        """(healthy, details for the response body)."""
        stuck = self.stuck_for(self.stall_seconds)
        details: dict[str, Any] = {
            "backlog": sum(max(0, lag) for lag in self.lags.values()),
            "stalled_partitions": [f"{topic}:{partition}" for topic, partition in stuck],
        }
        if self.failure is not None:
            return False, {**details, "status": "crashed", "reason": self.failure}
        if stuck:
            return False, {**details, "status": "stalled"}
        return True, {**details, "status": "ok"}
