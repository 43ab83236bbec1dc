"""Replay (CONTRACT.md section 5): the detection engine over a JSON Lines file, in file
order, with nothing else running. Every alert goes to the alerts file, bad lines to the
dead letter; the run is deterministic and exits 0 when the file was processed.

Events are assigned to partitions exactly as Kafka's default partitioner assigns them by
their ``outlet_id`` key, and state shared by outlets is kept per partition, so replay with
``--partitions N`` reproduces a worker reading N partitions. Replay's clock is event time:
``detected_at`` is the latest event time seen in the partition when the finding was made.
"""

from __future__ import annotations

import functools
import gc
import sys
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, BinaryIO

import orjson
from aiokafka.partitioner import murmur2
from prometheus_client import CollectorRegistry
from tqdm import tqdm

from alerts.build import build_alert, recent_claims
from alerts.metrics import Metrics
from config.rules import Rules
from models.decode import Rejection
from models.detectors.forest import ForestModel
from models.engine import ClaimObserver, Engine
from models.memory_stores import MemoryStores
from stream.dead_letter import FileOrigin
from stream.intake import DeadLetter, Intake
from stream.simulated_review import SimulatedReviewer


def partition_for(outlet_id: str, partitions: int) -> int:
    """The partition Kafka's default partitioner gives a message keyed by ``outlet_id``."""
    return (murmur2(outlet_id.encode()) & 0x7FFFFFFF) % partitions


def partitioner(partitions: int) -> Callable[[str], int]:
    """``partition_for`` over ``partitions``, remembered per outlet (asked per event)."""
    return functools.lru_cache(maxsize=1 << 20)(
        lambda outlet_id: partition_for(outlet_id, partitions)
    )


@dataclass(frozen=True, slots=True)
class ReplaySummary:
    """What a replay saw: lines, events by kind, dead letters, re-deliveries, alerts."""

    lines: int
    events_in: dict[str, float]
    dead_letters: dict[str, float]
    redeliveries: int
    alerts_by_severity: dict[str, int]

    @property
    def alerts(self) -> int:
        return sum(self.alerts_by_severity.values())


def read_lines(stream: BinaryIO) -> Iterator[bytes]:
    """Lines of a JSON Lines byte stream without their line ends; a final empty line is not
    an event, but every other line is, blank ones included (they go to the dead letter)."""
    for line in stream:
        yield line.rstrip(b"\r\n") if line.endswith(b"\n") else line


FULL_COLLECTION_THRESHOLD = 1000
"""Replay's third ``gc`` threshold (Python's default is 10): see ``rare_full_collections``."""


def collect_rarely() -> tuple[int, int, int]:
    """Make full garbage collections a hundred times rarer than by default; return the
    previous thresholds.

    The detection state grows to hundreds of thousands of objects (order records,
    baselines) that are never part of a reference cycle, and each full collection walks
    all of them again: with the default thresholds, six full collections took 5% of a
    286k-event replay. Young objects are collected as usual."""
    thresholds = gc.get_threshold()
    gc.set_threshold(thresholds[0], thresholds[1], FULL_COLLECTION_THRESHOLD)
    return thresholds


FREEZE_EVERY_LINES = 50_000
"""How often replay sets the state it has built aside from collections: see ``set_aside``."""


def set_aside() -> None:
    """Collect the young objects, then freeze everything older (``gc.freeze``): later
    collections, full ones included, no longer walk the state built so far. It is freed
    by reference counting as usual; only cyclic garbage among it would wait for
    ``gc.unfreeze`` (the state holds no cycles). Saved 4% of a 286k-event replay (the
    one full collection took 0.2 s)."""
    gc.collect(1)
    gc.freeze()


@contextmanager
def rare_full_collections() -> Iterator[None]:
    """Run the block under ``collect_rarely``; on exit the previous thresholds are
    restored and what ``set_aside`` froze is collectable again."""
    thresholds = collect_rarely()
    try:
        yield
    finally:
        gc.unfreeze()
        gc.set_threshold(*thresholds)


def replay(
    events: BinaryIO,
    source_name: str,
    alerts_out: IO[bytes],
    dead_letter_out: IO[bytes] | None,
    rules: Rules,
    partitions: int = 4,
    on_alert: Callable[[dict[str, Any]], None] | None = None,
    on_dead_letter: Callable[[int, DeadLetter], None] | None = None,
    progress: bool = False,
    total_bytes: int | None = None,
    initial_forest: ForestModel | None = None,
    stores: MemoryStores | None = None,
    on_claim: ClaimObserver | None = None,
    reviewer: SimulatedReviewer | None = None,
) -> ReplaySummary:
    """Run every line of ``events`` through intake and the engine; return what was seen
    (pass ``stores`` to inspect the state afterwards). A ``reviewer`` judges the alerts
    and its verdicts are applied when the event time reaches them."""
    metrics = Metrics(CollectorRegistry())
    intake = Intake(metrics)
    stores = stores if stores is not None else MemoryStores()
    stores.partition_of = partitioner(partitions)
    engine = Engine(rules, stores, initial_forest=initial_forest, on_claim=on_claim)
    severities: dict[str, int] = {}
    lines = unreported = 0
    bar = tqdm(
        total=total_bytes,
        unit="B",
        unit_scale=True,
        disable=not progress,
        desc="replay",
        file=sys.stderr,
    )
    with bar, rare_full_collections():
        for lines, raw in enumerate(read_lines(events), start=1):
            unreported += len(raw) + 1
            if lines % FREEZE_EVERY_LINES == 0:
                set_aside()
            if unreported > 1 << 20:  # the bar moves per megabyte: cheap on the hot path
                bar.update(unreported)
                unreported = 0
            result = intake.admit(raw)
            if isinstance(result, Rejection):
                dead = intake.dead_letter(raw, result, FileOrigin(source_name, lines))
                if dead_letter_out is not None:
                    dead_letter_out.write(dead.record + b"\n")
                if on_dead_letter is not None:
                    on_dead_letter(lines, dead)
                continue
            partition = stores.partition_of(result.outlet_id)
            if reviewer is not None:
                for verdict in reviewer.due_by(result.ts):
                    reviewer.applied += engine.apply_verdict(
                        verdict, stores.partition_of(verdict.outlet_id)
                    )
            for finding in engine.process(result, partition):
                clock = stores.partitions[partition].latest
                outlet = stores.outlet(finding.outlet_id)
                alert = build_alert(finding, rules, clock, recent_claims(outlet))
                alerts_out.write(orjson.dumps(alert) + b"\n")
                severities[alert["severity"]] = severities.get(alert["severity"], 0) + 1
                if on_alert is not None:
                    on_alert(alert)
                if reviewer is not None:
                    reviewer.review(alert)
        bar.update(unreported)
    alerts_out.flush()
    snapshot = metrics.snapshot()
    return ReplaySummary(
        lines, snapshot["events_in"], snapshot["dead_letters"], engine.redeliveries, severities
    )


def replay_files(
    events_path: str,
    alerts_path: Path,
    dead_letter_path: Path | None,
    rules: Rules,
    partitions: int = 4,
    on_alert: Callable[[dict[str, Any]], None] | None = None,
    on_dead_letter: Callable[[int, DeadLetter], None] | None = None,
    progress: bool = False,
    initial_forest: ForestModel | None = None,
    reviewer: SimulatedReviewer | None = None,
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
        return replay(
            events,
            events_path,
            alerts_out,
            dead_out,
            rules,
            partitions,
            on_alert,
            on_dead_letter,
            progress,
            total,
            initial_forest,
            reviewer=reviewer,
        )
