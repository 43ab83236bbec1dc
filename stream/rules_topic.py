"""The live rule set on Kafka: ``settleguard rules push`` publishes a validated rule file to
a compacted topic (one partition, one key), so the latest version is always there for
workers to read at start and follow while running."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError, for_code
from aiokafka.structs import TopicPartition

from config.rules import Rules, RulesError, parse_rules
from config.settings import Settings

RULES_KEY = b"rules"

log = logging.getLogger(__name__)


async def ensure_rules_topic(settings: Settings) -> None:
    """Create the compacted rules topic when it is missing (safe to race)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    try:
        if settings.rules_topic in set(await admin.list_topics()):
            return
        topic = NewTopic(settings.rules_topic, 1, 1, topic_configs={"cleanup.policy": "compact"})
        response = await admin.create_topics([topic])
        for name, code, *_ in response.topic_errors:
            error = for_code(code)
            if code and error is not TopicAlreadyExistsError:
                raise error(f"cannot create topic {name!r}")
    finally:
        await admin.close()


async def push_rules(settings: Settings, rules: Rules, text: str) -> str:
    """Publish ``rules`` (validated from ``text``) as the live rule set; return its version."""
    await ensure_rules_topic(settings)
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all")
    await producer.start()
    try:
        value = orjson.dumps({"rule_version": rules.rule_version, "yaml": text})
        await producer.send_and_wait(settings.rules_topic, value, key=RULES_KEY)
    finally:
        await producer.stop()
    return rules.rule_version


@asynccontextmanager
async def _rules_partition(
    settings: Settings,
) -> AsyncIterator[tuple[AIOKafkaConsumer, TopicPartition]]:
    """A group-less consumer assigned the rules topic's one partition."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap, enable_auto_commit=False, group_id=None
    )
    await consumer.start()
    try:
        partition = TopicPartition(settings.rules_topic, 0)
        consumer.assign([partition])
        yield consumer, partition
    finally:
        await consumer.stop()


async def latest_rules(settings: Settings) -> dict[str, Any] | None:
    """The last rule set pushed (``rule_version`` and ``yaml``), or None if none was."""
    async with _rules_partition(settings) as (consumer, partition):
        end = (await consumer.end_offsets([partition]))[partition]
        if end == 0:
            return None
        consumer.seek(partition, end - 1)
        batch = await consumer.getmany(partition, timeout_ms=10_000)
        messages = batch.get(partition, [])
        return orjson.loads(messages[-1].value) if messages else None


async def follow_rules(settings: Settings, apply: Callable[[Rules], Awaitable[None]]) -> None:
    """Read the rules topic from its start and hand every valid rule set to ``apply``, for
    as long as the worker runs; an invalid one is logged and skipped (``rules push``
    validates, so only a foreign producer can publish one)."""
    await ensure_rules_topic(settings)
    async with _rules_partition(settings) as (consumer, partition):
        await consumer.seek_to_beginning(partition)
        async for message in consumer:
            try:
                pushed = orjson.loads(message.value or b"null")
                rules = parse_rules(pushed["yaml"], f"{settings.rules_topic}@{message.offset}")
            except (orjson.JSONDecodeError, TypeError, KeyError, RulesError) as exc:
                log.error("ignoring rule set at %s@%s: %s", message.topic, message.offset, exc)
                continue
            await apply(rules)
