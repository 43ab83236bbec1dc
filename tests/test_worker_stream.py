"""The detecting worker on a real broker, as separate processes: the same alerts as replay
on a 50,000+ event stream, after kill -9 mid-stream, across two workers sharing and
handing over partitions, under live rule changes; re-keying; quiet inputs; /healthz."""

from __future__ import annotations

import asyncio
import io
import os
import signal
import time
from collections import Counter
from functools import lru_cache
from pathlib import Path
from typing import Any

import orjson
import pytest
from conftest import free_port, run_settleguard
from events_factory import EventFactory
from kafka_harness import (
    alive,
    children,
    get_json,
    publish,
    read_alerts,
    scrape,
    start_worker,
    stop,
    total,
    two_workers,
    wait_consumed,
)

from config.rules import Rules, load_rules
from stream.replay import partition_for, replay
from stream.simulator import SimulationConfig, simulate

pytestmark = pytest.mark.e2e

Key = tuple[str, str, str]


@lru_cache(maxsize=1)
def stream() -> tuple[bytes, ...]:
    """~55,000 simulated events (27 outlets x 60 days), enough to train forests."""
    return tuple(simulate(SimulationConfig(outlets=27, days=60, seed=21)).events)


@lru_cache(maxsize=1)
def replayed() -> frozenset[Key]:
    """Replay's alerts for ``stream()``: id, kind, severity."""
    out = io.BytesIO()
    replay(io.BytesIO(b"\n".join(stream()) + b"\n"), "stream", out, None, Rules(), 4)
    return frozenset(keys(orjson.loads(line) for line in out.getvalue().splitlines()))


def keys(alerts: Any) -> list[Key]:
    return [(a["alert_id"], a["kind"], a["severity"]) for a in alerts]


def consumed(env: dict[str, str], workers: list[Any], fraction: float = 1.0) -> float:
    topics = [env["SETTLEGUARD_ORDERS_TOPIC"], env["SETTLEGUARD_SETTLEMENTS_TOPIC"]]
    bootstrap = env["SETTLEGUARD_KAFKA_BOOTSTRAP"]
    return wait_consumed(bootstrap, env["SETTLEGUARD_APP_ID"], topics, 600, workers, fraction)


def published(env: dict[str, str], lines: Any, topic: str = "SETTLEGUARD_ORDERS_TOPIC") -> int:
    """Publish ``lines`` in file order to one input topic (both kinds are read from either:
    one topic keeps the file's order, which is what replay reproduces)."""
    return asyncio.run(publish(env["SETTLEGUARD_KAFKA_BOOTSTRAP"], env[topic], lines))


def alerts_of(env: dict[str, str]) -> list[dict[str, Any]]:
    return read_alerts(env["SETTLEGUARD_KAFKA_BOOTSTRAP"], env["SETTLEGUARD_ALERTS_TOPIC"])


@pytest.fixture
def worker_env(isolated_env: dict[str, str]) -> dict[str, str]:
    run_settleguard(["topics", "create"], isolated_env)
    return isolated_env


def test_worker_alerts_equal_replay_on_a_50000_event_stream(
    worker_env: dict[str, str], tmp_path: Path
) -> None:
    """One worker on real Kafka: the same alert ids, kinds and severities as replay; every
    alert carries the rule version; /healthz answers 200 with it."""
    assert len(stream()) >= 50_000
    with (tmp_path / "worker.log").open("wb") as log:
        worker = start_worker(worker_env, log)
        try:
            published(worker_env, stream())
            assert consumed(worker_env, [worker]) == 1.0
            status, health = get_json(
                f"http://127.0.0.1:{worker_env['SETTLEGUARD_WEB_PORT']}/healthz"
            )
        finally:
            stop(worker)
    alerts = alerts_of(worker_env)
    assert set(keys(alerts)) == replayed()
    assert {a["rule_version"] for a in alerts} == {Rules().rule_version}
    assert (status, health["status"], health["rule_version"]) == (200, "ok", Rules().rule_version)


def test_kill_9_mid_stream_loses_no_alert(worker_env: dict[str, str], tmp_path: Path) -> None:
    """kill -9 at ~40% and restart: the alert ids equal the uninterrupted run's; repeats
    (at-least-once) carry the same ids."""
    published(worker_env, stream())
    with (tmp_path / "worker.log").open("wb") as log:
        worker = start_worker(worker_env, log)
        consumed(worker_env, [worker], fraction=0.4)
        helpers = children(worker.pid)  # its detection process among them
        assert helpers
        os.kill(worker.pid, signal.SIGKILL)
        worker.wait(10)
        deadline = time.monotonic() + 10
        while any(alive(pid) for pid in helpers):
            assert time.monotonic() < deadline, f"{helpers} outlived the killed worker"
            time.sleep(0.1)
        worker = start_worker(worker_env, log)
        try:
            assert consumed(worker_env, [worker]) == 1.0
        finally:
            stop(worker)
    alerts = alerts_of(worker_env)
    assert set(keys(alerts)) == replayed()
    repeats = sum(n - 1 for n in Counter(a["alert_id"] for a in alerts).values())
    print(f"kill -9: {len(alerts)} alert messages, {len(replayed())} distinct, {repeats} repeats")


def test_two_workers_share_partitions_and_take_over(
    worker_env: dict[str, str], tmp_path: Path
) -> None:
    """Two workers in one group both process; stopping one hands its partitions (and their
    state, from the changelog) to the other; the union of alerts equals replay's."""
    second_env = {**worker_env, "SETTLEGUARD_WEB_PORT": str(free_port())}
    with two_workers((worker_env, second_env), tmp_path) as (first, second):
        published(worker_env, stream())
        consumed(worker_env, [first, second], fraction=0.5)
        counts = [events_in(env) for env in (worker_env, second_env)]
        assert all(count > 0 for count in counts), counts
        stop(second)
        assert consumed(worker_env, [first]) == 1.0
    assert set(keys(alerts_of(worker_env))) == replayed()


def events_in(env: dict[str, str]) -> float:
    """The events a worker has decoded, from its /metrics page."""
    return metrics_of(env)["events_in"]


def test_two_workers_switch_rules_live(worker_env: dict[str, str], tmp_path: Path) -> None:
    """`rules push` while two workers run: both apply it within seconds without restart;
    alerts before carry the old rule_version, alerts after the new one, on every partition."""
    lines = stream()
    half = len(lines) // 2
    second_env = {**worker_env, "SETTLEGUARD_WEB_PORT": str(free_port())}
    new_rules = tmp_path / "rules.yaml"
    new_rules.write_text("version: live-test\nseverity: {low: 48}\n", encoding="utf-8")
    new_version = load_rules(new_rules)
    with two_workers((worker_env, second_env), tmp_path) as workers:
        published(worker_env, lines[:half])
        assert consumed(worker_env, workers) == 1.0
        before = alerts_of(worker_env)
        run_settleguard(["rules", "push", str(new_rules)], worker_env)
        pushed_at = time.monotonic()
        for env in (worker_env, second_env):
            url = f"http://127.0.0.1:{env['SETTLEGUARD_WEB_PORT']}/healthz"
            while get_json(url)[1].get("rule_version") != new_version.rule_version:
                assert time.monotonic() - pushed_at < 30, "worker did not switch rules"
                time.sleep(0.2)
        print(f"both workers switched {time.monotonic() - pushed_at:.1f} s after the push")
        published(worker_env, lines[half:])
        assert consumed(worker_env, workers) == 1.0
    seen_before = {a["alert_id"] for a in before}
    after = [a for a in alerts_of(worker_env) if a["alert_id"] not in seen_before]
    assert before and after
    assert {a["rule_version"] for a in before} == {Rules().rule_version}
    assert {a["rule_version"] for a in after} == {new_version.rule_version}
    assert {partition_for(a["outlet_id"], 4) for a in after} == {0, 1, 2, 3}


def test_events_keyed_otherwise_are_rekeyed_by_outlet(
    worker_env: dict[str, str], tmp_path: Path
) -> None:
    """Events keyed by event id land on arbitrary partitions: the worker forwards each to
    its outlet's partition through the re-key topic and detects on every one of them."""
    lines = stream()[:6000]
    bootstrap = worker_env["SETTLEGUARD_KAFKA_BOOTSTRAP"]

    async def publish_by_event_id() -> None:
        from aiokafka import AIOKafkaProducer

        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=20)
        await producer.start()
        try:
            for line in lines:
                key = orjson.loads(line)["event_id"].encode()
                await producer.send(worker_env["SETTLEGUARD_SETTLEMENTS_TOPIC"], line, key=key)
        finally:
            await producer.stop()

    with (tmp_path / "worker.log").open("wb") as log:
        worker = start_worker(worker_env, log)
        try:
            asyncio.run(publish_by_event_id())
            assert consumed(worker_env, [worker]) == 1.0
            topics = [worker_env["SETTLEGUARD_REKEY_TOPIC"]]
            bootstrap_group = worker_env["SETTLEGUARD_APP_ID"]
            assert wait_consumed(bootstrap, bootstrap_group, topics, 120, [worker]) == 1.0
            metrics = metrics_of(worker_env)
        finally:
            stop(worker)
    redelivered = len(lines) - len({orjson.loads(line)["event_id"] for line in lines})
    assert metrics["settleguard_rekeyed_total"] > len(lines) / 2
    assert metrics["events_in"] == len(lines) + metrics["settleguard_rekeyed_total"]
    assert metrics["settleguard_redeliveries_dropped_total"] == redelivered
    alerts = alerts_of(worker_env)
    assert alerts and all(a["rule_version"] for a in alerts)


def metrics_of(env: dict[str, str]) -> dict[str, float]:
    """A worker's /metrics samples by name (with labels); ``events_in`` sums the kinds."""
    samples = scrape(int(env["SETTLEGUARD_WEB_PORT"]))
    samples["events_in"] = total(samples, "settleguard_events_in_total")
    return samples


def test_quiet_order_input_still_flags_an_unmatched_settlement(
    worker_env: dict[str, str], tmp_path: Path
) -> None:
    """No order events at all: after the order input has been quiet for idle_seconds its
    event time follows the settlements', so a claim for an unknown order is flagged once
    the grace period has passed in event time."""
    env = {**worker_env, "SETTLEGUARD_IDLE_SECONDS": "2", "SETTLEGUARD_TICK_SECONDS": "0.5"}
    target = "W-QUIET-0"
    partition = partition_for(target, 4)
    others = [
        f"W-QUIET-{i}" for i in range(1, 200) if partition_for(f"W-QUIET-{i}", 4) == partition
    ]
    lines = [orjson.dumps(EventFactory(target).settlement_dict("S-LOST", "O-NEVER", at=0.0))]
    for hour, outlet_id in enumerate(others[:8], start=1):
        factory = EventFactory(outlet_id)
        lines.append(orjson.dumps(factory.settlement_dict(f"S-{hour}", f"O-{hour}", at=hour)))
    with (tmp_path / "worker.log").open("wb") as log:
        worker = start_worker(env, log)
        try:
            published(env, lines, "SETTLEGUARD_SETTLEMENTS_TOPIC")
            deadline = time.monotonic() + 60
            found: list[dict[str, Any]] = []
            while not found and time.monotonic() < deadline:
                time.sleep(1)
                found = [
                    a
                    for a in alerts_of(env)
                    if a["kind"] == "unmatched_settlement" and a["settlement_id"] == "S-LOST"
                ]
        finally:
            stop(worker)
    assert found, "the unmatched settlement was never flagged"
