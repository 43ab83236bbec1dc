"""Judging a claim's quantities against baselines, and learning from a normal claim.

Three levels, each shrunk towards the next: the outlet's own baseline, its region's peers
(same region, same baseline key) and all outlets of the partition. A new outlet or a rare
segment is therefore judged from its first claim, and its own evidence takes over as it
accrues (``baselines.peer_prior_weight`` observations' worth of trust in the peers).
"""

from __future__ import annotations

import math

from config.rules import BaselineRules
from models.features import ClaimFeatures
from models.state import OutletState, PartitionState
from models.stats import estimate, shrink

DAY = 86400.0
REGION_PRIOR_WEIGHT = 20.0
"""The all-outlets baseline counts as this many observations against a region's peers."""


def judge(
    claim: ClaimFeatures,
    outlet: OutletState,
    partition: PartitionState,
    rules: BaselineRules,
    ts: float,
) -> None:
    """Fill each quantity's baseline mean, spread, weight and z-score (positive = above)."""
    half_life = rules.half_life_days * DAY
    floor = rules.min_log_spread
    region = outlet.region or "*"
    peers = partition.peers
    for quantity in claim.quantities:
        key = quantity.key
        peer = shrink(
            estimate(peers.get(f"{region}|{key}"), ts, half_life),
            estimate(peers.get(f"*|{key}"), ts, half_life),
            REGION_PRIOR_WEIGHT,
        )
        mean, variance, weight = shrink(
            estimate(outlet.stats.get(key), ts, half_life), peer, rules.peer_prior_weight
        )
        if weight <= 0:
            continue  # nothing known anywhere yet: no judgement
        # Few observations: widen the spread (a t-like allowance for an uncertain mean).
        spread = math.sqrt(max(variance, floor * floor) * (1.0 + 1.0 / weight))
        quantity.mean, quantity.sd, quantity.weight = mean, spread, weight
        quantity.z = (quantity.value - mean) / spread


def learn(
    claim: ClaimFeatures,
    outlet: OutletState,
    partition: PartitionState,
    rules: BaselineRules,
    ts: float,
) -> None:
    """Fold a claim judged normal into the outlet's and the peers' baselines."""
    half_life = rules.half_life_days * DAY
    floor = rules.min_log_spread
    region = outlet.region or "*"
    for quantity in claim.quantities:
        key, value = quantity.key, quantity.value
        outlet.stat(key).update(value, ts, half_life, floor)
        partition.peer(f"{region}|{key}").update(value, ts, half_life, floor)
        partition.peer(f"*|{key}").update(value, ts, half_life, floor)
