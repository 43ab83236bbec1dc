"""Reviewers' verdicts from Redis to the partition that owns the outlet.

Reviewers write verdicts to the Redis Stream ``settings.verdicts_stream`` (CONTRACT
section 3). Every worker reads it in the consumer group ``<app_id>`` (so each entry goes
to one worker), joins each verdict with its alert (the hash ``<prefix>alert:<alert_id>``
the review queue wrote), publishes the pair to ``settings.verdicts_topic`` on the outlet's
partition, and acknowledges the entry only once Kafka has it. Entries a crashed worker
had read and not acknowledged are claimed by another after ``CLAIM_IDLE_MS``. A verdict
may so be published twice; the engine applies it once (``models/feedback.py``).

A verdict that cannot be used (unknown alert, bad fields) goes to the dead-letter topic
with its reason and is acknowledged: nothing is dropped silently. While Redis or Kafka is
down the relay retries with backoff; verdicts wait in the Redis Stream.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Callable
from typing import Any

import orjson
import redis.asyncio as aioredis
from aiokafka import AIOKafkaProducer
from redis.exceptions import ResponseError

from config.settings import Settings
from models.verdicts import VerdictError, verdict_from_dict
from stream.alert_sinks import Backoff

log = logging.getLogger(__name__)

CLAIM_IDLE_MS = 60_000
"""A verdict read but not acknowledged for this long is taken over by another worker."""
BATCH = 100


def _text(entry: dict[bytes, bytes], field: str) -> str | None:
    value = entry.get(field.encode())
    return value.decode("utf-8", "replace") if value is not None else None


async def ensure_verdict_group(client: aioredis.Redis, settings: Settings) -> None:
    """Create the relay's consumer group on the verdicts stream (idempotent)."""
    try:
        await client.xgroup_create(settings.verdicts_stream, settings.app_id, id="0", mkstream=True)
    except ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise


class VerdictRelay:
    """One worker's share of the verdicts stream, relayed to Kafka."""

    def __init__(
        self,
        settings: Settings,
        client: aioredis.Redis,
        producer: AIOKafkaProducer,
        partition_of: Callable[[str], int],
    ) -> None:
        self.settings, self.client, self.producer = settings, client, producer
        self.partition_of = partition_of
        self.consumer = f"{socket.gethostname()}-{os.getpid()}"

    async def step(self) -> int:
        """Relay what is waiting (stale entries of dead consumers first); return how many."""
        stream, group = self.settings.verdicts_stream, self.settings.app_id
        claimed: Any = await self.client.xautoclaim(
            stream, group, self.consumer, CLAIM_IDLE_MS, count=BATCH
        )
        entries = list(claimed[1])  # [next start id, entries, deleted ids]
        if not entries:
            answer: Any = await self.client.xreadgroup(
                group, self.consumer, {stream: ">"}, count=BATCH, block=1000
            )
            entries = [entry for _, batch in answer for entry in batch]
        for entry_id, fields in entries:
            await self._relay(fields)
            await self.client.xack(stream, group, entry_id)
        return len(entries)

    async def _relay(self, fields: dict[bytes, bytes]) -> None:
        record: dict[str, Any] = {
            name: _text(fields, name)
            for name in ("alert_id", "verdict", "reviewer", "reason", "decided_at")
        }
        alert_id = record["alert_id"] or ""
        raw_alert = await self.client.hget(
            f"{self.settings.redis_key_prefix}alert:{alert_id}", "alert"
        )
        try:
            if raw_alert is None:
                raise VerdictError(f"alert {alert_id!r} is not known to the review queue")
            record["alert"] = orjson.loads(raw_alert)
            verdict = verdict_from_dict(record)
        except (VerdictError, orjson.JSONDecodeError) as exc:
            await self._dead_letter(record, str(exc))
            return
        await self.producer.send_and_wait(
            self.settings.verdicts_topic,
            orjson.dumps(record),
            key=verdict.outlet_id.encode(),
            partition=self.partition_of(verdict.outlet_id),
        )

    async def _dead_letter(self, record: dict[str, Any], why: str) -> None:
        log.warning("verdict to the dead letter: %s", why)
        letter = {
            "reason": "bad_verdict",
            "detail": why,
            "origin": {"redis_stream": self.settings.verdicts_stream},
            "original_text": orjson.dumps(
                {k: v for k, v in record.items() if k != "alert"}
            ).decode(),
        }
        await self.producer.send_and_wait(self.settings.dead_letter_topic, orjson.dumps(letter))


async def relay_verdicts(settings: Settings, partition_of: Callable[[str], int]) -> None:
    """Relay verdicts for as long as the worker runs, retrying with backoff on failures."""
    client = aioredis.Redis.from_url(settings.redis_url)
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all")
    backoff = Backoff()
    started = False
    try:
        while True:
            try:
                if not started:
                    await producer.start()
                    started = True
                await ensure_verdict_group(client, settings)
                relay = VerdictRelay(settings, client, producer, partition_of)
                while True:
                    await relay.step()
                    backoff.reset()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # Redis or Kafka down: the verdicts wait in Redis
                wait = backoff.next()
                log.warning("verdict relay failed (%r); retrying in %.1f s", exc, wait)
                await asyncio.sleep(wait)
    finally:
        if started:
            await producer.stop()
        await client.aclose()
