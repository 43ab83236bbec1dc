"""Accuracy from reviewers' verdicts, and a random sample of alerts to check by hand —
the monthly accuracy sampling.

Verdicts come as JSON Lines written by ``settleguard review export``: one verdict per line
(``alert_id``, ``verdict``, ``reviewer``, ``reason``, ``decided_at``) with the alert it is
about under ``alert``. Precision = confirmed / (confirmed + dismissed), per alert kind and
per detector (an alert counts for every detector named in its reasons). When an alert
was decided more than once (a consumer outside settleguard may allow it), its last
verdict in the file counts.
"""

from __future__ import annotations

import dataclasses
import random
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stream.evaluate import SEVERITY_RANK, _json_lines, _pct, _table

VERDICT_FIELDS = ("alert_id", "verdict", "reviewer", "decided_at")


@dataclass
class Tally:
    """Verdicts on one group of alerts."""

    confirmed: int = 0
    dismissed: int = 0
    precision: float | None = None

    def add(self, verdict: str) -> None:
        """Count one verdict and update the precision."""
        if verdict == "confirmed":
            self.confirmed += 1
        else:
            self.dismissed += 1
        self.precision = self.confirmed / (self.confirmed + self.dismissed)


@dataclass
class AccuracyReport:
    """Precision from verdicts: overall, per alert kind, per detector."""

    verdicts: int
    overall: Tally
    by_kind: dict[str, Tally]
    by_detector: dict[str, Tally]

    def as_dict(self) -> dict[str, Any]:
        """The report as JSON-ready dicts."""
        return dataclasses.asdict(self)


def read_verdicts(path: str | Path) -> list[dict[str, Any]]:
    """The verdict lines of ``path``, the last one per alert; a line that is not a verdict
    with its alert raises ``ValueError`` naming the line."""
    latest: dict[str, dict[str, Any]] = {}
    for number, record in _json_lines(path):
        problem = _problem(record)
        if problem:
            raise ValueError(
                f"{path}:{number}: not a verdict line ({problem}); write the file with "
                "`settleguard review export --out FILE`"
            )
        latest[record["alert_id"]] = record
    return list(latest.values())


def _problem(record: Any) -> str | None:
    if not isinstance(record, dict):
        return "not a JSON object"
    missing = [name for name in VERDICT_FIELDS if not isinstance(record.get(name), str)]
    if missing:
        return f"missing {', '.join(missing)}"
    if record["verdict"] not in ("confirmed", "dismissed"):
        return f"verdict {record['verdict']!r} is neither confirmed nor dismissed"
    if not isinstance(record.get("alert"), dict):
        return "no alert"
    return None


def detectors_of(alert: dict[str, Any]) -> set[str]:
    """Every detector an alert names (its reasons', and its own ``detector`` if any)."""
    named = {r.get("detector") for r in alert.get("reasons") or () if isinstance(r, dict)}
    named.add(alert.get("detector"))
    return {name for name in named if isinstance(name, str)}


def accuracy(verdicts: Iterable[dict[str, Any]]) -> AccuracyReport:
    """Precision of the decided alerts, overall, per kind and per detector."""
    overall = Tally()
    by_kind: dict[str, Tally] = defaultdict(Tally)
    by_detector: dict[str, Tally] = defaultdict(Tally)
    count = 0
    for record in verdicts:
        verdict, alert = record["verdict"], record["alert"]
        count += 1
        overall.add(verdict)
        by_kind[str(alert.get("kind", "?"))].add(verdict)
        for detector in detectors_of(alert):
            by_detector[detector].add(verdict)
    return AccuracyReport(
        count, overall, dict(sorted(by_kind.items())), dict(sorted(by_detector.items()))
    )


def format_accuracy(report: AccuracyReport) -> str:
    """The report as plain-text tables."""
    o = report.overall
    head = (
        f"Precision from reviewers' verdicts: {_pct(o.precision)} "
        f"({o.confirmed} confirmed, {o.dismissed} dismissed of {report.verdicts} alerts)"
    )

    def rows(tallies: dict[str, Tally]) -> list[list[str]]:
        return [
            [name, str(t.confirmed), str(t.dismissed), _pct(t.precision)]
            for name, t in tallies.items()
        ]

    headers = ["confirmed", "dismissed", "precision"]
    kinds = _table(["kind", *headers], rows(report.by_kind), "Precision by alert kind")
    detectors = _table(["detector", *headers], rows(report.by_detector), "Precision by detector")
    return "\n\n".join([head, kinds, detectors]) + "\n"


def sample_alerts(
    alerts: Iterable[dict[str, Any]], per_kind: int, seed: int, min_severity: str = "low"
) -> list[dict[str, Any]]:
    """Up to ``per_kind`` alerts of each kind at or above ``min_severity``, drawn at
    random with ``seed``; the same alerts (in any order, repeats included) and seed give
    the same sample. Sorted by kind, then alert id."""
    floor = SEVERITY_RANK[min_severity]
    by_kind: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)
    for alert in alerts:
        if SEVERITY_RANK.get(alert.get("severity", ""), -1) >= floor:
            by_kind[str(alert.get("kind", "?"))].setdefault(str(alert["alert_id"]), alert)
    rng = random.Random(seed)
    chosen = []
    for kind in sorted(by_kind):
        ids = sorted(by_kind[kind])
        picked = sorted(rng.sample(ids, min(per_kind, len(ids))))
        chosen += [by_kind[kind][alert_id] for alert_id in picked]
    return chosen


def read_alert_lines(path: str | Path) -> list[dict[str, Any]]:
    """The alerts of a JSON Lines file; a line that is not an alert with an id raises
    ``ValueError`` naming the line."""
    alerts = []
    for number, alert in _json_lines(path):
        if not isinstance(alert, dict) or not isinstance(alert.get("alert_id"), str):
            raise ValueError(f"{path}:{number}: not an alert (a JSON object with alert_id)")
        alerts.append(alert)
    return alerts
