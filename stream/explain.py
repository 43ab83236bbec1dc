"""Why a claim was or was not flagged (``settleguard explain``): replay the events and, for
the chosen settlements, show each judged quantity against its baseline (value, expected,
spread, evidence, z-score, surprise) and the findings. For reviewers asking "why this
alert?" and for engineers tuning detectors on missed labels or false positives."""

from __future__ import annotations

import io
import math
from pathlib import Path

import orjson

from config.rules import Rules
from models.detectors.base import Context
from models.events import SettlementEvent
from models.findings import Finding
from stream.replay import replay


def missed_settlements(labels: Path, alerts: Path, kind: str | None, limit: int) -> list[str]:
    """Settlement ids of labels (of ``kind`` when given) that no alert >= low matched."""
    flagged = set()
    for line in alerts.read_bytes().splitlines():
        alert = orjson.loads(line)
        if alert["severity"] != "info":
            flagged.update([alert["settlement_id"], *alert["settlement_ids"]])
    chosen: list[str] = []
    for line in labels.read_bytes().splitlines():
        label = orjson.loads(line)
        if kind is not None and label["type"] != kind:
            continue
        if not flagged.intersection(label["settlement_ids"]):
            chosen += label["settlement_ids"][:1]
    return chosen[:limit]


def explain(events: Path, settlement_ids: list[str], rules: Rules, partitions: int) -> str:
    """A readable account of how each of ``settlement_ids`` was judged."""
    wanted = set(settlement_ids)
    accounts: dict[str, list[str]] = {}

    def observe(ctx: Context, findings: list[Finding]) -> None:
        event = ctx.event
        assert isinstance(event, SettlementEvent) and ctx.claim is not None
        if event.settlement_id not in wanted or event.settlement_id in accounts:
            return
        lines = [
            f"{event.settlement_id}  outlet {event.outlet_id}  {event.event_time}  "
            f"{ctx.claim.segment}  amount {event.amount:,.2f}"
        ]
        for q in ctx.claim.quantities:
            tail = ctx.partition.tails.get(f"amount.{q.family}")
            surprise = tail.surprise(q.z) if tail is not None else 0.0
            expected = math.expm1(q.mean) if q.weight else float("nan")
            lines.append(
                f"  {q.key:42s} value {q.shown:10,.2f}  expected {expected:10,.2f}  "
                f"spread x{math.exp(q.sd):.2f}  evidence {q.weight:7.1f}  z {q.z:6.2f}  "
                f"surprise {surprise:5.2f}"
            )
        found = ", ".join(f"{f.kind} {f.score:.1f}" for f in findings) or "none"
        lines.append(f"  findings at arrival: {found}")
        accounts[event.settlement_id] = lines

    with events.open("rb") as stream:
        replay(stream, str(events), io.BytesIO(), None, rules, partitions, on_claim=observe)
    out = []
    for settlement_id in settlement_ids:
        out += accounts.get(settlement_id, [f"{settlement_id}: not found in {events}"])
    return "\n".join(out) + "\n"
