"""One shared contract suite over every detector, in the manner of River's ``checks``.

Detectors are discovered, not listed: every class in the ``models.detectors`` package with
a ``name`` and ``score_one``/``learn_one`` methods is checked, so a new detector is held to
the same contract as soon as it exists. Each is observed where it really runs — inside the
Engine over a small simulated stream — by swapping the Engine's instance for a spy subclass
that records every ``score_one``/``learn_one`` call, what it returned and whether it
changed anything it must not change.
"""

from __future__ import annotations

import copy
import importlib
import inspect
import math
import pkgutil
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import jsonschema
import orjson
import pytest
from events_factory import simulated_lines, strip_optional

import models.detectors
from alerts.build import build_alert
from config.contract import load_schema
from config.rules import ForestRules, Rules, SeverityThresholds
from models.decode import Rejection, decode
from models.detectors.base import Context
from models.detectors.forest import ForestModel
from models.engine import Engine
from models.events import Event, event_to_dict
from models.findings import Finding
from models.memory_stores import MemoryStores
from models.state import OrderRecord, OutletState, PartitionState

KNOWN_DETECTORS = {"amount", "frequency", "crosscheck", "forest"}

CONTRACT_RULES = Rules(
    severity=SeverityThresholds(info=10.0),
    forest=ForestRules(min_training_rows=150, retrain_every=200, trees=30, sample_size=128),
)
"""The default rules, except that the forest trains (and retrains) within a small stream
and findings from score 10 are kept, so that every detector has findings to check."""

STREAM = {"outlets": 25, "days": 10, "seed": 6}


def discover_detectors() -> list[type]:
    """Every detector class defined in a module of the models.detectors package."""
    found: dict[str, type] = {}
    prefix = models.detectors.__name__ + "."
    for info in pkgutil.iter_modules(models.detectors.__path__, prefix):
        module = importlib.import_module(info.name)
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if cls.__module__ != module.__name__ or getattr(cls, "_is_protocol", False):
                continue
            name = getattr(cls, "name", None)
            if not (
                isinstance(name, str)
                and callable(getattr(cls, "score_one", None))
                and callable(getattr(cls, "learn_one", None))
            ):
                continue
            assert name not in found, f"two detectors are named {name!r}: {found[name]}, {cls}"
            found[name] = cls
    return [found[name] for name in sorted(found)]


DETECTORS = discover_detectors()


def events(lines: Iterable[bytes]) -> list[Event]:
    """Decode simulated lines (the simulator makes no bad ones unless asked)."""
    decoded = []
    for line in lines:
        event = decode(line)
        assert not isinstance(event, Rejection), f"bad simulated line: {event}: {line!r}"
        decoded.append(event)
    return decoded


# ---------------------------------------------------------------------- spying


@dataclass
class DetectorLog:
    """What one detector did during a run."""

    score_calls: int = 0
    learn_calls: int = 0
    returned: list[Finding] = field(default_factory=list)  # raw score_one output, unfused
    mutations: list[str] = field(default_factory=list)

    def clear(self) -> None:
        self.score_calls = self.learn_calls = 0
        self.returned.clear()
        self.mutations.clear()


def _state_bytes(ctx: Context) -> dict[str, bytes]:
    return {
        "ctx.outlet": ctx.outlet.to_bytes(),
        "ctx.partition": ctx.partition.to_bytes(),
        "ctx.record": ctx.record.to_bytes(),
    }


def _event_view(ctx: Context) -> tuple[Event, dict[str, Any]]:
    """A shallow copy (field reassignment) and the contract dict (anything nested)."""
    return copy.copy(ctx.event), event_to_dict(ctx.event)


def _changes(ctx: Context, event_before: tuple[Event, dict[str, Any]]) -> list[str]:
    event_copy, as_dict = event_before
    changed = []
    if ctx.event != event_copy:
        changed.append("event (dataclass fields)")
    if event_to_dict(ctx.event) != as_dict:
        changed.append("event (event_to_dict)")
    return changed


def spy_class(cls: type, log: DetectorLog, check: bool) -> type:
    """A subclass of detector ``cls`` recording its calls (and, with ``check``, whether
    score_one changed the event or any state, and whether learn_one changed the event)."""

    class Spy(cls):  # type: ignore[misc, valid-type]
        def score_one(self, ctx: Context) -> list[Finding]:
            if not check:
                found = super().score_one(ctx)
            else:
                event_before = _event_view(ctx)
                states_before = _state_bytes(ctx)
                claim_before = repr(ctx.claim)
                found = super().score_one(ctx)
                changed = _changes(ctx, event_before)
                after = _state_bytes(ctx)
                changed += [key for key, raw in states_before.items() if after[key] != raw]
                if repr(ctx.claim) != claim_before:
                    changed.append("ctx.claim")
                if changed:
                    log.mutations.append(
                        f"score_one({ctx.event.kind} {ctx.event.event_id}) changed "
                        + ", ".join(changed)
                    )
            log.score_calls += 1
            log.returned.extend(copy.deepcopy(found))  # as returned, before the engine fuses
            return found

        def learn_one(self, ctx: Context) -> None:
            event_before = _event_view(ctx) if check else None
            super().learn_one(ctx)
            log.learn_calls += 1
            if event_before is not None and (changed := _changes(ctx, event_before)):
                log.mutations.append(
                    f"learn_one({ctx.event.kind} {ctx.event.event_id}) changed "
                    + ", ".join(changed)
                )

    Spy.__name__ = Spy.__qualname__ = f"Spy{cls.__name__}"
    return Spy


@dataclass
class Run:
    """An Engine whose detectors are spied on, its stores, and what it found so far."""

    engine: Engine
    stores: MemoryStores
    logs: dict[str, DetectorLog]
    findings: list[Finding] = field(default_factory=list)

    def process(self, events: Iterable[Event]) -> None:
        for event in events:
            self.findings += self.engine.process(event, 0)  # one partition: the forest trains


def spied(stores: MemoryStores, check: bool) -> Run:
    """An Engine over ``stores`` whose instance of every discovered detector is replaced
    by a spy (with ``check``, one that checks for mutation)."""
    engine = Engine(CONTRACT_RULES, stores)
    logs: dict[str, DetectorLog] = {}
    for attribute, value in list(vars(engine).items()):
        for cls in DETECTORS:
            if type(value) is cls:
                logs[cls.name] = DetectorLog()
                spy = spy_class(cls, logs[cls.name], check)(CONTRACT_RULES)
                setattr(engine, attribute, spy)
    return Run(engine, stores, logs)


def run_stream(stream: list[Event], check: bool = False) -> Run:
    """Every event of ``stream`` through a fresh spied Engine."""
    run = spied(MemoryStores(), check)
    run.process(stream)
    return run


def not_run(detector: type) -> str:
    return (
        f"detector {detector.name!r} ({detector.__module__}) is not run by the Engine: "
        "give models.engine.Engine an instance of it"
    )


def log_of(run: Run, detector: type) -> DetectorLog:
    """The detector's log in ``run`` (failing clearly if the Engine never ran it)."""
    if detector.name not in run.logs:
        pytest.fail(not_run(detector))
    return run.logs[detector.name]


def signature(findings: Iterable[Finding]) -> list[tuple[str, str, str, float]]:
    return [(f.detector, f.kind, f.key, f.surprise) for f in findings]


def of(detector: type, findings: Iterable[Finding]) -> list[Finding]:
    return [f for f in findings if f.detector == detector.name]


# ---------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def stream() -> list[Event]:
    return events(simulated_lines(**STREAM))


@pytest.fixture(scope="module")
def checked_run(stream: list[Event]) -> Run:
    """The stream through spies that check for mutation."""
    return run_stream(stream, check=True)


@pytest.fixture(scope="module")
def second_run(stream: list[Event]) -> Run:
    """The same stream again, through a fresh Engine."""
    return run_stream(stream)


@pytest.fixture(scope="module")
def stripped_run() -> Run:
    """The stream with every optional field removed from every event."""
    lines = [strip_optional(line) for line in simulated_lines(**STREAM)]
    return run_stream(events(lines))


def copy_stores(stores: MemoryStores) -> MemoryStores:
    """Fresh stores holding what ``stores`` holds, through the serialised forms only."""
    restored = MemoryStores()
    restored.partition_of = stores.partition_of
    restored.outlets = {k: OutletState.from_bytes(v.to_bytes()) for k, v in stores.outlets.items()}
    restored.orders_by_partition = {
        partition: {k: OrderRecord.from_bytes(v.to_bytes()) for k, v in orders.items()}
        for partition, orders in stores.orders_by_partition.items()
    }
    restored.partitions = {
        k: PartitionState.from_bytes(v.to_bytes()) for k, v in stores.partitions.items()
    }
    restored.forests = {k: ForestModel.from_bytes(v.to_bytes()) for k, v in stores.forests.items()}
    return restored


def state_bytes(stores: MemoryStores) -> Iterator[tuple[str, bytes]]:
    for key, outlet in sorted(stores.outlets.items()):
        yield f"outlet {key}", outlet.to_bytes()
    for (outlet_id, order_id), record in sorted(stores.orders.items()):
        yield f"order {outlet_id}/{order_id}", record.to_bytes()
    for key, part in sorted(stores.partitions.items()):
        yield f"partition {key}", part.to_bytes()
    for key, model in sorted(stores.forests.items()):
        yield f"forest {key}", model.to_bytes()


@dataclass
class RoundTrip:
    """The second part of the stream through the original and a restored Engine."""

    split: int
    original: Run
    restored: Run
    forests: tuple[list[str], list[str]]  # forest versions in use, as they changed


@pytest.fixture(scope="module", params=["idle", "mid_retraining"])
def round_trip(request: pytest.FixtureRequest, stream: list[Event]) -> RoundTrip:
    """Serialise all state at the first point after half the stream where no forest
    retraining is under way ("idle"), or where one has started and is not installed yet
    ("mid_retraining": what a crash or a rebalance can interrupt); load it into fresh
    stores and a fresh Engine, and run the rest of the stream through both."""
    original = spied(MemoryStores(), check=False)
    split = len(stream) // 2
    original.process(stream[:split])
    retraining = request.param == "mid_retraining"
    while (original.stores.partitions[0].forest_pending_at is not None) != retraining:
        assert split < len(stream), f"no {request.param} point after half the stream"
        original.process(stream[split : split + 1])
        split += 1
    restored = spied(copy_stores(original.stores), check=False)
    original.findings.clear()  # compare the rest of the stream only
    for log in original.logs.values():
        log.clear()
    forests: tuple[list[str], list[str]] = ([], [])
    for event in stream[split:]:
        for run, versions in zip((original, restored), forests, strict=True):
            run.process([event])
            model = run.stores.forest(0)
            version = "none" if model is None else model.version
            if not versions or versions[-1] != version:
                versions.append(version)
    return RoundTrip(split, original, restored, forests)


ids = [cls.name for cls in DETECTORS]


# ---------------------------------------------------------------------- the checks


def test_discovery_finds_every_known_detector() -> None:
    """Discovery finds at least the four known detectors, each with a distinct name."""
    names = {cls.name for cls in DETECTORS}
    assert names >= KNOWN_DETECTORS, f"missing: {KNOWN_DETECTORS - names}"
    assert len(names) == len(DETECTORS)


@pytest.mark.parametrize("detector", DETECTORS, ids=ids)
def test_detector_is_built_from_rules_and_run_by_the_engine(
    detector: type, checked_run: Run
) -> None:
    """The detector is built from the rules alone, the Engine holds an instance of it, and
    its score_one runs on the contract stream."""
    built = detector(CONTRACT_RULES)
    assert built.name == detector.name
    engine = Engine(CONTRACT_RULES, MemoryStores())
    held = [name for name, value in vars(engine).items() if type(value) is detector]
    assert held, not_run(detector)
    assert log_of(checked_run, detector).score_calls > 0


@pytest.mark.parametrize("detector", DETECTORS, ids=ids)
def test_score_one_does_not_mutate_its_input(detector: type, checked_run: Run) -> None:
    """score_one changes neither the event nor the outlet, partition and order states nor
    the claim features; learn_one does not change the event either."""
    log = log_of(checked_run, detector)
    assert log.score_calls > 0
    assert not log.mutations, f"{len(log.mutations)} calls mutated input: {log.mutations[:5]}"


@pytest.mark.parametrize("detector", DETECTORS, ids=ids)
def test_same_stream_same_findings(detector: type, checked_run: Run, second_run: Run) -> None:
    """Two Engines over the same stream give the detector identical findings (kind, key,
    surprise), both raw from score_one and after fusion."""
    first, second = log_of(checked_run, detector), log_of(second_run, detector)
    assert signature(first.returned) == signature(second.returned)
    assert first.score_calls == second.score_calls and first.learn_calls == second.learn_calls
    assert signature(of(detector, checked_run.findings)) == signature(
        of(detector, second_run.findings)
    )


def check_findings(detector: type, findings: list[Finding], fused: bool = False) -> None:
    """Finite, in range, explained by the detector; a fused finding may also carry the
    reasons of the findings merged into it, from other detectors."""
    names = {cls.name for cls in DETECTORS}
    for finding in findings:
        assert finding.detector == detector.name, finding
        assert math.isfinite(finding.surprise), finding
        assert 0.0 <= finding.score <= 100.0, finding
        assert any(r.detector == detector.name for r in finding.reasons), (
            f"no reason by {detector.name}: {finding}"
        )
        for reason in finding.reasons:
            assert reason.detector in (names if fused else {detector.name}), reason
            assert isinstance(reason.message, str) and reason.message.strip(), reason


@pytest.mark.parametrize("detector", DETECTORS, ids=ids)
def test_findings_are_finite_scored_and_explained(detector: type, checked_run: Run) -> None:
    """Every finding of the detector (raw and fused) has a finite surprise, a 0-100 score,
    at least one reason with a message, its detector's name, and makes a valid alert."""
    raw = log_of(checked_run, detector).returned
    fused = of(detector, checked_run.findings)
    assert raw or fused, (
        f"{detector.name} found nothing on the contract stream: these checks would be "
        "vacuous; pick STREAM/CONTRACT_RULES so that it reports something"
    )
    check_findings(detector, raw)
    check_findings(detector, fused, fused=True)
    validator = jsonschema.Draft202012Validator(load_schema("alert"))
    for finding in fused:
        alert = build_alert(finding, CONTRACT_RULES, finding.ts)
        validator.validate(orjson.loads(orjson.dumps(alert)))


@pytest.mark.parametrize("detector", DETECTORS, ids=ids)
def test_missing_optional_fields(detector: type, stripped_run: Run) -> None:
    """Without region, engineer_id, parts_issued, customer_rating, travel_km and currency
    the stream runs through without errors and every finding stays finite and in range."""
    log = log_of(stripped_run, detector)
    check_findings(detector, log.returned)
    check_findings(detector, of(detector, stripped_run.findings), fused=True)
    assert all(math.isfinite(f.surprise) for f in stripped_run.findings)


def test_stripping_removes_the_optional_fields() -> None:
    """The stripped stream really lacks every optional field (so the check above checks)."""
    lines = simulated_lines(**STREAM)
    stripped = {key for line in lines for key in orjson.loads(strip_optional(line))}
    present = {key for line in lines for key in orjson.loads(line)}
    optional = {"region", "engineer_id", "parts_issued", "customer_rating", "travel_km"}
    assert optional <= present, "the simulated stream should carry the optional fields"
    assert not stripped & (optional | {"currency"})


@pytest.mark.parametrize("detector", DETECTORS, ids=ids)
def test_serialised_state_gives_the_same_findings(detector: type, round_trip: RoundTrip) -> None:
    """State serialised with to_bytes and loaded into fresh stores and a fresh Engine gives
    the detector the same findings over the rest of the stream as the original."""
    original = log_of(round_trip.original, detector)
    restored = log_of(round_trip.restored, detector)
    assert original.score_calls == restored.score_calls
    assert signature(original.returned) == signature(restored.returned)
    assert signature(of(detector, round_trip.original.findings)) == signature(
        of(detector, round_trip.restored.findings)
    )


def test_serialised_state_evolves_identically(round_trip: RoundTrip) -> None:
    """The original and the restored Engine install the same forests on the way, and
    hold byte-identical state (outlets, orders, partitions, forests) at the end."""
    in_original, in_restored = round_trip.forests
    assert len(in_original) > 1, "no forest was installed after the split: nothing checked"
    assert in_original == in_restored
    original = dict(state_bytes(round_trip.original.stores))
    restored = dict(state_bytes(round_trip.restored.stores))
    assert original.keys() == restored.keys()
    differing = [key for key in original if original[key] != restored[key]]
    assert not differing, f"{len(differing)} of {len(original)} differ, e.g. {differing[:5]}"
