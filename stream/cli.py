"""The ``settleguard`` command line. Settings are read once here and passed down."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from pydantic import ValidationError

from config.rules import Rules, RulesError, load_rules
from config.settings import Settings
from stream.intake import DeadLetter
from stream.review_cli import report_verdicts, review
from stream.simulator.cli import simulate

if TYPE_CHECKING:
    from models.detectors.forest import ForestModel


existing_file = click.Path(exists=True, dir_okay=False, path_type=Path)
config_option = click.option(
    "--config",
    "config_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Rule file (YAML) instead of the default rules.",
)
partitions_option = click.option(
    "--partitions",
    type=click.IntRange(1, 10_000),
    default=None,
    help="Partitions to reproduce (default: SETTLEGUARD_TOPIC_PARTITIONS).",
)
model_option = click.option(
    "--model",
    "model_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Forest from `settleguard train` to start scoring with.",
)
progress_option = click.option(
    "--progress/--no-progress",
    default=None,
    help="Progress bar on stderr (default: when stderr is a terminal).",
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """settleguard: real-time anomaly detection for after-sales settlement review.

    Settings come from SETTLEGUARD_* environment variables (see README, "Configuration").
    """


@cli.command()
@config_option
@model_option
@click.pass_obj
def worker(settings: Settings, config_path: Path | None, model_path: Path | None) -> None:
    """Run a stream worker: detect on the order and settlement topics (creating them when
    missing), publish alerts, send bad input to the dead-letter topic, follow the live
    rules topic, serve /healthz and /metrics.

    Start more workers with the same SETTLEGUARD_APP_ID to share the partitions. The
    rules pushed with `settleguard rules push` replace --config as soon as they are read.
    """
    rules, model = _rules(config_path), _model(model_path)
    # Faust is imported here: the other commands do not need its start-up cost.
    from stream.app import create_app
    from stream.faust_tuning import new_event_loop, run_worker
    from stream.replay import collect_rarely
    from stream.topics import PartitionCountError, ensure_topics

    loop = new_event_loop()
    try:
        created = loop.run_until_complete(ensure_topics(settings))
    except PartitionCountError as exc:
        raise click.ClickException(str(exc)) from exc
    except Exception as exc:  # any connection failure: say what to check, exit non-zero
        raise click.ClickException(
            f"cannot reach Kafka at {settings.kafka_bootstrap} ({exc!r}); start it with "
            "`scripts/services.sh start kafka` or set SETTLEGUARD_KAFKA_BOOTSTRAP"
        ) from exc
    if created:
        click.echo(f"created topics: {', '.join(created)}", err=True)
    app = create_app(settings, rules, initial_forest=model)
    collect_rarely()  # for as long as the worker runs
    run_worker(app, settings.log_level, loop)


@cli.group()
def topics() -> None:
    """Manage the Kafka topics settleguard uses."""


@topics.command("create")
@click.pass_obj
def topics_create(settings: Settings) -> None:
    """Create every topic the worker needs (idempotent)."""
    from stream.topics import PartitionCountError, ensure_topics, topic_names

    try:
        created = asyncio.run(ensure_topics(settings))
    except PartitionCountError as error:
        raise click.ClickException(str(error)) from error
    for name in topic_names(settings):
        click.echo(f"{name}: {'created' if name in created else 'exists'}")


@cli.command()
@click.argument("events", type=click.Path(allow_dash=True, dir_okay=False))
@click.option(
    "--alerts",
    "alerts_path",
    required=True,
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    help="Write every alert here (JSON Lines).",
)
@click.option(
    "--dead-letter",
    "dead_letter_path",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    help="Write bad lines here with their reason.",
)
@config_option
@partitions_option
@model_option
@click.option(
    "--live/--quiet",
    default=False,
    help="Print alerts (severity >= low) and dead letters as they happen.",
)
@click.option(
    "--review",
    "review_labels",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Simulate reviewers from this labels.jsonl (simulator ground truth): alerts of "
    "severity >= low are confirmed when they match a label, dismissed otherwise, and the "
    "verdicts are fed back --review-delay-hours of event time after the finding.",
)
@click.option(
    "--review-delay-hours",
    type=click.FloatRange(min=0.0),
    default=24.0,
    show_default=True,
    help="Event time between a finding and its simulated verdict.",
)
@progress_option
@click.pass_obj
def replay(
    settings: Settings,
    events: str,
    alerts_path: Path,
    dead_letter_path: Path | None,
    config_path: Path | None,
    partitions: int | None,
    model_path: Path | None,
    live: bool,
    review_labels: Path | None,
    review_delay_hours: float,
    progress: bool | None,
) -> None:
    """Run the detection pipeline over EVENTS (JSON Lines, `-` for stdin) with no Kafka or
    Redis, starting with no history; deterministic. Exit 0 when the file was processed."""
    from stream.replay import replay_files
    from stream.simulated_review import SimulatedReviewer

    rules = _rules(config_path)
    model = _model(model_path)
    reviewer = (
        SimulatedReviewer(review_labels, review_delay_hours, "low")
        if review_labels is not None
        else None
    )

    def show_alert(alert: dict[str, Any]) -> None:
        if alert["severity"] != "info":
            reason = alert["reasons"][0]["message"]
            click.echo(
                f"{alert['event_time']}  {alert['severity']:8s} {alert['score']:5.1f}  "
                f"{alert['kind']:22s} {alert['outlet_id']}  {alert['settlement_id'] or '-'}  "
                f"{reason}"
            )

    def show_dead_letter(line: int, dead: DeadLetter) -> None:
        click.echo(f"line {line}: dead letter, {dead.rejection}", err=True)

    summary = replay_files(
        events,
        alerts_path,
        dead_letter_path,
        rules,
        partitions or settings.topic_partitions,
        on_alert=show_alert if live else None,
        on_dead_letter=show_dead_letter if live else None,
        progress=sys.stderr.isatty() if progress is None else progress,
        initial_forest=model,
        reviewer=reviewer,
    )
    if reviewer is not None:
        click.echo(
            f"simulated review: {reviewer.decided['confirmed']} confirmed, "
            f"{reviewer.decided['dismissed']} dismissed, {reviewer.applied} applied",
            err=True,
        )
    bad = {reason: int(n) for reason, n in summary.dead_letters.items() if n}
    click.echo(
        f"replayed {summary.lines} lines: {int(summary.events_in['order'])} order events, "
        f"{int(summary.events_in['settlement'])} settlement events, {summary.redeliveries} "
        f"re-deliveries dropped, {sum(bad.values())} dead letters {bad or ''}; "
        f"{summary.alerts} alerts {summary.alerts_by_severity} -> {alerts_path}",
        err=True,
    )


@cli.command()
@click.argument("events", required=False, type=existing_file)
@click.argument("labels", required=False, type=existing_file)
@click.argument("alerts", required=False, type=existing_file)
@click.option(
    "--verdicts",
    "verdicts_path",
    type=existing_file,
    help="Instead: precision per kind and detector from reviewers' verdicts (a file from "
    "`settleguard review export`).",
)
@click.option(
    "--patterns",
    "patterns_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Legitimate patterns (JSON Lines); default: patterns.jsonl beside LABELS if present.",
)
@click.option(
    "--min-severity",
    type=click.Choice(["info", "low", "medium", "high", "critical"]),
    default="low",
    show_default=True,
    help="Count only alerts at or above this severity (score bands use all alerts).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def evaluate(
    events: Path | None,
    labels: Path | None,
    alerts: Path | None,
    verdicts_path: Path | None,
    patterns_path: Path | None,
    min_severity: str,
    as_json: bool,
) -> None:
    """Measure ALERTS (from `replay`) against the simulator's ground truth: EVENTS and
    LABELS as written by `simulate`. Precision, recall, delays, score bands, pattern FPs.

    With --verdicts FILE instead: precision per alert kind and per detector from the
    reviewers' verdicts (confirmed / (confirmed + dismissed))."""
    import orjson

    from stream.evaluate import evaluate as run_evaluation
    from stream.evaluate import format_report

    if verdicts_path is not None:
        if events or labels or alerts:
            raise click.UsageError("--verdicts FILE replaces EVENTS LABELS ALERTS: give one")
        report_verdicts(verdicts_path, as_json)
        return
    if events is None or labels is None or alerts is None:
        raise click.UsageError("give EVENTS LABELS ALERTS, or --verdicts FILE")

    if patterns_path is None and (labels.parent / "patterns.jsonl").is_file():
        patterns_path = labels.parent / "patterns.jsonl"
    try:
        report = run_evaluation(events, labels, alerts, patterns_path, min_severity=min_severity)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    if as_json:
        click.echo(orjson.dumps(report.as_dict(), option=orjson.OPT_INDENT_2).decode())
    else:
        click.echo(format_report(report), nl=False)


def _rules(path: Path | None) -> Rules:
    """The rule set in ``path`` (default rules when None), or a clear CLI error."""
    try:
        return load_rules(path)
    except RulesError as exc:
        raise click.ClickException(str(exc)) from exc


def _model(path: Path | None) -> ForestModel | None:
    """The forest saved by `settleguard train` at ``path``, or a clear CLI error."""
    if path is None:
        return None
    from models.detectors.forest import ForestModel

    try:
        return ForestModel.from_bytes(path.read_bytes())
    except ValueError as exc:
        raise click.ClickException(f"{path}: {exc}") from exc


@cli.command()
@click.argument("history", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--out",
    "out_path",
    required=True,
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    help="Where to write the trained model.",
)
@config_option
@partitions_option
@progress_option
@click.pass_obj
def train(
    settings: Settings,
    history: Path,
    out_path: Path,
    config_path: Path | None,
    partitions: int | None,
    progress: bool | None,
) -> None:
    """Train the isolation forest offline on HISTORY (events, JSON Lines) and save it to
    --out; start `replay` or the worker with it (--model) to score from the first claim."""
    from stream.train import train_offline

    try:
        model, rows = train_offline(
            history,
            _rules(config_path),
            partitions or settings.topic_partitions,
            progress=sys.stderr.isatty() if progress is None else progress,
        )
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    out_path.write_bytes(model.to_bytes())
    click.echo(f"trained {model.version} on {rows} normal claims -> {out_path}", err=True)


@cli.command()
@click.argument("events", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("settlement_ids", nargs=-1)
@click.option(
    "--missed",
    nargs=2,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="LABELS ALERTS: explain the labelled settlements no alert (>= low) caught.",
)
@click.option("--type", "label_type", help="With --missed: only labels of this type.")
@click.option(
    "--limit",
    type=click.IntRange(1),
    default=10,
    show_default=True,
    help="With --missed: at most this many settlements.",
)
@config_option
@partitions_option
@click.pass_obj
def explain(
    settings: Settings,
    events: Path,
    settlement_ids: tuple[str, ...],
    missed: tuple[Path, Path] | None,
    label_type: str | None,
    limit: int,
    config_path: Path | None,
    partitions: int | None,
) -> None:
    """Show how SETTLEMENT_IDS in EVENTS were judged: every quantity against its
    baseline (expected, spread, evidence, z-score, surprise) and the findings."""
    from stream.explain import explain as explain_claims
    from stream.explain import missed_settlements

    chosen = list(settlement_ids)
    if missed:
        chosen += missed_settlements(missed[0], missed[1], label_type, limit)
    if not chosen:
        raise click.UsageError("name settlement ids, or use --missed LABELS ALERTS")
    rules = _rules(config_path)
    click.echo(
        explain_claims(events, chosen, rules, partitions or settings.topic_partitions), nl=False
    )


@cli.group()
def rules() -> None:
    """Check and publish rule sets (thresholds, detector parameters, fee table)."""


@rules.command("check")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def rules_check(file: Path) -> None:
    """Validate FILE; print its rule_version, or every problem with its key and value."""
    loaded = _rules(file)
    click.echo(f"{file}: valid, rule_version {loaded.rule_version}")


@rules.command("push")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.pass_obj
def rules_push(settings: Settings, file: Path) -> None:
    """Validate FILE and publish it as the live rule set (compacted topic
    SETTLEGUARD_RULES_TOPIC); an invalid file is never published."""
    from stream.rules_topic import push_rules

    loaded = _rules(file)
    try:
        version = asyncio.run(push_rules(settings, loaded, file.read_text(encoding="utf-8")))
    except Exception as exc:  # connection failures: say what to check
        raise click.ClickException(
            f"cannot publish to Kafka at {settings.kafka_bootstrap} ({exc!r}); start it with "
            "`scripts/services.sh start kafka` or set SETTLEGUARD_KAFKA_BOOTSTRAP"
        ) from exc
    click.echo(f"published rule_version {version} to {settings.rules_topic}")


cli.add_command(simulate)
cli.add_command(review)


def main() -> None:
    """Console entry point: build the settings once, then dispatch."""
    try:
        settings = Settings()
    except ValidationError as exc:
        click.echo(f"settleguard: bad SETTLEGUARD_* setting:\n{exc}", err=True)
        sys.exit(2)
    cli(obj=settings)
