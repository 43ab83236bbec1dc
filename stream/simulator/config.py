"""What a simulation run is asked to produce: size, period, seed and the rates of the odd
things (anomalies, duplicates, late deliveries, malformed lines).

One frozen object so that "same config -> same bytes" has a single thing to compare.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date


@dataclass(frozen=True, slots=True)
class SimulationConfig:
    """Parameters of one simulated stream; defaults give the reference 200 x 60 day run."""

    outlets: int = 200
    days: int = 60
    seed: int = 7
    start: date = date(2026, 6, 1)
    malformed: float = 0.0
    """Malformed lines to mix in, as a fraction of event lines (0 = none)."""
    anomaly_rate: float = 0.012
    """Target share of settlements that are injected anomalies."""
    warmup_days: int = 5
    """No anomaly is injected before this day, so detectors can learn first."""
    duplicate_rate: float = 0.015
    """Share of events delivered a second time (same id, same bytes)."""
    late_completed_rate: float = 0.05
    """Share of settlements whose order's `completed` event arrives after them."""
    cancel_rate: float = 0.04
    price_steps: int = 0
    """Outlets whose labour tariff steps up legitimately (stream/simulator/price_steps.py)."""
    volume_median: float = 3.2
    """Median outlet volume in jobs/day (lognormal across outlets, heavy right tail)."""

    def validate(self) -> None:
        """Raise ValueError naming the first parameter out of range."""
        checks: list[tuple[str, object, bool, str]] = [
            ("outlets", self.outlets, self.outlets >= 1, ">= 1"),
            ("days", self.days, self.days >= 1, ">= 1"),
            ("malformed", self.malformed, 0.0 <= self.malformed <= 0.5, "in [0, 0.5]"),
            ("anomaly_rate", self.anomaly_rate, 0.0 <= self.anomaly_rate <= 0.2, "in [0, 0.2]"),
            ("warmup_days", self.warmup_days, self.warmup_days >= 0, ">= 0"),
            ("price_steps", self.price_steps, self.price_steps >= 0, ">= 0"),
            (
                "duplicate_rate",
                self.duplicate_rate,
                0.0 <= self.duplicate_rate <= 0.5,
                "in [0, 0.5]",
            ),
            (
                "late_completed_rate",
                self.late_completed_rate,
                0.0 <= self.late_completed_rate <= 0.5,
                "in [0, 0.5]",
            ),
            ("cancel_rate", self.cancel_rate, 0.0 <= self.cancel_rate <= 0.5, "in [0, 0.5]"),
            ("volume_median", self.volume_median, self.volume_median > 0, "> 0"),
        ]
        for name, value, ok, expected in checks:
            if not ok:
                raise ValueError(f"{name} must be {expected}, got {value!r}")
