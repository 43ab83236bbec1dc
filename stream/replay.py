"""Replay (CONTRACT.md section 5): the stream pipeline over a JSON Lines file, in file order,
with nothing else running. Every alert goes to the alerts file, bad lines to the dead
letter; the run is deterministic and exits 0 when the file was processed."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import IO, BinaryIO

from prometheus_client import CollectorRegistry
from tqdm import tqdm

from alerts.metrics import Metrics
from stream.dead_letter import FileOrigin
from stream.intake import DeadLetter, Intake


@dataclass(frozen=True, slots=True)
class ReplaySummary:
    """What a replay saw: lines read, events by kind, dead letters by reason, alerts."""

    lines: int
    events_in: dict[str, float]
    dead_letters: dict[str, float]
    alerts: int


def read_lines(stream: BinaryIO) -> Iterator[bytes]:
    """Lines of a JSON Lines byte stream without their line ends; a final empty line is not
    an event, but every other line is, blank ones included (they go to the dead letter)."""
    for line in stream:
        yield line.rstrip(b"\r\n") if line.endswith(b"\n") else line


def replay(
    events: BinaryIO,
    source_name: str,
    alerts_out: IO[bytes],
    dead_letter_out: IO[bytes] | None,
    on_dead_letter: Callable[[int, DeadLetter], None] | None = None,
    progress: bool = False,
    total_bytes: int | None = None,
) -> ReplaySummary:
    """Run every line of ``events`` through the pipeline; return what was seen."""
    metrics = Metrics(CollectorRegistry())
    intake = Intake(metrics)
    lines = 0
    with tqdm(
        total=total_bytes,
        unit="B",
        unit_scale=True,
        disable=not progress,
        desc="replay",
        file=sys.stderr,
    ) as bar:
        for lines, raw in enumerate(read_lines(events), start=1):
            bar.update(len(raw) + 1)
            result = intake.admit(raw, FileOrigin(source_name, lines))
            if isinstance(result, DeadLetter):
                if dead_letter_out is not None:
                    dead_letter_out.write(result.record + b"\n")
                if on_dead_letter is not None:
                    on_dead_letter(lines, result)
    alerts_out.flush()
    snapshot = metrics.snapshot()
    return ReplaySummary(lines, snapshot["events_in"], snapshot["dead_letters"], alerts=0)


def replay_files(
    events_path: str,
    alerts_path: Path,
    dead_letter_path: Path | None,
    on_dead_letter: Callable[[int, DeadLetter], None] | None = None,
    progress: bool = False,
) -> ReplaySummary:
    """``replay`` over named files; ``-`` reads the events from standard input."""
    with ExitStack() as files:
        if events_path == "-":
            events, total = sys.stdin.buffer, None
        else:
            events = files.enter_context(open(events_path, "rb"))
            total = Path(events_path).stat().st_size
        alerts_out = files.enter_context(open(alerts_path, "wb"))
        dead_out = files.enter_context(open(dead_letter_path, "wb")) if dead_letter_path else None
        return replay(events, events_path, alerts_out, dead_out, on_dead_letter, progress, total)
