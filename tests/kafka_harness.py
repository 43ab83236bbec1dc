"""Helpers for tests and benchmarks that drive real workers on a real broker: publish an
events file, start and stop worker processes, wait until a consumer group has committed
everything, read a topic to its end."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError
from aiokafka.structs import TopicPartition

SETTLEGUARD = [str(Path(sys.executable).parent / "settleguard")]


def outlet_key(line: bytes) -> bytes | None:
    """The message key upstream uses (``outlet_id``), or None for a line that is not JSON."""
    try:
        return str(orjson.loads(line)["outlet_id"]).encode()
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return None


async def publish(bootstrap: str, topic: str, lines: Iterable[bytes]) -> int:
    """Produce ``lines`` to ``topic`` in order, keyed by outlet; return how many."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=20, acks="all")
    await producer.start()
    sent = 0
    try:
        pending = []
        for line in lines:
            pending.append(await producer.send(topic, line, key=outlet_key(line)))
            sent += 1
            if len(pending) >= 5000:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return sent


async def stop_consumer(consumer: AIOKafkaConsumer) -> None:
    """``consumer.stop()``, minus aiokafka's stray CancelledError when a consumer without
    a group stops right after starting (its committed-offsets task is cancelled)."""
    try:
        await consumer.stop()
    except asyncio.CancelledError:
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise


async def end_offsets(bootstrap: str, topics: Iterable[str]) -> dict[TopicPartition, int]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        described = await admin.describe_topics(list(topics))
    finally:
        await admin.close()
    tps = [TopicPartition(t["topic"], p["partition"]) for t in described for p in t["partitions"]]
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
    await consumer.start()
    try:
        return dict(await consumer.end_offsets(tps)) if tps else {}
    finally:
        await stop_consumer(consumer)


async def committed(bootstrap: str, group: str) -> dict[TopicPartition, int]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(group)
        return {tp: meta.offset for tp, meta in offsets.items()}
    finally:
        await admin.close()


def wait_consumed(
    bootstrap: str,
    group: str,
    topics: list[str],
    timeout: float,
    workers: Iterable[subprocess.Popen[Any]] = (),
    fraction: float = 1.0,
) -> float:
    """Wait until ``group`` has committed ``fraction`` of ``topics``' messages; return the
    fraction reached. Fails fast if a worker process exits."""
    ends = asyncio.run(end_offsets(bootstrap, topics))
    total = sum(ends.values())
    deadline = time.monotonic() + timeout
    reached = 0.0
    while time.monotonic() < deadline:
        for worker in workers:
            if worker.poll() is not None:
                raise AssertionError(f"worker exited with {worker.returncode}")
        try:
            done = asyncio.run(committed(bootstrap, group))
        except KafkaError:  # e.g. the group's coordinator is moving: ask again
            time.sleep(0.5)
            continue
        reached = sum(min(done.get(tp, 0), end) for tp, end in ends.items()) / max(total, 1)
        if reached >= fraction:
            return reached
        time.sleep(0.5)
    return reached


async def read_records(bootstrap: str, topic: str) -> list[tuple[bytes | None, bytes | None]]:
    """Every (key, value) on ``topic`` from the beginning to its current end, in order per
    partition."""
    ends = await end_offsets(bootstrap, [topic])
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
    await consumer.start()
    records: list[tuple[bytes | None, bytes | None]] = []
    try:
        consumer.assign(list(ends))
        await consumer.seek_to_beginning(*ends)
        remaining = {tp for tp, end in ends.items() if end > 0}
        while remaining:
            batch = await consumer.getmany(timeout_ms=1000)
            for tp, messages in batch.items():
                records += [(m.key, m.value) for m in messages]
                if messages and messages[-1].offset + 1 >= ends[tp]:
                    remaining.discard(tp)
    finally:
        await stop_consumer(consumer)
    return records


async def read_to_end(bootstrap: str, topic: str) -> list[bytes]:
    """Every message value on ``topic`` from the beginning to its current end."""
    return [value for _, value in await read_records(bootstrap, topic) if value is not None]


def read_alerts(bootstrap: str, topic: str) -> list[dict[str, Any]]:
    return [orjson.loads(v) for v in asyncio.run(read_to_end(bootstrap, topic))]


def _stat(pid: int) -> list[str]:
    """Fields of /proc/<pid>/stat after the command name (state first, then parent pid);
    empty when there is no such process."""
    try:
        return (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return []


def alive(pid: int) -> bool:
    """``pid`` runs (a zombie, dead and not yet reaped, does not)."""
    fields = _stat(pid)
    return bool(fields) and fields[0] != "Z"


def children(pid: int) -> list[int]:
    """The live processes ``pid`` started: a worker's detection process."""
    found = [int(e.name) for e in Path("/proc").iterdir() if e.name.isdigit()]
    return [child for child in found if alive(child) and _stat(child)[1] == str(pid)]


def start_worker(env: dict[str, str], log: IO[bytes], *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([*SETTLEGUARD, "worker", *args], env=env, stdout=log, stderr=log)


def stop(worker: subprocess.Popen[Any]) -> None:
    """Stop a worker gracefully, or kill it after 30 s."""
    if worker.poll() is None:
        worker.terminate()
        try:
            worker.wait(30)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait(10)


@contextmanager
def two_workers(
    envs: tuple[dict[str, str], dict[str, str]], log_dir: Path
) -> Iterator[list[subprocess.Popen[bytes]]]:
    """Two workers (each env with its own web port) logging to ``log_dir``/a.log and
    b.log, both in their group before this yields; both stopped at the end."""
    with (log_dir / "a.log").open("wb") as log_a, (log_dir / "b.log").open("wb") as log_b:
        workers = [start_worker(envs[0], log_a), start_worker(envs[1], log_b)]
        try:
            time.sleep(8)  # both in the group before the input arrives
            yield workers
        finally:
            for worker in workers:
                stop(worker)


def scrape(port: int) -> dict[str, float]:
    """A worker's /metrics page as {sample name with labels: value}."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as page:
        text = page.read().decode()
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            samples[name] = float(value)
    return samples


def total(samples: dict[str, float], metric: str) -> float:
    """The sum of ``metric`` over all its labels."""
    return sum(v for k, v in samples.items() if k.startswith(metric + "{") or k == metric)


def get_json(url: str) -> tuple[int, dict[str, Any]]:
    """(status, body) of a JSON page; status 0 when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=5) as page:
            return page.status, orjson.loads(page.read())
    except urllib.error.HTTPError as error:
        return error.code, orjson.loads(error.read() or b"{}")
    except OSError:
        return 0, {}
