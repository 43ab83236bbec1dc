"""Amount detector: a claim, and each of its lines, against the outlet's and peers' baselines.

Each quantity (service charge, labour, other, travel fee, travel km, each part's unit price)
gets a z-score against its blended baseline (models/baselines.py). Only claims *above* the
baseline matter. The z-score becomes a surprise through the tail model of its family
(models/stats.Tail), learned on this data, minus log10 of the number of tests made on the
claim (a Bonferroni allowance; quantities that move together count as one test).
Everything above the baseline that is surprising goes into one ``amount_spike`` finding:
one cause, several reasons.
"""

from __future__ import annotations

import math
from typing import ClassVar

from config.rules import Rules
from models.detectors.base import DAY, Context
from models.events import SettlementEvent
from models.features import Quantity
from models.findings import Finding, Reason
from models.stats import Tail

WHAT = {
    "service": "service charge (labour and travel)",
    "labor": "labour",
    "other": "other charges",
    "travel_fee": "travel fee",
    "travel_km": "travel distance",
    "part": "unit price of part",
}
TEST_FAMILY = {
    "service": "labour",
    "labor": "labour",
    "travel_km": "travel",
    "travel_fee": "travel",
    "other": "other",
    "part": "parts",
}
"""Quantities that move together count as one test in the multiple-test allowance (the
travel fee follows the distance; the service charge is mostly labour)."""
TAIL = {family: f"amount.{family}" for family in WHAT}
"""The partition's tail (models/stats.Tail) of each family's z-scores."""
REPORTABLE_SURPRISE = 2.5
"""Quantities less surprising than this are not listed among the reasons."""
PRIOR_TAIL = Tail()
"""Judges a family before its tail has learned anything (never updated)."""


class AmountDetector:
    """Claims and line items above what this outlet (and its peers) usually claims."""

    name: ClassVar[str] = "amount"

    def __init__(self, rules: Rules) -> None:
        self.rules = rules

    def score_one(self, ctx: Context) -> list[Finding]:
        event, claim = ctx.event, ctx.claim
        assert isinstance(event, SettlementEvent) and claim is not None, "settlements only"
        tested = {TEST_FAMILY[q.family] for q in claim.quantities if q.weight > 0}
        if not tested:
            return []
        allowance = math.log10(len(tested))
        low = self.rules.severity.low / 10.0
        judged = []
        for quantity in claim.quantities:
            if quantity.weight <= 0 or quantity.z <= Tail.START:
                continue
            tail = ctx.partition.tails.get(TAIL[quantity.family]) or PRIOR_TAIL
            surprise = tail.surprise(quantity.z) - allowance
            if surprise >= REPORTABLE_SURPRISE:
                threshold = quantity.mean + tail.z_for(low + allowance) * quantity.sd
                judged.append((surprise, self._reason(quantity, threshold)))
        if not judged:
            return []
        judged.sort(key=lambda pair: -pair[0])
        return [
            Finding.about_claim(
                "amount_spike",
                self.name,
                judged[0][0],
                event,
                [reason for _, reason in judged],
            )
        ]

    def _reason(self, quantity: Quantity, log_threshold: float) -> Reason:
        expected = round(math.expm1(quantity.mean), 2)
        threshold = round(math.expm1(log_threshold), 2)
        label = WHAT[quantity.family]
        if quantity.family == "part":
            label += " " + quantity.key.removeprefix("part|")
        unit = "km" if quantity.family == "travel_km" else "CNY"
        ratio = quantity.shown / max(expected, 0.01)
        return Reason(
            detector=self.name,
            feature=quantity.key,
            value=quantity.shown,
            expected=expected,
            threshold=threshold,
            message=(
                f"{label} {quantity.shown:,.2f} {unit} is {ratio:.1f}x the usual "
                f"{expected:,.2f} {unit} (alerts from {threshold:,.2f}; baseline of "
                f"{quantity.weight:.0f} claims of this outlet and its peers)"
            ),
        )

    def learn_one(self, ctx: Context) -> None:
        """Teach each family's tail how far normal claims stray (z before learning)."""
        claim = ctx.claim
        assert claim is not None
        half_life = self.rules.baselines.half_life_days * DAY
        for quantity in claim.quantities:
            if quantity.weight > 0:
                ctx.partition.tail(TAIL[quantity.family]).learn(quantity.z, ctx.event.ts, half_life)
