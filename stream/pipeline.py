"""What the stream worker does with a batch of messages, without Faust: decode (bad input
to the dead letter), send events that are not on their outlet's partition to the re-key
topic, run the detection engine, build alerts. The Faust agent (``stream/app.py``) only
feeds batches in and publishes what comes out, so this is tested without a broker.

Time: the engine runs on event time. When one input goes quiet on a partition (no order
events, say, while settlements flow), ``tick`` moves that input's time up to the other's
after ``idle_seconds`` of wall-clock silence: nothing older is coming, so grace checks may
go on. When the whole partition is quiet, its event time follows the wall clock from its
last event, so a claim whose order never completes is still flagged.
"""

from __future__ import annotations

import importlib
import logging
import math
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Executor, Future
from dataclasses import dataclass, field

import orjson
from prometheus_client import Gauge

from alerts.build import build_alert, recent_claims
from alerts.metrics import Metrics
from config.rules import Rules
from models.decode import Rejection
from models.detectors.base import Context
from models.detectors.forest import ForestModel, train_forest
from models.engine import Engine
from models.events import OrderEvent
from models.findings import Finding
from models.verdicts import VerdictError, verdict_from_dict
from stream.dead_letter import KafkaOrigin, dead_letter_record
from stream.intake import Intake
from stream.table_stores import TableStores

log = logging.getLogger(__name__)

RATING_FIGURES = (
    "settlements",
    "alerts",
    "confirmed",
    "dismissed",
    "compliance_rate",
    "anomaly_rate",
    "stars",
)
"""Rating figures exported as ``settleguard_outlet_rating{figure}`` gauges."""


@dataclass(frozen=True, slots=True)
class Message:
    """One consumed Kafka message."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    timestamp: float | None = None  # Kafka's, epoch seconds


@dataclass
class Outputs:
    """What a batch produces: (key, value) pairs per destination; re-keyed events also
    carry the partition they must go to."""

    alerts: list[tuple[bytes, bytes]] = field(default_factory=list)
    dead_letters: list[tuple[bytes | None, bytes]] = field(default_factory=list)
    rekeyed: list[tuple[int, bytes, bytes]] = field(default_factory=list)
    ratings: list[tuple[int, bytes, bytes]] = field(default_factory=list)


class Pipeline:
    """Decode, re-key, detect and build alerts for the partitions this worker owns."""

    def __init__(
        self,
        rules: Rules,
        stores: TableStores,
        metrics: Metrics,
        rekey_topic: str,
        verdicts_topic: str,
        idle_seconds: float = 60.0,
        initial_forest: ForestModel | None = None,
        clock: Callable[[], float] = time.time,
        training: Executor | None = None,
    ) -> None:
        """``training`` retrains forests away from the event loop (the worker gives a
        process: fitting in a thread holds the GIL for seconds); None trains inline."""
        self.stores = stores
        self.metrics = metrics
        self.intake = Intake(metrics)
        self.training = training
        trainer = self._train if training is not None else None
        self.engine = Engine(rules, stores, trainer, initial_forest, on_claim=self._claimed)
        metrics.rules_in_force.info({"rule_version": rules.rule_version})
        self.rekey_topic = rekey_topic
        self.verdicts_topic = verdicts_topic
        self.idle_seconds = idle_seconds
        self.clock = clock
        # partition -> wall-clock time an order event / a settlement was last processed
        self.last_order: dict[int, float] = {}
        self.last_settlement: dict[int, float] = {}
        # partition -> its latest event time, as of the last event processed
        self.latest: dict[int, float] = {}
        self._claim_gauges: dict[str, tuple[Gauge, Gauge]] = {}  # outlet -> claimed, expected

    def _train(self, rows: list[list[float]], generation: int) -> Future[ForestModel]:
        """Retrain a forest in ``training``; the engine installs it a few hundred claims
        later, at the same point replay does."""
        assert self.training is not None
        return self.training.submit(train_forest, rows, self.rules.forest, generation)

    @property
    def rules(self) -> Rules:
        return self.engine.rules

    def use_rules(self, rules: Rules) -> None:
        """Judge every event processed from now on by ``rules``."""
        if rules.rule_version != self.rules.rule_version:
            log.info("rules %s -> %s", self.rules.rule_version, rules.rule_version)
            self.engine.use_rules(rules)
            self.metrics.rules_in_force.info({"rule_version": rules.rule_version})

    def process(self, messages: Iterable[Message]) -> Outputs:
        """Run a batch of messages through intake and the engine."""
        out = Outputs()
        now = self.clock()
        partition_of = self.stores.partition_of
        for message in messages:
            if message.topic == self.verdicts_topic:
                self._verdict(message, out)
                continue
            event = self.intake.admit(message.value)
            if isinstance(event, Rejection):
                origin = KafkaOrigin(message.topic, message.partition, message.offset)
                log.warning("dead letter %s:%s@%s: %s", *origin.as_dict().values(), event)
                dead = self.intake.dead_letter(message.value, event, origin)
                out.dead_letters.append((message.key, dead.record))
                continue
            partition = partition_of(event.outlet_id)
            if partition != message.partition and message.topic != self.rekey_topic:
                out.rekeyed.append((partition, event.outlet_id.encode(), message.value))
                self.metrics.rekeyed.inc()
                continue
            seen = self.last_order if isinstance(event, OrderEvent) else self.last_settlement
            seen[partition] = now
            self.last_order.setdefault(partition, now)
            self.last_settlement.setdefault(partition, now)
            redeliveries = self.engine.redeliveries
            self._publish(self.engine.process(event, partition), out, now, message.timestamp)
            self.metrics.redeliveries.inc(self.engine.redeliveries - redeliveries)
            self.latest[partition] = max(self.latest.get(partition, event.ts), event.ts)
        return out

    def _verdict(self, message: Message, out: Outputs) -> None:
        """Apply a reviewer's verdict (relayed by stream/verdict_relay.py) to its outlet."""
        origin = KafkaOrigin(message.topic, message.partition, message.offset)
        try:
            verdict = verdict_from_dict(orjson.loads(message.value))
            if self.stores.partition_of(verdict.outlet_id) != message.partition:
                raise VerdictError(f"outlet {verdict.outlet_id} is not on this partition")
        except (orjson.JSONDecodeError, VerdictError) as exc:
            log.warning("bad verdict %s:%s@%s: %s", *origin.as_dict().values(), exc)
            self.metrics.dead_letters.labels("bad_verdict").inc()
            rejection = Rejection("bad_verdict", str(exc))
            out.dead_letters.append(
                (message.key, dead_letter_record(message.value, rejection, origin))
            )
            return
        if self.engine.apply_verdict(verdict, message.partition):
            self.metrics.verdicts.labels(verdict.verdict).inc()

    def ratings(self) -> list[tuple[int, bytes, bytes]]:
        """(partition, outlet key, figures JSON) of every outlet whose rating figures changed
        since the last call; the rating gauges are set to the same figures."""
        out = []
        partition_of = self.stores.partition_of
        for outlet_id in sorted(self.engine.drain_rated()):
            partition = partition_of(outlet_id)
            figures = self.engine.rating_of(outlet_id, partition)
            if figures is None:
                continue
            for figure in RATING_FIGURES:
                value = figures[figure]
                if value is not None:
                    self.metrics.outlet_rating.labels(outlet_id, figure).set(value)
            for kind, alerts in figures["alerts_by_kind"].items():
                self.metrics.outlet_alerts.labels(outlet_id, kind).set(alerts)
            out.append((partition, outlet_id.encode(), orjson.dumps(figures)))
        return out

    def note_model_versions(self) -> None:
        """Export the model version in force on each partition this worker has read."""
        for partition in self.last_order:
            forest = self.stores.forest(partition) or self.engine.initial_forest
            version = forest.version if forest is not None else "none"
            self.metrics.model_version.labels(str(partition)).info({"model_version": version})

    def _claimed(self, ctx: Context, findings: list[Finding]) -> None:
        """The outlet drill-down's gauges: the claim and what its baseline expected."""
        claim = ctx.claim
        assert claim is not None
        expected = 0.0
        for quantity in claim.quantities:
            if quantity.family in ("service", "other"):
                expected += math.expm1(quantity.mean) if quantity.weight else quantity.shown
            elif quantity.family == "part":
                unit = math.expm1(quantity.mean) if quantity.weight else quantity.shown
                expected += unit * claim.charged_parts.get(quantity.key.removeprefix("part|"), 1)
        outlet_id = ctx.outlet.outlet_id
        gauges = self._claim_gauges.get(outlet_id)
        if gauges is None:  # labels() costs more than the set: bound once per outlet
            labels = self.metrics.outlet_claim.labels
            gauges = self._claim_gauges[outlet_id] = (
                labels(outlet_id, "claimed"),
                labels(outlet_id, "expected"),
            )
        gauges[0].set(claim.amount)
        gauges[1].set(round(expected, 2))

    def tick(self) -> Outputs:
        """Advance the event time of quiet inputs (see the module docstring)."""
        out = Outputs()
        now = self.clock()
        for partition in list(self.last_order):
            part = self.stores.partition(partition)
            if part is None:
                continue
            order_quiet = now - self.last_order[partition] > self.idle_seconds
            settlement_quiet = now - self.last_settlement[partition] > self.idle_seconds
            order_time, settlement_time = part.order_time, part.settlement_time
            if order_quiet and settlement_quiet:
                last = max(self.last_order[partition], self.last_settlement[partition])
                order_time = settlement_time = self.latest[partition] + (now - last)
            elif order_quiet:
                order_time = settlement_time
            elif settlement_quiet:
                settlement_time = order_time
            else:
                continue
            self._publish(self.engine.advance(partition, order_time, settlement_time), out, now)
        return out

    def forget(self) -> None:
        """Partitions moved: drop the state held for them (it is read back on demand)."""
        self.stores.forget()
        metrics = self.metrics
        for per_partition in (
            metrics.outlet_rating,
            metrics.outlet_alerts,
            metrics.outlet_claim,
            metrics.model_version,
        ):
            per_partition.clear()  # the new owners publish these
        self._claim_gauges.clear()
        self.last_order.clear()
        self.last_settlement.clear()
        self.latest.clear()

    def _publish(
        self, findings: list[Finding], out: Outputs, now: float, arrived: float | None = None
    ) -> None:
        for finding in findings:
            outlet = self.stores.outlet(finding.outlet_id)
            alert = build_alert(finding, self.rules, now, recent_claims(outlet))
            self.metrics.alerts.labels(alert["kind"], alert["severity"]).inc()
            self.metrics.event_time_to_alert.observe(max(0.0, now - finding.ts))
            if arrived is not None:
                self.metrics.arrival_to_alert.observe(max(0.0, self.clock() - arrived))
            out.alerts.append((finding.outlet_id.encode(), orjson.dumps(alert)))


def warm_up_training() -> None:
    """Import scikit-learn in a training process before the first forest is due."""
    importlib.import_module("sklearn.ensemble")
