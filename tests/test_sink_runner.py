"""The sink runner with small fakes: its shutdown is bounded (a Kafka consumer whose
stop hangs, as aiokafka's can when cancelled mid-rebalance, must not hold the worker's
shutdown forever), and it commits only offsets that moved, at most once per
``commit_seconds`` (a commit per poll loaded the broker while alerts flowed)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

from aiokafka.structs import TopicPartition
from prometheus_client import CollectorRegistry

from alerts.metrics import Metrics
from config.settings import Settings
from stream.alert_sinks import AlertRecord, SinkRunner, _HandOff

TP = TopicPartition("alerts", 0)


class HangingConsumer:
    """A consumer whose ``stop`` never returns."""

    async def stop(self) -> None:
        await asyncio.Event().wait()


async def test_a_hanging_consumer_stop_is_abandoned_after_the_timeout() -> None:
    """stop_consumer returns after its timeout instead of waiting forever."""
    sink = SimpleNamespace(name="test")
    runner = SinkRunner(Settings(), sink, Metrics(CollectorRegistry()))  # type: ignore[arg-type]
    runner.consumer = HangingConsumer()  # type: ignore[assignment]
    await asyncio.wait_for(runner.stop_consumer(seconds=0.2), 5)


class ScriptedConsumer:
    """Returns the given offsets of partition 0, one poll at a time; records commits."""

    def __init__(self, polls: list[list[int]]) -> None:
        self.polls = polls
        self.commits: list[dict[int, int]] = []

    def assignment(self) -> set[TopicPartition]:
        return {TP}

    def pause(self, *partitions: TopicPartition) -> None:
        pass

    def resume(self, *partitions: TopicPartition) -> None:
        pass

    async def getmany(self, timeout_ms: int) -> dict[TopicPartition, list[Any]]:
        offsets = self.polls.pop(0) if self.polls else []
        return {TP: [SimpleNamespace(offset=o, value=b'{"alert_id": "a"}') for o in offsets]}

    async def commit(self, offsets: dict[TopicPartition, Any]) -> None:
        self.commits.append({tp.partition: meta.offset for tp, meta in offsets.items()})


class SettlingSink:
    """Settles everything it takes."""

    name = "test"

    def take(self, records: list[AlertRecord]) -> None:
        pass

    async def flush(self) -> None:
        pass

    def first_unsettled(self, partition: int) -> int | None:
        return None

    def backlog(self) -> int:
        return 0

    def forget(self, partitions: Any) -> None:
        pass


def runner_over(polls: list[list[int]], commit_seconds: float) -> SinkRunner:
    runner = SinkRunner(
        Settings(), SettlingSink(), Metrics(CollectorRegistry()), commit_seconds=commit_seconds
    )
    runner.consumer = ScriptedConsumer(polls)  # type: ignore[assignment]
    return runner


async def test_only_moved_offsets_are_committed() -> None:
    runner = runner_over([[0, 1, 2], [], [3]], commit_seconds=0)
    for _ in range(4):
        await runner.step()
    assert runner.consumer.commits == [{0: 3}, {0: 4}]  # type: ignore[attr-defined]


async def test_commits_wait_for_commit_seconds_but_a_hand_off_commits_now() -> None:
    runner = runner_over([[0, 1, 2], [3], [4]], commit_seconds=3600)
    for _ in range(3):
        await runner.step()
    assert runner.consumer.commits == [{0: 3}]  # type: ignore[attr-defined]
    await _HandOff(runner).on_partitions_revoked([TP])
    assert runner.consumer.commits == [{0: 3}, {0: 5}]  # type: ignore[attr-defined]
