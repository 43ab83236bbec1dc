"""Helpers for review-queue tests against a real Redis: settings with keys unique to one
test, their clean-up, and alerts shaped like the worker's (CONTRACT section 2)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import redis

from config.settings import Settings


@contextmanager
def review_settings(redis_url: str, **overrides: Any) -> Iterator[Settings]:
    """Settings whose review stream, verdicts stream and key prefix are unique to one
    test; every key under them is deleted afterwards."""
    suffix = uuid.uuid4().hex[:8]
    settings = Settings(
        redis_url=redis_url,
        redis_key_prefix=f"test-{suffix}:",
        review_stream=f"test-{suffix}:review",
        verdicts_stream=f"test-{suffix}:verdicts",
        **overrides,
    )
    try:
        yield settings
    finally:
        client = redis.Redis.from_url(redis_url)
        keys = list(client.scan_iter(f"test-{suffix}:*"))
        if keys:
            client.delete(*keys)
        client.close()


def make_alert(
    number: int, severity: str = "high", kind: str = "amount_spike", detector: str = "amount"
) -> dict[str, Any]:
    """An alert as the worker publishes it, with id ``sg-test-<number>``."""
    return {
        "alert_id": f"sg-test-{number:04d}",
        "kind": kind,
        "severity": severity,
        "score": 70.0 + number % 30,
        "outlet_id": f"W{number % 7:03d}",
        "settlement_id": f"S{number:05d}",
        "settlement_ids": [f"S{number:05d}"],
        "order_id": f"O{number:05d}",
        "event_time": "2026-07-01T09:30:00+00:00",
        "detected_at": "2026-07-01T09:30:01.000+00:00",
        "reasons": [
            {
                "detector": detector,
                "feature": "labor",
                "value": 480.0 + number,
                "expected": 200.0,
                "threshold": 320.0,
                "message": f"labor 480 CNY against an expected 200 CNY (claim {number})",
            }
        ],
        "rule_version": "default+test",
        "model_version": "none",
        "detector": detector,
    }
