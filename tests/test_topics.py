"""Topic creation on a real broker: idempotent, and refusing input topics whose partition
count differs from the setting (an outlet's events and state share a partition number)."""

from __future__ import annotations

import subprocess

from tests.conftest import SETTLEGUARD, run_settleguard


def test_topics_create_is_idempotent(isolated_env: dict[str, str]) -> None:
    """The first call creates every topic; the second finds them and creates none."""
    first = run_settleguard(["topics", "create"], isolated_env)
    orders = isolated_env["SETTLEGUARD_ORDERS_TOPIC"]
    assert f"{orders}: created" in first
    second = run_settleguard(["topics", "create"], isolated_env)
    assert f"{orders}: exists" in second and "created" not in second


def test_topics_with_another_partition_count_are_refused(isolated_env: dict[str, str]) -> None:
    """Topics made with 2 partitions are refused by a worker configured for 4, saying what
    to do."""
    run_settleguard(["topics", "create"], {**isolated_env, "SETTLEGUARD_TOPIC_PARTITIONS": "2"})
    refused = subprocess.run(
        [*SETTLEGUARD, "topics", "create"],
        env={**isolated_env, "SETTLEGUARD_TOPIC_PARTITIONS": "4"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert refused.returncode != 0
    assert "SETTLEGUARD_TOPIC_PARTITIONS" in refused.stderr
    assert "kafka-topics.sh --alter" in refused.stderr
    assert "Traceback" not in refused.stderr
