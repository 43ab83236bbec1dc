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
import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import ClassVar

import numpy as np

from config.rules import ForestRules, Rules
from models.detectors.base import DAY, Context
from models.events import SettlementEvent
from models.features import ClaimFeatures, part_key
from models.findings import Finding, Reason
from models.iforest import ForestScorer
from models.state import PartitionState

FEATURES = (
    "z_service",
    "z_labor",
    "z_travel_km",
    "items",
    "price_vs_peers",
    "parts_vs_segment",
    "other_vs_segment",
)
Z_CLIP = 8.0
MODEL_FORMAT = 1
CALIBRATION_ROWS = 1024
RARITY_CAP = 8.0
"""Most one z-score can add to the joint rarity (decimal digits of improbability)."""
VIEWS_ALLOWANCE = math.log10(2.0)
PART_MIX_HALF_LIFE = 30 * DAY
"""Memory of which parts a segment's claims use (its counts decay with this half-life)."""
"""Two views (forest, rarity) judge each claim: a multiple-test allowance."""
"""Training rows scored to place the forest's statistic (every n-th row, deterministic)."""


@lru_cache(maxsize=1 << 14)
def segment_key(segment: str, name: str) -> str:
    """``*|<segment>|<name>``, a statistic all outlets share about a segment. Cached for
    the reason given in models/features.segment_keys."""
    return f"*|{segment}|{name}"


def _peer_mean(partition: PartitionState, key: str) -> float:
    stat = partition.peers.get(key)
    return stat.mean if stat is not None and stat.weight > 0 else 0.0


def _segment_rate(partition: PartitionState, key: str) -> float:
    """How often the segment's normal claims have a line (0/1 statistic ``key``), with
    half a claim for and half against it (Krichevsky-Trofimov): a segment nobody has
    claimed yet has rate 1/2, not 0. Taking the unknown for the rare made every claim
    with parts or an "other" line in the stream's first hours score as a multivariate
    outlier (6 of the 8 such false alarms above ``low`` on seeds 7-9)."""
    stat = partition.peers.get(key)
    if stat is None or stat.weight <= 0:
        return 0.5
    return (stat.mean * stat.weight + 0.5) / (stat.weight + 1.0)


def feature_vector(claim: ClaimFeatures, partition: PartitionState) -> list[float]:
    """The claim as the forest sees it (after models/baselines.judge filled the z-scores)."""
    z = {q.family: q.z for q in claim.quantities if q.weight > 0 and q.family != "part"}
    seg = claim.segment
    service = next((q.value for q in claim.quantities if q.family == "service"), 0.0)
    return [
        max(-Z_CLIP, min(Z_CLIP, z.get("service", 0.0))),
        max(-Z_CLIP, min(Z_CLIP, z.get("labor", 0.0))),
        max(-Z_CLIP, min(Z_CLIP, z.get("travel_km", 0.0))),
        float(claim.n_items),
        service - _peer_mean(partition, segment_key(seg, "service")),
        (1.0 if claim.parts > 0 else 0.0) - _peer_mean(partition, segment_key(seg, "has_parts")),
        (1.0 if claim.other > 0 else 0.0) - _peer_mean(partition, segment_key(seg, "has_other")),
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

    def __reduce__(self) -> tuple[Callable[[bytes], ForestModel], tuple[bytes]]:
        """Pickled as its bytes: the worker's training process sends models back, and a
        compiled build's classes cannot be pickled field by field."""
        return ForestModel.from_bytes, (self.to_bytes(),)

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
    import sklearn  # only training needs scikit-learn
    from sklearn.ensemble import IsolationForest

    data = np.asarray(rows, dtype=np.float64)
    forest = IsolationForest(
        n_estimators=rules.trees,
        max_samples=min(rules.sample_size, len(rows)),
        random_state=(rules.seed + generation) % 2**31,
    )
    # The rows are ours and finite: skip sklearn's checks of every one of the trees it
    # builds (a fifth of a training's time; the fitted trees are the same).
    with sklearn.config_context(assume_finite=True, skip_parameter_validation=True):
        forest.fit(data)
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


def rarity(vector: list[float], claim: ClaimFeatures, partition: PartitionState) -> float:
    """Joint rarity of the claim's shape: the sum, over its features, of how improbable each
    is on its own (two-sided normal tail of each z-score, capped; presence of parts and of
    "other" lines against how often the segment has them). A sum over features that are
    not independent overstates, which is why it is calibrated by a learned tail like every
    other statistic. It catches what an isolation forest cannot: a claim beyond the range
    of the training data in some direction (the forest isolates it no sooner than the
    most extreme normal claim)."""
    total = 0.0
    for z in vector[:3]:
        total += min(RARITY_CAP, max(0.0, -math.log10(math.erfc(abs(z) / math.sqrt(2.0)))))
    seg = claim.segment
    for name, present in (("has_parts", claim.parts > 0), ("has_other", claim.other > 0)):
        rate = min(max(_segment_rate(partition, segment_key(seg, name)), 0.001), 0.999)
        total += -math.log10(rate if present else 1.0 - rate)
    claims = partition.peers.get(segment_key(seg, "claims"))
    if claims is not None and claim.charged_parts:
        seen = claims.decayed_weight(claims.ts, PART_MIX_HALF_LIFE)
        for code in claim.charged_parts:
            used = partition.peers.get(segment_key(seg, part_key(code)))
            with_code = used.decayed_weight(claims.ts, PART_MIX_HALF_LIFE) if used else 0.0
            # how often claims of this segment charge this part (a repair part on a
            # maintenance job is rare even when each amount is ordinary)
            total += min(RARITY_CAP, -math.log10((with_code + 0.5) / (seen + 1.0)))
    return total


class ForestDetector:
    """Multivariate outliers among an outlet's claims: isolation forest and joint rarity."""

    name: ClassVar[str] = "forest"

    def __init__(self, rules: Rules) -> None:
        self.rules = rules
        self._last: tuple[object, list[float], list[tuple[str, float]]] | None = None

    def statistics(self, ctx: Context) -> tuple[list[float], list[tuple[str, float]]]:
        """The claim's feature vector and (tail family, statistic) of each multivariate view.
        Remembered for the last event: ``learn_one`` follows ``score_one`` on the same
        claim and state, and scoring the forest twice would double its cost."""
        if self._last is not None and self._last[0] is ctx.event:
            return self._last[1], self._last[2]
        claim, model = ctx.claim, ctx.forest
        assert claim is not None
        vector = feature_vector(claim, ctx.partition)
        views = [("forest.rarity", rarity(vector, claim, ctx.partition))]
        if model is not None:
            views.append(("forest", model.statistic(vector)))
        self._last = (ctx.event, vector, views)
        return vector, views

    def score_one(self, ctx: Context) -> list[Finding]:
        event, claim = ctx.event, ctx.claim
        if claim is None or not self.rules.forest.enabled:
            return []
        assert isinstance(event, SettlementEvent)
        judged = []
        vector, views = self.statistics(ctx)
        for family, statistic in views:
            tail = ctx.partition.tails.get(family)
            if tail is not None and statistic > tail.START:
                judged.append((tail.surprise(statistic) - VIEWS_ALLOWANCE, family, statistic))
        if not judged:
            return []
        surprise, family, statistic = max(judged)
        if surprise * 10.0 < self.rules.severity.info:
            return []
        shown = ", ".join(
            f"{name} {value:+.2f}"
            for name, value in zip(FEATURES, vector, strict=True)
            if abs(value) >= 0.5
        )
        how = (
            f"isolation forest {ctx.forest.version}"
            if family == "forest" and ctx.forest is not None
            else "joint rarity of its features"
        )
        return [
            Finding.about_claim(
                "multivariate_outlier",
                self.name,
                surprise,
                event,
                model_version=ctx.forest.version if ctx.forest is not None else "none",
                reasons=[
                    Reason(
                        detector=self.name,
                        feature="isolation_score" if family == "forest" else "joint_rarity",
                        value=round(statistic, 2),
                        expected=0.0,
                        threshold=round(
                            ctx.partition.tails[family].z_for(
                                self.rules.severity.low / 10.0 + VIEWS_ALLOWANCE
                            ),
                            2,
                        ),
                        message=(
                            f"unusual combination for this {claim.segment.replace('|', ' ')} "
                            f"claim ({how}: {statistic:.1f} against 0 for a typical claim): "
                            f"{shown}"
                        ),
                    )
                ],
            )
        ]

    def learn_one(self, ctx: Context) -> None:
        """Offer the claim to the reservoir; teach the tails how normal claims score."""
        claim = ctx.claim
        if claim is None:
            return
        partition = ctx.partition
        half_life = self.rules.baselines.half_life_days * DAY
        vector, views = self.statistics(ctx)
        for family, statistic in views:
            partition.tail(family).learn(statistic, ctx.event.ts, half_life)
        if partition.forest_pending_at is None:
            offer(partition, vector, self.rules.forest)
        else:  # a retraining reads the reservoir: hold new rows until it is installed
            partition.forest_queue.append(vector)
        # floor 1.0: a 0/1 rate must not be winsorised towards its mean
        for name, present in (("has_parts", claim.parts > 0), ("has_other", claim.other > 0)):
            stat = partition.peer(segment_key(claim.segment, name))
            stat.update(float(present), ctx.event.ts, half_life, 1.0)
        # decayed counts (weights) of the segment's claims and of each part charged on them
        ts = ctx.event.ts
        partition.peer(segment_key(claim.segment, "claims")).update(
            0.0, ts, PART_MIX_HALF_LIFE, 1.0
        )
        for code in claim.charged_parts:
            partition.peer(segment_key(claim.segment, part_key(code))).update(
                0.0, ts, PART_MIX_HALF_LIFE, 1.0
            )
