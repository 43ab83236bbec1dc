"""`settleguard rules check` and `rules push`: validation with named errors, and the live
rule set on a real, compacted Kafka topic."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from click.testing import CliRunner

from config.rules import load_rules
from config.settings import Settings
from stream.cli import cli
from stream.rules_topic import latest_rules

SHIPPED = Path(__file__).resolve().parent.parent / "config" / "rules.yaml"


def test_check_accepts_the_shipped_rules() -> None:
    """The shipped rule file is valid and its rule_version is printed."""
    result = CliRunner().invoke(cli, ["rules", "check", str(SHIPPED)], obj=Settings())
    assert result.exit_code == 0, result.output
    assert load_rules(SHIPPED).rule_version in result.output


def test_check_names_every_bad_key_and_value(tmp_path: Path) -> None:
    """An invalid file fails with each bad key and its value."""
    bad = tmp_path / "bad.yaml"
    bad.write_text("severity:\n  high: 20\ncrosscheck:\n  grace_hours: soon\n", encoding="utf-8")
    result = CliRunner().invoke(cli, ["rules", "check", str(bad)], obj=Settings())
    assert result.exit_code == 1
    assert "crosscheck.grace_hours" in result.output and "'soon'" in result.output
    assert "must rise from info to critical" in result.output


async def topic_config(bootstrap: str, topic: str) -> dict[str, str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        responses = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
        entries = responses[0].resources[0][4]
        return {entry[0]: entry[1] for entry in entries}
    finally:
        await admin.close()


@pytest.mark.e2e
def test_push_publishes_the_latest_valid_rule_set(kafka_bootstrap: str, tmp_path: Path) -> None:
    """Each valid push becomes the latest rule set on a compacted topic; an invalid file is
    refused and leaves the latest one in place."""
    settings = Settings(
        kafka_bootstrap=kafka_bootstrap, rules_topic=f"test-{uuid.uuid4().hex[:8]}.rules"
    )
    runner = CliRunner()
    first = tmp_path / "first.yaml"
    first.write_text("version: first\n", encoding="utf-8")
    second = tmp_path / "second.yaml"
    second.write_text("version: second\nseverity: {low: 55}\n", encoding="utf-8")
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: bad\nforest: {trees: 1}\n", encoding="utf-8")

    for path in (first, second):
        result = runner.invoke(cli, ["rules", "push", str(path)], obj=settings)
        assert result.exit_code == 0, result.output
        assert load_rules(path).rule_version in result.output
    refused = runner.invoke(cli, ["rules", "push", str(bad)], obj=settings)
    assert refused.exit_code == 1 and "forest.trees" in refused.output

    latest = asyncio.run(latest_rules(settings))
    assert latest is not None
    assert latest["rule_version"] == load_rules(second).rule_version
    assert latest["yaml"] == second.read_text(encoding="utf-8")
    config = asyncio.run(topic_config(kafka_bootstrap, settings.rules_topic))
    assert config["cleanup.policy"] == "compact"
