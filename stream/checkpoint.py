"""Checkpointed table values: what makes a batch of state writes all-or-nothing.

The worker writes a batch's state to the changelog as one record per changed key and
then, once those are acknowledged, the partition's record last. A crash can cut a batch
short, leaving some keys written and the partition record not; on recovery those keys
would be ahead of the events the consumer re-reads. So every value carries the batch
sequence number that wrote it and the value it replaced (an undo image): a value whose
sequence is above its partition's record is from an unfinished batch and reads as the
value it replaced. Re-reading the batch's events then rebuilds exactly what was lost.

Layout: ``>qdI`` header (sequence, a timestamp the owner may use for expiry scans,
length of the new value), the new value, the old value (empty when the key was new).
"""

from __future__ import annotations

import struct

HEADER = struct.Struct(">qdI")


def pack(sequence: int, ts: float, new: bytes, old: bytes | None) -> bytes:
    """A table value: ``new`` written by batch ``sequence``, replacing ``old``."""
    return HEADER.pack(sequence, ts, len(new)) + new + (old or b"")


def sequence_of(value: bytes) -> int:
    """The batch sequence that wrote ``value``."""
    return int(HEADER.unpack_from(value)[0])


def timestamp_of(value: bytes) -> float:
    """The timestamp stored in ``value``'s header."""
    return float(HEADER.unpack_from(value)[1])


def current(value: bytes, checkpoint: int) -> bytes | None:
    """The state ``value`` holds as of the partition's last finished batch
    ``checkpoint``: the new value, or the replaced one if its batch did not finish
    (``None`` if the key did not exist before it)."""
    sequence, _, length = HEADER.unpack_from(value)
    start = HEADER.size
    if sequence <= checkpoint:
        return value[start : start + length]
    old = value[start + length :]
    return old or None
