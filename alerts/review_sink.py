"""The review-queue sink: alerts at or above the live rules' ``review.min_severity`` go to
the Redis review stream, at most once each (see ``alerts/review_queue.py``).

Records wait in memory until Redis has them; while Redis is down ``flush`` raises, the
runner backs off and commits nothing past them, so the Kafka log keeps the backlog.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence

from alerts.metrics import Metrics
from alerts.review_queue import ReviewQueue
from config.rules import Rules
from stream.alert_sinks import AlertRecord
from stream.evaluate import SEVERITY_RANK


class ReviewSink:
    """An ``AlertSink`` appending reviewable alerts to the review queue."""

    name = "review"

    def __init__(
        self,
        queue: ReviewQueue,
        current_rules: Callable[[], Rules],
        metrics: Metrics,
        stats_seconds: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.queue, self.current_rules, self.metrics = queue, current_rules, metrics
        self.stats_seconds, self.clock = stats_seconds, clock
        self.waiting: dict[int, list[AlertRecord]] = {}  # per partition, in offset order
        self.group_ready = False
        self.stats_due = 0.0

    def take(self, records: Sequence[AlertRecord]) -> None:
        """Keep the records at or above the review threshold; the others are settled."""
        floor = SEVERITY_RANK[self.current_rules().review.min_severity]
        for record in records:
            if SEVERITY_RANK.get(record.alert.get("severity", ""), -1) >= floor:
                self.waiting.setdefault(record.partition, []).append(record)

    async def flush(self) -> None:
        """Enqueue every waiting record, trim the stream, refresh the gauges (at most
        once every ``stats_seconds``). Raises when Redis fails; nothing is then settled."""
        if not self.group_ready:
            await self.queue.ensure_group()
            self.group_ready = True
        try:
            await self._deliver()
        except Exception:
            self.group_ready = False  # Redis may come back empty: make sure again
            raise

    async def _deliver(self) -> None:
        records = [r for waiting in self.waiting.values() for r in waiting]
        if records:
            new = await self.queue.enqueue([r.alert for r in records])
            self.metrics.review_enqueued.inc(new)
            self.waiting.clear()
            await self.queue.trim()
        now = self.clock()
        if now >= self.stats_due:
            stats = await self.queue.stats()
            self.metrics.review_queue_depth.set(stats.depth)
            self.metrics.review_queue_pending.set(stats.unacknowledged)
            self.stats_due = now + self.stats_seconds

    def first_unsettled(self, partition: int) -> int | None:
        """Offset of the oldest record of ``partition`` not yet in Redis."""
        waiting = self.waiting.get(partition)
        return waiting[0].offset if waiting else None

    def backlog(self) -> int:
        """Records waiting for Redis."""
        return sum(len(waiting) for waiting in self.waiting.values())

    def forget(self, partitions: Iterable[int]) -> None:
        """Drop the waiting records of partitions that moved to another worker."""
        for partition in partitions:
            self.waiting.pop(partition, None)
