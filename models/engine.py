"""The detection engine: one event in, findings out, state updated — the code replay and
the stream worker share. It owns the order of operations that keeps the detectors honest:

1. drop re-deliveries (same ``event_id`` already in the order's record);
2. advance the partition's event-time watermark (the slower of its two inputs) and run
   the grace checks it has passed;
3. order events: update the order's lifecycle; judge quick completions for bursts; count
   other completions in the activity profiles (models/season.py);
4. settlements: take the claim apart, judge it against baselines, run every detector,
   and learn from it only if nothing was flagged (a flagged claim never moves a baseline
   up: only its quantities below their baselines are learned);
5. fuse: one finding per cause and settlement (a forest finding on a claim already
   explained by an amount finding adds nothing), drop what scores below ``info``;
6. now and then: expire old orders, retrain the partition's forest.

State lives behind ``Stores`` so replay can keep live objects in dicts and the worker can
keep bytes in Faust tables. Nothing here reads a clock: time is event time.
"""

from __future__ import annotations

import dataclasses
import heapq
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, Protocol

import orjson

from config.rules import Rules
from models import baselines, feedback, rating, season
from models.decode import decode
from models.detectors.amount import AmountDetector
from models.detectors.base import DAY, Context
from models.detectors.crosscheck import CrossCheckDetector
from models.detectors.forest import ForestDetector, ForestModel, offer, train_forest
from models.detectors.frequency import FrequencyDetector
from models.events import Event, OrderEvent, SettlementEvent, event_to_dict
from models.features import claim_features
from models.findings import Finding, Reason
from models.state import OrderRecord, OutletState, PartitionState
from models.verdicts import Verdict

EXPIRY_SWEEP_SECONDS = DAY
RECENT_CLAIMS = 30
"""Latest claims kept per outlet, for the chart in alert mails (``recent_claims``)."""
FOREST_INSTALL_LAG = 200
"""Settlements between starting a retraining and installing its forest: time for the
worker to train in the background, at a point that replay reproduces exactly."""


class Stores(Protocol):
    """Where the engine finds and keeps state (see stream/replay.py, stream/state.py)."""

    def outlet(self, outlet_id: str) -> OutletState | None: ...
    def put_outlet(self, state: OutletState) -> None: ...
    def order(self, outlet_id: str, order_id: str) -> OrderRecord | None: ...
    def put_order(self, outlet_id: str, order_id: str, record: OrderRecord) -> None: ...
    def expire_orders(self, partition: int, before: float) -> int: ...
    def partition(self, partition: int) -> PartitionState | None: ...
    def put_partition(self, state: PartitionState) -> None: ...
    def forest(self, partition: int) -> ForestModel | None: ...
    def put_forest(self, partition: int, model: ForestModel) -> None: ...


Trainer = Callable[[list[list[float]], int], "ForestModel | Future[ForestModel]"]
"""Trains a forest from reservoir rows and a generation number, now or in the background
(a future, awaited when the forest is installed)."""
ClaimObserver = Callable[[Context, list[Finding]], None]


class Engine:
    """Runs every detector over one event at a time against the given stores."""

    def __init__(
        self,
        rules: Rules,
        stores: Stores,
        trainer: Trainer | None = None,
        initial_forest: ForestModel | None = None,
        on_claim: ClaimObserver | None = None,
    ) -> None:
        """``initial_forest`` (from ``settleguard train``) serves every partition until the
        partition has retrained its own; ``on_claim`` sees every settlement as judged (its
        quantities against their baselines, and the findings), for explanations."""
        self.initial_forest = initial_forest
        self.on_claim = on_claim
        self.stores = stores
        self.custom_trainer = trainer
        self.pending_forests: dict[int, ForestModel | Future[ForestModel]] = {}
        self.redeliveries = 0
        self.rated: set[str] = set()  # outlets whose rating figures changed (drain_rated)
        self.use_rules(rules)

    def use_rules(self, rules: Rules) -> None:
        """Judge every event processed from now on by ``rules`` (state is kept as is)."""
        self.rules = rules
        self.amount = AmountDetector(rules)
        self.frequency = FrequencyDetector(rules)
        self.crosscheck = CrossCheckDetector(rules)
        self.forest = ForestDetector(rules)
        self.trainer: Trainer = self.custom_trainer or (
            lambda rows, generation: train_forest(rows, rules.forest, generation)
        )

    # ------------------------------------------------------------------ entry point

    def process(self, event: Event, partition: int) -> list[Finding]:
        """Judge ``event`` (read from ``partition``) and learn from it; return findings."""
        part = self._partition(partition, event.ts)
        record = self.stores.order(event.outlet_id, event.order_id)
        if record is not None and event.event_id in record.event_ids:
            self.redeliveries += 1
            return []
        if record is None:
            record = OrderRecord()
        record.event_ids.append(event.event_id)
        record.last_ts = max(record.last_ts, event.ts)
        outlet = self._outlet(event)
        ctx = Context(event, outlet, part, record)
        findings = self._order(ctx) if isinstance(event, OrderEvent) else self._settlement(ctx)
        self.stores.put_order(event.outlet_id, event.order_id, record)
        self.stores.put_outlet(outlet)
        if isinstance(event, OrderEvent):
            findings += self._advance(part, max(part.order_time, event.ts), part.settlement_time)
        else:
            findings += self._advance(part, part.order_time, max(part.settlement_time, event.ts))
        self.stores.put_partition(part)
        return self._counted(self._fuse(findings))

    def advance(self, partition: int, order_time: float, settlement_time: float) -> list[Finding]:
        """Move a partition's event time without an event (an input has gone quiet, so
        nothing older is coming on it): run the grace checks passed; return findings."""
        part = self.stores.partition(partition)
        if part is None:
            return []
        findings = self._advance(
            part, max(part.order_time, order_time), max(part.settlement_time, settlement_time)
        )
        self.stores.put_partition(part)
        return self._counted(self._fuse(findings))

    def apply_verdict(self, verdict: Verdict, partition: int) -> bool:
        """Apply a reviewer's verdict to its outlet (models/feedback.py, models/rating.py);
        False when it was applied before (verdicts are relayed at least once)."""
        outlet = self.stores.outlet(verdict.outlet_id)
        part = self.stores.partition(partition)
        if outlet is None or part is None:
            return False  # nothing known of the outlet: nothing to teach
        if not feedback.remember_applied(outlet, verdict.alert_id):
            return False
        levels = feedback.dismissal_levels(verdict.kind, verdict.reasons, verdict.score)
        if verdict.verdict == "dismissed":
            feedback.dismiss(outlet, part, levels, verdict.event_ts, self.rules.feedback)
            self._count(outlet, verdict.event_ts, rating.DISMISSED)
        else:
            feedback.confirm(outlet, part, levels)
            self._count(outlet, verdict.event_ts, rating.CONFIRMED)
        self.rated.add(outlet.outlet_id)
        self.stores.put_outlet(outlet)
        self.stores.put_partition(part)
        return True

    def rating_of(self, outlet_id: str, partition: int) -> dict[str, Any] | None:
        """The outlet's rating figures as of its partition's latest event time."""
        outlet, part = self.stores.outlet(outlet_id), self.stores.partition(partition)
        if outlet is None or part is None:
            return None
        rating.prune(outlet, part.latest, self.rules.rating)
        return rating.figures(outlet, part.latest, self.rules.rating)

    def drain_rated(self) -> set[str]:
        """The outlets whose rating figures changed since the last call."""
        rated, self.rated = self.rated, set()
        return rated

    def _count(self, outlet: OutletState, ts: float, counter: str, amount: float = 1.0) -> None:
        """Count in the outlet's rating (models/rating.py). A day's first count also drops
        the days gone out of the window, so the state holds the window's days only."""
        if rating.count(outlet, ts, counter, amount):
            rating.prune(outlet, ts, self.rules.rating)

    def _counted(self, findings: list[Finding]) -> list[Finding]:
        """Count the findings reviewers will see (``low`` and up) in their outlets' ratings."""
        low = self.rules.severity.low
        for finding in findings:
            if finding.score >= low:
                outlet = self.stores.outlet(finding.outlet_id)
                if outlet is not None:
                    self._count(outlet, finding.ts, rating.ALERTS + finding.kind)
                    self.stores.put_outlet(outlet)
                    self.rated.add(finding.outlet_id)
        return findings

    # ------------------------------------------------------------------ order events

    def _order(self, ctx: Context) -> list[Finding]:
        event, record = ctx.event, ctx.record
        assert isinstance(event, OrderEvent)
        record.service_type = event.service_type
        record.product_category = event.product_category
        if event.engineer_id is not None:
            record.engineer_id = event.engineer_id
        if event.status == "created":
            record.created_ts = event.ts
        elif event.status == "completed":
            record.completed_ts = event.ts
            self._count_completion(ctx)
            if event.parts_issued is not None:
                issued: dict[str, int] = {}
                for part in event.parts_issued:
                    issued[part.part_code] = issued.get(part.part_code, 0) + part.quantity
                record.parts_issued = issued
        elif event.status == "cancelled":
            record.cancelled_ts = event.ts
        if self.frequency.is_quick_completion(ctx):
            return self._burst(ctx)
        if event.status == "completed" and self.rules.season.enabled:
            season.learn(ctx.outlet, ctx.partition, event, self.rules.season)
        return []

    def _count_completion(self, ctx: Context) -> None:
        """A completed job in its outlet's rating: response time and customer rating."""
        event, record, outlet = ctx.event, ctx.record, ctx.outlet
        assert isinstance(event, OrderEvent)
        if record.created_ts is not None:
            self._count(outlet, event.ts, rating.COMPLETED)
            hours = max(0.0, event.ts - record.created_ts) / 3600.0
            self._count(outlet, event.ts, rating.RESPONSE_HOURS, hours)
        if event.customer_rating is not None:
            self._count(outlet, event.ts, rating.RATINGS)
            self._count(outlet, event.ts, rating.RATING_SUM, event.customer_rating)
        self.rated.add(outlet.outlet_id)

    def _burst(self, ctx: Context) -> list[Finding]:
        """A quick completion: part of an ongoing flagged burst, a new burst, or usual."""
        event = ctx.event
        assert isinstance(event, OrderEvent) and event.engineer_id is not None
        activity, recent = self.frequency.window(ctx)
        # ongoing: a burst was flagged and other quick jobs of it are still in the window
        if activity is not None and activity.alerted_burst is not None and len(recent) > 1:
            # The burst grows: its claims are judged by the strongest evidence so far.
            surprise = self.frequency.surprise(ctx)[0]
            activity.burst_surprise = max(activity.burst_surprise, surprise)
            ctx.record.burst = [activity.alerted_burst, activity.burst_surprise]
            self.frequency.remember(ctx, usual=False)
            return self._claims_read_ahead(event, event.order_id, ctx.record)
        findings = self._accepted_burst(ctx, self.frequency.score_one(ctx))
        if not findings:
            if activity is not None:
                activity.alerted_burst = None
            self.frequency.learn_one(ctx)
            return []
        burst = findings[0]
        self.frequency.remember(ctx, usual=False)
        activity = ctx.outlet.engineers[event.engineer_id]
        activity.alerted_burst, activity.burst_surprise = burst.key, burst.surprise
        ctx.record.burst = [burst.key, burst.surprise]
        findings += self._claims_read_ahead(event, event.order_id, ctx.record)
        for _, order_id in activity.recent:
            if order_id != event.order_id:
                findings += self._mark_burst(event, str(order_id), burst)
        return findings

    def _accepted_burst(self, ctx: Context, findings: list[Finding]) -> list[Finding]:
        """A burst like the ones reviewers dismissed for this engineer is usual."""
        event = ctx.event
        assert isinstance(event, OrderEvent) and event.engineer_id is not None
        for finding in findings:
            finding.surprise = feedback.judge_burst(
                ctx.outlet, event.engineer_id, finding.surprise, event.ts, self.rules.feedback
            )
        return [f for f in findings if f.score >= self.rules.severity.low]

    def _mark_burst(self, trigger: OrderEvent, order_id: str, burst: Finding) -> list[Finding]:
        record = self.stores.order(trigger.outlet_id, order_id)
        if record is None:
            return []
        record.burst = [burst.key, burst.surprise]
        self.stores.put_order(trigger.outlet_id, order_id, record)
        return self._claims_read_ahead(trigger, order_id, record)

    def _claims_read_ahead(
        self, trigger: OrderEvent, order_id: str, record: OrderRecord
    ) -> list[Finding]:
        """Claims for a burst's order read before the burst was seen (settlements may be
        read ahead of the order events): flagged now, as of the order event that revealed
        the burst."""
        assert record.burst is not None
        key, surprise = str(record.burst[0]), float(record.burst[1])
        return [
            self._burst_claim(
                trigger.outlet_id,
                order_id,
                settlement_id,
                trigger.event_time,
                trigger.ts,
                key,
                surprise,
            )
            for settlement_id in record.settlements
        ]

    # ------------------------------------------------------------------ settlements

    def _settlement(self, ctx: Context) -> list[Finding]:
        event, record = ctx.event, ctx.record
        assert isinstance(event, SettlementEvent)
        ctx.forest = self._forest(ctx.partition.partition)  # order events never need it
        claim = ctx.claim = claim_features(event)
        baselines.judge(claim, ctx.outlet, ctx.partition, self.rules.baselines, event.ts)
        feedback.judge_claim(claim, ctx.outlet, ctx.partition, event.ts, self.rules.feedback)
        self._count_claim(ctx.outlet, event)
        findings = self.crosscheck.score_one(ctx)
        record.settlements[event.settlement_id] = event.ts
        if record.burst is not None:
            key, surprise = str(record.burst[0]), float(record.burst[1])
            activity = ctx.outlet.engineers.get(record.engineer_id or "")
            if activity is not None and activity.alerted_burst == key:
                surprise = max(surprise, activity.burst_surprise)  # the burst grew since
            findings.append(
                self._burst_claim(
                    event.outlet_id,
                    event.order_id,
                    event.settlement_id,
                    event.event_time,
                    event.ts,
                    key,
                    surprise,
                )
            )
        if self.rules.amount.enabled:
            findings += self.amount.score_one(ctx)
        findings += self.forest.score_one(ctx)
        if self.on_claim is not None:
            self.on_claim(ctx, findings)
        if self.crosscheck.needs_grace(ctx):
            due = event.ts + self.rules.crosscheck.grace_hours * 3600.0
            heapq.heappush(
                ctx.partition.pending,
                [due, event.outlet_id, event.order_id, orjson.dumps(event_to_dict(event)).decode()],
            )
        if not self._flagged(findings):
            baselines.learn(claim, ctx.outlet, ctx.partition, self.rules.baselines, event.ts)
            self.amount.learn_one(ctx)
            self.forest.learn_one(ctx)
            self._maybe_retrain(ctx.partition)
        else:
            self._learn_below(ctx)
        return findings

    def _learn_below(self, ctx: Context) -> None:
        """A flagged claim still teaches the baselines its quantities that lie *below*
        them. A flagged claim is kept out so that an inflation never becomes the norm; a
        level learned lower can only make later claims look dearer, never hide one. Without
        this an outlet whose tariff in a segment is below its peers' is flagged at every
        claim of it for ever (its own level is never learned; seen: 19 alerts on one
        outlet), which made low multivariate scores far less precise than other kinds'.
        Below the baseline's level, not merely a negative z: a z lowered by a reviewer's
        dismissal (models/feedback.py) may stand for a value above the level."""
        claim = ctx.claim
        assert claim is not None
        below = [q for q in claim.quantities if q.weight > 0 and q.value < q.mean]
        if below:
            lower = dataclasses.replace(claim, quantities=below)
            baselines.learn(lower, ctx.outlet, ctx.partition, self.rules.baselines, ctx.event.ts)

    def _count_claim(self, outlet: OutletState, event: SettlementEvent) -> None:
        """A settlement in its outlet's rating and recent claims."""
        self._count(outlet, event.ts, rating.SETTLEMENTS)
        outlet.recent.append([event.ts, event.amount])
        del outlet.recent[:-RECENT_CLAIMS]
        self.rated.add(outlet.outlet_id)

    def _flagged(self, findings: list[Finding]) -> bool:
        """Whether the claim is kept out of every baseline: an amount finding of any
        severity (an amount barely noted may still be the inflation it looks like), or a
        multivariate one an alert would show a reviewer (``low`` and up)."""
        severity = self.rules.severity
        return any(
            (f.kind == "amount_spike" and f.score >= severity.info)
            or (f.kind == "multivariate_outlier" and f.score >= severity.low)
            for f in findings
        )

    def _burst_claim(
        self,
        outlet_id: str,
        order_id: str,
        settlement_id: str,
        event_time: str,
        ts: float,
        key: str,
        surprise: float,
    ) -> Finding:
        return Finding(
            kind="frequency_spike",
            detector=self.frequency.name,
            surprise=surprise,
            outlet_id=outlet_id,
            key=settlement_id,
            event_time=event_time,
            ts=ts,
            settlement_id=settlement_id,
            order_id=order_id,
            settlement_ids=[settlement_id],
            reasons=[
                Reason(
                    detector=self.frequency.name,
                    feature="burst",
                    value=key,
                    message=f"claims order {order_id}, one of a burst of quick jobs flagged "
                    f"(engineer, first order: {key.removeprefix('burst|')})",
                )
            ],
        )

    # ------------------------------------------------------------------ time passing

    def _advance(
        self, part: PartitionState, order_time: float, settlement_time: float
    ) -> list[Finding]:
        """Note each input's event time; when the watermark (the slower input's time)
        moves, run the grace checks and sweeps it has passed."""
        part.order_time, part.settlement_time = order_time, settlement_time
        part.latest = max(part.order_time, part.settlement_time)
        ts = min(part.order_time, part.settlement_time)
        if ts <= part.watermark:
            return []
        previous, part.watermark = part.watermark, ts
        findings: list[Finding] = []
        while part.pending and part.pending[0][0] <= ts:
            _, outlet_id, order_id, raw = heapq.heappop(part.pending)
            findings += self._after_grace(part, outlet_id, order_id, raw)
        if previous and int(previous // EXPIRY_SWEEP_SECONDS) != int(ts // EXPIRY_SWEEP_SECONDS):
            retention = self.rules.crosscheck.order_retention_days * DAY
            self.stores.expire_orders(part.partition, ts - retention)
        return findings

    def _after_grace(
        self, part: PartitionState, outlet_id: str, order_id: str, raw: str
    ) -> list[Finding]:
        event = decode(raw.encode())
        assert isinstance(event, SettlementEvent), "pending checks hold settlements"
        record = self.stores.order(outlet_id, order_id) or OrderRecord()
        outlet = self.stores.outlet(outlet_id) or OutletState(outlet_id, event.region)
        ctx = Context(event, outlet, part, record, claim_features(event))
        return self.crosscheck.after_grace(ctx, part.started or event.ts)

    def _maybe_retrain(self, part: PartitionState) -> None:
        """Start a retraining every ``retrain_every`` claims; install it a little later."""
        rules = self.rules.forest
        if not rules.enabled:
            return
        if part.forest_pending_at is None:
            due = part.forest_seen >= rules.min_training_rows and (
                self._forest(part.partition) is None or part.forest_seen % rules.retrain_every == 0
            )
            if due:
                part.forest_pending_at = part.forest_seen
                self.pending_forests[part.partition] = self.trainer(
                    [list(row) for row in part.forest_rows], part.forest_generation
                )
            return
        if part.forest_seen + len(part.forest_queue) < part.forest_pending_at + FOREST_INSTALL_LAG:
            return
        pending = self.pending_forests.pop(part.partition, None)
        if pending is None:  # started before a restart: train again from the frozen rows
            pending = self.trainer([list(row) for row in part.forest_rows], part.forest_generation)
        model = pending.result() if isinstance(pending, Future) else pending
        self.stores.put_forest(part.partition, model)
        part.forest_generation += 1
        part.forest_pending_at = None
        queued, part.forest_queue = part.forest_queue, []
        for vector in queued:
            offer(part, vector, rules)

    # ------------------------------------------------------------------ helpers

    def _partition(self, partition: int, ts: float) -> PartitionState:
        part = self.stores.partition(partition)
        if part is None:
            part = PartitionState(partition)
        if part.started is None:
            part.started = ts
        return part

    def _forest(self, partition: int) -> ForestModel | None:
        return self.stores.forest(partition) or self.initial_forest

    def _outlet(self, event: Event) -> OutletState:
        outlet = self.stores.outlet(event.outlet_id)
        if outlet is None:
            outlet = OutletState(event.outlet_id, event.region)
            outlet.first_ts = event.ts
        elif event.region is not None:
            outlet.region = event.region
        return outlet

    def _fuse(self, findings: list[Finding]) -> list[Finding]:
        """One finding per cause and settlement, each scoring at least ``info``.

        An amount spike and a multivariate outlier on one claim are one cause seen two
        ways (an inflated line makes the claim's shape odd too): the stronger is kept and
        the other's reasons are added to it.
        """
        if not findings:  # the usual case
            return findings
        info = self.rules.severity.info
        out: list[Finding] = []
        statistical: dict[str | None, int] = {}  # settlement -> index in out
        for finding in findings:
            if finding.score < info:
                continue
            if finding.kind not in ("amount_spike", "multivariate_outlier"):
                out.append(finding)
                continue
            index = statistical.get(finding.settlement_id)
            if index is None:
                statistical[finding.settlement_id] = len(out)
                out.append(finding)
                continue
            other = out[index]
            strong, weak = (finding, other) if finding.score > other.score else (other, finding)
            strong.reasons = strong.reasons + weak.reasons
            out[index] = strong
        for finding in out:
            outlet = self.stores.outlet(finding.outlet_id)
            finding.region = outlet.region if outlet is not None else None
        return out
