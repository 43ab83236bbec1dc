"""Cross-checks of a settlement against its order: the claims that are wrong as a matter of
fact rather than of degree.

- ``duplicate_settlement``: a second claim (another settlement id) for an order already
  claimed. Re-deliveries of the same event never get here (the engine drops them).
- ``unmatched_settlement``: the order is unknown, cancelled or not completed. Decided only
  once the partition's event time has passed the claim by ``crosscheck.grace_hours``,
  because the order's ``completed`` event may arrive after the settlement.
- ``parts_not_issued``: parts charged that the warehouse did not issue for the order.
- ``over_standard``: a line above the configured standard fee (only with a fee table).

These are near-certain, so they carry fixed surprises (score = 10 x surprise): a claim
cannot be half a duplicate. The values rank them by how sure the fact is.
"""

from __future__ import annotations

import math
from typing import ClassVar

from config.rules import FeeRule, Rules
from models.detectors.base import Context
from models.events import SettlementEvent
from models.findings import Finding, Reason

DUPLICATE_SURPRISE = 9.0  # the order already carries another claim
UNMATCHED_SURPRISE = 8.5  # no completed order behind the claim after the grace period
UNKNOWN_ORDER_EARLY_SURPRISE = 4.0  # unknown order while the stream is young: may predate it
PARTS_SURPRISE = 8.5  # a charged part missing from what was issued
OVER_STANDARD_SURPRISE = 8.0  # at the standard; rises with the overshoot
WARMUP_SECONDS = 3 * 86400.0
"""For this long after a partition's first event, an unknown order may simply predate the
stream: such claims are reported at info severity only."""


def _finding(kind: str, surprise: float, event: SettlementEvent, reasons: list[Reason]) -> Finding:
    return Finding.about_claim(kind, CrossCheckDetector.name, surprise, event, reasons)


class CrossCheckDetector:
    """Settlement against order: duplicates, unmatched claims, parts, standard fees."""

    name: ClassVar[str] = "crosscheck"

    def __init__(self, rules: Rules) -> None:
        self.rules = rules
        self.fees: dict[tuple[str, str, str], FeeRule] = {
            (fee.service_type, fee.product_category, fee.code): fee for fee in rules.fee_table
        }

    def score_one(self, ctx: Context) -> list[Finding]:
        """What can be decided when the settlement arrives (the rest waits for grace)."""
        event = ctx.event
        if not self.rules.crosscheck.enabled or not isinstance(event, SettlementEvent):
            return []
        findings = self.over_standard(ctx)
        earlier = [sid for sid in ctx.record.settlements if sid != event.settlement_id]
        if earlier:
            findings.append(
                _finding(
                    "duplicate_settlement",
                    DUPLICATE_SURPRISE,
                    event,
                    [
                        Reason(
                            detector=self.name,
                            feature="settlements_per_order",
                            value=len(earlier) + 1,
                            expected=1,
                            message=(
                                f"order {event.order_id} is already claimed by settlement "
                                f"{', '.join(sorted(earlier))}; this is claim {len(earlier) + 1}"
                            ),
                        )
                    ],
                )
            )
            findings[-1].settlement_ids = [*sorted(earlier), event.settlement_id]
        if ctx.record.completed_ts is not None:
            findings += self.parts_not_issued(ctx)
        return findings

    def needs_grace(self, ctx: Context) -> bool:
        """True when the order's completion is not known yet: judge after the grace period."""
        return self.rules.crosscheck.enabled and ctx.record.completed_ts is None

    def after_grace(self, ctx: Context, stream_start: float) -> list[Finding]:
        """The settlement's order once the grace period has passed in event time."""
        event, record = ctx.event, ctx.record
        assert isinstance(event, SettlementEvent)
        if record.completed_ts is not None:
            return self.parts_not_issued(ctx)
        if record.cancelled_ts is not None:
            what, detail = "was cancelled", "cancelled"
        elif record.created_ts is not None:
            what, detail = "was never completed", "not_completed"
        else:
            what, detail = "is unknown (no order event seen)", "unknown_order"
        surprise = UNMATCHED_SURPRISE
        if detail == "unknown_order" and event.ts - stream_start < WARMUP_SECONDS:
            surprise = UNKNOWN_ORDER_EARLY_SURPRISE
        grace = self.rules.crosscheck.grace_hours
        return [
            _finding(
                "unmatched_settlement",
                surprise,
                event,
                [
                    Reason(
                        detector=self.name,
                        feature="order_status",
                        value=detail,
                        expected="completed",
                        message=(
                            f"settlement {event.settlement_id} claims order {event.order_id}, "
                            f"which {what} {grace:g} h of event time after the claim"
                        ),
                    )
                ],
            )
        ]

    def parts_not_issued(self, ctx: Context) -> list[Finding]:
        event, claim = ctx.event, ctx.claim
        assert isinstance(event, SettlementEvent) and claim is not None
        issued = ctx.record.parts_issued or {}
        reasons = [
            Reason(
                detector=self.name,
                feature=f"part|{code}",
                value=quantity,
                expected=issued.get(code, 0),
                message=(
                    f"part {code} x{quantity} charged, but "
                    + (f"only x{issued[code]} was" if code in issued else "none was")
                    + f" issued for order {event.order_id}"
                ),
            )
            for code, quantity in sorted(claim.charged_parts.items())
            if quantity > issued.get(code, 0)
        ]
        if claim.uncoded_parts and not issued:
            reasons.append(
                Reason(
                    detector=self.name,
                    feature="parts",
                    value=round(claim.parts, 2),
                    expected=0,
                    message=f"parts charged without a part code and no parts were issued for "
                    f"order {event.order_id}",
                )
            )
        return [_finding("parts_not_issued", PARTS_SURPRISE, event, reasons)] if reasons else []

    def over_standard(self, ctx: Context) -> list[Finding]:
        event, claim = ctx.event, ctx.claim
        assert isinstance(event, SettlementEvent) and claim is not None
        if not self.fees:
            return []
        claimed = {
            "labor": claim.labor,
            "parts": claim.parts,
            "travel": claim.travel,
            "other": claim.other,
            "total": claim.amount,
        }
        reasons, worst = [], 0.0
        for code, amount in claimed.items():
            fee = self.fees.get((event.service_type, event.product_category, code))
            if fee is None or amount <= fee.max_amount + 0.005:
                continue
            ratio = amount / fee.max_amount
            worst = max(worst, ratio)
            reasons.append(
                Reason(
                    detector=self.name,
                    feature=f"standard|{code}",
                    value=round(amount, 2),
                    expected=fee.max_amount,
                    threshold=fee.max_amount,
                    message=(
                        f"{code} {amount:,.2f} CNY exceeds the standard fee "
                        f"{fee.max_amount:,.2f} CNY for {event.service_type} "
                        f"{event.product_category} by {100 * (ratio - 1):.0f}%"
                    ),
                )
            )
        if not reasons:
            return []
        surprise = OVER_STANDARD_SURPRISE + 10.0 * math.log10(worst)
        return [_finding("over_standard", surprise, event, reasons)]

    def learn_one(self, ctx: Context) -> None:
        """Nothing to learn: the order book is kept by the engine."""
