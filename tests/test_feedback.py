"""Reviewers' verdicts in the engine: applied once, dismissals teach the outlet's level,
confirmations withdraw it, and the rating figures of a small hand-made stream."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from config.rules import Rules
from models.engine import Engine
from models.feedback import strength
from models.memory_stores import MemoryStores
from models.verdicts import VerdictError, verdict_from_dict
from stream.evaluate import evaluate
from stream.replay import replay_files
from stream.simulated_review import SimulatedReviewer
from stream.simulator import SimulationConfig, simulate
from stream.simulator.output import write_outputs
from tests.events_factory import EventFactory, rfc3339


def verdict_on(alert: dict[str, object], verdict: str) -> dict[str, object]:
    """A verdict record as the relay publishes it."""
    return {
        "alert_id": alert["alert_id"],
        "verdict": verdict,
        "reviewer": "r1",
        "reason": "checked",
        "decided_at": "2026-07-20T10:00:00+08:00",
        "alert": alert,
    }


def amount_alert(outlet_id: str, labor: float, expected: float, at: float) -> dict[str, object]:
    """An amount_spike alert about a labour charge, as the engine writes one."""
    return {
        "alert_id": f"sg-{outlet_id}-{labor}-{at}",
        "kind": "amount_spike",
        "score": 70.0,
        "outlet_id": outlet_id,
        "event_time": rfc3339(at),
        "reasons": [
            {
                "detector": "amount",
                "feature": "repair|air_conditioner|labor",
                "value": labor,
                "expected": expected,
                "message": "labour above the usual",
            }
        ],
    }


def engine_with_history(f: EventFactory, days: int = 20) -> tuple[Engine, MemoryStores]:
    """An engine that has seen ``days`` of ordinary 150 CNY repairs of one outlet."""
    stores = MemoryStores()
    engine = Engine(Rules(), stores)
    for day in range(days):
        at = day * 24.0
        for event in f.job(day, at, labor=150.0):
            engine.process(event, 0)
    return engine, stores


def labour_z(engine: Engine, f: EventFactory, labor: float, at: float) -> float:
    """The z-score the amount detector would give a labour charge now."""
    seen: list[float] = []

    def observe(ctx, findings) -> None:  # type: ignore[no-untyped-def]
        seen.extend(q.z for q in ctx.claim.quantities if q.family == "labor")

    engine.on_claim = observe
    for event in f.job(10_000 + int(at * 10), at, labor=labor):
        engine.process(event, 0)
    engine.on_claim = None
    return seen[0]


def test_a_dismissal_makes_the_same_level_usual_and_keeps_judging_beyond_it() -> None:
    f = EventFactory()
    engine, _ = engine_with_history(f)
    before = labour_z(engine, f, 255.0, 20 * 24.0)
    alert = amount_alert(f.outlet_id, 255.0, 150.0, 480.0)
    verdict = verdict_from_dict(verdict_on(alert, "dismissed"))
    assert engine.apply_verdict(verdict, 0)
    assert not engine.apply_verdict(verdict, 0), "a re-delivered verdict is applied once"
    repeat = labour_z(engine, f, 255.0, 21 * 24.0)
    beyond = labour_z(engine, f, 600.0, 21 * 24.0 + 1)
    assert before > 4.0
    assert repeat < 1.0
    assert beyond > 4.0, "a claim far above the cleared level is still judged"


def test_a_confirmation_withdraws_the_acceptance() -> None:
    f = EventFactory()
    engine, stores = engine_with_history(f)
    alert = amount_alert(f.outlet_id, 255.0, 150.0, 480.0)
    engine.apply_verdict(verdict_from_dict(verdict_on(alert, "dismissed")), 0)
    assert stores.outlets[f.outlet_id].accepted
    confirmed = {**alert, "alert_id": "sg-other"}
    engine.apply_verdict(verdict_from_dict(verdict_on(confirmed, "confirmed")), 0)
    assert not stores.outlets[f.outlet_id].accepted
    assert labour_z(engine, f, 255.0, 21 * 24.0) > 4.0


def test_an_acceptance_fades_with_event_time() -> None:
    f = EventFactory()
    engine, stores = engine_with_history(f)
    alert = amount_alert(f.outlet_id, 255.0, 150.0, 480.0)
    engine.apply_verdict(verdict_from_dict(verdict_on(alert, "dismissed")), 0)
    entry = stores.outlets[f.outlet_id].accepted["repair|air_conditioner|labor"]
    half_life = Rules().feedback.half_life_days * 86400.0
    assert strength(entry, entry[2], Rules().feedback) == 1.0
    assert math.isclose(strength(entry, entry[2] + half_life, Rules().feedback), 0.5)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"verdict": "maybe"}, "verdict"),
        ({"alert_id": ""}, "alert_id"),
        ({"decided_at": "yesterday"}, "decided_at"),
        ({"alert": None}, "alert"),
    ],
)
def test_bad_verdicts_are_refused_naming_the_field(change: dict[str, object], message: str) -> None:
    record = verdict_on(amount_alert("W1", 255.0, 150.0, 1.0), "dismissed") | change
    with pytest.raises(VerdictError, match=message):
        verdict_from_dict(record)


def test_rating_figures_of_a_hand_made_stream() -> None:
    """10 settlements, 2 alerts (one confirmed, one dismissed), completed jobs answered
    in 12 hours and rated 5 and 3: the documented formula, by hand."""
    f = EventFactory()
    stores = MemoryStores()
    engine = Engine(Rules(), stores)
    for n in range(10):
        at = n * 24.0
        engine.process(f.order(f"O{n}", "created", at), 0)
        rating = (5, 3)[n % 2] if n < 2 else None
        engine.process(f.order(f"O{n}", "completed", at + 12, customer_rating=rating), 0)
        engine.process(f.settlement(f"S{n}", f"O{n}", at + 13), 0)
    for n, verdict in enumerate(("confirmed", "dismissed")):
        alert = amount_alert(f.outlet_id, 151.0, 150.0, n * 24.0 + 13) | {"alert_id": f"a{n}"}
        engine.apply_verdict(verdict_from_dict(verdict_on(alert, verdict)), 0)
        engine.rated.clear()
    figures = engine.rating_of(f.outlet_id, 0)
    assert figures is not None
    assert figures["settlements"] == 10
    assert (figures["confirmed"], figures["dismissed"]) == (1, 1)
    assert figures["compliance_rate"] == 0.9
    assert figures["response_hours"] == 12.0
    assert figures["customer_rating"] == 4.0
    rules = Rules().rating
    w = rules.weights
    compliance = (0.9 - rules.compliance_floor) / (1 - rules.compliance_floor)
    anomalies = 1.0 - (max(0, figures["alerts"] - 1) / 10) / rules.anomaly_ceiling
    response = (rules.response_bad_hours - 12.0) / (
        rules.response_bad_hours - rules.response_good_hours
    )
    satisfaction = (4.0 - 1.0) / 4.0
    expected = 1 + 4 * (
        w.compliance * compliance
        + w.anomalies * max(0.0, anomalies)
        + w.response * min(1.0, response)
        + w.satisfaction * satisfaction
    ) / (w.compliance + w.anomalies + w.response + w.satisfaction)
    assert figures["stars"] == round(expected, 2)


def test_dismissals_cut_repeats_of_a_legitimate_price_step(tmp_path: Path) -> None:
    """On a simulated stream with legitimate price steps, a simulated reviewer's verdicts
    cut the false alarms on the stepped outlets by >= 80% while recall on those outlets'
    true anomalies falls by no more than 5 points."""
    config = SimulationConfig(outlets=60, days=30, seed=11, price_steps=3)
    write_outputs(simulate(config), tmp_path)
    events, labels = tmp_path / "events.jsonl", tmp_path / "labels.jsonl"
    replay_files(str(events), tmp_path / "base.jsonl", None, Rules())
    reviewer = SimulatedReviewer(labels, 24.0, "low")
    replay_files(str(events), tmp_path / "rev.jsonl", None, Rules(), reviewer=reviewer)
    assert reviewer.applied > 0
    patterns = tmp_path / "patterns.jsonl"
    base = evaluate(events, labels, tmp_path / "base.jsonl", patterns).pattern_false_positives
    after = evaluate(events, labels, tmp_path / "rev.jsonl", patterns).pattern_false_positives
    before, now = base["price_step"], after["price_step"]
    assert before.false_positives >= 50, "the pattern must alert without reviewers"
    assert now.false_positives <= 0.2 * before.false_positives
    assert before.recall is not None and now.recall is not None
    assert now.recall >= before.recall - 0.05
