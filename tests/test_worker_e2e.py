"""End to end from nothing: Kafka started by the project's script, topics created, the
worker as a subprocess, the simulator publishing a stream with bad lines mixed in."""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer

from stream.dead_letter import original_bytes
from tests.conftest import SETTLEGUARD, run_settleguard
from tests.kafka_harness import scrape, total

pytestmark = pytest.mark.e2e


async def read_topic(bootstrap: str, topic: str, expected: int, timeout: float) -> list[bytes]:
    """Every message value on ``topic`` from the beginning, once ``expected`` have arrived."""
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", group_id=None
    )
    await consumer.start()
    values: list[bytes] = []
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=1000)
            values += [m.value for messages in batch.values() for m in messages if m.value]
            if len(values) >= expected:
                await asyncio.sleep(2)  # anything beyond `expected` would be a bug: catch it
                batch = await consumer.getmany(timeout_ms=1000)
                values += [m.value for messages in batch.values() for m in messages if m.value]
                break
    finally:
        await consumer.stop()
    return values


def test_worker_consumes_good_events_and_dead_letters_bad_ones(
    isolated_env: dict[str, str], tmp_path: Path
) -> None:
    """Every good event is counted by the worker; every bad line is on the dead-letter
    topic with its original bytes, a reason and its topic/partition/offset."""
    env = isolated_env
    bootstrap = env["SETTLEGUARD_KAFKA_BOOTSTRAP"]
    port = int(env["SETTLEGUARD_WEB_PORT"])
    run_settleguard(["topics", "create"], env)
    log = (tmp_path / "worker.log").open("w")
    worker = subprocess.Popen([*SETTLEGUARD, "worker"], env=env, stdout=log, stderr=log)
    try:
        out = tmp_path / "sim"
        run_settleguard(
            [
                "simulate",
                "--outlets",
                "6",
                "--days",
                "4",
                "--seed",
                "3",
                "--malformed",
                "0.02",
                "--out",
                str(out),
                "--to-kafka",
                bootstrap,
                "--rate",
                "5000",
                "--no-progress",
                "--orders-topic",
                env["SETTLEGUARD_ORDERS_TOPIC"],
                "--settlements-topic",
                env["SETTLEGUARD_SETTLEMENTS_TOPIC"],
            ],
            env,
        )
        lines = (out / "events.jsonl").read_bytes().split(b"\n")[:-1]
        malformed = [json.loads(x) for x in (out / "malformed.jsonl").read_text().splitlines()]
        bad_lines = {lines[m["line"] - 1] for m in malformed}
        good = len(lines) - len(malformed)
        assert malformed and good > 100

        deadline = time.monotonic() + 180
        seen = dead = 0.0
        while time.monotonic() < deadline and worker.poll() is None:
            try:
                samples = scrape(port)
                seen = total(samples, "settleguard_events_in_total")
                dead = total(samples, "settleguard_dead_letters_total")
            except OSError:
                pass  # web server not up yet
            if seen >= good and dead >= len(malformed):
                break
            time.sleep(1)
        assert worker.poll() is None, (tmp_path / "worker.log").read_text()[-3000:]
        assert (seen, dead) == (good, len(malformed))

        records = asyncio.run(
            read_topic(bootstrap, env["SETTLEGUARD_DEAD_LETTER_TOPIC"], len(malformed), 60)
        )
        assert len(records) == len(malformed)
        parsed = [json.loads(r) for r in records]
        assert {original_bytes(r) for r in parsed} == bad_lines
        for record in parsed:
            assert record["reason"] and record["detail"]
            origin = record["origin"]
            assert origin["topic"] in (
                env["SETTLEGUARD_ORDERS_TOPIC"],
                env["SETTLEGUARD_SETTLEMENTS_TOPIC"],
            )
            assert origin["partition"] >= 0 and origin["offset"] >= 0
    finally:
        worker.terminate()
        try:
            worker.wait(30)
        except subprocess.TimeoutExpired:
            worker.kill()
        log.close()
