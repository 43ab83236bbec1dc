"""A reviewer simulated from the simulator's ground truth, for replay: every alert at or
above a severity is judged some hours of event time after its finding — confirmed when it
matches an injected anomaly, dismissed otherwise — and the verdict is fed back into the
engine at that event time, as the review loop does in production (``settleguard replay
--review LABELS``). This is how the effect of reviewers' verdicts is measured.
"""

from __future__ import annotations

import heapq
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from config.rules import SEVERITIES
from models.verdicts import Verdict, verdict_from_dict
from stream.evaluate import LabelIndex, parse_alert, read_labels

REVIEWER = "simulated-reviewer"


class SimulatedReviewer:
    """Queues a verdict per reviewed alert; hands them out when their time has come."""

    def __init__(self, labels_path: str | Path, delay_hours: float, min_severity: str) -> None:
        self.index = LabelIndex(read_labels(labels_path))
        self.delay = delay_hours * 3600.0
        self.floor = SEVERITIES.index(min_severity)
        self.due: list[tuple[float, int, Verdict]] = []
        self.decided = {"confirmed": 0, "dismissed": 0}
        self.applied = 0

    def review(self, alert: dict[str, Any]) -> None:
        """Decide ``alert`` (if it is severe enough); the verdict is due after the delay."""
        parsed = parse_alert(alert)
        if parsed is None or SEVERITIES.index(parsed.severity) < self.floor:
            return
        verdict = "confirmed" if self.index.matches(parsed) else "dismissed"
        self.decided[verdict] += 1
        due = parsed.event_time.timestamp() + self.delay
        record = {
            "alert_id": alert["alert_id"],
            "verdict": verdict,
            "reviewer": REVIEWER,
            "reason": "matches an injected anomaly" if verdict == "confirmed" else "legitimate",
            "decided_at": datetime.fromtimestamp(due, UTC).isoformat(),
            "alert": alert,
        }
        order = sum(self.decided.values())  # ties are handed out in decision order
        heapq.heappush(self.due, (due, order, verdict_from_dict(record)))

    def due_by(self, ts: float) -> list[Verdict]:
        """The verdicts decided by event time ``ts``, oldest first."""
        out = []
        while self.due and self.due[0][0] <= ts:
            out.append(heapq.heappop(self.due)[2])
        return out
