"""Reviewers' verdicts as evidence: what a dismissal teaches, what a confirmation undoes.

A dismissed finding says "this is normal for this outlet". Each amount quantity it stood
on (also those listed by a multivariate finding) gets an *accepted level* on the outlet:
the highest value reviewers saw and cleared. While the acceptance lasts, the quantity is
judged against that level instead of the baseline, in proportion to the acceptance's
strength ``s``:

    z = (1 - s) x z_baseline + s x (value - accepted level) / scatter

where ``scatter`` is how far an outlet's claims usually stray around its own level (the
peers' within-outlet spread). A repeat of the cleared pattern scores about nothing; a
claim well beyond it is judged as tightly as ever, even while the baseline, learning the
new level, is wide. ``s`` is 1 after a dismissal and halves every
``feedback.half_life_days`` of event time: the effect is bounded and fades while the
baseline (which now learns the cleared claims) takes over.

An engineer's burst of quick jobs, dismissed, makes bursts of that engineer up to the
same surprise usual: ``surprise = (1 - s) x surprise + s x max(0, surprise - accepted)``.

The isolation score is not accepted: it sums up every kind of oddity in one number, so
accepting a level of it hid unrelated anomalies of the outlet (measured with
``settleguard replay --review``: recall on those outlets fell).

Peers: once ``feedback.peer_outlets`` outlets of a region have dismissed the same
quantity, the region's other outlets accept the smallest excess over their expected
level that those outlets were cleared for, at ``peer_credit`` strength; for peers the
acceptance only ever lowers a score.

A confirmed finding withdraws the outlet's acceptance of its quantities (and its vote for
its peers): a reviewer has just said that level is wrong for this outlet.
"""

from __future__ import annotations

import math
from typing import Any

from config.rules import FeedbackRules
from models.detectors.base import DAY
from models.features import ClaimFeatures
from models.state import OutletState, PartitionState

APPLIED_VERDICTS_KEPT = 256
"""Alert ids of applied verdicts remembered per outlet: a verdict re-delivered (the relay
is at least once) is recognised and applied once."""
PEER_OUTLETS_KEPT = 16
"""Outlets remembered per region and quantity for peer acceptance."""
FADED = 0.05
"""An acceptance weaker than this no longer counts (nor raises a later level)."""


def burst_key(engineer_id: str) -> str:
    """Acceptance key of an engineer's bursts of quick jobs."""
    return f"burst|{engineer_id}"


def strength(entry: list[float], ts: float, rules: FeedbackRules) -> float:
    """An acceptance ``[level, credit, ts]``'s strength at event time ``ts`` (1 -> 0)."""
    age = max(0.0, ts - entry[2])
    return min(1.0, entry[1] * 0.5 ** (age / (rules.half_life_days * DAY)))


def dismissal_levels(
    kind: str, reasons: tuple[dict[str, Any], ...], score: float
) -> dict[str, tuple[float, float]]:
    """What a finding stood on: per key, (level, excess over expected) — log values for
    amount quantities, the surprise (twice) for an engineer's burst."""
    levels: dict[str, tuple[float, float]] = {}
    for reason in reasons:
        feature, value = reason.get("feature"), reason.get("value")
        if not isinstance(feature, str):
            continue
        if reason.get("detector") == "amount" and isinstance(value, int | float):
            expected = reason.get("expected")
            level = math.log1p(max(0.0, float(value)))
            base = (
                math.log1p(max(0.0, float(expected)))
                if isinstance(expected, int | float)
                else level
            )
            levels[feature] = (level, level - base)
        elif kind == "frequency_spike" and feature == "burst" and isinstance(value, str):
            parts = value.split("|")
            if len(parts) >= 3 and parts[1]:
                levels[burst_key(parts[1])] = (score / 10.0, score / 10.0)
    return levels


def _peer_key(outlet: OutletState, key: str) -> str:
    """Where the outlet's region keeps its outlets' acceptances of ``key``."""
    return f"{outlet.region or '*'}|{key}"


def dismiss(
    outlet: OutletState,
    partition: PartitionState,
    levels: dict[str, tuple[float, float]],
    ts: float,
    rules: FeedbackRules,
) -> None:
    """Accept ``levels`` on ``outlet`` (the highest dismissed while the acceptance lasts)
    and count the outlet towards its peers' acceptance of each quantity."""
    for key, (level, excess) in levels.items():
        entry = outlet.accepted.get(key)
        if entry is not None and strength(entry, ts, rules) > FADED:
            level = max(level, entry[0])
        outlet.accepted[key] = [level, 1.0, ts]
        if key.startswith("burst|"):
            continue  # an engineer's habits say nothing about other outlets
        peers = partition.accepted_peers.setdefault(_peer_key(outlet, key), {})
        peers[outlet.outlet_id] = [excess, 1.0, ts]
        if len(peers) > PEER_OUTLETS_KEPT:
            del peers[min(peers, key=lambda outlet_id: peers[outlet_id][2])]


def confirm(
    outlet: OutletState, partition: PartitionState, levels: dict[str, tuple[float, float]]
) -> None:
    """Withdraw the outlet's acceptance of ``levels``' keys (and its vote for its peers)."""
    for key in levels:
        outlet.accepted.pop(key, None)
        peers = partition.accepted_peers.get(_peer_key(outlet, key))
        if peers is not None:
            peers.pop(outlet.outlet_id, None)


def remember_applied(outlet: OutletState, alert_id: str) -> bool:
    """Note that the verdict on ``alert_id`` is applied; False if it already was."""
    if alert_id in outlet.verdicts:
        return False
    outlet.verdicts.append(alert_id)
    del outlet.verdicts[:-APPLIED_VERDICTS_KEPT]
    return True


def _peer_excess(
    outlet: OutletState, partition: PartitionState, key: str, ts: float, rules: FeedbackRules
) -> tuple[float, float] | None:
    """(excess accepted, strength) by the outlet's peers for ``key``, if enough agree."""
    peers = partition.accepted_peers.get(_peer_key(outlet, key))
    if peers is None or len(peers) < rules.peer_outlets:
        return None
    fresh = [(entry[0], strength(entry, ts, rules)) for entry in peers.values()]
    fresh = [(excess, s) for excess, s in fresh if s > FADED]
    if len(fresh) < rules.peer_outlets:
        return None
    return min(excess for excess, _ in fresh), rules.peer_credit * min(s for _, s in fresh)


def judge_claim(
    claim: ClaimFeatures,
    outlet: OutletState,
    partition: PartitionState,
    ts: float,
    rules: FeedbackRules,
) -> None:
    """Re-judge the claim's quantities by what reviewers accepted (after
    ``baselines.judge``; nearly free when nothing was ever dismissed)."""
    if not outlet.accepted and not partition.accepted_peers:
        return
    for quantity in claim.quantities:
        own = outlet.accepted.get(quantity.key)
        if own is not None:
            s = strength(own, ts, rules)
            if s > FADED and quantity.scatter > 0:
                beyond = (quantity.value - own[0]) / quantity.scatter
                quantity.z = (1.0 - s) * quantity.z + s * beyond
            continue
        peer = _peer_excess(outlet, partition, quantity.key, ts, rules)
        if peer is not None and quantity.sd > 0 and quantity.z > 0:
            excess, s = peer
            beyond = (quantity.value - quantity.mean - excess) / quantity.sd
            quantity.z = (1.0 - s) * quantity.z + s * max(0.0, min(quantity.z, beyond))


def judge_burst(
    outlet: OutletState, engineer_id: str, surprise: float, ts: float, rules: FeedbackRules
) -> float:
    """A burst's ``surprise`` discounted by what reviewers accepted for the engineer."""
    entry = outlet.accepted.get(burst_key(engineer_id)) if outlet.accepted else None
    if entry is None:
        return surprise
    s = strength(entry, ts, rules)
    return (1.0 - s) * surprise + s * max(0.0, surprise - entry[0])
