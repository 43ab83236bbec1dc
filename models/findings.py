"""What detectors report: a finding (one per cause) with the reasons a reviewer can check.

Every detector expresses its evidence as *surprise*: -log10 of the probability of seeing
something at least this extreme on normal traffic, after allowing for the number of tests
made on the event. ``score = 10 x surprise`` (capped at 100) puts every kind on one scale:
score 50 means "one in 100,000", whichever detector says it. Rule-like checks (duplicate,
unmatched, parts not issued, over standard) are near-certain facts and carry a fixed high
surprise documented where they are raised.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from models.events import SettlementEvent

MAX_SCORE = 100.0
DETECTORS_VERSION = "detectors-1"
"""model_version of findings from the statistical and rule detectors; a forest's finding
carries the forest's own version. Bump when a detector's behaviour changes."""


def score_of(surprise: float) -> float:
    """The 0-100 alert score of a surprise (in decimal digits of improbability)."""
    return round(min(MAX_SCORE, max(0.0, 10.0 * surprise)), 1)


@dataclass(slots=True)
class Reason:
    """One checkable piece of evidence: what was seen, what was expected, by whom."""

    detector: str
    message: str
    feature: str | None = None
    value: Any = None
    expected: Any = None
    threshold: Any = None

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"detector": self.detector}
        for key in ("feature", "value", "expected", "threshold"):
            value = getattr(self, key)
            if value is not None:
                out[key] = value
        out["message"] = self.message
        return out


@dataclass(slots=True)
class Finding:
    """One cause for concern about one settlement (or one outlet, for a burst)."""

    kind: str
    detector: str
    surprise: float
    outlet_id: str
    key: str  # what the finding is about; with kind and outlet it makes the alert id
    event_time: str
    ts: float
    settlement_id: str | None = None
    order_id: str | None = None
    settlement_ids: list[str] = field(default_factory=list)
    reasons: list[Reason] = field(default_factory=list)
    model_version: str = DETECTORS_VERSION
    region: str | None = None  # the outlet's region, set by the engine (for mail routing)

    @property
    def score(self) -> float:
        return score_of(self.surprise)

    @classmethod
    def about_claim(
        cls,
        kind: str,
        detector: str,
        surprise: float,
        event: SettlementEvent,
        reasons: list[Reason],
        model_version: str = DETECTORS_VERSION,
    ) -> Finding:
        """A finding about one settlement (the usual case: everything but a burst)."""
        return cls(
            kind=kind,
            detector=detector,
            surprise=surprise,
            outlet_id=event.outlet_id,
            key=event.settlement_id,
            event_time=event.event_time,
            ts=event.ts,
            settlement_id=event.settlement_id,
            order_id=event.order_id,
            settlement_ids=[event.settlement_id],
            reasons=reasons,
            model_version=model_version,
        )
