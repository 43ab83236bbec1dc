"""Judging a claim's quantities against baselines, and learning from a normal claim.

Three levels, each shrunk towards the next: the outlet's own baseline, its region's peers
(same region, same baseline key) and all outlets of the partition. A new outlet or a rare
segment is therefore judged from its first claim, and its own evidence takes over as it
accrues (``baselines.peer_prior_weight`` observations' worth of trust in the peers).
"""

from __future__ import annotations

import math
from functools import lru_cache

from config.rules import BaselineRules
from models.features import ClaimFeatures
from models.state import OutletState, PartitionState
from models.stats import estimate, shrink

DAY = 86400.0
REGION_PRIOR_WEIGHT = 20.0
"""The all-outlets baseline counts as this many observations against a region's peers."""
PRIOR_SPREAD = 0.5
"""Spread (log scale, about x1.65) assumed for a quantity nobody has seen much of yet."""
PRIOR_SPREAD_WEIGHT = 3.0
MIN_WITHIN_WEIGHT = 3.0
"""An outlet's own level is trusted to measure scatter around it after this many claims."""


@lru_cache(maxsize=1 << 16)
def peer_keys(region: str, key: str) -> tuple[str, str, str]:
    """The peer baselines of baseline ``key`` for an outlet of ``region``: its region's,
    all outlets', and all outlets' scatter around their own level. Cached, so that every
    claim looks its baselines up with the very strings they are stored under (no string
    is built, hashed or compared character by character on the hot path)."""
    return f"{region}|{key}", f"*|{key}", f"*|{key}|within"


def judge(
    claim: ClaimFeatures,
    outlet: OutletState,
    partition: PartitionState,
    rules: BaselineRules,
    ts: float,
) -> None:
    """Fill each quantity's baseline mean, spread, weight and z-score (positive = above).

    A normal-normal model: the outlet's true level is drawn from its peers' levels (mean
    from region and all-outlet peers, spread = the peers' between-outlet variance) and
    its claims scatter around that level with a within-outlet variance (its own, shrunk
    towards what is typical within peer outlets). The prediction for the next claim is
    the posterior level plus that scatter: a newcomer gets the peers' full spread, a
    well-known outlet its own tight one.
    """
    half_life = rules.half_life_days * DAY
    floor2 = rules.min_log_spread**2
    region = outlet.region or "*"
    peers = partition.peers
    for quantity in claim.quantities:
        region_key, all_key, within_key = peer_keys(region, quantity.key)
        peer_mean, peer_var, peer_weight = shrink(
            estimate(peers.get(region_key), ts, half_life),
            estimate(peers.get(all_key), ts, half_life),
            REGION_PRIOR_WEIGHT,
        )
        # Before peers have much evidence, their spread is unknown rather than zero: a
        # weak prior (PRIOR_SPREAD, worth PRIOR_SPREAD_WEIGHT claims) keeps early
        # judgements modest.
        peer_var = (peer_weight * peer_var + PRIOR_SPREAD_WEIGHT * PRIOR_SPREAD**2) / (
            peer_weight + PRIOR_SPREAD_WEIGHT
        )
        within = peers.get(within_key)
        within_var = (
            max(within.variance + within.mean * within.mean, floor2)
            if within is not None and within.weight >= MIN_WITHIN_WEIGHT
            else max(peer_var, floor2)
        )
        own_mean, own_var, own_weight = estimate(outlet.stats.get(quantity.key), ts, half_life)
        if own_weight <= 0 and peer_weight <= 0:
            continue  # nothing known anywhere yet: no judgement
        scatter = max(
            (own_weight * own_var + rules.peer_prior_weight * within_var)
            / (own_weight + rules.peer_prior_weight),
            floor2,
        )
        between = max(peer_var - within_var, floor2) if peer_weight > 0 else 1e6
        precision = own_weight / scatter + 1.0 / between
        level = (own_weight * own_mean / scatter + peer_mean / between) / precision
        spread = math.sqrt(scatter + 1.0 / precision)
        quantity.mean, quantity.sd = level, spread
        quantity.scatter = math.sqrt(max(within_var, floor2))
        quantity.weight = own_weight + min(peer_weight, rules.peer_prior_weight)
        quantity.z = (quantity.value - level) / spread


def learn(
    claim: ClaimFeatures,
    outlet: OutletState,
    partition: PartitionState,
    rules: BaselineRules,
    ts: float,
) -> None:
    """Fold a claim judged normal into the outlet's and the peers' baselines, and teach the
    peers how far an established outlet's claims scatter around its own level."""
    half_life = rules.half_life_days * DAY
    floor = rules.min_log_spread
    region = outlet.region or "*"
    for quantity in claim.quantities:
        key, value = quantity.key, quantity.value
        region_key, all_key, within_key = peer_keys(region, key)
        own = outlet.stat(key)
        if own.weight >= MIN_WITHIN_WEIGHT:
            partition.peer(within_key).update(value - own.mean, ts, half_life, floor)
        own.update(value, ts, half_life, floor)
        partition.peer(all_key).update(value, ts, half_life, floor)
        if region_key != all_key:  # an outlet without a region has all outlets for peers
            partition.peer(region_key).update(value, ts, half_life, floor)
