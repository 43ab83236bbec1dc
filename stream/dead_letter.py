"""The dead-letter record: the original bytes, why they were rejected and where they came from.

The same JSON shape goes to the dead-letter Kafka topic and to replay's ``--dead-letter``
file, so one tool can inspect and re-drive both. The original bytes are kept whole in
base64 (bad input may not be UTF-8); ``original_text`` is added when they are short, readable text.
"""

from __future__ import annotations

import base64
import contextlib
from dataclasses import dataclass
from typing import Any

import orjson

from models.decode import Rejection

ORIGINAL_TEXT_MAX_BYTES = 4096
"""Readable originals up to this size are also copied as text for people reading the topic."""


@dataclass(frozen=True, slots=True)
class KafkaOrigin:
    """Where a message was read: topic, partition and offset."""

    topic: str
    partition: int
    offset: int

    def as_dict(self) -> dict[str, Any]:
        return {"topic": self.topic, "partition": self.partition, "offset": self.offset}


@dataclass(frozen=True, slots=True)
class FileOrigin:
    """Where a line was read: file name and 1-based line number."""

    file: str
    line: int

    def as_dict(self) -> dict[str, Any]:
        return {"file": self.file, "line": self.line}


Origin = KafkaOrigin | FileOrigin


def dead_letter_record(raw: bytes, rejection: Rejection, origin: Origin) -> bytes:
    """The JSON bytes written to the dead letter for ``raw``."""
    record: dict[str, Any] = {
        "reason": rejection.reason,
        "detail": rejection.detail,
        "field": rejection.field,
        "value": rejection.value,
        "origin": origin.as_dict(),
        "original_b64": base64.b64encode(raw).decode("ascii"),
        "original_size": len(raw),
    }
    if len(raw) <= ORIGINAL_TEXT_MAX_BYTES:
        # Unreadable bytes get no text copy: original_b64 alone carries them.
        with contextlib.suppress(UnicodeDecodeError):
            record["original_text"] = raw.decode("utf-8")
    return orjson.dumps(record)


def original_bytes(record: dict[str, Any]) -> bytes:
    """The rejected bytes back out of a parsed dead-letter record."""
    return base64.b64decode(record["original_b64"])
