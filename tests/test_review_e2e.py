"""The review queue fed by real workers on a real broker: after kill -9, across a
rebalance and through a Redis outage, every alert at or above the review threshold is in
the review stream exactly once."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from functools import lru_cache
from pathlib import Path
from typing import IO, Any

import orjson
import pytest
import redis
from conftest import free_port, run_settleguard
from kafka_harness import scrape, start_worker, stop, total, two_workers, wait_consumed
from test_worker_stream import alerts_of, consumed, published

from alerts.review_queue import alert_key
from config.rules import Rules
from stream.evaluate import SEVERITY_RANK
from stream.replay import replay
from stream.simulator import SimulationConfig, simulate

pytestmark = pytest.mark.e2e


@lru_cache(maxsize=1)
def stream() -> tuple[bytes, ...]:
    """~13,500 simulated events (16 outlets x 30 days) with ~45 alerts at low or above."""
    return tuple(simulate(SimulationConfig(outlets=16, days=30, seed=21)).events)


def is_reviewable(alert: dict[str, Any]) -> bool:
    """At or above the default review.min_severity (low)."""
    return SEVERITY_RANK[alert["severity"]] >= SEVERITY_RANK["low"]


@lru_cache(maxsize=1)
def reviewable_by_replay() -> frozenset[str]:
    """The ids of replay's alerts for ``stream()`` that go to review: what the workers
    publish in the end, whatever crashes and hand-overs (tests/test_worker_stream.py)."""
    out = io.BytesIO()
    replay(io.BytesIO(b"\n".join(stream()) + b"\n"), "stream", out, None, Rules(), 4)
    alerts = (orjson.loads(line) for line in out.getvalue().splitlines())
    return frozenset(a["alert_id"] for a in alerts if is_reviewable(a))


def queued(env: dict[str, str]) -> list[tuple[str, str]]:
    """(entry id, alert id) of every entry in the review stream, in stream order."""
    client = redis.Redis.from_url(env["SETTLEGUARD_REDIS_URL"], decode_responses=True)
    try:
        entries = client.xrange(env["SETTLEGUARD_REVIEW_STREAM"])
    finally:
        client.close()
    return [(entry, orjson.loads(fields["alert"])["alert_id"]) for entry, fields in entries]


def wait_for_the_whole_stream(env: dict[str, str], workers: list[Any]) -> None:
    """Wait until the review stream holds every alert replay finds, then until the review
    sink has committed the whole alerts topic. (Not the input group's commits: after a
    restart they were seen to trail the processed events for minutes, see the report.)"""
    deadline = time.monotonic() + 300
    while not reviewable_by_replay() <= {alert_id for _, alert_id in queued(env)}:
        assert all(w.poll() is None for w in workers), "a worker exited"
        assert time.monotonic() < deadline, "the review stream misses alerts replay finds"
        time.sleep(1)
    review_caught_up(env, workers)


@pytest.fixture
def topics_env(isolated_env: dict[str, str]) -> dict[str, str]:
    """A worker env of this test, its topics created."""
    run_settleguard(["topics", "create"], isolated_env)
    return isolated_env


@pytest.fixture
def review_env(topics_env: dict[str, str], redis_url: str) -> dict[str, str]:
    """A worker env on the shared Redis, with its own review stream and key prefix."""
    return {**topics_env, "SETTLEGUARD_REDIS_URL": redis_url}


def review_caught_up(env: dict[str, str], workers: list[Any]) -> None:
    """Wait until the review sink's group has committed the whole alerts topic."""
    group = f"{env['SETTLEGUARD_APP_ID']}.review"
    topics = [env["SETTLEGUARD_ALERTS_TOPIC"]]
    reached = wait_consumed(env["SETTLEGUARD_KAFKA_BOOTSTRAP"], group, topics, 300, workers)
    assert reached == 1.0, f"review sink committed {reached:.0%} of the alerts"


def assert_each_reviewable_alert_enqueued_once(env: dict[str, str]) -> int:
    """The stream holds every alert >= low of the alerts topic, each exactly once, and
    each alert's hash points at its entry; return how many."""
    reviewable = {a["alert_id"] for a in alerts_of(env) if is_reviewable(a)}
    entries = queued(env)
    ids = [alert_id for _, alert_id in entries]
    client = redis.Redis.from_url(env["SETTLEGUARD_REDIS_URL"], decode_responses=True)
    try:
        prefix = env["SETTLEGUARD_REDIS_KEY_PREFIX"]
        pointers = [client.hget(alert_key(prefix, alert_id), "entry") for alert_id in ids]
    finally:
        client.close()
    assert len(reviewable) >= 30
    assert len(ids) == len(set(ids)), "an alert was enqueued twice"
    assert set(ids) == reviewable
    assert pointers == [entry for entry, _ in entries]
    return len(ids)


class PrivateRedis:
    """A redis-server of this test alone on a free port, persisting to ``data_dir`` (AOF),
    so it can be stopped and started mid-stream without touching the shared one."""

    def __init__(self, data_dir: Path, log: IO[bytes]) -> None:
        self.data_dir, self.log = data_dir, log
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.data_dir.mkdir(exist_ok=True)
        args = ["--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.data_dir)]
        args += ["--appendonly", "yes", "--save", ""]
        self.process = subprocess.Popen(["redis-server", *args], stdout=self.log, stderr=self.log)
        client = redis.Redis.from_url(self.url)
        deadline = time.monotonic() + 30
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                assert time.monotonic() < deadline, "private redis-server did not start"
                time.sleep(0.1)
        client.close()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(30)


@contextmanager
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    with (tmp_path / "redis.log").open("wb") as log:
        server = PrivateRedis(tmp_path / "redis", log)
        server.start()
        try:
            yield server
        finally:
            server.stop()


def wait_for_stuck_sink(env: dict[str, str], worker: Any) -> None:
    """Wait until the worker's review sink has failed to deliver and holds alerts."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert worker.poll() is None, "worker exited"
        samples = scrape(int(env["SETTLEGUARD_WEB_PORT"]))
        failures = total(samples, "settleguard_sink_failures_total")
        if failures and samples.get('settleguard_sink_backlog{sink="review"}', 0) > 0:
            return
        time.sleep(0.5)
    raise AssertionError("the review sink never held alerts it failed to deliver")


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (the worker's forest-training process and its tracker)."""
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        children = (task / "children").read_text().split() if task.exists() else []
        for child in map(int, children):
            found += [child, *descendants(child)]
    return found


def kill_9_with_children(worker: subprocess.Popen[bytes]) -> None:
    """SIGKILL the worker and the processes it spawned, as a crash of its machine would:
    killed alone, its children would outlive the test."""
    children = descendants(worker.pid)
    worker.kill()
    worker.wait(10)
    for child in children:
        with suppress(ProcessLookupError):
            os.kill(child, signal.SIGKILL)


def test_redis_outage_then_kill_9_enqueue_each_alert_once(
    topics_env: dict[str, str], tmp_path: Path
) -> None:
    """Redis stopped while publishing goes on; the worker killed -9 while its review sink
    holds alerts Redis has not taken; Redis and the worker restarted and the last third
    published: every reviewable alert is in the review stream exactly once."""
    lines = stream()
    third = len(lines) // 3
    with private_redis(tmp_path) as server, (tmp_path / "worker.log").open("wb") as log:
        env = {**topics_env, "SETTLEGUARD_REDIS_URL": server.url}
        worker = start_worker(env, log)
        try:
            published(env, lines[:third])
            assert consumed(env, [worker]) == 1.0
            review_caught_up(env, [worker])
            server.stop()
            published(env, lines[third : 2 * third])
            assert consumed(env, [worker]) == 1.0
            wait_for_stuck_sink(env, worker)
            kill_9_with_children(worker)
            server.start()
            worker = start_worker(env, log)
            published(env, lines[2 * third :])
            wait_for_the_whole_stream(env, [worker])
        finally:
            stop(worker)
        assert_each_reviewable_alert_enqueued_once(env)


def test_rebalance_between_two_workers_enqueues_each_alert_once(
    review_env: dict[str, str], tmp_path: Path
) -> None:
    """Two workers share the review sink's partitions; stopping one mid-stream hands its
    partitions to the other: no alert is missing or enqueued twice."""
    second_env = {**review_env, "SETTLEGUARD_WEB_PORT": str(free_port())}
    with two_workers((review_env, second_env), tmp_path) as (first, second):
        published(review_env, stream())
        consumed(review_env, [first, second], fraction=0.5)
        stop(second)
        wait_for_the_whole_stream(review_env, [first])
        enqueued = assert_each_reviewable_alert_enqueued_once(review_env)
        wait_for_gauges(review_env, depth=enqueued, unacknowledged=enqueued)


def wait_for_gauges(env: dict[str, str], depth: int, unacknowledged: int) -> None:
    """Wait until the worker's review queue gauges show these values (read once a second)."""
    deadline = time.monotonic() + 15
    while True:
        samples = scrape(int(env["SETTLEGUARD_WEB_PORT"]))
        seen = (
            samples.get("settleguard_review_queue_depth"),
            samples.get("settleguard_review_queue_pending"),
        )
        if seen == (depth, unacknowledged):
            return
        assert time.monotonic() < deadline, f"gauges show {seen}, not {(depth, unacknowledged)}"
        time.sleep(0.5)
