"""A reviewer's verdict on an alert, as the engine applies it (CONTRACT section 3).

The verdict relay (``stream/verdict_relay.py``) joins the reviewer's entry from Redis with
the alert it is about and publishes the pair keyed by outlet; replay's simulated reviewer
builds the same object. Only what the engine needs of the alert is kept.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

VERDICTS = ("confirmed", "dismissed")


class VerdictError(ValueError):
    """A verdict record that cannot be applied; the message says which field and why."""


@dataclass(frozen=True, slots=True)
class Verdict:
    """``verdict`` on alert ``alert_id`` (of ``kind``, about ``outlet_id``)."""

    alert_id: str
    verdict: str
    reviewer: str
    decided_at: str
    outlet_id: str
    kind: str
    score: float
    event_time: str  # of the alert's finding, as on the alert
    event_ts: float  # the same, epoch seconds
    reasons: tuple[dict[str, Any], ...]
    reason: str = ""


def _text(obj: dict[str, Any], field: str, where: str = "") -> str:
    value = obj.get(field)
    if not isinstance(value, str) or not value:
        raise VerdictError(f"{where}{field}: expected a non-empty string, got {value!r}")
    return value


def _time(text: str, field: str) -> float:
    try:
        moment = datetime.fromisoformat(text.upper())
    except ValueError:
        raise VerdictError(f"{field}: not an RFC 3339 time: {text!r}") from None
    if moment.tzinfo is None:
        raise VerdictError(f"{field}: RFC 3339 time needs an offset: {text!r}")
    return moment.timestamp()


def verdict_from_dict(obj: Any) -> Verdict:
    """Validate a verdict record ``{alert_id, verdict, reviewer, reason?, decided_at,
    alert: {alert_id, outlet_id, kind, score?, event_time, reasons}}``."""
    if not isinstance(obj, dict):
        raise VerdictError(f"expected a JSON object, got {type(obj).__name__}")
    alert = obj.get("alert")
    if not isinstance(alert, dict):
        raise VerdictError("alert: expected the alert the verdict is about (an object)")
    verdict = _text(obj, "verdict")
    if verdict not in VERDICTS:
        raise VerdictError(f"verdict: expected one of {', '.join(VERDICTS)}, got {verdict!r}")
    alert_id = _text(obj, "alert_id")
    if alert.get("alert_id") != alert_id:
        raise VerdictError(f"alert.alert_id: {alert.get('alert_id')!r} is not {alert_id!r}")
    decided_at = _text(obj, "decided_at")
    _time(decided_at, "decided_at")
    reasons = alert.get("reasons", [])
    if not isinstance(reasons, list) or not all(isinstance(r, dict) for r in reasons):
        raise VerdictError("alert.reasons: expected a list of objects")
    reason = obj.get("reason") or ""
    score = alert.get("score", 0.0)
    if not isinstance(score, int | float) or isinstance(score, bool):
        raise VerdictError(f"alert.score: expected a number, got {score!r}")
    event_time = _text(alert, "event_time", "alert.")
    return Verdict(
        alert_id=alert_id,
        verdict=verdict,
        reviewer=_text(obj, "reviewer"),
        decided_at=decided_at,
        outlet_id=_text(alert, "outlet_id", "alert."),
        kind=_text(alert, "kind", "alert."),
        score=float(score),
        event_time=event_time,
        event_ts=_time(event_time, "alert.event_time"),
        reasons=tuple(reasons),
        reason=str(reason),
    )
