"""Deliver the alerts topic to the outside world (review queue, email), at least once per
sink and with the Kafka log as the persisted backlog.

Each sink has its own consumer group on the alerts topic (``<app_id>.<sink name>``), so
every sink sees every alert and the workers of one deployment share each sink's
partitions. A sink *takes* records (memory only), *flushes* what is due (may fail: the
server is down) and says which records are *settled*. Offsets commit (at most once a
second) only up to the first unsettled record of each partition, so a crash or a
partition move re-reads the unsettled ones: sinks must therefore be idempotent by
``alert_id`` (the review queue and the mail outbox check it in Redis). While a sink
cannot deliver, its backlog stays in Kafka (bounded by the alerts topic's retention),
memory holds at most ``max_backlog`` records (the partitions are paused beyond that),
and ``flush`` is retried with exponential backoff.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import orjson
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener
from aiokafka.structs import OffsetAndMetadata, TopicPartition

from alerts.metrics import Metrics
from config.settings import Settings

log = logging.getLogger(__name__)

FETCH_MIN_BYTES = 64 * 1024
"""Alerts a sink's fetch waits for at the broker (up to a poll), ~100 of them."""


@dataclass(frozen=True, slots=True)
class AlertRecord:
    """One alert read from the alerts topic, with where it was read."""

    partition: int
    offset: int
    alert: dict[str, Any]


class AlertSink(Protocol):
    """What the runner needs of a sink; see the module docstring for the contract."""

    name: str

    def take(self, records: Sequence[AlertRecord]) -> None:
        """Accept records into memory (never fails, never blocks)."""

    async def flush(self) -> None:
        """Deliver what is due; raise when the destination fails (retried with backoff)."""

    def first_unsettled(self, partition: int) -> int | None:
        """Offset of the earliest record of ``partition`` not yet delivered, or None."""

    def backlog(self) -> int:
        """Records taken and not yet settled."""

    def forget(self, partitions: Iterable[int]) -> None:
        """Drop the records of partitions this worker no longer owns (their new owner
        re-reads them from the committed offsets)."""


class Backoff:
    """Exponential backoff between ``first`` and ``longest`` seconds, reset on success."""

    def __init__(self, first: float = 0.5, longest: float = 30.0) -> None:
        self.first, self.longest = first, longest
        self.current = first

    def next(self) -> float:
        """The wait before the next attempt (doubling up to ``longest``)."""
        wait, self.current = self.current, min(self.current * 2, self.longest)
        return wait

    def reset(self) -> None:
        """A success: the next failure waits ``first`` again."""
        self.current = self.first


class SinkRunner:
    """Feeds one sink from the alerts topic and commits what it has settled."""

    def __init__(
        self,
        settings: Settings,
        sink: AlertSink,
        metrics: Metrics,
        max_backlog: int = 10_000,
        poll_seconds: float = 0.2,
        commit_seconds: float = 1.0,
    ) -> None:
        self.settings, self.sink, self.metrics = settings, sink, metrics
        self.max_backlog, self.poll_seconds = max_backlog, poll_seconds
        self.commit_seconds = commit_seconds
        self.last_commit = float("-inf")  # monotonic time of the last commit
        self.topic = settings.alerts_topic
        self.next_offsets: dict[int, int] = {}  # per partition: one past the last read
        self.committed: dict[int, int] = {}  # per partition: the offset last committed
        self.consumer: AIOKafkaConsumer  # made in run(): aiokafka needs the running loop
        self.backoff = Backoff()
        metrics.sink_failures.labels(sink.name)  # the series exists from the start, at 0
        metrics.sink_backlog.labels(sink.name).set(0)

    async def run(self) -> None:
        """Deliver alerts for as long as the worker runs."""
        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=self.settings.kafka_bootstrap,
            group_id=f"{self.settings.app_id}.{self.sink.name}",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            # While alerts flow, the broker would answer a fetch per alert or two: let
            # it gather them for up to a poll instead.
            fetch_max_wait_ms=int(self.poll_seconds * 1000),
            fetch_min_bytes=FETCH_MIN_BYTES,
        )
        await self.consumer.start()
        self.consumer.subscribe([self.topic], listener=_HandOff(self))
        try:
            while True:
                await self.step()
        finally:
            await self.stop_consumer()

    async def stop_consumer(self, seconds: float = 10.0) -> None:
        """Leave the group, but give up after ``seconds``: aiokafka's stop can hang when
        the task is cancelled mid-rebalance, and the worker's shutdown waits for this
        task (the next owner re-reads whatever was not committed)."""
        try:
            await asyncio.wait_for(self.consumer.stop(), seconds)
        except TimeoutError:
            log.warning("%s sink: Kafka consumer did not stop in %.0f s", self.sink.name, seconds)

    async def step(self) -> None:
        """Read what has arrived (unless the backlog is full), flush, commit."""
        self._pause_when_full()
        batch = await self.consumer.getmany(timeout_ms=int(self.poll_seconds * 1000))
        records = [r for tp, messages in batch.items() for r in self._records(tp, messages)]
        if records:
            self.sink.take(records)
        try:
            await self.sink.flush()
        except Exception as exc:  # the destination is down or refused: keep and retry
            wait = self.backoff.next()
            self.metrics.sink_failures.labels(self.sink.name).inc()
            log.warning("%s sink failed (%r); retrying in %.1f s", self.sink.name, exc, wait)
            await asyncio.sleep(wait)
        else:
            self.backoff.reset()
        if time.monotonic() - self.last_commit >= self.commit_seconds:
            await self.commit(self.consumer.assignment())
        self.metrics.sink_backlog.labels(self.sink.name).set(self.sink.backlog())

    def _records(self, tp: TopicPartition, messages: Sequence[Any]) -> list[AlertRecord]:
        if messages:
            self.next_offsets[tp.partition] = messages[-1].offset + 1
        records = []
        for message in messages:
            try:
                alert = orjson.loads(message.value)
            except orjson.JSONDecodeError:
                # Only the worker writes this topic: a bad record is a bug, not input.
                log.error("skipping unreadable alert at %s@%s", tp, message.offset)
                continue
            records.append(AlertRecord(tp.partition, message.offset, alert))
        return records

    def _pause_when_full(self) -> None:
        assigned = self.consumer.assignment()
        if self.sink.backlog() >= self.max_backlog:
            self.consumer.pause(*assigned)
        else:
            self.consumer.resume(*assigned)

    async def commit(self, partitions: Iterable[TopicPartition]) -> None:
        """Commit each partition up to its first unsettled record, if that moved."""
        offsets = {}
        for tp in partitions:
            read = self.next_offsets.get(tp.partition)
            if read is None:
                continue
            unsettled = self.sink.first_unsettled(tp.partition)
            offset = read if unsettled is None else unsettled
            if self.committed.get(tp.partition) != offset:
                offsets[tp] = OffsetAndMetadata(offset, "")
        if offsets:
            await self.consumer.commit(offsets)
            self.last_commit = time.monotonic()
            self.committed.update((tp.partition, meta.offset) for tp, meta in offsets.items())


class _HandOff(ConsumerRebalanceListener):
    """Commit what is settled before partitions leave; forget their records after."""

    def __init__(self, runner: SinkRunner) -> None:
        self.runner = runner

    async def on_partitions_revoked(self, revoked: Iterable[TopicPartition]) -> None:
        revoked = list(revoked)
        try:
            await self.runner.commit(revoked)
        except Exception as exc:  # the group moved on already: the new owner re-reads
            log.warning("could not commit before hand-off: %r", exc)
        self.runner.sink.forget(tp.partition for tp in revoked)
        for tp in revoked:
            self.runner.next_offsets.pop(tp.partition, None)
            self.runner.committed.pop(tp.partition, None)

    async def on_partitions_assigned(self, assigned: Iterable[TopicPartition]) -> None:
        """Nothing to do: reading starts at the committed offsets."""
