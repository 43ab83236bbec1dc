"""Faust's consumer, per-event sensors and worker start-up, tuned for throughput.

Measured on the 2-core machine class (profiles with py-spy; see README, "Speed of the
stream worker"), these held a Faust agent back more than any Python work in it:

* Fetch stalls. aiokafka keeps one fetch in flight per broker, and Faust hard-codes
  ``fetch_max_wait_ms=1500``. A fetch for partitions that are caught up (empty inputs,
  or the small partitions of a skewed topic) waits that long at the broker, and while
  it does the partitions with a backlog are not fetched at all: up to 1.5 s idle per
  round. ``FETCH_MAX_WAIT_MS`` bounds the stall; idle, it costs one small request per
  ``FETCH_MAX_WAIT_MS`` (latency is unaffected: the broker answers as soon as there is
  a record).
* One ``Service.wait_first`` per message. Faust's fetcher hands every message to the
  conductor inside ``wait_first(callback(message), suspend_flow.wait())``: four tasks and
  an ``asyncio.wait`` per message, about half of a trivial agent's CPU per event. A
  consumer that ran the delivery directly (Faust's ``wait_first`` only when it had to
  wait) doubled a trivial agent's speed but lost alerts after a kill -9 and restart
  (tests/test_review_e2e.py): it was removed, and Faust's path is kept as it is.
* Per-event sensor work: Faust's ``Monitor`` (and ``PrometheusMonitor``, with a label
  lookup and a regex per event) update several counters, timestamps and a latency
  deque on every message and event. ``QuietMonitor`` and ``QuietPrometheusMonitor``
  only count per event and publish the counts at every offset commit (once per
  ``broker_commit_interval``); the per-event runtime histogram is not kept.

Raw topics are read through ``RawSchema`` (events straight from the message bytes).
``run_worker`` also keeps Faust's worker from turning the root logger to DEBUG (it does
so for its start-up spinner whenever the log level is WARN or above, and every
``log.debug`` in aiokafka then builds a record), and runs the event loops on uvloop.

The benchmark's trivial reference agent (bench/bench_worker.py) is built with the same
``consumer_settings``, ``QuietMonitor``, ``tune`` and ``run_worker``, so the ratio it
prints compares the work done per event, not the configuration.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from time import monotonic
from typing import Any, cast

import faust
import uvloop
from aiohttp.web import Response as HTTPResponse
from faust.sensors.monitor import Monitor
from faust.sensors.prometheus import FaustMetrics, PrometheusMonitor
from faust.transport.drivers import aiokafka as driver
from faust.types import TP, StreamT
from faust.web import Request, Response, View
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

FETCH_MAX_WAIT_MS = 100
"""Longest a fetch waits at the broker for records (Faust's own value: 1500 ms)."""


def consumer_settings(max_fetch_bytes: int, commit_seconds: float) -> dict[str, Any]:
    """Faust settings for consuming at speed: fetch up to ``max_fetch_bytes`` per
    partition (fewer rounds; must be at least the largest record), commit acked offsets
    every ``commit_seconds`` (Faust's default 2.8 s only delays them)."""
    return {
        "consumer_max_fetch_size": max_fetch_bytes,
        "broker_commit_interval": commit_seconds,
        "Monitor": QuietMonitor,
    }


def tune(app: faust.App) -> None:
    """Make ``app`` consume with the ``Consumer`` below. Call right after creating it,
    before its first topic or agent."""
    app.transport = Transport(app.conf.broker_consumer, app)


def run_worker(app: faust.App, loglevel: str, loop: asyncio.AbstractEventLoop) -> None:
    """Run ``app`` in a Faust worker on ``loop`` (made by ``new_event_loop``) until it
    stops."""
    make_worker(app, loglevel, loop).execute_from_commandline()


def make_worker(app: faust.App, loglevel: str, loop: asyncio.AbstractEventLoop) -> faust.Worker:
    """A Faust worker for ``app`` without the start-up spinner (whose log handler would
    turn the root logger to DEBUG for the worker's whole life)."""
    worker = faust.Worker(app, loglevel=loglevel, loop=loop)
    worker.spinner = None
    return worker


def new_event_loop() -> asyncio.AbstractEventLoop:
    """A uvloop event loop, made the current one; threads started after this call
    (Faust's consumer thread) get uvloop loops too."""
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    return loop


class Consumer(driver.Consumer):
    """Faust's aiokafka consumer, fetching with ``FETCH_MAX_WAIT_MS``."""

    def _new_consumer_thread(self) -> driver.AIOKafkaConsumerThread:
        return ConsumerThread(self, loop=self.loop, beacon=self.beacon)


class ConsumerThread(driver.AIOKafkaConsumerThread):
    def _create_consumer(self, loop: asyncio.AbstractEventLoop) -> Any:
        consumer = super()._create_consumer(loop)
        # Faust passes a fixed 1500; the fetcher reads this when the consumer starts.
        consumer._fetch_max_wait_ms = FETCH_MAX_WAIT_MS
        return consumer


class Transport(driver.Transport):
    Consumer = Consumer


class RawSchema(faust.Schema):
    """Keys and values as bytes (the ``raw`` serializer, both ways), made into events
    without Faust's serializer registry: its decode costs three lookups and two codec
    calls per message to return the same bytes."""

    def __init__(self) -> None:
        super().__init__(key_serializer="raw", value_serializer="raw")

    def compile(
        self,
        app: Any,
        *,
        on_key_decode_error: Any = None,
        on_value_decode_error: Any = None,
        default_propagate: bool = False,
    ) -> Any:
        make_event = app.conf.Event

        async def decode(message: Any, *, propagate: bool = default_propagate) -> Any:
            return make_event(app, message.key, message.value, message.headers, message)

        return decode


@dataclass(frozen=True, slots=True)
class Counts:
    """What a quiet monitor gathered between two commits."""

    received: Mapping[TP, int]  # messages in, per partition
    read: Mapping[TP, int]  # latest offset read, per partition
    ends: Mapping[TP, int]  # latest end offset seen, per partition
    events: Mapping[StreamT, int]  # stream events, per stream
    out: int  # messages fully acked


class QuietMonitor(Monitor):
    """Faust's monitor, counting per event and publishing at each offset commit.

    Keeps per event only what Faust itself reads (``stream_inbound_time``, for its
    slow-stream warnings); the figures of ``Monitor.asdict`` are brought up to date at
    every commit, without the per-event runtimes."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._received: Counter[TP] = Counter()  # messages in since the last flush
        self._read: dict[TP, int] = {}  # latest offset read
        self._ends: dict[TP, int] = {}  # latest end offset seen
        self._events: Counter[StreamT] = Counter()  # stream events since the last flush
        self._out = 0  # messages fully acked since the last flush

    def on_message_in(self, tp: TP, offset: int, message: Any) -> None:
        self._received[tp] += 1
        self._read[tp] = offset

    def on_stream_event_in(
        self, tp: TP, offset: int, stream: StreamT, event: Any
    ) -> dict[Any, Any] | None:
        self.stream_inbound_time[tp] = monotonic()
        self._events[stream] += 1
        return None

    def on_stream_event_out(
        self, tp: TP, offset: int, stream: StreamT, event: Any, state: Any = None
    ) -> None:
        pass

    def on_message_out(self, tp: TP, offset: int, message: Any) -> None:
        self._out += 1

    def track_tp_end_offset(self, tp: TP, offset: int) -> None:
        self._ends[tp] = offset

    def on_commit_completed(self, consumer: Any, state: Any) -> None:
        super().on_commit_completed(consumer, state)
        self.flush()

    def flush(self) -> None:
        """Publish the counts gathered since the last flush."""
        counts = Counts(self._received, dict(self._read), dict(self._ends), self._events, self._out)
        self._received, self._events, self._out = Counter(), Counter(), 0
        self.publish(counts)

    def publish(self, counts: Counts) -> None:
        total = sum(counts.received.values())
        self.messages_received_total += total
        self.messages_active += total - counts.out
        for tp, count in counts.received.items():
            self.messages_received_by_topic[tp.topic] += count
        self.tp_read_offsets.update(counts.read)
        self.tp_end_offsets.update(counts.ends)
        self.events_total += sum(counts.events.values())
        for stream, count in counts.events.items():
            key = self.stream_lookup.get(stream)
            if key is None:
                key = self.stream_lookup[stream] = str(stream)
            self.events_by_stream[key] += count


class QuietPrometheusMonitor(QuietMonitor, PrometheusMonitor):
    """``QuietMonitor`` that also publishes Faust's Prometheus metrics (as
    ``faust.sensors.prometheus.PrometheusMonitor`` does, per commit instead of per
    event; ``events_runtime_latency`` stays empty)."""

    def publish(self, counts: Counts) -> None:
        super().publish(counts)
        metrics = self._metrics
        total = sum(counts.received.values())
        metrics.messages_received.inc(total)
        metrics.active_messages.inc(total - counts.out)
        for tp, count in counts.received.items():
            metrics.messages_received_per_topics.labels(topic=tp.topic).inc(count)
        for tp, offset in counts.read.items():
            metrics.messages_received_per_topics_partition.labels(
                topic=tp.topic, partition=tp.partition
            ).set(offset)
        for tp, offset in counts.ends.items():
            metrics.topic_partition_end_offset.labels(topic=tp.topic, partition=tp.partition).set(
                offset
            )
        metrics.total_events.inc(sum(counts.events.values()))
        for stream, count in counts.events.items():
            label = f"stream.{self._stream_label(stream)}.events"
            metrics.total_events_per_stream.labels(stream=label).inc(count)


def setup_prometheus(app: faust.App, registry: CollectorRegistry, name_prefix: str) -> None:
    """Faust's metrics in ``registry`` (named ``<name_prefix>_...``) kept by a
    ``QuietPrometheusMonitor``, and the ``/metrics`` page serving ``registry``: what
    ``faust.sensors.prometheus.setup_prometheus_sensors`` sets up, with the quiet
    monitor."""
    app.monitor = QuietPrometheusMonitor(metrics=FaustMetrics.create(registry, name_prefix))

    @app.page("/metrics")
    async def metrics_page(view: View, request: Request) -> Response:
        body = generate_latest(registry)
        page = HTTPResponse(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})
        return cast(Response, page)
