"""Stream worker speed on the local broker (start it with `scripts/services.sh start kafka`).

    python bench/bench_worker.py [--compiled] throughput [--outlets 45 --days 180]
    python bench/bench_worker.py latency [--rate 1000 --seconds 60]
    python bench/bench_worker.py recovery [--outlets 100000]

throughput: pre-fills a topic with a simulated stream, then drains it with a trivial
  Faust agent (decode nothing, write nothing) and with the detecting worker, each as a
  fresh consumer group in its own process, ``--rounds`` times in turn (the machine is
  shared: one drain can be 10% off); prints events/s of both and their ratio per round,
  and the median ratio (targets: >= 0.8 of the trivial agent, >= 8,000 events/s). The
  trivial agent gets the worker's consumer settings, event loop and sensors
  (stream/faust_tuning.py). Rates are the committed offsets' slope while draining
  (commits every second; see ``drain_rate``): 180 days of 45 outlets (186,812 events)
  give each drain ~10 of them.
latency: publishes the stream at a steady rate and reads the alerts topic meanwhile;
  prints p50/p95/p99 from producing a settlement to receiving the alert it triggered
  (target: p99 <= 500 ms at 1,000 events/s). Alerts a later event triggers (a grace
  period ending) are not latency samples.
recovery: writes the state of N outlets (copies of real outlets' state) to the worker's
  changelog, starts a worker and prints how long until it consumes a new event
  (target: <= 60 s for 100,000 outlets).

BENCH_WORKER_ARGS adds arguments to the latency run's worker (e.g. "--config rules.yaml").
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from compiled import compiled_pythonpath  # noqa: E402
from conftest import free_port  # noqa: E402
from kafka_harness import (  # noqa: E402
    SETTLEGUARD,
    committed,
    end_offsets,
    outlet_key,
    publish,
    scrape,
    start_worker,
    stop,
)

from config.rules import Rules  # noqa: E402
from config.settings import Settings  # noqa: E402
from models.memory_stores import MemoryStores  # noqa: E402
from models.state import PartitionState  # noqa: E402
from stream.app import MAX_RECORD_BYTES  # noqa: E402
from stream.checkpoint import pack  # noqa: E402
from stream.replay import partition_for, replay  # noqa: E402
from stream.simulator import SimulationConfig, simulate  # noqa: E402
from stream.table_stores import outlet_key as state_key  # noqa: E402
from stream.table_stores import partition_key  # noqa: E402


def isolated_env(bootstrap: str, compiled: bool = False) -> dict[str, str]:
    """Topics, group and data directory of one benchmark run; with ``compiled``, the
    worker runs the compiled build of models/ (what the image runs)."""
    suffix = uuid.uuid4().hex[:8]
    return {
        **os.environ,
        **({"PYTHONPATH": compiled_pythonpath()} if compiled else {}),
        "SETTLEGUARD_KAFKA_BOOTSTRAP": bootstrap,
        "SETTLEGUARD_APP_ID": f"bench-{suffix}",
        "SETTLEGUARD_ORDERS_TOPIC": f"bench-{suffix}.orders",
        "SETTLEGUARD_SETTLEMENTS_TOPIC": f"bench-{suffix}.settlements",
        "SETTLEGUARD_DEAD_LETTER_TOPIC": f"bench-{suffix}.dead-letter",
        "SETTLEGUARD_ALERTS_TOPIC": f"bench-{suffix}.alerts",
        "SETTLEGUARD_REKEY_TOPIC": f"bench-{suffix}.by-outlet",
        "SETTLEGUARD_RULES_TOPIC": f"bench-{suffix}.rules",
        "SETTLEGUARD_DATA_DIR": tempfile.mkdtemp(prefix="bench-worker-"),
        "SETTLEGUARD_WEB_PORT": str(free_port()),
        "SETTLEGUARD_LOG_LEVEL": os.environ.get("SETTLEGUARD_LOG_LEVEL", "warning"),
        "PYTHONWARNINGS": "ignore",
    }


def create_topics(env: dict[str, str]) -> None:
    subprocess.run([*SETTLEGUARD, "topics", "create"], env=env, check=True, capture_output=True)


def drain_rate(process: subprocess.Popen[Any], env: dict[str, str], group: str) -> float:
    """Events/s of ``process`` draining the orders topic: the committed offsets' slope from
    its first commit to its last before the one that completes the drain. Start-up is
    left out, and so is that last commit, which comes up to a commit interval (1 s of a
    ~10 s drain) after the last event, depending on where the interval falls: measured
    to it, the trivial agent's rate was 17,500 or 19,600 events/s from one round to the
    next with nothing else changed."""
    return asyncio.run(_drain_rate(process, env, group))


async def _drain_rate(process: subprocess.Popen[Any], env: dict[str, str], group: str) -> float:
    bootstrap = env["SETTLEGUARD_KAFKA_BOOTSTRAP"]
    ends = await end_offsets(bootstrap, [env["SETTLEGUARD_ORDERS_TOPIC"]])
    total = sum(ends.values())
    seen: list[tuple[float, int]] = []  # (when, events committed), at each new commit
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)  # one client: polling is cheap
    await admin.start()
    try:
        while True:
            if process.poll() is not None:
                raise SystemExit(f"{process.args} exited with {process.returncode}")
            try:
                offsets = await admin.list_consumer_group_offsets(group)
            except KafkaError:  # e.g. the group's coordinator is not known yet: ask again
                await asyncio.sleep(0.2)
                continue
            count = sum(min(offsets[tp].offset, end) for tp, end in ends.items() if tp in offsets)
            if count > (seen[-1][1] if seen else 0):
                seen.append((time.monotonic(), count))
            if count >= total:
                if len(seen) < 3:
                    raise SystemExit("the drain took under 3 commits: use more --days")
                (start, done), (end, last) = seen[0], seen[-2]
                return (last - done) / (end - start)
            await asyncio.sleep(0.1)
    finally:
        await admin.close()


TRIVIAL_AGENT = """
import os, sys, faust
from stream.faust_tuning import RawSchema, consumer_settings, new_event_loop, run_worker, tune
loop = new_event_loop()
app = faust.App(sys.argv[1], broker="kafka://" + sys.argv[2], store="memory://",
                datadir=os.environ["SETTLEGUARD_DATA_DIR"], web_enabled=False, autodiscover=False,
                **consumer_settings(int(sys.argv[4]), float(sys.argv[5])))
tune(app)
topic = app.topic(sys.argv[3], schema=RawSchema())

@app.agent(topic)
async def drain(stream):
    async for _ in stream.events():
        pass

run_worker(app, "warning", loop)
"""
"""The reference: Faust's plain per-event iteration, acking every event, with the
worker's consumer settings, event loop, sensors and topic schema (stream/faust_tuning.py)."""


def trivial_rate(args: argparse.Namespace, env: dict[str, str], group: str) -> float:
    """Events/s of the trivial agent draining the pre-filled topic as group ``group``."""
    trivial = subprocess.Popen(
        [
            sys.executable,
            "-c",
            TRIVIAL_AGENT,
            group,
            args.bootstrap,
            env["SETTLEGUARD_ORDERS_TOPIC"],
            str(MAX_RECORD_BYTES),
            str(Settings().checkpoint_seconds),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        return drain_rate(trivial, env, group)
    finally:
        stop(trivial)


def worker_rate(env: dict[str, str], group: str) -> float:
    """Events/s of a detecting worker draining the pre-filled topic as group ``group``."""
    run_env = {**env, "SETTLEGUARD_APP_ID": group}
    with open(Path(env["SETTLEGUARD_DATA_DIR"]) / f"{group}.log", "wb") as log:
        worker = start_worker(run_env, log)
        try:
            return drain_rate(worker, run_env, group)
        finally:
            stop(worker)


def throughput(args: argparse.Namespace) -> None:
    env = isolated_env(args.bootstrap, args.compiled)
    create_topics(env)
    lines = simulate(SimulationConfig(outlets=args.outlets, days=args.days, seed=7)).events
    asyncio.run(publish(args.bootstrap, env["SETTLEGUARD_ORDERS_TOPIC"], lines))
    print(f"pre-filled {env['SETTLEGUARD_ORDERS_TOPIC']} with {len(lines):,} events")
    ratios = []
    for round_ in range(1, args.rounds + 1):
        app_id = env["SETTLEGUARD_APP_ID"]
        reference = trivial_rate(args, env, f"{app_id}-trivial-{round_}")
        detecting = worker_rate(env, f"{app_id}-{round_}")
        ratios.append(detecting / reference)
        print(
            f"round {round_}: trivial Faust agent {reference:7,.0f} events/s, "
            f"detecting worker {detecting:7,.0f} events/s, ratio {ratios[-1]:.2f}"
        )
    print(
        f"ratio worker/trivial, median of {len(ratios)} rounds: {statistics.median(ratios):.2f} "
        "(target >= 0.80; worker >= 8,000/s)"
    )


DECIDED_LATER = {"unmatched_settlement"}
"""Kinds decided when a grace period of event time ends: a later event triggers them."""


async def paced_publish_and_watch(
    env: dict[str, str], lines: list[bytes], rate: float
) -> list[float]:
    """Publish ``lines`` at ``rate``/s while reading alerts; latency samples in seconds."""
    bootstrap = env["SETTLEGUARD_KAFKA_BOOTSTRAP"]
    produced: dict[tuple[str, str], float] = {}  # (settlement_id, event_time) -> sent at
    samples: list[float] = []
    consumer = AIOKafkaConsumer(
        env["SETTLEGUARD_ALERTS_TOPIC"], bootstrap_servers=bootstrap, auto_offset_reset="latest"
    )
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=0)
    await consumer.start()
    await producer.start()
    finished = asyncio.Event()

    async def watch() -> None:
        while not finished.is_set():
            batch = await consumer.getmany(timeout_ms=100)
            arrived = time.monotonic()
            for messages in batch.values():
                for message in messages:
                    alert = orjson.loads(message.value or b"{}")
                    if alert.get("kind") in DECIDED_LATER:
                        continue
                    sent = produced.get((alert.get("settlement_id"), alert.get("event_time")))
                    if sent is not None:
                        samples.append(arrived - sent)

    watcher = asyncio.create_task(watch())
    try:
        start = time.monotonic()
        for index, line in enumerate(lines):
            due = start + index / rate
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            event = orjson.loads(line)
            if event.get("kind") == "settlement":
                produced[(event["settlement_id"], event["event_time"])] = time.monotonic()
            await producer.send(env["SETTLEGUARD_ORDERS_TOPIC"], line, key=outlet_key(line))
            if index % 10_000 == 0:
                print(f"  {index:,} events sent, {len(samples)} alerts measured", file=sys.stderr)
        await asyncio.sleep(5)  # the last alerts
    finally:
        finished.set()
        await watcher
        await producer.stop()
        await consumer.stop()
    return samples


def histogram(env: dict[str, str], name: str) -> dict[str, float]:
    """A worker's histogram from /metrics: upper bound -> cumulative count."""
    prefix = f'{name}_bucket{{le="'
    samples = scrape(int(env["SETTLEGUARD_WEB_PORT"]))
    return {k[len(prefix) :].split('"')[0]: v for k, v in samples.items() if k.startswith(prefix)}


def latency(args: argparse.Namespace) -> None:
    env = isolated_env(args.bootstrap, args.compiled)
    create_topics(env)
    lines = simulate(SimulationConfig(outlets=200, days=60, seed=7)).events
    lines = lines[: int(args.rate * args.seconds)]
    with open(Path(env["SETTLEGUARD_DATA_DIR"]) / "worker.log", "wb") as log:
        worker = start_worker(env, log, *os.environ.get("BENCH_WORKER_ARGS", "").split())
        try:
            time.sleep(10)  # joined and assigned
            if worker.poll() is not None:
                raise SystemExit(f"worker exited with {worker.returncode}: see {log.name}")
            samples = asyncio.run(paced_publish_and_watch(env, lines, args.rate))
            inside = histogram(env, "settleguard_arrival_to_alert_seconds")
        finally:
            stop(worker)
    if not samples:
        raise SystemExit("no alert latency samples: check the worker log")
    cuts = statistics.quantiles(samples, n=100)
    print(f"{len(lines):,} events at {args.rate:,.0f}/s, {len(samples)} alerts measured")
    print(
        f"produce -> alert: p50 {cuts[49] * 1000:.0f} ms, p95 {cuts[94] * 1000:.0f} ms, "
        f"p99 {cuts[98] * 1000:.0f} ms, max {max(samples) * 1000:.0f} ms (target p99 <= 500 ms)"
    )
    print("inside the worker, message timestamp -> alert sent (cumulative):", inside)


def recovery(args: argparse.Namespace) -> None:
    env = isolated_env(args.bootstrap, args.compiled)
    create_topics(env)
    partitions = int(env.get("SETTLEGUARD_TOPIC_PARTITIONS", "4"))
    stores = MemoryStores()
    sample = b"\n".join(simulate(SimulationConfig(outlets=200, days=60, seed=7)).events) + b"\n"
    replay(io.BytesIO(sample), "sample", io.BytesIO(), None, Rules(), partitions, stores=stores)
    templates = list(stores.outlets.values())
    changelog = f"{env['SETTLEGUARD_APP_ID']}-state-changelog"

    async def fill() -> int:
        admin = AIOKafkaAdminClient(bootstrap_servers=args.bootstrap)
        await admin.start()
        await admin.create_topics(
            [
                NewTopic(
                    changelog,
                    partitions,
                    1,
                    topic_configs={"cleanup.policy": "compact", "max.message.bytes": "16777216"},
                )
            ]
        )
        await admin.close()
        producer = AIOKafkaProducer(
            bootstrap_servers=args.bootstrap, linger_ms=50, max_request_size=16777216
        )
        await producer.start()
        written = 0
        try:
            pending = []
            for index in range(args.outlets):
                state = templates[index % len(templates)]
                outlet_id = f"W-RECOVERY-{index:06d}"
                state.outlet_id = outlet_id
                partition = partition_for(outlet_id, partitions)
                value = pack(0, 0.0, state.to_bytes(), None)
                written += len(value)
                pending.append(
                    await producer.send(
                        changelog, value, key=state_key(partition, outlet_id), partition=partition
                    )
                )
                if len(pending) >= 2000:
                    await asyncio.gather(*pending)
                    pending.clear()
            for partition in range(partitions):
                value = pack(0, 0.0, PartitionState(partition).to_bytes(), None)
                await producer.send(
                    changelog, value, key=partition_key(partition), partition=partition
                )
            await asyncio.gather(*pending)
        finally:
            await producer.stop()
        return written

    started = time.monotonic()
    written = asyncio.run(fill())
    print(
        f"wrote {args.outlets:,} outlets' state ({written / 1e6:,.0f} MB) to {changelog} "
        f"in {time.monotonic() - started:.0f} s"
    )
    probe = [sample.split(b"\n")[0]]
    with open(Path(env["SETTLEGUARD_DATA_DIR"]) / "worker.log", "wb") as log:
        started = time.monotonic()
        worker = start_worker(env, log)
        try:
            asyncio.run(publish(args.bootstrap, env["SETTLEGUARD_ORDERS_TOPIC"], probe))
            group = env["SETTLEGUARD_APP_ID"]
            while sum(asyncio.run(committed(args.bootstrap, group)).values()) < 1:
                if worker.poll() is not None:
                    raise SystemExit(f"worker exited with {worker.returncode}")
                if time.monotonic() - started > 600:
                    raise SystemExit("worker did not consume within 600 s")
                time.sleep(0.5)
            ready = time.monotonic() - started
        finally:
            stop(worker)
    print(
        f"worker start -> consuming again with {args.outlets:,} outlets: {ready:.1f} s "
        "(target <= 60 s)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--bootstrap", default=os.environ.get("SETTLEGUARD_KAFKA_BOOTSTRAP", "127.0.0.1:9092")
    )
    parser.add_argument(
        "--compiled", action="store_true", help="workers run the compiled build of models/"
    )
    sub = parser.add_subparsers(dest="command", required=True)
    one = sub.add_parser("throughput", help="detecting worker vs a trivial Faust agent")
    one.add_argument("--outlets", type=int, default=45)
    one.add_argument("--days", type=int, default=180)
    one.add_argument(
        "--rounds", type=int, default=3, help="trivial agent then worker, this many times"
    )
    two = sub.add_parser("latency", help="produce -> alert at a steady rate")
    two.add_argument("--rate", type=float, default=1000.0)
    two.add_argument("--seconds", type=float, default=60.0)
    three = sub.add_parser("recovery", help="restart with many outlets of state")
    three.add_argument("--outlets", type=int, default=100_000)
    args = parser.parse_args()
    {"throughput": throughput, "latency": latency, "recovery": recovery}[args.command](args)


if __name__ == "__main__":
    main()
