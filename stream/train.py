"""Offline training of the isolation forest (``settleguard train``): replay a history file
through the engine to build the baselines every feature vector is relative to, pool the
partitions' reservoirs of normal claims, and fit one forest on them. A worker or replay
started with the model (``--model``) scores with it from the first claim; each partition
replaces it with its own retrained forest as its data accrues."""

from __future__ import annotations

import io
from pathlib import Path

from config.rules import Rules
from models.detectors.forest import ForestModel, train_forest
from models.memory_stores import MemoryStores
from stream.replay import replay

TRAINING_GENERATION = 0


def train_offline(
    history: Path, rules: Rules, partitions: int, progress: bool = False
) -> tuple[ForestModel, int]:
    """The forest trained on ``history`` and the number of claims it was trained on."""
    collecting = rules.model_copy(
        update={"forest": rules.forest.model_copy(update={"enabled": False})}
    )
    stores = MemoryStores()
    with history.open("rb") as events:
        replay(
            events,
            str(history),
            io.BytesIO(),
            None,
            collecting,
            partitions,
            progress=progress,
            total_bytes=history.stat().st_size,
            stores=stores,
        )
    rows = [row for _, part in sorted(stores.partitions.items()) for row in part.forest_rows]
    if len(rows) < rules.forest.min_training_rows:
        raise ValueError(
            f"{history} holds {len(rows)} normal claims; at least "
            f"{rules.forest.min_training_rows} are needed (forest.min_training_rows)"
        )
    return train_forest(rows, rules.forest, TRAINING_GENERATION), len(rows)
