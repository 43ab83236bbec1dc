"""The inline chart of an alert mail: an outlet's recent claims, the flagged ones in red.

Data comes from the alerts themselves: the optional ``recent_claims`` field (the outlet's
recent settlement claims, oldest first) of the latest alert that carries one; without it,
only the alerts' own flagged amounts from their amount reasons, each beside the amount
its baseline expected (dashed). The chart has no words, only numbers (3x5 digits), so no
CJK font is needed; the mail's text names the axes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from itertools import pairwise
from typing import Any

from alerts.png import Canvas

WIDTH, HEIGHT = 480, 160
LEFT, RIGHT, TOP, BOTTOM = 56, 12, 10, 24  # margins around the plot area
PALETTE = [
    (255, 255, 255),  # 0 background
    (200, 200, 200),  # 1 axes
    (90, 90, 90),  # 2 labels
    (40, 110, 200),  # 3 claims
    (220, 40, 40),  # 4 flagged
    (150, 150, 150),  # 5 expected
]
AXES, LABELS, CLAIMS, FLAGGED, EXPECTED = 1, 2, 3, 4, 5
BEIJING = timezone(timedelta(hours=8))


@dataclass(frozen=True, slots=True)
class ClaimPoint:
    """One claim on the chart."""

    ts: float
    amount: float
    flagged: bool


@dataclass(frozen=True, slots=True)
class ChartData:
    """What one chart shows: claims in time order and the amount usually expected."""

    points: tuple[ClaimPoint, ...]
    expected: float | None

    @property
    def first(self) -> datetime:
        return datetime.fromtimestamp(self.points[0].ts, BEIJING)

    @property
    def last(self) -> datetime:
        return datetime.fromtimestamp(self.points[-1].ts, BEIJING)

    @property
    def highest(self) -> float:
        return max(max(p.amount for p in self.points), self.expected or 0.0)


def _ts(text: Any) -> float | None:
    try:
        return datetime.fromisoformat(str(text)).timestamp()
    except ValueError:
        return None


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def chart_data(alerts: Sequence[Mapping[str, Any]]) -> ChartData | None:
    """The chart of ``alerts`` (one outlet's), or None when they carry no amounts."""
    flagged = {ts for a in alerts if (ts := _ts(a.get("event_time"))) is not None}
    with_recent = [a for a in alerts if a.get("recent_claims")]
    if with_recent:
        latest = max(with_recent, key=lambda a: _ts(a.get("event_time")) or 0.0)
        points = [
            ClaimPoint(ts, float(claim["amount"]), any(abs(ts - f) < 1.0 for f in flagged))
            for claim in latest["recent_claims"]
            if isinstance(claim, Mapping)
            and _number(claim.get("amount"))
            and (ts := _ts(claim.get("time"))) is not None
        ]
        if points:
            return ChartData(tuple(sorted(points, key=lambda p: p.ts)), None)
    points, expected = [], []
    for alert in alerts:
        ts = _ts(alert.get("event_time"))
        reason = next(
            (
                r
                for r in alert.get("reasons", ())
                if r.get("detector") == "amount"
                and _number(r.get("value"))
                and "km" not in str(r.get("feature", ""))
            ),
            None,
        )
        if ts is not None and reason is not None:
            points.append(ClaimPoint(ts, float(reason["value"]), True))
            if _number(reason.get("expected")):
                expected.append(float(reason["expected"]))
    if not points:
        return None
    usual = sorted(expected)[len(expected) // 2] if expected else None
    return ChartData(tuple(sorted(points, key=lambda p: p.ts)), usual)


def render_chart(data: ChartData) -> bytes:
    """``data`` as a WIDTH x HEIGHT PNG."""
    canvas = Canvas(WIDTH, HEIGHT, PALETTE)
    x0, x1, y0, y1 = LEFT, WIDTH - RIGHT, HEIGHT - BOTTOM, TOP
    canvas.line(x0, y0, x1, y0, AXES)
    canvas.line(x0, y0, x0, y1, AXES)
    top = data.highest * 1.1 or 1.0
    start, span = data.points[0].ts, (data.points[-1].ts - data.points[0].ts) or 1.0

    def x_of(ts: float) -> int:
        if len(data.points) == 1:
            return (x0 + x1) // 2
        return x0 + 6 + round((ts - start) / span * (x1 - x0 - 12))

    def y_of(amount: float) -> int:
        return y0 - round(amount / top * (y0 - y1))

    if data.expected is not None:
        canvas.line(x0, y_of(data.expected), x1, y_of(data.expected), EXPECTED, dash=4)
    xy = [(x_of(p.ts), y_of(p.amount)) for p in data.points]
    for (ax, ay), (bx, by) in pairwise(xy):
        canvas.line(ax, ay, bx, by, CLAIMS)
    for point, (x, y) in zip(data.points, xy, strict=True):
        if point.flagged:
            canvas.rect(x - 3, y - 3, x + 3, y + 3, FLAGGED)
        else:
            canvas.rect(x - 1, y - 1, x + 1, y + 1, CLAIMS)
    canvas.text(4, y1, _amount(top), LABELS)
    canvas.text(4, y0 - 10, "0", LABELS)
    canvas.text(x0, y0 + 6, data.first.strftime("%m-%d"), LABELS)
    canvas.text(x1 - 36, y0 + 6, data.last.strftime("%m-%d"), LABELS)
    return canvas.png()


def _amount(value: float) -> str:
    return f"{value / 1000:.1f}k" if value >= 10_000 else f"{value:.0f}"
