"""Scores mean the same rarity whatever the kind: the multivariate view's calibration."""

from __future__ import annotations

from events_factory import EventFactory, typed

from models.detectors.forest import feature_vector, rarity, segment_key
from models.events import SettlementEvent
from models.features import claim_features
from models.state import PartitionState


def claim_with_parts_and_other() -> SettlementEvent:
    obj = EventFactory().settlement_dict("S1", "O1", 1.0, parts={"P-1": (80.0, 1)})
    obj["items"].append({"code": "other", "amount": 20.0})
    obj["amount"] = round(obj["amount"] + 20.0, 2)
    event = typed(obj)
    assert isinstance(event, SettlementEvent)
    return event


def test_a_segment_nobody_has_claimed_yet_is_not_a_rare_shape() -> None:
    """Parts and an "other" line on the first claim of a segment are not rare: nothing is
    known of how often the segment has them (before: 3 digits of rarity each, and the
    stream's first claims alerted as multivariate outliers)."""
    part = PartitionState(0)
    claim = claim_features(claim_with_parts_and_other())
    assert rarity(feature_vector(claim, part), claim, part) < 1.0


def test_a_line_the_segment_never_has_is_still_rare() -> None:
    """Once the segment's claims are known never to have parts or "other" lines, a claim
    with both is as rare as before (rates floored at 1/1000: 3 digits each)."""
    part = PartitionState(0)
    claim = claim_features(claim_with_parts_and_other())
    for name in ("has_parts", "has_other"):
        stat = part.peer(segment_key(claim.segment, name))
        for n in range(5000):
            stat.update(0.0, float(n), 1e9, 1.0)
    assert rarity(feature_vector(claim, part), claim, part) > 5.9
