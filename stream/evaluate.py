"""Detection quality of a replay against the simulator's ground truth.

Inputs are the files ``settleguard simulate`` writes (``events.jsonl``, ``labels.jsonl``,
``patterns.jsonl``) and the alerts ``settleguard replay`` writes (CONTRACT.md section 2).

Matching rule: an alert matches a label when both are about the same outlet and

* the alert's ``settlement_id`` or any of its ``settlement_ids`` is one of the label's
  ``settlement_ids``, or
* the alert's ``order_id`` is one of the label's ``order_ids``, or
* the alert is outlet-level (``settlement_id`` null) and its ``event_time`` lies within
  ``[label.start - 1h, label.end + 24h]``.

An alert that matches any label is a true positive, whatever its kind; how many matched a
label of the same ``expected_kind`` is reported separately. Only alerts at or above
``min_severity`` are *counted* (precision, recall, delays, patterns, FP outlets); the score
band tables use every alert, of every severity, so one can choose a threshold from them.
"""

from __future__ import annotations

import dataclasses
import math
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

SEVERITIES: tuple[str, ...] = ("info", "low", "medium", "high", "critical")
SEVERITY_RANK: dict[str, int] = {name: rank for rank, name in enumerate(SEVERITIES)}

#: Score bands, lower bound inclusive, upper bound exclusive except the last (90-100).
SCORE_BANDS: tuple[tuple[int, int], ...] = (
    (0, 20),
    (20, 35),
    (35, 50),
    (50, 65),
    (65, 80),
    (80, 90),
    (90, 100),
)
BAND_NAMES: tuple[str, ...] = tuple(f"{lo}-{hi}" for lo, hi in SCORE_BANDS)

WINDOW_BEFORE = timedelta(hours=1)  # outlet-level alerts: how early before label.start
WINDOW_AFTER = timedelta(hours=24)  # ... and how late after label.end
PATTERN_TAIL = timedelta(days=3)  # FPs on a legitimate pattern: up to end + 3 days
BURST_TYPE = "fabricated_burst"
BURST_DEADLINE_MIN = 60.0
WORST_OUTLETS = 10


# --------------------------------------------------------------------------- inputs


@dataclass(frozen=True, slots=True)
class Label:
    """One injected anomaly (a line of labels.jsonl)."""

    id: str
    type: str
    expected_kind: str
    outlet_id: str
    settlement_ids: frozenset[str]
    order_ids: frozenset[str]
    start: datetime
    end: datetime


@dataclass(frozen=True, slots=True)
class Pattern:
    """One legitimate-but-odd pattern (a line of patterns.jsonl)."""

    id: str
    type: str
    outlet_ids: frozenset[str]
    start: datetime
    end: datetime


@dataclass(frozen=True, slots=True)
class Alert:
    """The fields of an alert (CONTRACT.md section 2) the evaluation needs."""

    alert_id: str
    kind: str
    severity: str
    score: float | None
    outlet_id: str
    settlement_id: str | None
    settlement_ids: frozenset[str]
    order_id: str | None
    event_time: datetime


# --------------------------------------------------------------------------- report


@dataclass
class TypeStats:
    """Recall and detection delay for one label type."""

    labels: int = 0
    detected: int = 0
    detected_expected_kind: int = 0
    recall: float | None = None
    delay_median_min: float | None = None
    delay_p90_min: float | None = None
    delay_max_min: float | None = None


@dataclass
class KindStats:
    """Precision for one alert kind (counted alerts only)."""

    alerts: int = 0
    true_positives: int = 0
    expected_kind_matches: int = 0
    precision: float | None = None


@dataclass
class BandStats:
    """Precision within one score band (alerts of every severity)."""

    band: str
    alerts: int = 0
    true_positives: int = 0
    precision: float | None = None


@dataclass
class PatternStats:
    """False positives on one type of legitimate pattern, and the recall of the true
    anomalies on its outlets meanwhile (what reviewers' dismissals must not cost)."""

    patterns: int = 0
    false_positives: int = 0
    anomalies: int = 0
    detected: int = 0
    recall: float | None = None


@dataclass
class OutletFalsePositives:
    """An outlet with many false positives, for debugging."""

    outlet_id: str
    false_positives: int
    kinds: dict[str, int]


@dataclass
class EvaluationReport:
    """Everything :func:`evaluate` measures; ``as_dict()`` gives a JSON-ready dict."""

    min_severity: str
    settlements: int
    labels: int
    alerts_in_file: int
    alerts_invalid: int
    alerts_counted: int
    true_positives: int
    false_positives: int
    expected_kind_matches: int
    labels_detected: int
    labels_detected_expected_kind: int
    precision: float | None
    recall: float | None
    f1: float | None
    alerts_per_1k_settlements: float | None
    all_alerts_per_1k_settlements: float | None
    by_type: dict[str, TypeStats]
    by_kind: dict[str, KindStats]
    score_bands: list[BandStats]
    score_bands_by_kind: dict[str, list[BandStats]]
    alerts_without_score: int
    delay_median_min: float | None
    delay_p90_min: float | None
    delay_max_min: float | None
    burst_labels: int
    burst_within_60min: float | None
    patterns: int
    pattern_false_positives: dict[str, PatternStats]
    pattern_false_positives_total: int
    worst_fp_outlets: list[OutletFalsePositives]
    missed_label_ids: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """The report as plain dicts, lists, numbers and strings (JSON-serialisable)."""
        return dataclasses.asdict(self)


# --------------------------------------------------------------------------- reading


def _time(text: Any) -> datetime:
    """Parse an RFC 3339 time; a time without an offset is taken as UTC."""
    if not isinstance(text, str):
        raise ValueError(f"not a time: {text!r}")
    parsed = datetime.fromisoformat(text)
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def _json_lines(path: str | Path) -> Iterator[tuple[int, Any]]:
    with open(path, "rb") as fh:
        for number, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                yield number, orjson.loads(line)
            except orjson.JSONDecodeError:
                yield number, None


def _strings(value: Any) -> frozenset[str]:
    if not isinstance(value, list):
        return frozenset()
    return frozenset(v for v in value if isinstance(v, str))


def read_labels(path: str | Path) -> list[Label]:
    """Read labels.jsonl; a line that is not a valid label raises ``ValueError``."""
    labels = []
    for number, obj in _json_lines(path):
        try:
            labels.append(
                Label(
                    id=str(obj["id"]),
                    type=str(obj["type"]),
                    expected_kind=str(obj.get("expected_kind") or obj["type"]),
                    outlet_id=str(obj["outlet_id"]),
                    settlement_ids=_strings(obj.get("settlement_ids")),
                    order_ids=_strings(obj.get("order_ids")),
                    start=_time(obj["start"]),
                    end=_time(obj.get("end") or obj["start"]),
                )
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ValueError(f"{path}:{number}: not a label ({exc!r})") from exc
    return labels


def read_patterns(path: str | Path) -> list[Pattern]:
    """Read patterns.jsonl; a line that is not a valid pattern raises ``ValueError``."""
    patterns = []
    for number, obj in _json_lines(path):
        try:
            patterns.append(
                Pattern(
                    id=str(obj["id"]),
                    type=str(obj["type"]),
                    outlet_ids=_strings(obj.get("outlet_ids")),
                    start=_time(obj["start"]),
                    end=_time(obj["end"]),
                )
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ValueError(f"{path}:{number}: not a pattern ({exc!r})") from exc
    return patterns


def parse_alert(obj: Any) -> Alert | None:
    """The evaluated fields of an alert object, or None when it is not a valid alert."""
    if not isinstance(obj, dict):
        return None
    outlet = obj.get("outlet_id")
    severity = obj.get("severity")
    if not isinstance(outlet, str) or severity not in SEVERITY_RANK:
        return None
    try:
        event_time = _time(obj.get("event_time"))
    except ValueError:
        return None
    score = obj.get("score")
    sid = obj.get("settlement_id")
    oid = obj.get("order_id")
    return Alert(
        alert_id=str(obj.get("alert_id", "")),
        kind=str(obj.get("kind", "?")),
        severity=severity,
        score=float(score)
        if isinstance(score, int | float) and not isinstance(score, bool)
        else None,
        outlet_id=outlet,
        settlement_id=sid if isinstance(sid, str) else None,
        settlement_ids=_strings(obj.get("settlement_ids")),
        order_id=oid if isinstance(oid, str) else None,
        event_time=event_time,
    )


def read_alerts(path: str | Path) -> tuple[list[Alert], int]:
    """Read an alerts file; returns the alerts and how many lines were not valid alerts
    (not JSON, no outlet, unknown severity, unparsable event_time)."""
    alerts, invalid = [], 0
    for _, obj in _json_lines(path):
        alert = parse_alert(obj)
        if alert is None:
            invalid += 1
        else:
            alerts.append(alert)
    return alerts, invalid


def count_settlements(path: str | Path) -> int:
    """Settlement events in an events file, unique by event_id (re-deliveries count once).
    Lines that are not JSON objects, or lack a string event_id, are skipped."""
    seen: set[str] = set()
    loads = orjson.loads
    with open(path, "rb") as fh:
        for line in fh:
            if b"settlement" not in line:  # order events never mention it: skip the parse
                continue
            try:
                obj = loads(line)
            except orjson.JSONDecodeError:
                continue
            if isinstance(obj, dict) and obj.get("kind") == "settlement":
                event_id = obj.get("event_id")
                if isinstance(event_id, str):
                    seen.add(event_id)
    return len(seen)


# --------------------------------------------------------------------------- matching


class LabelIndex:
    """Labels by outlet, settlement and order, for fast matching."""

    def __init__(self, labels: Iterable[Label]) -> None:
        self.by_outlet: dict[str, list[int]] = defaultdict(list)
        self.by_settlement: dict[tuple[str, str], list[int]] = defaultdict(list)
        self.by_order: dict[tuple[str, str], list[int]] = defaultdict(list)
        self.labels = list(labels)
        for i, label in enumerate(self.labels):
            self.by_outlet[label.outlet_id].append(i)
            for sid in label.settlement_ids:
                self.by_settlement[(label.outlet_id, sid)].append(i)
            for oid in label.order_ids:
                self.by_order[(label.outlet_id, oid)].append(i)

    def matches(self, alert: Alert) -> set[int]:
        """Indexes of the labels ``alert`` matches."""
        out = alert.outlet_id
        found: set[int] = set()
        sids = set(alert.settlement_ids)
        if alert.settlement_id is not None:
            sids.add(alert.settlement_id)
        for sid in sids:
            found.update(self.by_settlement.get((out, sid), ()))
        if alert.order_id is not None:
            found.update(self.by_order.get((out, alert.order_id), ()))
        if alert.settlement_id is None:
            t = alert.event_time
            for i in self.by_outlet.get(out, ()):
                label = self.labels[i]
                if label.start - WINDOW_BEFORE <= t <= label.end + WINDOW_AFTER:
                    found.add(i)
        return found


def true_finding(labels: Iterable[Label]) -> Callable[[dict[str, Any]], bool]:
    """A test telling whether an alert (a dict, CONTRACT section 2) matches any of
    ``labels`` by the matching rule above; an alert that is not valid matches none."""
    index = LabelIndex(labels)

    def matches(obj: dict[str, Any]) -> bool:
        alert = parse_alert(obj)
        return alert is not None and bool(index.matches(alert))

    return matches


# --------------------------------------------------------------------------- helpers


def _ratio(num: int, den: int) -> float | None:
    return num / den if den else None


def _f1(precision: float | None, recall: float | None) -> float | None:
    if precision is None or recall is None:
        return None
    return 2 * precision * recall / (precision + recall) if precision + recall else 0.0


def _band(score: float) -> int:
    for i, (_, hi) in enumerate(SCORE_BANDS[:-1]):
        if score < hi:
            return i
    return len(SCORE_BANDS) - 1


def _percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile: the smallest value with at least ``q`` of them at or below."""
    rank = max(1, math.ceil(q * len(sorted_values)))
    return sorted_values[rank - 1]


def _delay_stats(delays: list[float]) -> tuple[float | None, float | None, float | None]:
    if not delays:
        return None, None, None
    values = sorted(delays)
    n = len(values)
    median = values[n // 2] if n % 2 else (values[n // 2 - 1] + values[n // 2]) / 2
    return round(median, 2), round(_percentile(values, 0.9), 2), round(values[-1], 2)


def _bands(pairs: Iterable[tuple[int, bool]]) -> list[BandStats]:
    rows = [BandStats(band=name) for name in BAND_NAMES]
    for band, tp in pairs:
        rows[band].alerts += 1
        rows[band].true_positives += tp
    for row in rows:
        row.precision = _ratio(row.true_positives, row.alerts)
    return rows


# --------------------------------------------------------------------------- evaluate


def evaluate(
    events_path: str | Path,
    labels_path: str | Path,
    alerts_path: str | Path,
    patterns_path: str | Path | None = None,
    min_severity: str = "low",
) -> EvaluationReport:
    """Measure the alerts in ``alerts_path`` against the simulator's ground truth.

    ``min_severity`` (info/low/medium/high/critical) selects the alerts that count; the
    score band tables use every alert. ``patterns_path`` is optional (no pattern figures
    without it). Raises ``ValueError`` for an unknown severity or a bad label/pattern line.
    """
    if min_severity not in SEVERITY_RANK:
        raise ValueError(f"min_severity must be one of {', '.join(SEVERITIES)}")
    floor = SEVERITY_RANK[min_severity]
    settlements = count_settlements(events_path)
    labels = read_labels(labels_path)
    patterns = read_patterns(patterns_path) if patterns_path is not None else []
    alerts, invalid = read_alerts(alerts_path)
    index = LabelIndex(labels)

    # Per alert: labels matched; per label: counted alerts that matched it.
    matched = [index.matches(alert) for alert in alerts]
    counted = [SEVERITY_RANK[a.severity] >= floor for a in alerts]
    first_hit: dict[int, datetime] = {}
    hit_expected: set[int] = set()
    by_kind: dict[str, KindStats] = defaultdict(KindStats)
    fp_outlets: dict[str, Counter[str]] = defaultdict(Counter)
    tps = expected_matches = 0
    for alert, hits, is_counted in zip(alerts, matched, counted, strict=True):
        if not is_counted:
            continue
        kstats = by_kind[alert.kind]
        kstats.alerts += 1
        if not hits:
            fp_outlets[alert.outlet_id][alert.kind] += 1
            continue
        tps += 1
        kstats.true_positives += 1
        if any(labels[i].expected_kind == alert.kind for i in hits):
            expected_matches += 1
            kstats.expected_kind_matches += 1
        for i in hits:
            if labels[i].expected_kind == alert.kind:
                hit_expected.add(i)
            if i not in first_hit or alert.event_time < first_hit[i]:
                first_hit[i] = alert.event_time
    for kstats in by_kind.values():
        kstats.precision = _ratio(kstats.true_positives, kstats.alerts)

    # Recall and delay per label type.
    by_type: dict[str, TypeStats] = defaultdict(TypeStats)
    delays: dict[str, list[float]] = defaultdict(list)
    missed: list[str] = []
    for i, label in enumerate(labels):
        tstats = by_type[label.type]
        tstats.labels += 1
        if i not in first_hit:
            missed.append(label.id)
            continue
        tstats.detected += 1
        tstats.detected_expected_kind += i in hit_expected
        delay = (first_hit[i] - label.start).total_seconds() / 60.0
        delays[label.type].append(max(0.0, delay))
    for name, tstats in by_type.items():
        tstats.recall = _ratio(tstats.detected, tstats.labels)
        tstats.delay_median_min, tstats.delay_p90_min, tstats.delay_max_min = _delay_stats(
            delays[name]
        )
    all_delays = [d for ds in delays.values() for d in ds]
    delay_median, delay_p90, delay_max = _delay_stats(all_delays)
    burst = by_type.get(BURST_TYPE)
    burst_fast = sum(d <= BURST_DEADLINE_MIN for d in delays.get(BURST_TYPE, ()))
    burst_within = _ratio(burst_fast, burst.labels) if burst is not None else None

    # Score bands over every alert, whatever its severity.
    scored = [(a, bool(h)) for a, h in zip(alerts, matched, strict=True) if a.score is not None]
    score_bands = _bands((_band(a.score), tp) for a, tp in scored if a.score is not None)
    kind_pairs: dict[str, list[tuple[int, bool]]] = defaultdict(list)
    for a, tp in scored:
        if a.score is not None:
            kind_pairs[a.kind].append((_band(a.score), tp))
    bands_by_kind = {kind: _bands(pairs) for kind, pairs in sorted(kind_pairs.items())}

    # False positives on legitimate patterns.
    pattern_stats: dict[str, PatternStats] = defaultdict(PatternStats)
    fps = [a for a, h, c in zip(alerts, matched, counted, strict=True) if c and not h]
    on_any: set[int] = set()
    for pattern in patterns:
        pattern_stats[pattern.type].patterns += 1
    for ptype in list(pattern_stats):
        on_type: set[int] = set()
        labels_on_type: set[int] = set()
        for pattern in (p for p in patterns if p.type == ptype):
            until = pattern.end + PATTERN_TAIL
            for j, a in enumerate(fps):
                if a.outlet_id in pattern.outlet_ids and pattern.start <= a.event_time <= until:
                    on_type.add(j)
            for i, label in enumerate(labels):
                if label.outlet_id in pattern.outlet_ids and pattern.start <= label.start <= until:
                    labels_on_type.add(i)
        pstats = pattern_stats[ptype]
        pstats.false_positives = len(on_type)
        pstats.anomalies = len(labels_on_type)
        pstats.detected = len(labels_on_type & first_hit.keys())
        pstats.recall = _ratio(pstats.detected, pstats.anomalies)
        on_any |= on_type

    worst = sorted(fp_outlets.items(), key=lambda kv: (-sum(kv[1].values()), kv[0]))
    n_counted = sum(counted)
    precision = _ratio(tps, n_counted)
    recall = _ratio(len(first_hit), len(labels))
    return EvaluationReport(
        min_severity=min_severity,
        settlements=settlements,
        labels=len(labels),
        alerts_in_file=len(alerts) + invalid,
        alerts_invalid=invalid,
        alerts_counted=n_counted,
        true_positives=tps,
        false_positives=n_counted - tps,
        expected_kind_matches=expected_matches,
        labels_detected=len(first_hit),
        labels_detected_expected_kind=len(hit_expected),
        precision=precision,
        recall=recall,
        f1=_f1(precision, recall),
        alerts_per_1k_settlements=_per_1k(n_counted, settlements),
        all_alerts_per_1k_settlements=_per_1k(len(alerts), settlements),
        by_type=dict(sorted(by_type.items())),
        by_kind=dict(sorted(by_kind.items())),
        score_bands=score_bands,
        score_bands_by_kind=bands_by_kind,
        alerts_without_score=len(alerts) - len(scored),
        delay_median_min=delay_median,
        delay_p90_min=delay_p90,
        delay_max_min=delay_max,
        burst_labels=burst.labels if burst is not None else 0,
        burst_within_60min=burst_within,
        patterns=len(patterns),
        pattern_false_positives=dict(sorted(pattern_stats.items())),
        pattern_false_positives_total=len(on_any),
        worst_fp_outlets=[
            OutletFalsePositives(outlet, sum(kinds.values()), dict(kinds.most_common()))
            for outlet, kinds in worst[:WORST_OUTLETS]
        ],
        missed_label_ids=missed,
    )


def _per_1k(alerts: int, settlements: int) -> float | None:
    return round(1000.0 * alerts / settlements, 2) if settlements else None


# --------------------------------------------------------------------------- text


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:g}"


def _table(
    headers: list[str], rows: list[list[str]], title: str, left: tuple[int, ...] = (0,)
) -> str:
    """Aligned columns: those in ``left`` left-aligned, the others right-aligned."""
    cells = [headers, *rows]
    widths = [max(len(row[c]) for row in cells) for c in range(len(headers))]

    def line(row: list[str]) -> str:
        parts = [
            cell.ljust(widths[c]) if c in left else cell.rjust(widths[c])
            for c, cell in enumerate(row)
        ]
        return "  ".join(parts).rstrip()

    rule = "  ".join("-" * w for w in widths)
    body = [line(row) for row in rows] or ["(none)"]
    return "\n".join([title, line(headers), rule, *body])


def format_report(report: EvaluationReport) -> str:
    """The report as plain-text tables for a terminal."""
    r = report
    head = [
        f"Detection quality (alerts with severity >= {r.min_severity} count)",
        "",
        f"  precision  {_pct(r.precision):>7}   ({r.true_positives} TP / "
        f"{r.alerts_counted} alerts, {r.false_positives} FP)",
        f"  recall     {_pct(r.recall):>7}   ({r.labels_detected} of {r.labels} labels detected)",
        f"  F1         {_pct(r.f1):>7}",
        f"  expected kind: {r.expected_kind_matches} of {r.true_positives} TP alerts, "
        f"{r.labels_detected_expected_kind} of {r.labels} labels",
        f"  settlements {r.settlements}; alerts per 1,000 settlements: "
        f"{_num(r.alerts_per_1k_settlements)} counted, "
        f"{_num(r.all_alerts_per_1k_settlements)} all severities",
        f"  alerts in file {r.alerts_in_file} (invalid {r.alerts_invalid}, "
        f"without score {r.alerts_without_score})",
        f"  delay (min): median {_num(r.delay_median_min)}, p90 {_num(r.delay_p90_min)}, "
        f"max {_num(r.delay_max_min)}",
    ]
    if r.burst_labels:
        head.append(
            f"  fabricated_burst detected within {BURST_DEADLINE_MIN:g} min: "
            f"{_pct(r.burst_within_60min)} of {r.burst_labels}"
        )
    sections = ["\n".join(head)]

    sections.append(
        _table(
            ["type", "labels", "detected", "exp.kind", "recall", "median", "p90", "max"],
            [
                [
                    name,
                    str(s.labels),
                    str(s.detected),
                    str(s.detected_expected_kind),
                    _pct(s.recall),
                    _num(s.delay_median_min),
                    _num(s.delay_p90_min),
                    _num(s.delay_max_min),
                ]
                for name, s in r.by_type.items()
            ],
            "Recall by anomaly type (delays in minutes)",
        )
    )
    sections.append(
        _table(
            ["kind", "alerts", "TP", "exp.kind", "precision"],
            [
                [
                    name,
                    str(s.alerts),
                    str(s.true_positives),
                    str(s.expected_kind_matches),
                    _pct(s.precision),
                ]
                for name, s in r.by_kind.items()
            ],
            "Precision by alert kind",
        )
    )
    sections.append(
        _table(
            ["score", "alerts", "TP", "precision"],
            [
                [b.band, str(b.alerts), str(b.true_positives), _pct(b.precision)]
                for b in r.score_bands
            ],
            "Precision by score band (all severities)",
        )
    )
    sections.append(
        _table(
            ["kind", *BAND_NAMES],
            [
                [kind, *(f"{b.true_positives}/{b.alerts}" if b.alerts else "-" for b in bands)]
                for kind, bands in r.score_bands_by_kind.items()
            ],
            "TP/alerts by kind and score band (all severities)",
        )
    )
    if r.patterns:
        rows = [
            [
                name,
                str(s.patterns),
                str(s.false_positives),
                f"{s.detected}/{s.anomalies}",
                _pct(s.recall),
            ]
            for name, s in r.pattern_false_positives.items()
        ]
        rows.append(["total", str(r.patterns), str(r.pattern_false_positives_total), "", ""])
        sections.append(
            _table(
                ["pattern", "patterns", "FP alerts", "anomalies found", "recall"],
                rows,
                "False positives on legitimate patterns (start .. end + 3 days)",
            )
        )
    sections.append(
        _table(
            ["outlet", "FP", "kinds"],
            [
                [
                    o.outlet_id,
                    str(o.false_positives),
                    ", ".join(f"{k} {n}" for k, n in o.kinds.items()),
                ]
                for o in r.worst_fp_outlets
            ],
            f"Worst {WORST_OUTLETS} false-positive outlets",
            left=(0, 2),
        )
    )
    if r.missed_label_ids:
        shown = ", ".join(r.missed_label_ids[:10])
        more = f" (+{len(r.missed_label_ids) - 10} more)" if len(r.missed_label_ids) > 10 else ""
        sections.append(f"Missed labels: {shown}{more}")
    return "\n\n".join(sections) + "\n"
