"""Create the Kafka topics settleguard reads and writes, idempotently (safe to race)."""

from __future__ import annotations

import asyncio
import time

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError, for_code

from config.settings import Settings


def topic_names(settings: Settings) -> list[str]:
    """Every topic the worker needs before it starts."""
    return [
        settings.orders_topic,
        settings.settlements_topic,
        settings.dead_letter_topic,
        settings.alerts_topic,
        settings.rekey_topic,
        settings.verdicts_topic,
        settings.ratings_topic,
    ]


COMPACTED = {"cleanup.policy": "compact"}
"""Config of topics that keep the latest value per key (the ratings)."""


def input_topics(settings: Settings) -> list[str]:
    """The topics the detecting agent reads: they must be co-partitioned."""
    return [
        settings.orders_topic,
        settings.settlements_topic,
        settings.rekey_topic,
        settings.verdicts_topic,
    ]


class PartitionCountError(RuntimeError):
    """The input topics do not have the configured number of partitions."""


async def ensure_topics(settings: Settings, replication: int = 1) -> list[str]:
    """Create the missing topics with ``settings.topic_partitions``; return those created."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [name for name in topic_names(settings) if name not in existing]
        if missing:
            new = [
                NewTopic(
                    name,
                    settings.topic_partitions,
                    replication,
                    topic_configs=COMPACTED if name == settings.ratings_topic else {},
                )
                for name in missing
            ]
            response = await admin.create_topics(new)
            for name, code, *_ in response.topic_errors:
                error = for_code(code)
                # Already-exists means another worker won the race: that is success too.
                if code and error is not TopicAlreadyExistsError:
                    raise error(f"cannot create topic {name!r}")
        wrong = await _partition_counts_off(admin, settings)
        if wrong:
            raise PartitionCountError(
                f"input topics must all have SETTLEGUARD_TOPIC_PARTITIONS="
                f"{settings.topic_partitions} partitions (an outlet's events and state live "
                f"in one partition number); found {wrong}: set SETTLEGUARD_TOPIC_PARTITIONS "
                "to match, or add partitions with kafka-topics.sh --alter"
            )
        return missing
    finally:
        await admin.close()


async def _partition_counts_off(
    admin: AIOKafkaAdminClient, settings: Settings, settle_seconds: float = 15.0
) -> dict[str, int]:
    """Input topics whose partition count differs from the setting.

    A topic just created may describe with no partitions (or an error) until its
    metadata has spread across the broker, so an empty answer is asked again
    until ``settle_seconds`` pass; a real count that differs is reported at once.
    """
    deadline = time.monotonic() + settle_seconds
    while True:
        described = await admin.describe_topics(input_topics(settings))
        counts = {t["topic"]: len(t["partitions"]) for t in described}
        settling = any(t["error_code"] or not t["partitions"] for t in described)
        if not settling or time.monotonic() > deadline:
            return {name: n for name, n in counts.items() if n != settings.topic_partitions}
        await asyncio.sleep(0.2)
