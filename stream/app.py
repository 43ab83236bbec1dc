"""The Faust application: input topics, one agent per topic, dead letter, web pages.

``create_app`` builds everything from a ``Settings``; nothing connects until the worker
starts, so importing this module is free of side effects.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterable, Awaitable, Callable
from typing import Any

import faust
from faust.sensors.prometheus import setup_prometheus_sensors
from faust.web import Request, Response, View
from prometheus_client import CollectorRegistry

from alerts.metrics import Metrics
from config.settings import Settings
from stream.dead_letter import KafkaOrigin
from stream.intake import DeadLetter, Intake

log = logging.getLogger(__name__)

AgentFun = Callable[[AsyncIterable[Any]], Awaitable[None]]


def create_app(settings: Settings, registry: CollectorRegistry | None = None) -> faust.App:
    """A Faust app consuming the order and settlement topics per ``settings``."""
    app = faust.App(
        settings.app_id,
        broker=f"kafka://{settings.kafka_bootstrap}",
        datadir=str(settings.data_dir),
        store="memory://",
        autodiscover=False,
        topic_partitions=settings.topic_partitions,
        web_bind=settings.web_host,
        web_host=settings.web_host,
        web_port=settings.web_port,
        web_tables_enabled=False,
        web_graph_enabled=False,
    )
    registry = registry if registry is not None else CollectorRegistry()
    setup_prometheus_sensors(app, registry=registry, name_prefix="faust")
    intake = Intake(Metrics(registry))
    dead_letter_topic = app.topic(
        settings.dead_letter_topic, key_serializer="raw", value_serializer="raw"
    )

    def consumer(topic_name: str) -> AgentFun:
        async def consume(stream: AsyncIterable[Any]) -> None:
            async for event in stream.events():  # type: ignore[attr-defined]
                message = event.message
                origin = KafkaOrigin(message.topic, message.partition, message.offset)
                result = intake.admit(event.value, origin)
                if isinstance(result, DeadLetter):
                    log.warning(
                        "dead letter %s:%s@%s: %s", *origin.as_dict().values(), result.rejection
                    )
                    await dead_letter_topic.send(key=event.key, value=result.record)

        consume.__name__ = f"consume_{topic_name.replace('.', '_').replace('-', '_')}"
        return consume

    for topic_name in (settings.orders_topic, settings.settlements_topic):
        topic = app.topic(topic_name, key_serializer="raw", value_serializer="raw")
        app.agent(topic, name=f"consume-{topic_name}")(consumer(topic_name))

    @app.page("/healthz")
    async def healthz(view: View, request: Request) -> Response:
        """Liveness for orchestrators: 200 while the worker is up."""
        return view.json({"status": "ok"})

    return app
