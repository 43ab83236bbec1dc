"""Findings become alerts (CONTRACT.md section 2): deterministic id, severity, reasons.

The id hashes what the finding is about (kind, outlet, the settlement or burst key) and
nothing about when or by which rules it was found, so re-processing after a crash or a
rebalance, or under a new rule version, yields the same id for the same finding.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any

from config.rules import Rules
from models.findings import Finding
from models.state import OutletState

ALERT_ID_PREFIX = "sg-"


def alert_id(finding: Finding) -> str:
    """The deterministic id of the alert for ``finding``."""
    digest = hashlib.sha256(f"{finding.kind}\x1f{finding.outlet_id}\x1f{finding.key}".encode())
    return ALERT_ID_PREFIX + digest.hexdigest()[:24]


def rfc3339(ts: float) -> str:
    """``ts`` (epoch seconds) as RFC 3339 in UTC with millisecond precision."""
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds")


def recent_claims(outlet: OutletState | None) -> list[dict[str, Any]]:
    """The outlet's latest claims, oldest first, for the chart in alert mails."""
    if outlet is None:
        return []
    return [{"time": rfc3339(ts), "amount": amount} for ts, amount in outlet.recent]


def build_alert(
    finding: Finding,
    rules: Rules,
    detected_at: float,
    recent: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The alert for ``finding`` (its severity must be at least ``info``); ``recent``
    adds the optional ``recent_claims`` field (the outlet's latest claims)."""
    score = finding.score
    severity = rules.severity.severity(score)
    if severity is None:
        raise ValueError(f"score {score} is below the info threshold {rules.severity.info}")
    alert: dict[str, Any] = {
        "alert_id": alert_id(finding),
        "kind": finding.kind,
        "severity": severity,
        "score": score,
        "outlet_id": finding.outlet_id,
        "settlement_id": finding.settlement_id,
        "settlement_ids": finding.settlement_ids,
        "order_id": finding.order_id,
        "event_time": finding.event_time,
        "detected_at": rfc3339(detected_at),
        "reasons": [reason.as_dict() for reason in finding.reasons],
        "rule_version": rules.rule_version,
        "model_version": finding.model_version,
        "detector": finding.detector,
    }
    if recent:
        alert["recent_claims"] = recent
    if finding.region is not None:  # optional: the outlet's region, when events carry it
        alert["region"] = finding.region
    return alert
