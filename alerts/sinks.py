"""The sinks the worker feeds from the alerts topic (see ``stream/alert_sinks.py``)."""

from __future__ import annotations

from collections.abc import Callable

from alerts.mail_sink import MailSink
from alerts.metrics import Metrics
from alerts.review_queue import ReviewQueue, redis_client
from alerts.review_sink import ReviewSink
from config.rules import Rules
from config.settings import Settings
from stream.alert_sinks import AlertSink


def make_sinks(
    settings: Settings, current_rules: Callable[[], Rules], metrics: Metrics
) -> list[AlertSink]:
    """Every sink of this deployment; ``current_rules`` gives the live rule set (routing,
    review threshold) at the time of each call."""
    review = ReviewSink(ReviewQueue(settings, redis_client(settings)), current_rules, metrics)
    return [review, MailSink(settings, current_rules, metrics)]
