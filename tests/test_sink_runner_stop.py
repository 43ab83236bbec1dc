"""The sink runner's shutdown is bounded: a Kafka consumer whose stop hangs (aiokafka,
cancelled mid-rebalance) must not hold the worker's shutdown forever."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

from prometheus_client import CollectorRegistry

from alerts.metrics import Metrics
from config.settings import Settings
from stream.alert_sinks import SinkRunner


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
