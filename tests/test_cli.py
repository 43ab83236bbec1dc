"""The command line as a user meets it: help everywhere, clear errors, train then replay."""

from __future__ import annotations

from pathlib import Path

import click
import orjson
import pytest
from click.testing import CliRunner

from config.settings import Settings
from models.detectors.forest import ForestModel
from stream.cli import cli
from stream.simulator import SimulationConfig, simulate, write_outputs


def commands(group: click.Group, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every command path under ``group``, subgroups included."""
    paths = []
    for name, command in group.commands.items():
        paths.append((*prefix, name))
        if isinstance(command, click.Group):
            paths += commands(command, (*prefix, name))
    return paths


@pytest.mark.parametrize("path", commands(cli), ids=" ".join)
def test_every_command_has_help(path: tuple[str, ...]) -> None:
    """`settleguard ... --help` works for every command and says what it does."""
    result = CliRunner().invoke(cli, [*path, "--help"], obj=Settings())
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output and len(result.output.splitlines()) > 3


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small simulated history (40 outlets x 20 days)."""
    out = tmp_path_factory.mktemp("history")
    write_outputs(simulate(SimulationConfig(outlets=40, days=20, seed=5)), out)
    return out


def test_train_then_replay_with_the_model(history: Path, tmp_path: Path) -> None:
    """`train` writes a loadable forest; `replay --model` scores with it from the start."""
    model_path = tmp_path / "forest.bin"
    runner = CliRunner()
    trained = runner.invoke(
        cli,
        ["train", str(history / "events.jsonl"), "--out", str(model_path), "--no-progress"],
        obj=Settings(),
    )
    assert trained.exit_code == 0, trained.output
    model = ForestModel.from_bytes(model_path.read_bytes())
    assert model.version.startswith("iforest-") and model.version in trained.output

    alerts = tmp_path / "alerts.jsonl"
    replayed = runner.invoke(
        cli,
        [
            "replay",
            str(history / "events.jsonl"),
            "--alerts",
            str(alerts),
            "--model",
            str(model_path),
            "--no-progress",
        ],
        obj=Settings(),
    )
    assert replayed.exit_code == 0, replayed.output
    versions = {orjson.loads(line)["model_version"] for line in alerts.read_bytes().splitlines()}
    assert model.version in versions  # multivariate findings before any online retraining


def test_replay_with_a_bad_rule_file_names_the_problem(history: Path, tmp_path: Path) -> None:
    """A wrong rule file stops replay with the bad key and value, not a traceback."""
    rules = tmp_path / "rules.yaml"
    rules.write_text("frequency:\n  window_minutes: -5\n", encoding="utf-8")
    result = CliRunner().invoke(
        cli,
        [
            "replay",
            str(history / "events.jsonl"),
            "--alerts",
            str(tmp_path / "a.jsonl"),
            "--config",
            str(rules),
        ],
        obj=Settings(),
    )
    assert result.exit_code == 1
    assert "frequency.window_minutes" in result.output and "-5" in result.output


def test_train_refuses_a_history_too_small(tmp_path: Path) -> None:
    """Training on too few claims fails with what is needed."""
    out = tmp_path / "tiny"
    write_outputs(simulate(SimulationConfig(outlets=2, days=2, seed=1)), out)
    result = CliRunner().invoke(
        cli,
        ["train", str(out / "events.jsonl"), "--out", str(tmp_path / "m.bin")],
        obj=Settings(),
    )
    assert result.exit_code == 1
    assert "min_training_rows" in result.output


def test_explain_shows_each_quantity_against_its_baseline(history: Path) -> None:
    """`explain` prints every judged quantity of a claim with expected value and z-score."""
    labels = [orjson.loads(line) for line in (history / "labels.jsonl").read_bytes().splitlines()]
    spike = next(label for label in labels if label["type"] == "amount_spike")
    settlement_id = spike["settlement_ids"][0]
    result = CliRunner().invoke(
        cli,
        ["explain", str(history / "events.jsonl"), settlement_id, "missing-id"],
        obj=Settings(),
    )
    assert result.exit_code == 0, result.output
    assert settlement_id in result.output and "expected" in result.output
    assert "|labor" in result.output and " z " in result.output
    assert "findings at arrival: amount_spike" in result.output
    assert "missing-id: not found" in result.output
