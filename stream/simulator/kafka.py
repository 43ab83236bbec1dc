"""Publishing a simulated stream to Kafka: every line in file order, order events to the
orders topic, settlements and bad lines to the settlements topic, key = outlet_id, value =
the exact line bytes, paced to a target rate.

Pacing is a schedule checked once per small chunk (token-bucket style: the producer may
run ahead by at most one chunk), never a sleep per message.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from tqdm import tqdm

MALFORMED_KEY = b"malformed"
_FLUSH_EVERY = 5_000


@dataclass(frozen=True, slots=True)
class PublishStats:
    """What a publish run did."""

    sent: int
    orders: int
    settlements: int
    elapsed_s: float


def route(
    line: bytes, malformed: bool, orders_topic: str, settlements_topic: str
) -> tuple[str, bytes]:
    """(topic, key) for one line: orders by kind, everything else (settlements and bad
    lines) to the settlements topic; key is the outlet id when it can be read."""
    try:
        obj: Any = orjson.loads(line)
    except orjson.JSONDecodeError:
        return settlements_topic, MALFORMED_KEY
    outlet = obj.get("outlet_id") if isinstance(obj, dict) else None
    key = outlet.encode("utf-8") if isinstance(outlet, str) and outlet else MALFORMED_KEY
    if not malformed and isinstance(obj, dict) and obj.get("kind") == "order":
        return orders_topic, key
    return settlements_topic, key


class Pacer:
    """Keeps a send loop at ``rate`` messages/s (0 = unlimited) by sleeping at chunk
    boundaries until the schedule catches up."""

    def __init__(
        self,
        rate: float,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.rate = rate
        self.chunk = max(1, int(rate / 20)) if rate > 0 else _FLUSH_EVERY
        self._clock = clock
        self._sleep = sleep
        self._start = clock()

    async def tick(self, sent: int) -> None:
        """Call after each message; sleeps only every ``chunk`` messages, if ahead."""
        if self.rate <= 0 or sent % self.chunk:
            return
        ahead = self._start + sent / self.rate - self._clock()
        if ahead > 0:
            await self._sleep(ahead)


async def publish(
    lines: Sequence[bytes],
    malformed_lines: set[int],
    bootstrap: str,
    orders_topic: str,
    settlements_topic: str,
    rate: float,
    progress: bool = False,
    producer_factory: Callable[..., Any] | None = None,
) -> PublishStats:
    """Send every line in order (``malformed_lines`` are 1-based line numbers of bad lines),
    then flush. ``producer_factory`` defaults to aiokafka's AIOKafkaProducer."""
    if producer_factory is None:
        from aiokafka import AIOKafkaProducer

        producer_factory = AIOKafkaProducer
    producer = producer_factory(bootstrap_servers=bootstrap, acks="all", linger_ms=10)
    await producer.start()
    started = time.monotonic()
    orders = settlements = 0
    pacer = Pacer(rate)
    bar = tqdm(total=len(lines), desc="publish", unit="ev", disable=not progress)
    pending: list[Any] = []
    try:
        for number, line in enumerate(lines, start=1):
            topic, key = route(line, number in malformed_lines, orders_topic, settlements_topic)
            pending.append(await producer.send(topic, value=line, key=key))
            if topic == orders_topic:
                orders += 1
            else:
                settlements += 1
            if len(pending) >= _FLUSH_EVERY:
                await asyncio.gather(*pending)  # surface delivery errors, bound memory
                pending.clear()
                bar.update(_FLUSH_EVERY)
            await pacer.tick(number)
        await producer.flush()
        await asyncio.gather(*pending)
        bar.update(len(pending))
    finally:
        bar.close()
        await producer.stop()
    return PublishStats(len(lines), orders, settlements, time.monotonic() - started)
