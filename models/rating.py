"""Per-outlet rating figures for the star rating (网点星级评定, CONTRACT section 4).

The outlet keeps one bucket of counters per day of event time (only the rating window's
days), so the figures are exact over the window and cost a few hundred bytes per outlet.
Counted: settlements; alerts (``low`` and up: what reviewers are asked to look at) by
kind, on the day of their finding's event; confirmed and dismissed verdicts, on the day of
the finding they judge; completed orders with their response time (created to completed)
and customer ratings.

Figures over the window (``as_of`` = the outlet partition's latest event time):
- ``compliance_rate`` = 1 - confirmed / settlements: the share of claims no reviewer found
  wrong;
- ``anomaly_rate`` = (alerts - dismissed) / settlements: the share of claims flagged and
  not cleared (confirmed or still open);
- ``stars`` = 1 + 4 x the weighted mean of the component scores present, each in [0, 1]:
  compliance (``compliance_floor`` -> 0, 1.0 -> 1), anomalies (``anomaly_ceiling`` -> 0,
  none -> 1), response (mean hours: ``response_bad_hours`` -> 0, ``response_good_hours``
  -> 1) and satisfaction ((mean customer rating - 1) / 4). A component without data (no
  settlements, no completed orders with a creation time, no ratings) is left out and the
  weights of the others are renormalised; an outlet with no data at all has no stars.
"""

from __future__ import annotations

from typing import Any

from config.rules import RatingRules
from models.detectors.base import DAY
from models.state import OutletState

SETTLEMENTS, COMPLETED, RESPONSE_HOURS, RATINGS, RATING_SUM = "s", "c", "h", "r", "rs"
CONFIRMED, DISMISSED, ALERTS = "ok", "no", "a:"


def count(outlet: OutletState, ts: float, counter: str, amount: float = 1.0) -> bool:
    """Add ``amount`` to ``counter`` in the bucket of ``ts``'s day; True when that opened
    the day's bucket (the caller then prunes: see Engine._count)."""
    day = str(int(ts // DAY))
    bucket = outlet.rating.get(day)
    opened = bucket is None
    if bucket is None:
        bucket = outlet.rating[day] = {}
    bucket[counter] = bucket.get(counter, 0.0) + amount
    return opened


def prune(outlet: OutletState, as_of: float, rules: RatingRules) -> None:
    """Drop the buckets of days before the window."""
    first = int((as_of - rules.window_days * DAY) // DAY)
    for day in [day for day in outlet.rating if int(day) < first]:
        del outlet.rating[day]


def _clip(value: float) -> float:
    return min(1.0, max(0.0, value))


def figures(outlet: OutletState, as_of: float, rules: RatingRules) -> dict[str, Any]:
    """The outlet's rating figures over the window ending at ``as_of`` (module docstring)."""
    first = int((as_of - rules.window_days * DAY) // DAY) + 1
    totals: dict[str, float] = {}
    for day, bucket in outlet.rating.items():
        if int(day) >= first:
            for counter, value in bucket.items():
                totals[counter] = totals.get(counter, 0.0) + value
    settlements = int(totals.get(SETTLEMENTS, 0))
    by_kind = {
        counter.removeprefix(ALERTS): int(value)
        for counter, value in sorted(totals.items())
        if counter.startswith(ALERTS)
    }
    alerts = sum(by_kind.values())
    confirmed, dismissed = int(totals.get(CONFIRMED, 0)), int(totals.get(DISMISSED, 0))
    completed, ratings = totals.get(COMPLETED, 0.0), totals.get(RATINGS, 0.0)
    response = totals.get(RESPONSE_HOURS, 0.0) / completed if completed else None
    satisfaction = totals.get(RATING_SUM, 0.0) / ratings if ratings else None
    compliance = 1.0 - confirmed / settlements if settlements else None
    anomaly = max(0, alerts - dismissed) / settlements if settlements else None
    weights = rules.weights
    scores: list[tuple[float, float]] = []
    if compliance is not None and anomaly is not None:
        floor = rules.compliance_floor
        scores.append((weights.compliance, _clip((compliance - floor) / (1.0 - floor))))
        scores.append((weights.anomalies, _clip(1.0 - anomaly / rules.anomaly_ceiling)))
    if response is not None:
        good, bad = rules.response_good_hours, rules.response_bad_hours
        scores.append((weights.response, _clip((bad - response) / (bad - good))))
    if satisfaction is not None:
        scores.append((weights.satisfaction, _clip((satisfaction - 1.0) / 4.0)))
    total_weight = sum(weight for weight, _ in scores)
    stars = (
        round(1.0 + 4.0 * sum(w * s for w, s in scores) / total_weight, 2)
        if total_weight > 0
        else None
    )
    return {
        "outlet_id": outlet.outlet_id,
        "window_days": rules.window_days,
        "settlements": settlements,
        "alerts": alerts,
        "alerts_by_kind": by_kind,
        "confirmed": confirmed,
        "dismissed": dismissed,
        "compliance_rate": None if compliance is None else round(compliance, 4),
        "anomaly_rate": None if anomaly is None else round(anomaly, 4),
        "response_hours": None if response is None else round(response, 2),
        "customer_rating": None if satisfaction is None else round(satisfaction, 2),
        "stars": stars,
    }
