"""stream/faust_tuning.py without a broker: the consumer's delivery without a task per
message, its fetch wait, the quiet monitors and the worker's logging (the tuned consumer
on a real broker runs in every worker test, e.g. tests/test_worker_stream.py)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from typing import Any

import faust
import pytest
from faust.sensors.prometheus import FaustMetrics
from faust.types import TP
from prometheus_client import CollectorRegistry

from stream.faust_tuning import (
    FETCH_MAX_WAIT_MS,
    Consumer,
    QuietMonitor,
    QuietPrometheusMonitor,
    RawSchema,
    consumer_settings,
    make_worker,
    tune,
)


@pytest.fixture
def app() -> Iterator[faust.App]:
    """An app with the tuned consumer (never started: no broker is needed)."""
    app = faust.App(
        "tuning-test",
        broker="kafka://127.0.0.1:1",
        store="memory://",
        autodiscover=False,
        web_enabled=False,
        **consumer_settings(1 << 20, 1.0),
    )
    tune(app)
    yield app


async def test_the_tuned_app_consumes_with_the_tuned_consumer(app: faust.App) -> None:
    """tune() gives the app the consumer whose aiokafka client fetches with
    FETCH_MAX_WAIT_MS instead of Faust's fixed 1500 ms."""
    consumer = app.consumer
    assert isinstance(consumer, Consumer)
    kafka = consumer._thread._create_consumer(loop=asyncio.get_running_loop())
    try:
        assert kafka._fetch_max_wait_ms == FETCH_MAX_WAIT_MS < 1500
    finally:
        await kafka.stop()


def tp(partition: int) -> TP:
    return TP("orders", partition)


class FakeStream:
    shortlabel = "Stream: detect"

    def __str__(self) -> str:
        return "detect-stream"


def feed(monitor: QuietMonitor, stream: Any) -> None:
    for offset in range(3):
        monitor.on_message_in(tp(0), offset, message=None)
        assert monitor.on_stream_event_in(tp(0), offset, stream, event=None) is None
    monitor.on_message_in(tp(1), 7, message=None)
    monitor.on_stream_event_in(tp(1), 7, stream, event=None)
    monitor.track_tp_end_offset(tp(0), 10)
    monitor.on_message_out(tp(0), 0, message=None)


async def test_the_quiet_monitor_publishes_its_counts_at_each_commit() -> None:
    """Per event the quiet monitor keeps only counts and the stream's inbound time (which
    Faust reads); a commit brings Monitor's figures up to date."""
    monitor = QuietMonitor()
    stream = FakeStream()
    feed(monitor, stream)
    assert set(monitor.stream_inbound_time) == {tp(0), tp(1)}
    assert monitor.messages_received_total == 0  # nothing published before a commit
    monitor.on_commit_completed(consumer=None, state=monitor.time())
    assert monitor.messages_received_total == 4
    assert monitor.messages_active == 3
    assert monitor.messages_received_by_topic["orders"] == 4
    assert monitor.tp_read_offsets == {tp(0): 2, tp(1): 7}
    assert monitor.tp_end_offsets == {tp(0): 10}
    assert monitor.events_total == 4
    assert monitor.events_by_stream["detect-stream"] == 4
    monitor.on_commit_completed(consumer=None, state=monitor.time())
    assert monitor.messages_received_total == 4  # counted once


async def test_the_quiet_prometheus_monitor_publishes_fausts_metrics() -> None:
    """The Prometheus variant sets Faust's own metrics at each commit, under their usual
    names, and the commit latency as before."""
    registry = CollectorRegistry()
    monitor = QuietPrometheusMonitor(metrics=FaustMetrics.create(registry, "faust"))
    feed(monitor, FakeStream())
    monitor.on_commit_completed(consumer=None, state=monitor.time())

    def value(name: str, **labels: str) -> float | None:
        return registry.get_sample_value(name, labels)

    assert value("faust_messages_received_total") == 4
    assert value("faust_active_messages") == 3
    assert value("faust_messages_received_per_topic_total", topic="orders") == 4
    assert value("faust_messages_received_per_topics_partition", topic="orders", partition="1")
    assert value("faust_topic_partition_end_offset", topic="orders", partition="0") == 10
    assert value("faust_total_events_total") == 4
    assert value("faust_total_events_per_stream_total", stream="stream.detect.events") == 4
    assert value("faust_consumer_commit_latency_count") == 1


def test_the_worker_keeps_the_root_logger_at_its_level(app: faust.App) -> None:
    """Faust's start-up spinner would set the root logger to DEBUG (every debug call in
    aiokafka then builds a record); the worker runs without it."""
    loop = asyncio.new_event_loop()
    try:
        worker = make_worker(app, "warning", loop)
        root = logging.getLogger()
        before = root.level
        worker.on_setup_root_logger(root, logging.WARNING)
        assert root.level == before
    finally:
        loop.close()


async def test_raw_schema_events_carry_the_message_bytes(app: faust.App) -> None:
    """RawSchema makes the same events as the raw serializer (bytes as they came, a
    missing key stays None) and still encodes raw when sending."""
    from faust.types import Message

    schema = RawSchema()
    decode = schema.compile(app)
    for key, value in ((b"O-1", b'{"a":1}'), (None, b"x")):
        message = Message("orders", 0, 5, 0.0, 0, None, key, value, None)
        event = await decode(message)
        assert (event.key, event.value, event.message) == (key, value, message)
    assert schema.dumps_value(app, b"\x00raw", headers={}) == (b"\x00raw", {})
