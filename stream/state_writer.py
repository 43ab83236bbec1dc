"""Table records written to the state changelog by the detection process.

Checkpoints write thousands of records a second (every order touched, every outlet, the
forest reservoir's changed chunks), a few megabytes; producing them costs a Kafka
client real CPU. The detection process has CPU to spare while the worker's event loop
has none, so the records are produced here, by an aiokafka producer running on an event
loop in a thread of this otherwise synchronous process. Records go out as record
batches, one partition at a time: bytes as they are, no per-message send.
"""

from __future__ import annotations

import asyncio
import threading
from collections import defaultdict
from collections.abc import Sequence
from concurrent.futures import Future
from typing import Any

from aiokafka import AIOKafkaProducer

BATCH_BYTES = 1 << 20
"""Records per request, at most (aiokafka's default, 16 KB, made a checkpoint's few
megabytes into hundreds of produce requests a second, the broker's busiest work)."""

Record = tuple[int, bytes, bytes | None]
"""(partition, key, value); a value of ``None`` deletes the key."""


class StateWriter:
    """Writes table records to ``topic`` on the broker at ``bootstrap``."""

    def __init__(self, bootstrap: str, topic: str, max_record_bytes: int) -> None:
        self.topic = topic
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="state-writer", daemon=True
        )
        self._thread.start()
        self._producer = self._run(self._start(bootstrap, max_record_bytes)).result()

    def write(self, records: Sequence[Record]) -> Future[None]:
        """Start writing ``records``; the future is done once the broker has them all."""
        return self._run(self._write(list(records)))

    def close(self) -> None:
        self._run(self._producer.stop()).result()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()

    def _run(self, coroutine: Any) -> Future[Any]:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop)

    @staticmethod
    async def _start(bootstrap: str, max_record_bytes: int) -> AIOKafkaProducer:
        """A started producer (aiokafka builds it inside its event loop)."""
        producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap,
            acks="all",
            max_request_size=max_record_bytes,
            max_batch_size=min(BATCH_BYTES, max_record_bytes),
        )
        await producer.start()
        return producer

    async def _write(self, records: list[Record]) -> None:
        by_partition: defaultdict[int, list[tuple[bytes, bytes | None]]] = defaultdict(list)
        for partition, key, value in records:
            by_partition[partition].append((key, value))
        producer, topic, deliveries = self._producer, self.topic, []
        for partition, pairs in by_partition.items():
            batch = producer.create_batch()
            for key, value in pairs:
                if batch.append(key=key, value=value, timestamp=None) is None:  # full
                    deliveries.append(await producer.send_batch(batch, topic, partition=partition))
                    batch = producer.create_batch()
                    batch.append(key=key, value=value, timestamp=None)  # a first always fits
            deliveries.append(await producer.send_batch(batch, topic, partition=partition))
        await asyncio.gather(*deliveries)
