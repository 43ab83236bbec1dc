"""The worker's detection process (stream/detection_process.py): its view of the worker's
table, and, against the real broker, that it detects exactly as the pipeline does in
one process, writes checkpoints a restarted process recovers from, and that its death
fails the calls waiting for it."""

from __future__ import annotations

import asyncio
import functools
import uuid
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from kafka_harness import read_records
from prometheus_client import CollectorRegistry

from alerts.metrics import Metrics
from config.rules import Rules
from config.settings import Settings
from stream.app import MAX_RECORD_BYTES
from stream.detection_process import Changelog, DetectionError, DetectionProcess, WorkerTable
from stream.pipeline import Message, Outputs, Pipeline
from stream.replay import partition_for
from stream.simulator import SimulationConfig, simulate
from stream.table_stores import TableStores, outlet_key, partition_key

PARTITIONS = 4
REKEY = "test.by-outlet"
VERDICTS = "test.verdicts"


class Worker:
    """A worker's table, answering and counting a ``WorkerTable``'s questions."""

    def __init__(self, table: dict[bytes, bytes]) -> None:
        self.table = table
        self.questions: list[tuple[str, Any]] = []

    def ask(self, question: str, subject: Any) -> Any:
        self.questions.append((question, subject))
        if question == "keys":
            return [k for k in self.table if int(k[1 : k.index(b":")]) == subject]
        if question == "get":
            return self.table.get(subject)
        return [(k, v) for k, v in self.table.items() if k.startswith(subject)]


def test_worker_table_asks_for_a_partitions_keys_once_and_never_about_new_keys() -> None:
    known, other = outlet_key(1, "W-1"), outlet_key(1, "W-2")
    worker = Worker({known: b"v1", outlet_key(2, "W-9"): b"v9"})
    table = WorkerTable(worker.ask)
    assert table[known] == b"v1"
    assert worker.questions == [("keys", 1), ("get", known)]
    assert table.get(other) is None  # not among partition 1's keys: no question
    table[other] = b"v2"
    del table[known]
    assert known not in table and table[other] == b"v2"
    assert len(worker.questions) == 2
    assert table.scan(b"o2:") == [(outlet_key(2, "W-9"), b"v9")]
    assert table.scan(b"o1:") == [(other, b"v2")]  # this process's writes, not the worker's
    table.forget()
    assert table[known] == b"v1"  # read again from the worker
    assert worker.questions[-2:] == [("keys", 1), ("get", known)]


def rows_of(lines: list[bytes], topic: str) -> list[tuple[Any, ...]]:
    """Messages as the worker sends them: each on its outlet's partition."""
    rows = []
    for offset, line in enumerate(lines):
        outlet = orjson.loads(line)["outlet_id"]
        rows.append((topic, partition_for(outlet, PARTITIONS), offset, outlet.encode(), line, None))
    return rows


def batches(rows: list[tuple[Any, ...]], size: int = 400) -> Iterator[list[tuple[Any, ...]]]:
    for start in range(0, len(rows), size):
        yield rows[start : start + size]


def alert_ids(alerts: list[tuple[bytes, bytes]]) -> list[tuple[str, str, str]]:
    found = [orjson.loads(value) for _, value in alerts]
    return sorted((a["alert_id"], a["kind"], a["severity"]) for a in found)


def in_one_process(rows: list[tuple[Any, ...]]) -> list[tuple[bytes, bytes]]:
    partition_of = functools.lru_cache(maxsize=None)(lambda o: partition_for(o, PARTITIONS))
    stores = TableStores({}, partition_of)
    pipeline = Pipeline(Rules(), stores, Metrics(CollectorRegistry()), REKEY, VERDICTS)
    alerts = []
    for chunk in batches(rows):
        alerts += pipeline.process(Message(*row) for row in chunk).alerts
    return alerts


async def detect(
    settings: Settings, changelog: Changelog, table: dict[bytes, bytes], rows: list[tuple[Any, ...]]
) -> tuple[list[tuple[bytes, bytes]], Metrics]:
    """Alerts of ``rows`` through a detection process reading ``table``, checkpointed at
    the end; the detection metrics as forwarded."""
    failures: list[BaseException] = []
    detection = DetectionProcess(settings, Rules(), table, changelog, None, failures.append)
    alerts: list[tuple[bytes, bytes]] = []

    async def keep(out: Outputs) -> None:
        alerts.extend(out.alerts)

    try:
        for chunk in batches(rows):
            await detection.ask("process", chunk, then=keep)
        _, families, changed = await detection.result("take_checkpoint")
        assert changed
        await detection.result("close_checkpoint")
    finally:
        await detection.close()
    assert not failures
    metrics = Metrics(CollectorRegistry())
    metrics.forward_detection()(families)
    return alerts, metrics


def test_detection_process_detects_as_one_process_and_recovers_from_its_changelog(
    kafka_bootstrap: str,
) -> None:
    """Two halves of a stream, the second by a new process reading the first one's
    checkpoint back from the changelog: the alerts of one pipeline in one process."""
    lines = simulate(SimulationConfig(outlets=24, days=14, seed=5)).events
    rows = rows_of(lines, "test.orders")
    half = len(rows) // 2
    settings = Settings(
        kafka_bootstrap=kafka_bootstrap,
        topic_partitions=PARTITIONS,
        rekey_topic=REKEY,
        verdicts_topic=VERDICTS,
        log_level="warning",
    )
    changelog = Changelog(f"test-{uuid.uuid4().hex[:8]}-state-changelog", MAX_RECORD_BYTES)

    first, metrics = asyncio.run(detect(settings, changelog, {}, rows[:half]))
    assert sum(metrics.snapshot()["events_in"].values()) == half  # forwarded

    recovered: dict[bytes, bytes] = {}  # what Faust's recovery makes of the changelog
    for key, value in asyncio.run(read_records(kafka_bootstrap, changelog.topic)):
        assert key is not None
        if value is None:
            recovered.pop(key, None)
        else:
            recovered[key] = value
    assert all(partition_key(p) in recovered for p in range(PARTITIONS))  # closed

    second, _ = asyncio.run(detect(settings, changelog, recovered, rows[half:]))
    expected = in_one_process(rows)
    assert len(expected) > 20
    assert alert_ids(first + second) == alert_ids(expected)


def test_a_dead_detection_process_fails_the_calls_waiting_for_it(kafka_bootstrap: str) -> None:
    settings = Settings(kafka_bootstrap=kafka_bootstrap, log_level="warning")
    changelog = Changelog(f"test-{uuid.uuid4().hex[:8]}-state-changelog", MAX_RECORD_BYTES)
    failures: list[BaseException] = []

    async def run() -> None:
        detection = DetectionProcess(settings, Rules(), {}, changelog, None, failures.append)
        await detection.result("tick")
        assert detection.process is not None
        detection.process.kill()
        with pytest.raises(DetectionError, match="gone"):
            await detection.result("tick")
        with pytest.raises(DetectionError):  # and every call after
            await detection.ask("tick")
        await detection.close()

    asyncio.run(run())
    assert len(failures) == 1
