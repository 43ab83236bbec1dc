"""Every Prometheus metric settleguard exports, defined in one place.

Each ``Metrics`` owns the registry it was given, so tests build a fresh
``CollectorRegistry()`` and read values with ``get_sample_value``. Label values come from
small fixed sets (event kinds, rejection reasons, sink names, verdicts), never from
alert or event ids; the per-outlet rating gauges are labelled by ``outlet_id``, bounded by
the number of outlets a worker owns (their series are removed when a partition leaves).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info
from prometheus_client.metrics_core import Metric

from models.decode import REASONS
from models.verdicts import VERDICTS

EVENT_KINDS = ("order", "settlement")
DETECTION_METRICS = (
    "events_in",
    "dead_letters",
    "redeliveries",
    "rekeyed",
    "alerts",
    "arrival_to_alert",
    "event_time_to_alert",
    "rules_in_force",
    "model_version",
    "verdicts",
    "outlet_rating",
    "outlet_claim",
    "outlet_alerts",
)
"""The metrics kept by detection (``stream/pipeline.py`` and what it calls). The stream
worker detects in a process of its own, which sends them to the worker's registry."""


class Metrics:
    """The project's counters, registered in ``registry``."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.events_in = Counter(
            "settleguard_events_in_total",
            "Events decoded from the input topics or replay file, by kind.",
            ["kind"],
            registry=registry,
        )
        self.dead_letters = Counter(
            "settleguard_dead_letters_total",
            "Bad input sent to the dead letter, by rejection reason.",
            ["reason"],
            registry=registry,
        )
        self.redeliveries = Counter(
            "settleguard_redeliveries_dropped_total",
            "Events dropped because their event_id was already processed.",
            registry=registry,
        )
        self.rekeyed = Counter(
            "settleguard_rekeyed_total",
            "Events forwarded to the re-key topic because they were not on their outlet's "
            "partition.",
            registry=registry,
        )
        self.alerts = Counter(
            "settleguard_alerts_total",
            "Alerts published, by kind and severity.",
            ["kind", "severity"],
            registry=registry,
        )
        self.arrival_to_alert = Histogram(
            "settleguard_arrival_to_alert_seconds",
            "From the triggering message's Kafka timestamp to its alert being sent.",
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
            registry=registry,
        )
        self.event_time_to_alert = Histogram(
            "settleguard_event_time_to_alert_seconds",
            "From the event time of the finding's event to its alert being sent (includes "
            "upstream delay and grace periods).",
            buckets=(1, 10, 60, 300, 900, 3600, 6 * 3600, 86400, 7 * 86400),
            registry=registry,
        )
        self.rules_in_force = Info(
            "settleguard_rules", "The rule set in force (rule_version).", registry=registry
        )
        self.model_version = Info(
            "settleguard_model",
            "The isolation-forest model in force per partition (model_version).",
            ["partition"],
            registry=registry,
        )
        self.consumer_lag = Gauge(
            "settleguard_consumer_lag",
            "Input messages on the broker not yet committed by the worker's group, per "
            "assigned topic-partition (end offset - committed offset; see stream/lag.py).",
            ["topic", "partition"],
            registry=registry,
        )
        self.partitions_resumed = Counter(
            "settleguard_partitions_resumed_total",
            "Input partitions Faust had stopped fetching while they had lag and the agent "
            "idled, put back by the flow watchdog (stream/flow_watchdog.py).",
            registry=registry,
        )
        self.duplicate_acks = Counter(
            "settleguard_duplicate_acks_dropped_total",
            "Repeated offsets removed from Faust's acked lists, which held its commits back "
            "(stream/flow_watchdog.py).",
            registry=registry,
        )
        self.sink_backlog = Gauge(
            "settleguard_sink_backlog",
            "Alerts read by a sink (review, mail) and not yet delivered.",
            ["sink"],
            registry=registry,
        )
        self.sink_failures = Counter(
            "settleguard_sink_failures_total",
            "Failed delivery attempts of a sink (the destination was down or refused); "
            "each is retried with backoff.",
            ["sink"],
            registry=registry,
        )
        self.review_enqueued = Counter(
            "settleguard_review_enqueued_total",
            "Alerts appended to the review queue (at most once per alert id).",
            registry=registry,
        )
        self.review_queue_depth = Gauge(
            "settleguard_review_queue_depth",
            "Entries in the review queue stream (XLEN).",
            registry=registry,
        )
        self.review_queue_pending = Gauge(
            "settleguard_review_queue_pending",
            "Review queue entries not yet acknowledged by reviewers (never delivered or "
            "delivered and not acked).",
            registry=registry,
        )
        self.mails_sent = Counter(
            "settleguard_mails_sent_total",
            "Alert mails (single or digest) accepted by the SMTP server.",
            registry=registry,
        )
        self.mails_retried = Counter(
            "settleguard_mails_retried_total",
            "Mail attempts that failed and were kept in the outbox to retry.",
            registry=registry,
        )
        self.mails_failed = Counter(
            "settleguard_mails_failed_total",
            "Mails the SMTP server rejected permanently (5xx), by then given up.",
            registry=registry,
        )
        self.mails_silenced = Counter(
            "settleguard_mails_silenced_total",
            "Routed alerts not mailed because a silence of the rule set held.",
            registry=registry,
        )
        self.verdicts = Counter(
            "settleguard_verdicts_total",
            "Reviewers' verdicts applied to an outlet's state, by outcome.",
            ["verdict"],
            registry=registry,
        )
        self.outlet_rating = Gauge(
            "settleguard_outlet_rating",
            "Per-outlet rating figures over the rating window (CONTRACT section 4), by "
            "figure: settlements, alerts, confirmed, dismissed, compliance_rate, "
            "anomaly_rate, stars.",
            ["outlet_id", "figure"],
            registry=registry,
        )
        self.outlet_claim = Gauge(
            "settleguard_outlet_claim_amount",
            "Per outlet, its latest settlement claim: the amount claimed and the amount its "
            "baseline expected (for the outlet drill-down).",
            ["outlet_id", "quantity"],
            registry=registry,
        )
        self.outlet_alerts = Gauge(
            "settleguard_outlet_alerts",
            "Per-outlet alerts in the rating window, by kind.",
            ["outlet_id", "kind"],
            registry=registry,
        )
        # Known label values start at 0, so rates and alert rules see them before the
        # first increment.
        for verdict in VERDICTS:
            self.verdicts.labels(verdict)
        # Children bound once: ``labels()`` per event costs more than the increment.
        self.events_in_by_kind = {kind: self.events_in.labels(kind) for kind in EVENT_KINDS}
        self.dead_letters_by_reason = {r: self.dead_letters.labels(r) for r in REASONS}

    def detection_families(self) -> list[Metric]:
        """The detection metrics as they stand (plain objects: they pickle)."""
        return [family for name in DETECTION_METRICS for family in getattr(self, name).collect()]

    def forward_detection(self) -> Callable[[list[Metric]], None]:
        """Serve the detection metrics from another process: they leave this registry,
        and the function returned replaces them with that process's latest
        ``detection_families``."""
        for name in DETECTION_METRICS:
            self.registry.unregister(getattr(self, name))
        forwarded = ForwardedFamilies()
        self.registry.register(forwarded)
        return forwarded.update

    def snapshot(self) -> dict[str, dict[str, float]]:
        """Current counter values as plain dicts, for summaries and tests."""
        return {
            "events_in": {
                k: self._value("settleguard_events_in_total", kind=k) for k in EVENT_KINDS
            },
            "dead_letters": {
                r: self._value("settleguard_dead_letters_total", reason=r) for r in REASONS
            },
        }

    def _value(self, name: str, **labels: str) -> float:
        return self.registry.get_sample_value(name, labels) or 0.0


class ForwardedFamilies:
    """A collector serving metric families gathered elsewhere, as last received."""

    def __init__(self) -> None:
        self.families: list[Metric] = []

    def update(self, families: list[Metric]) -> None:
        self.families = families

    def describe(self) -> Iterable[Metric]:
        return []  # names vary with what is forwarded; nothing to check at registration

    def collect(self) -> Iterable[Metric]:
        return self.families
