"""Isolation-forest detector: claims whose *combination* of features is unusual although
each feature alone is within its normal range (e.g. a maintenance job claimed like a
repair, or an installation with parts, travel, labour and an "other" line all at once).

The feature vector describes a claim relative to its outlet and peers (z-scores from the
baselines, line shares, counts, parts and "other" lines against how often the segment has
them), so one forest serves outlets of every size and price level. Each partition keeps a
bounded reservoir of normal claims' vectors and retrains its forest from it every
``forest.retrain_every`` settlements; scoring walks the trees in numpy
(models/iforest.ForestScorer). The forest's statistic is calibrated like every other:
a tail learned on normal claims turns it into a surprise.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from config.rules import ForestRules, Rules
from models.detectors.base import DAY, Context
from models.events import SettlementEvent
from models.features import ClaimFeatures
from models.findings import Finding, Reason
from models.iforest import ForestScorer
from models.state import PartitionState

FEATURES = (
    "z_service",
    "z_labor",
    "z_travel_km",
    "labor_share",
    "parts_share",
    "travel_share",
    "other_share",
    "items",
    "parts_quantity",
    "price_vs_peers",
    "parts_vs_segment",
    "other_vs_segment",
)
Z_CLIP = 8.0
MODEL_FORMAT = 1
CALIBRATION_ROWS = 1024
"""Training rows scored to place the forest's statistic (every n-th row, deterministic)."""


def _peer_mean(partition: PartitionState, key: str) -> float:
    stat = partition.peers.get(key)
    return stat.mean if stat is not None and stat.weight > 0 else 0.0


def feature_vector(claim: ClaimFeatures, partition: PartitionState) -> list[float]:
    """The claim as the forest sees it (after models/baselines.judge filled the z-scores)."""
    z = {q.family: q.z for q in claim.quantities if q.weight > 0 and q.family != "part"}
    amount = claim.amount if claim.amount > 0 else 1.0
    seg = claim.segment
    service = next((q.value for q in claim.quantities if q.family == "service"), 0.0)
    return [
        max(-Z_CLIP, min(Z_CLIP, z.get("service", 0.0))),
        max(-Z_CLIP, min(Z_CLIP, z.get("labor", 0.0))),
        max(-Z_CLIP, min(Z_CLIP, z.get("travel_km", 0.0))),
        claim.labor / amount,
        claim.parts / amount,
        claim.travel / amount,
        claim.other / amount,
        float(claim.n_items),
        float(claim.parts_quantity),
        service - _peer_mean(partition, f"*|{seg}|service"),
        (1.0 if claim.parts > 0 else 0.0) - _peer_mean(partition, f"*|{seg}|has_parts"),
        (1.0 if claim.other > 0 else 0.0) - _peer_mean(partition, f"*|{seg}|has_other"),
    ]


@dataclass(slots=True)
class ForestModel:
    """A trained forest with the calibration of its statistic."""

    scorer: ForestScorer
    center: float  # median anomaly score on the training rows
    spread: float  # scale: (90th percentile - median) on the training rows
    version: str

    def statistic(self, vector: list[float]) -> float:
        """How far above normal the claim's anomaly score is, in training-spread units."""
        return (self.scorer.anomaly_score_one(vector) - self.center) / self.spread

    def to_bytes(self) -> bytes:
        header = np.array([MODEL_FORMAT, self.center, self.spread], dtype=np.float64)
        buffer = io.BytesIO()
        np.save(buffer, header)
        return buffer.getvalue() + self.scorer.to_bytes()

    @classmethod
    def from_bytes(cls, raw: bytes) -> ForestModel:
        buffer = io.BytesIO(raw)
        header = np.load(buffer)
        if int(header[0]) != MODEL_FORMAT:
            raise ValueError(
                f"forest model format {int(header[0])} is not {MODEL_FORMAT}: retrain it with "
                "`settleguard train`"
            )
        scorer = ForestScorer.from_bytes(raw[buffer.tell() :])
        return cls(scorer, float(header[1]), float(header[2]), scorer.version)


def train_forest(rows: list[list[float]], rules: ForestRules, generation: int) -> ForestModel:
    """Fit a forest on ``rows`` (deterministic for the same rows and generation)."""
    from sklearn.ensemble import IsolationForest  # only training needs scikit-learn

    data = np.asarray(rows, dtype=np.float64)
    forest = IsolationForest(
        n_estimators=rules.trees,
        max_samples=min(rules.sample_size, len(rows)),
        random_state=(rules.seed + generation) % 2**31,
    ).fit(data)
    scorer = ForestScorer.from_sklearn(forest)
    scores = -scorer.score_many(data[:: max(1, len(data) // CALIBRATION_ROWS)])
    center = float(np.median(scores))
    spread = max(float(np.quantile(scores, 0.9)) - center, 1e-3)
    return ForestModel(scorer, center, spread, scorer.version)


def reservoir_slot(seed: int, seen: int, capacity: int) -> int | None:
    """Where the ``seen``-th row goes in a reservoir of ``capacity`` (Algorithm R with a
    deterministic hash instead of a random generator: replay and worker agree)."""
    if seen <= capacity:
        return seen - 1
    digest = hashlib.blake2b(f"{seed}:{seen}".encode(), digest_size=8).digest()
    slot = int.from_bytes(digest, "little") % seen
    return slot if slot < capacity else None


def offer(partition: PartitionState, vector: list[float], rules: ForestRules) -> None:
    """Offer one normal claim's vector to the partition's reservoir."""
    partition.forest_seen += 1
    slot = reservoir_slot(rules.seed, partition.forest_seen, rules.reservoir_size)
    if slot is None:
        return
    if slot == len(partition.forest_rows):
        partition.forest_rows.append(vector)
    else:
        partition.forest_rows[slot] = vector


class ForestDetector:
    """Multivariate outliers among an outlet's claims, by isolation forest."""

    name: ClassVar[str] = "forest"

    def __init__(self, rules: Rules) -> None:
        self.rules = rules

    def score_one(self, ctx: Context) -> list[Finding]:
        event, claim, model = ctx.event, ctx.claim, ctx.forest
        if model is None or claim is None or not self.rules.forest.enabled:
            return []
        assert isinstance(event, SettlementEvent)
        vector = feature_vector(claim, ctx.partition)
        statistic = model.statistic(vector)
        tail = ctx.partition.tails.get("forest")
        if tail is None or statistic <= tail.START:
            return []
        surprise = tail.surprise(statistic)
        if surprise * 10.0 < self.rules.severity.info:
            return []
        shown = ", ".join(
            f"{name} {value:+.2f}"
            for name, value in zip(FEATURES, vector, strict=True)
            if abs(value) >= 0.5
        )
        return [
            Finding(
                kind="multivariate_outlier",
                detector=self.name,
                surprise=surprise,
                outlet_id=event.outlet_id,
                key=event.settlement_id,
                event_time=event.event_time,
                ts=event.ts,
                settlement_id=event.settlement_id,
                order_id=event.order_id,
                settlement_ids=[event.settlement_id],
                model_version=model.version,
                reasons=[
                    Reason(
                        detector=self.name,
                        feature="isolation_score",
                        value=round(statistic, 2),
                        expected=0.0,
                        threshold=round(tail.z_for(self.rules.severity.low / 10.0), 2),
                        message=(
                            f"unusual combination for a {claim.segment.replace('|', ' ')} "
                            f"claim (isolation forest {model.version}, {statistic:.1f} spreads "
                            f"above normal): {shown}"
                        ),
                    )
                ],
            )
        ]

    def learn_one(self, ctx: Context) -> None:
        """Offer the claim to the reservoir; teach the tail how normal claims score."""
        claim = ctx.claim
        if claim is None:
            return
        partition = ctx.partition
        vector = feature_vector(claim, partition)
        partition.forest_seen += 1
        slot = reservoir_slot(
            self.rules.forest.seed, partition.forest_seen, self.rules.forest.reservoir_size
        )
        if slot is not None:
            if slot == len(partition.forest_rows):
                partition.forest_rows.append(vector)
            else:
                partition.forest_rows[slot] = vector
        if ctx.forest is not None:
            half_life = self.rules.baselines.half_life_days * DAY
            partition.tail("forest").learn(ctx.forest.statistic(vector), ctx.event.ts, half_life)
        seg = claim.segment
        half_life = self.rules.baselines.half_life_days * DAY
        partition.peer(f"*|{seg}|has_parts").update(
            1.0 if claim.parts > 0 else 0.0, ctx.event.ts, half_life
        )
        partition.peer(f"*|{seg}|has_other").update(
            1.0 if claim.other > 0 else 0.0, ctx.event.ts, half_life
        )
