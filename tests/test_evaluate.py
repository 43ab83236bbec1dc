"""Tests for stream.evaluate: detection quality against the simulator's ground truth."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from stream.evaluate import BAND_NAMES, EvaluationReport, evaluate, format_report

T0 = "2026-06-01T10:00:00+08:00"


def _write(path: Path, rows: list[Any]) -> Path:
    lines = [row if isinstance(row, str) else json.dumps(row) for row in rows]
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def _settlement(event_id: str, sid: str, outlet: str = "W1") -> dict[str, Any]:
    return {
        "kind": "settlement",
        "event_id": event_id,
        "event_time": T0,
        "outlet_id": outlet,
        "settlement_id": sid,
        "order_id": "O" + sid,
        "amount": 100.0,
    }


def _label(
    lid: str,
    sids: list[str],
    *,
    type_: str = "amount_spike",
    kind: str = "amount_spike",
    outlet: str = "W1",
    orders: list[str] | None = None,
    start: str = T0,
    end: str | None = None,
) -> dict[str, Any]:
    return {
        "id": lid,
        "type": type_,
        "expected_kind": kind,
        "outlet_id": outlet,
        "settlement_ids": sids,
        "order_ids": orders if orders is not None else ["O" + s for s in sids],
        "start": start,
        "end": end or start,
        "detail": "",
    }


def _alert(
    aid: str,
    sid: str | None,
    *,
    kind: str = "amount_spike",
    severity: str = "high",
    score: float = 85.0,
    outlet: str = "W1",
    sids: list[str] | None = None,
    order: str | None = None,
    time: str = T0,
) -> dict[str, Any]:
    return {
        "alert_id": aid,
        "kind": kind,
        "severity": severity,
        "score": score,
        "outlet_id": outlet,
        "settlement_id": sid,
        "settlement_ids": sids if sids is not None else ([sid] if sid else []),
        "order_id": order,
        "event_time": time,
        "detected_at": time,
        "reasons": [],
        "rule_version": "r1",
        "model_version": "m1",
    }


def _run(
    tmp_path: Path,
    labels: list[Any],
    alerts: list[Any],
    *,
    events: list[Any] | None = None,
    patterns: list[Any] | None = None,
    min_severity: str = "low",
) -> EvaluationReport:
    if events is None:
        events = [_settlement(f"e{i}", f"S{i}") for i in range(1, 11)]
    return evaluate(
        _write(tmp_path / "events.jsonl", events),
        _write(tmp_path / "labels.jsonl", labels),
        _write(tmp_path / "alerts.jsonl", alerts),
        _write(tmp_path / "patterns.jsonl", patterns) if patterns is not None else None,
        min_severity=min_severity,
    )


def test_perfect_alerts(tmp_path: Path) -> None:
    """One alert of the expected kind per label gives precision = recall = F1 = 1."""
    labels = [
        _label("a1", ["S1"]),
        _label("a2", ["S2"], type_="duplicate_settlement", kind="duplicate_settlement"),
        _label("a3", ["S3", "S4"], type_="fabricated_burst", kind="frequency_spike"),
    ]
    alerts = [
        _alert("x1", "S1"),
        _alert("x2", "S2", kind="duplicate_settlement"),
        _alert("x3", None, kind="frequency_spike", sids=["S3", "S4"]),
    ]
    r = _run(tmp_path, labels, alerts)
    assert (r.precision, r.recall, r.f1) == (1.0, 1.0, 1.0)
    assert (r.true_positives, r.false_positives, r.labels_detected) == (3, 0, 3)
    assert r.expected_kind_matches == 3 and r.labels_detected_expected_kind == 3
    assert r.by_type["fabricated_burst"].recall == 1.0
    assert r.by_kind["duplicate_settlement"].precision == 1.0
    assert r.missed_label_ids == [] and r.worst_fp_outlets == []


def test_wrong_settlement_is_false_positive(tmp_path: Path) -> None:
    """An alert on another settlement, or on the right one at another outlet, is an FP."""
    labels = [_label("a1", ["S1"]), _label("a2", ["S2"])]
    alerts = [
        _alert("x1", "S1"),
        _alert("x2", "S9"),
        _alert("x3", "S2", outlet="W2"),
    ]
    r = _run(tmp_path, labels, alerts)
    assert (r.true_positives, r.false_positives) == (1, 2)
    assert r.precision == pytest.approx(1 / 3)
    assert r.recall == 0.5 and r.missed_label_ids == ["a2"]
    assert r.f1 == pytest.approx(2 * (1 / 3) * 0.5 / (1 / 3 + 0.5))
    assert [(o.outlet_id, o.false_positives) for o in r.worst_fp_outlets] == [("W1", 1), ("W2", 1)]


def test_kind_mismatch_still_true_positive(tmp_path: Path) -> None:
    """A matching alert of another kind is a TP but not an expected-kind match."""
    r = _run(
        tmp_path,
        [_label("a1", ["S1"], orders=["O77"])],
        # outlet-level but days after the label: only the order id can match it
        [
            _alert(
                "x1",
                None,
                kind="multivariate_outlier",
                order="O77",
                time="2026-06-09T10:00:00+08:00",
            )
        ],
    )
    assert r.true_positives == 1 and r.recall == 1.0
    assert r.expected_kind_matches == 0 and r.labels_detected_expected_kind == 0
    assert r.by_type["amount_spike"].detected_expected_kind == 0


def test_severity_filter(tmp_path: Path) -> None:
    """Only alerts at or above min_severity count; an unknown severity is refused."""
    labels = [_label("a1", ["S1"]), _label("a2", ["S2"])]
    alerts = [
        _alert("x1", "S1", severity="medium"),
        _alert("x2", "S2", severity="info"),
        _alert("x3", "S9", severity="info"),
    ]
    low = _run(tmp_path, labels, alerts)
    assert (low.alerts_counted, low.true_positives, low.false_positives) == (1, 1, 0)
    assert low.recall == 0.5
    assert low.alerts_per_1k_settlements == 100.0  # 1 alert, 10 settlements
    assert low.all_alerts_per_1k_settlements == 300.0
    high = _run(tmp_path, labels, alerts, min_severity="high")
    assert high.alerts_counted == 0 and high.precision is None and high.recall == 0.0
    info = _run(tmp_path, labels, alerts, min_severity="info")
    assert (info.alerts_counted, info.false_positives, info.recall) == (3, 1, 1.0)
    with pytest.raises(ValueError):
        _run(tmp_path, labels, alerts, min_severity="urgent")


def test_outlet_level_alert_time_window(tmp_path: Path) -> None:
    """An outlet-level alert matches within [start - 1h, end + 24h] at the same outlet only."""
    label = _label(
        "b1",
        ["S1", "S2"],
        type_="fabricated_burst",
        kind="frequency_spike",
        start="2026-06-01T10:00:00+08:00",
        end="2026-06-01T12:00:00+08:00",
    )

    def one(time: str, outlet: str = "W1", sid: str | None = None) -> bool:
        alert = _alert("x", sid, kind="frequency_spike", sids=[], time=time, outlet=outlet)
        return _run(tmp_path, [label], [alert]).true_positives == 1

    assert one("2026-06-01T09:00:00+08:00")  # start - 1h, inclusive
    assert one("2026-06-02T12:00:00+08:00")  # end + 24h, inclusive
    assert one("2026-06-01T04:00:00+02:00")  # same instant as 10:00+08:00 written elsewhere
    assert not one("2026-06-01T08:59:59+08:00")
    assert not one("2026-06-02T12:00:01+08:00")
    assert not one("2026-06-01T11:00:00+08:00", outlet="W2")
    assert not one("2026-06-01T11:00:00+08:00", sid="S9")  # settlement-level: no window


def test_pattern_false_positives(tmp_path: Path) -> None:
    """FPs at a pattern's outlets within [start, end + 3 days] are counted per type."""
    patterns = [
        {
            "id": "p1",
            "type": "volume_step",
            "outlet_ids": ["W5"],
            "start": "2026-06-05T00:00:00+08:00",
            "end": "2026-06-10T23:59:59+08:00",
        },
        {
            "id": "p2",
            "type": "region_surge",
            "region": "R",
            "outlet_ids": ["W5", "W6"],
            "start": "2026-06-08T00:00:00+08:00",
            "end": "2026-06-09T00:00:00+08:00",
        },
    ]
    labels = [_label("a1", ["S1"], outlet="W5", start="2026-06-06T10:00:00+08:00")]
    alerts = [
        _alert("in1", "S8", outlet="W5", time="2026-06-06T10:00:00+08:00"),  # volume_step
        _alert("in2", "S9", outlet="W5", time="2026-06-08T10:00:00+08:00"),  # both
        _alert("tail", "S7", outlet="W5", time="2026-06-13T23:00:00+08:00"),  # end + 3d
        _alert("late", "S6", outlet="W5", time="2026-06-14T01:00:00+08:00"),  # too late
        _alert("early", "S5", outlet="W5", time="2026-06-04T23:00:00+08:00"),  # too early
        _alert("other", "S4", outlet="W7", time="2026-06-08T10:00:00+08:00"),  # other outlet
        _alert("w6", "S3", outlet="W6", time="2026-06-08T10:00:00+08:00"),  # region_surge
        _alert("tp", "S1", outlet="W5", time="2026-06-06T10:00:00+08:00"),  # TP: not counted
        _alert("quiet", "S2", outlet="W5", severity="info", time="2026-06-06T11:00:00+08:00"),
    ]
    r = _run(tmp_path, labels, alerts, patterns=patterns)
    assert r.patterns == 2
    assert r.pattern_false_positives["volume_step"].false_positives == 3
    assert r.pattern_false_positives["region_surge"].false_positives == 2
    assert r.pattern_false_positives["region_surge"].patterns == 1
    assert r.pattern_false_positives_total == 4  # in2 counted once


def test_detection_delay(tmp_path: Path) -> None:
    """Delay is the earliest matching counted alert minus label.start, clamped at 0."""
    labels = [
        _label("a1", ["S1"], start="2026-06-01T10:00:00+08:00"),
        _label("a2", ["S2"], start="2026-06-01T10:00:00+08:00"),
        _label("a3", ["S3"], start="2026-06-01T10:00:00+08:00"),
        # bursts at their own outlets, so outlet-level alerts match by time only there
        _label("b1", ["S4"], type_="fabricated_burst", kind="frequency_spike", outlet="W2"),
        _label("b2", ["S6"], type_="fabricated_burst", kind="frequency_spike", outlet="W3"),
        _label("b3", ["S8"], type_="fabricated_burst", kind="frequency_spike", outlet="W4"),
    ]
    alerts = [
        _alert("x1", "S1", time="2026-06-01T10:30:00+08:00"),
        _alert("x1b", "S1", time="2026-06-01T10:20:00+08:00"),  # earlier one wins
        _alert("x1c", "S1", severity="info", time="2026-06-01T10:05:00+08:00"),  # not counted
        _alert("x2", "S2", time="2026-06-01T12:00:00+08:00"),
        _alert("x3", "S3", time="2026-06-01T09:00:00+08:00"),  # before start: 0
        _alert("y1", None, kind="frequency_spike", outlet="W2", time="2026-06-01T10:45:00+08:00"),
        _alert("y2", None, kind="frequency_spike", outlet="W3", time="2026-06-01T12:00:00+08:00"),
    ]
    r = _run(tmp_path, labels, alerts)
    spike = r.by_type["amount_spike"]
    assert (spike.delay_median_min, spike.delay_p90_min, spike.delay_max_min) == (20, 120, 120)
    burst = r.by_type["fabricated_burst"]
    assert (burst.labels, burst.detected) == (3, 2)
    assert (burst.delay_median_min, burst.delay_max_min) == (82.5, 120)
    assert r.burst_labels == 3
    assert r.burst_within_60min == pytest.approx(1 / 3)  # undetected bursts count as late
    assert r.delay_max_min == 120 and r.delay_median_min == 45  # of 0, 20, 45, 120, 120


def test_score_bands(tmp_path: Path) -> None:
    """Score bands use every alert (any severity), overall and per kind, edges included."""
    labels = [_label("a1", ["S1"]), _label("a2", ["S2"])]
    alerts = [
        _alert("x1", "S1", score=100.0),
        _alert("x2", "S2", score=90.0, severity="info", kind="over_standard"),
        _alert("x3", "S9", score=89.99),
        _alert("x4", "S8", score=20.0, kind="over_standard"),
        _alert("x5", "S7", score=0.0),
        {**_alert("x6", "S6"), "score": None},
    ]
    r = _run(tmp_path, labels, alerts)
    assert [b.band for b in r.score_bands] == list(BAND_NAMES)
    bands = {b.band: (b.true_positives, b.alerts) for b in r.score_bands}
    assert bands == {
        "0-20": (0, 1),
        "20-35": (0, 1),
        "35-50": (0, 0),
        "50-65": (0, 0),
        "65-80": (0, 0),
        "80-90": (0, 1),
        "90-100": (2, 2),
    }
    assert r.score_bands[-1].precision == 1.0 and r.score_bands[2].precision is None
    assert r.alerts_without_score == 1
    by_kind = {
        kind: {b.band: (b.true_positives, b.alerts) for b in rows if b.alerts}
        for kind, rows in r.score_bands_by_kind.items()
    }
    assert by_kind == {
        "amount_spike": {"0-20": (0, 1), "80-90": (0, 1), "90-100": (1, 1)},
        "over_standard": {"20-35": (0, 1), "90-100": (1, 1)},
    }
    text = format_report(r)
    assert "TP/alerts by kind and score band" in text and "1/1" in text


def test_settlements_counted_once_and_bad_lines_skipped(tmp_path: Path) -> None:
    """Settlements are unique by event_id; bad event and alert lines are skipped."""
    events = [
        _settlement("e1", "S1"),
        _settlement("e1", "S1"),  # re-delivery
        _settlement("e2", "S2"),
        {"kind": "order", "event_id": "o1", "order_id": "O1", "note": "settlement"},
        "{not json settlement",
        '["settlement"]',
        "",
    ]
    alerts = [_alert("x1", "S1"), "not json", json.dumps({**_alert("x2", "S2"), "severity": "?"})]
    r = _run(tmp_path, [_label("a1", ["S1"])], alerts, events=events)
    assert r.settlements == 2
    assert (r.alerts_in_file, r.alerts_invalid, r.alerts_counted) == (3, 2, 1)
    assert r.alerts_per_1k_settlements == 500.0


def test_as_dict_is_json_serialisable(tmp_path: Path) -> None:
    """as_dict() round-trips through json with the headline figures intact."""
    patterns = [
        {"id": "p1", "type": "month_end_batch", "outlet_ids": ["W1"], "start": T0, "end": T0}
    ]
    r = _run(
        tmp_path,
        [_label("a1", ["S1"]), _label("a2", ["S2"])],
        [_alert("x1", "S1"), _alert("x2", "S9", severity="low")],
        patterns=patterns,
    )
    data = json.loads(json.dumps(r.as_dict()))
    assert data["precision"] == 0.5 and data["recall"] == 0.5
    assert data["by_type"]["amount_spike"]["labels"] == 2
    assert data["by_kind"]["amount_spike"]["true_positives"] == 1
    assert data["pattern_false_positives"]["month_end_batch"]["false_positives"] == 1
    assert data["worst_fp_outlets"][0] == {
        "outlet_id": "W1",
        "false_positives": 1,
        "kinds": {"amount_spike": 1},
    }
    assert len(data["score_bands"]) == len(BAND_NAMES)


def test_format_report_headline(tmp_path: Path) -> None:
    """format_report shows precision, recall, F1, counts and the per-type/kind tables."""
    patterns = [{"id": "p1", "type": "volume_step", "outlet_ids": ["W1"], "start": T0, "end": T0}]
    r = _run(
        tmp_path,
        [_label("a1", ["S1"]), _label("a2", ["S2"]), _label("a3", ["S3"])],
        [_alert("x1", "S1"), _alert("x2", "S2"), _alert("x3", "S9", kind="over_standard")],
        patterns=patterns,
    )
    text = format_report(r)
    assert "66.7%" in text  # precision 2/3 and recall 2/3
    assert "2 TP / 3 alerts, 1 FP" in text
    assert "2 of 3 labels detected" in text
    assert "F1" in text and "alerts per 1,000 settlements: 300" in text
    for word in ("amount_spike", "over_standard", "volume_step", "Missed labels: a3", "W1"):
        assert word in text
    header = next(line for line in text.splitlines() if line.startswith("kind "))
    rule = text.splitlines()[text.splitlines().index(header) + 1]
    assert set(rule) <= {"-", " "}  # a ruled, aligned table
