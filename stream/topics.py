"""Create the Kafka topics settleguard reads and writes, idempotently (safe to race)."""

from __future__ import annotations

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
    ]


async def ensure_topics(settings: Settings, replication: int = 1) -> list[str]:
    """Create the missing topics with ``settings.topic_partitions``; return those created."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [name for name in topic_names(settings) if name not in existing]
        if missing:
            new = [NewTopic(name, settings.topic_partitions, replication) for name in missing]
            response = await admin.create_topics(new)
            for name, code, *_ in response.topic_errors:
                error = for_code(code)
                # Already-exists means another worker won the race: that is success too.
                if code and error is not TopicAlreadyExistsError:
                    raise error(f"cannot create topic {name!r}")
        return missing
    finally:
        await admin.close()
