"""The Faust application: one detecting agent over the input topics, state in a
changelogged table, alerts and dead letters out, rules followed live, web pages.

The agent reads small batches (``noack_take``, for latency) and hands them to the
detection process (``stream/detection_process.py``: ``Pipeline``, the same engine replay
runs, in a process of its own so that consuming and detecting use two cores); while it
detects, the agent reads the next batch. Each batch's alerts, dead letters and re-keyed
events are sent as its answer comes back, in the order asked. Every
``checkpoint_seconds`` a timer asks for the state changed by every batch asked for
before it (``TableStores``: changed keys, then each partition's closing record), writes
it, waits until the broker has all of it and every output of those batches, and only
then acks the events behind them, so their offsets may commit. A crash therefore
re-reads at most the events since the last checkpoint, against that checkpoint's state:
alerts may repeat (same ids), none is lost, and the state is never ahead of or behind
the offsets.

``create_app`` builds everything from a ``Settings``; nothing connects until the worker
starts, so importing this module is free of side effects.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import faust
from faust.web import Request, Response, View
from prometheus_client import CollectorRegistry

from alerts.metrics import Metrics
from alerts.sinks import make_sinks
from config.rules import Rules
from config.settings import Settings
from models.detectors.forest import ForestModel
from stream.alert_sinks import AlertSink, SinkRunner
from stream.detection_process import Changelog, DetectionProcess
from stream.faust_tuning import RawSchema, consumer_settings, setup_prometheus, tune
from stream.flow_watchdog import drop_duplicate_acks, resume_left_out
from stream.health import Progress
from stream.lag import ConsumerLag
from stream.pipeline import Outputs
from stream.replay import partitioner
from stream.rules_topic import follow_rules
from stream.topics import input_topics
from stream.verdict_relay import relay_verdicts

log = logging.getLogger(__name__)

WATCHDOG_SECONDS = 15.0
"""An input partition with lag, no commit and not fetched for this long, while the agent
idles, is put back by the flow watchdog (stream/flow_watchdog.py)."""
MAX_RECORD_BYTES = 16 * 1024 * 1024
"""Largest state record (a partition's forest, with its undo image, is ~1 MB)."""
BATCHES_IN_FLIGHT = 4
"""Batches asked of the detection process and not answered yet, at most."""


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A checkpoint asked for: whether state changed since the last one, the deliveries
    of the outputs of the batches asked for before it, and their events."""

    changed: bool
    deliveries: list[Awaitable[Any]]
    events: list[tuple[Any, Any]]


def create_app(
    settings: Settings,
    rules: Rules,
    registry: CollectorRegistry | None = None,
    initial_forest: ForestModel | None = None,
) -> faust.App:
    """A Faust app detecting on the order and settlement topics per ``settings``."""
    app = faust.App(
        settings.app_id,
        broker=f"kafka://{settings.kafka_bootstrap}",
        datadir=str(settings.data_dir),
        store="memory://",
        autodiscover=False,
        topic_partitions=settings.topic_partitions,
        table_standby_replicas=settings.standby_replicas,
        producer_max_request_size=MAX_RECORD_BYTES,
        web_bind=settings.web_host,
        web_host=settings.web_host,
        web_port=settings.web_port,
        web_tables_enabled=False,
        web_graph_enabled=False,
        # Faust would wait for every event to be acked before a rebalance or shutdown, but
        # ours are acked by the next checkpoint: its wait spins (gc.collect per second)
        # and, at shutdown, never ends. Not waiting is safe: the hand-off below writes a
        # checkpoint, and events re-read after it are dropped as re-deliveries.
        stream_wait_empty=False,
        # Offsets commit once per checkpoint (they are acked per checkpoint); faster
        # fetching, quieter sensors: see stream/faust_tuning.py.
        **consumer_settings(MAX_RECORD_BYTES, settings.checkpoint_seconds),
    )
    tune(app)
    registry = registry if registry is not None else CollectorRegistry()
    setup_prometheus(app, registry, name_prefix="faust")
    state = app.Table(
        "state",
        partitions=settings.topic_partitions,
        key_type=bytes,
        value_type=bytes,
        extra_topic_configs={"max.message.bytes": str(MAX_RECORD_BYTES)},
    )
    partition_of = partitioner(settings.topic_partitions)
    metrics = Metrics(registry)
    forward_detection_metrics = metrics.forward_detection()
    progress = Progress(settings.stall_seconds)
    crashing: list[asyncio.Task[None]] = []

    def detection_failed(exc: BaseException) -> None:
        """Nothing can be detected any more: fail /healthz and stop the worker."""
        progress.crashed(repr(exc))
        crashing.append(asyncio.ensure_future(app.crash(exc)))

    changelog = Changelog(state.changelog_topic.get_topic_name(), MAX_RECORD_BYTES)
    detection = DetectionProcess(
        settings, rules, state.data, changelog, initial_forest, detection_failed
    )
    ask = detection.ask
    lock = asyncio.Lock()  # one batch, tick, rules switch or hand-off asked at a time

    def raw_topic(*names: str) -> faust.TopicT:
        return app.topic(*names, schema=RawSchema())

    input_names = tuple(input_topics(settings))
    alerts_topic = raw_topic(settings.alerts_topic)
    dead_letter_topic = raw_topic(settings.dead_letter_topic)
    rekey_topic = raw_topic(settings.rekey_topic)
    ratings_topic = raw_topic(settings.ratings_topic)

    sent: list[Awaitable[Any]] = []  # deliveries of outputs since the last checkpoint
    unacked: list[tuple[Any, Any]] = []  # (stream, event) detected on since then
    checkpointing = asyncio.Lock()  # one checkpoint in flight at a time
    in_flight = asyncio.Semaphore(BATCHES_IN_FLIGHT)

    async def send(out: Outputs) -> None:
        """Hand outputs to the producer now (delivery is awaited at the next checkpoint,
        before the events behind them are acked)."""
        for key, value in out.alerts:
            sent.append(await alerts_topic.send(key=key, value=value))
        for original_key, record in out.dead_letters:
            sent.append(await dead_letter_topic.send(key=original_key, value=record))
        for partition, key, value in out.rekeyed:
            sent.append(await rekey_topic.send(key=key, value=value, partition=partition))
        for partition, key, value in out.ratings:
            sent.append(await ratings_topic.send(key=key, value=value, partition=partition))

    async def take_checkpoint() -> asyncio.Future[Checkpoint]:
        """Ask for a checkpoint of the state changed by every batch asked for so far (the
        detection process starts writing it); the future gets it with the deliveries
        and events of those batches."""
        taken: asyncio.Future[Checkpoint] = asyncio.get_running_loop().create_future()

        async def then(result: tuple[list[tuple[int, bytes, bytes]], list[Any], bool]) -> None:
            ratings, families, changed = result
            forward_detection_metrics(families)
            await send(Outputs(ratings=ratings))  # changed ones, once a checkpoint
            taken.set_result(Checkpoint(changed, list(sent), list(unacked)))
            sent.clear()
            unacked.clear()

        await ask("take_checkpoint", then=then)
        return taken

    async def write_checkpoint(taken: asyncio.Future[Checkpoint]) -> bool:
        """Once the broker has every output sent before the checkpoint, let the detection
        process close it (its state on the broker, then each partition's closing
        record), and ack the events behind it: their offsets may commit. False if there
        was nothing to write."""
        checkpoint = await detection.until(taken)
        await asyncio.gather(*checkpoint.deliveries)
        await detection.result("close_checkpoint")
        for stream, event in checkpoint.events:
            await stream.ack(event)
        metrics.duplicate_acks.inc(drop_duplicate_acks(app.consumer))
        return checkpoint.changed or bool(checkpoint.events)

    async def checkpoint() -> None:
        """Write a checkpoint. Detection goes on while it is written: only asking for it
        holds the lock."""
        async with checkpointing:
            async with lock:
                taken = await take_checkpoint()
            await write_checkpoint(taken)

    @app.agent(raw_topic(*input_names), name="detect")
    async def detect(stream: Any) -> None:
        try:
            async for events in stream.noack_take(settings.batch_size, settings.batch_seconds):
                last_events[0] = time.monotonic()
                await in_flight.acquire()
                async with lock:
                    # revoked partitions: their new owner reads them
                    assigned = app.consumer.assignment()
                    rows = [
                        (m.topic, m.partition, m.offset, m.key, e.value, m.timestamp)
                        for e in events
                        if (m := e.message).tp in assigned
                    ]
                    pairs = [(stream, event) for event in events]

                    async def then(out: Outputs, pairs: list[tuple[Any, Any]] = pairs) -> None:
                        await send(out)
                        unacked.extend(pairs)
                        in_flight.release()

                    await ask("process", rows, then=then)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            progress.crashed(repr(exc))
            raise

    @app.timer(settings.checkpoint_seconds)
    async def periodic_checkpoint() -> None:
        await checkpoint()

    @app.timer(settings.tick_seconds)
    async def advance_quiet_inputs() -> None:
        async with lock:
            await ask("tick", then=send)

    lag = ConsumerLag(metrics.consumer_lag, input_names)

    last_events = [time.monotonic()]  # when the agent last had events to process

    @app.timer(settings.lag_seconds)
    async def refresh_lag() -> None:
        """Lag gauge, progress for /healthz, and the flow watchdog (see its module)."""
        progress.observe(*await lag.refresh(app.consumer))
        idle = time.monotonic() - last_events[0]
        if idle > WATCHDOG_SECONDS:
            resumed = resume_left_out(app.consumer, progress.stuck_for(WATCHDOG_SECONDS))
            metrics.partitions_resumed.inc(len(resumed))

    @app.task
    async def verdict_relay() -> None:
        await relay_verdicts(settings, partition_of)

    @app.task
    async def rules_follower() -> None:
        async def apply(new: Rules) -> None:
            async with lock:
                await detection.use_rules(new)

        await follow_rules(settings, apply)

    for sink in make_sinks(settings, lambda: detection.rules, metrics):
        app.task(_sink_task(settings, sink, metrics))

    @app.on_partitions_revoked.connect  # type: ignore[arg-type]  # mode's stub rejects async
    async def hand_off(sender: Any, *args: Any, signal: Any, **kwargs: Any) -> None:
        """Write every change to the changelog, then drop all held state (the new owners
        of moved partitions read it from there). No batch is asked for meanwhile."""
        async with checkpointing, lock:
            while await write_checkpoint(await take_checkpoint()):
                pass
            await ask("forget")

    @app.on_before_shutdown.connect  # type: ignore[arg-type]  # mode's stub rejects async
    async def last_checkpoint(sender: Any, *args: Any, signal: Any, **kwargs: Any) -> None:
        await checkpoint()  # less to re-read after a graceful stop

    @app.page("/healthz")
    async def healthz(view: View, request: Request) -> Response:
        """Liveness for orchestrators: 503 when stuck (see stream/health.py)."""
        if app.crashed:
            progress.crashed(repr(app.crash_reason))
        healthy, details = progress.status()
        details["rule_version"] = detection.rules.rule_version
        return view.json(details, status=200 if healthy else 503)

    return app


def _sink_task(
    settings: Settings, sink: AlertSink, metrics: Metrics
) -> Callable[[], Awaitable[None]]:
    """The worker task feeding ``sink``; its runner (an aiokafka consumer) can only be
    built inside the running event loop."""

    async def run() -> None:
        await SinkRunner(settings, sink, metrics).run()

    return run
