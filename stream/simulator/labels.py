"""Ground truth as JSON-ready records: one label per injected anomaly, one record per
legitimate pattern, and the run summary. Ids are numbered in time order so the files read
chronologically and are stable for a given config.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from stream.simulator.anomalies import ANOMALY_TYPES, Anomaly
from stream.simulator.catalogue import AC, INSTALL, REPAIR, segment, segment_names
from stream.simulator.clock import DAY, Clock
from stream.simulator.jobs import MonthEndBatch
from stream.simulator.patterns import PatternPlan
from stream.simulator.world import World


def anomaly_labels(anomalies: list[Anomaly], world: World, clock: Clock) -> list[dict[str, Any]]:
    """labels.jsonl records, ``anom-000001`` onwards in order of start time."""

    def span(a: Anomaly) -> tuple[int, int]:
        times = [c.time for c in a.claims]
        start = min(times)
        if a.type == "fabricated_burst":
            start = min(start, *(j.created for j in a.jobs))
        return start, max(times)

    ordered = sorted(anomalies, key=lambda a: (span(a)[0], a.type, a.claims[0].uid))
    out: list[dict[str, Any]] = []
    for n, a in enumerate(ordered, start=1):
        start, end = span(a)
        label: dict[str, Any] = {
            "id": f"anom-{n:06d}",
            "type": a.type,
            "expected_kind": a.expected_kind,
            "outlet_id": world.outlets[a.outlet].outlet_id,
            "settlement_ids": [c.settlement_id for c in a.claims],
            "order_ids": [j.order_id for j in a.jobs],
            "start": clock.fmt(start),
            "end": clock.fmt(end),
            "detail": a.detail,
        }
        if a.related:
            label["related_settlement_ids"] = [c.settlement_id for c in a.related]
        out.append(label)
    return out


def pattern_records(
    plan: PatternPlan,
    batches: list[MonthEndBatch],
    world: World,
    clock: Clock,
    extra_rows: list[tuple[int, dict[str, Any]]] | None = None,
) -> list[dict[str, Any]]:
    """patterns.jsonl records, ``pat-000001`` onwards in order of start time;
    ``extra_rows`` are (start second, row) of patterns planned elsewhere."""
    rows: list[tuple[int, dict[str, Any]]] = list(extra_rows or [])
    for surge in plan.surges:
        members = [o.outlet_id for o in world.outlets if o.region == surge.region]
        rows.append(
            (
                surge.first_day * DAY,
                {
                    "type": "region_surge",
                    "region": world.regions[surge.region].name,
                    "outlet_ids": members,
                    "start": clock.fmt(surge.first_day * DAY),
                    "end": clock.fmt((surge.last_day + 1) * DAY - 1),
                    "factor": surge.factor,
                    "segments": [
                        "/".join(segment_names(segment(INSTALL, AC))),
                        "/".join(segment_names(segment(REPAIR, AC))),
                    ],
                },
            )
        )
    for step in plan.steps:
        outlet = world.outlets[step.outlet]
        rows.append(
            (
                step.day * DAY,
                {
                    "type": "volume_step",
                    "region": outlet.region_name,
                    "outlet_ids": [outlet.outlet_id],
                    "start": clock.fmt(step.day * DAY),
                    "end": clock.fmt(clock.end - 1),
                    "factor": step.factor,
                },
            )
        )
    for batch in batches:
        rows.append(
            (
                batch.first,
                {
                    "type": "month_end_batch",
                    "outlet_ids": [world.outlets[o].outlet_id for o in sorted(batch.outlets)],
                    "start": clock.fmt(batch.first),
                    "end": clock.fmt(batch.last),
                },
            )
        )
    rows.sort(key=lambda r: (r[0], r[1]["type"], r[1]["outlet_ids"]))
    return [{"id": f"pat-{n:06d}", **row} for n, (_, row) in enumerate(rows, start=1)]


def summary(
    *,
    seed: int,
    outlets: int,
    days: int,
    start: str,
    lines: int,
    kinds: Counter[str],
    statuses: Counter[str],
    redeliveries: int,
    late_completed: int,
    labels: list[dict[str, Any]],
    patterns: list[dict[str, Any]],
    malformed: list[dict[str, Any]],
    regions: int,
) -> dict[str, Any]:
    """summary.json: what the run contains (no timings, so it is deterministic)."""
    by_type = Counter(label["type"] for label in labels)
    return {
        "seed": seed,
        "outlets": outlets,
        "days": days,
        "start": start,
        "regions": regions,
        "lines": lines,
        "events_by_kind": {k: kinds[k] for k in ("order", "settlement")},
        "orders_by_status": {
            s: statuses[s] for s in ("created", "dispatched", "completed", "cancelled")
        },
        "redeliveries": redeliveries,
        "late_completed": late_completed,
        "malformed": len(malformed),
        "malformed_by_defect": dict(sorted(Counter(m["defect"] for m in malformed).items())),
        "anomalies_by_type": {t: by_type[t] for t in ANOMALY_TYPES},
        "anomalous_settlements": sum(len(label["settlement_ids"]) for label in labels),
        "patterns_by_type": dict(sorted(Counter(p["type"] for p in patterns).items())),
    }
