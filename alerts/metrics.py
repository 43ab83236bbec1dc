"""Every Prometheus metric settleguard exports, defined in one place.

Each ``Metrics`` owns the registry it was given, so tests build a fresh
``CollectorRegistry()`` and read values with ``get_sample_value``. Label values come from
small fixed sets (event kinds, rejection reasons), never from ids.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, Info

from models.decode import REASONS

EVENT_KINDS = ("order", "settlement")


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
        # Children bound once: ``labels()`` per event costs more than the increment.
        self.events_in_by_kind = {kind: self.events_in.labels(kind) for kind in EVENT_KINDS}
        self.dead_letters_by_reason = {r: self.dead_letters.labels(r) for r in REASONS}

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
