"""``settleguard review``: the reference consumer of the review queue (list, show,
confirm, dismiss, auto) and the accuracy-sampling tools (export, sample).

Every Redis step is in ``alerts/review_desk.py`` and ``alerts/verdict_export.py``; this
module only parses options, formats and turns failures into messages that say what to
do. README, "Writing your own review consumer", lists the same steps as Redis commands.
"""

from __future__ import annotations

import asyncio
import sys
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import click
import orjson
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from tqdm import tqdm

from alerts.review_desk import VERDICTS, ReviewDesk, ReviewError, Verdict
from alerts.review_queue import redis_client
from alerts.verdict_export import verdicts_with_alerts
from config.settings import Settings
from stream.accuracy import (
    accuracy,
    format_accuracy,
    read_alert_lines,
    read_verdicts,
    sample_alerts,
)
from stream.evaluate import SEVERITIES, _table, read_labels, true_finding

T = TypeVar("T")

reviewer_option = click.option(
    "--reviewer",
    required=True,
    envvar="SETTLEGUARD_REVIEWER",
    help="Your name: the consumer name in the group and the verdict's reviewer "
    "(or set SETTLEGUARD_REVIEWER).",
)


def out_option(what: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """The required ``--out FILE`` option, writing ``what`` as JSON Lines."""
    return click.option(
        "--out",
        "out_path",
        required=True,
        type=click.Path(dir_okay=False, writable=True, path_type=Path),
        help=f"Write {what} here (JSON Lines).",
    )


reason_option = click.option("--reason", default="", help="Why (free text, kept with the verdict).")


def with_desk(
    settings: Settings, work: Callable[[ReviewDesk], Awaitable[T]], reviewer: str = ""
) -> T:
    """Run ``work`` with a desk on ``settings.redis_url``; Redis and queue failures become
    CLI errors saying what to do."""

    async def main() -> T:
        client = redis_client(settings)
        try:
            return await work(ReviewDesk(settings, client, reviewer))
        finally:
            await client.aclose()

    try:
        return asyncio.run(main())
    except ReviewError as exc:
        raise click.ClickException(str(exc)) from exc
    except (RedisConnectionError, RedisTimeoutError) as exc:
        where = urlsplit(settings.redis_url)  # host and port only: the URL may hold a password
        raise click.ClickException(
            f"cannot reach Redis at {where.hostname}:{where.port or 6379} ({type(exc).__name__}); "
            "start it with `scripts/services.sh start redis` or set SETTLEGUARD_REDIS_URL"
        ) from exc


@click.group()
def review() -> None:
    """Review queue (Redis Stream SETTLEGUARD_REVIEW_STREAM): read alerts as a reviewer,
    decide them, export verdicts, draw samples for accuracy checks.

    \b
    settleguard review list --reviewer ann            # your pending alerts (reads new ones)
    settleguard review show ALERT_ID                  # the alert and its evidence
    settleguard review confirm ALERT_ID --reviewer ann --reason "parts never issued"
    settleguard review dismiss ALERT_ID --reviewer ann --reason "agreed surcharge"
    settleguard review export --out verdicts.jsonl    # then: settleguard evaluate --verdicts
    settleguard review sample alerts.jsonl --per-kind 20 --seed 202607 --out sample.jsonl
    """


def short_reasons(alert: dict[str, Any], width: int = 60) -> str:
    """The reasons' messages on one line, cut to ``width`` characters."""
    text = "; ".join(str(r.get("message", "")) for r in alert.get("reasons") or ())
    return text if len(text) <= width else text[: width - 1] + "…"


@review.command("list")
@reviewer_option
@click.option(
    "--new",
    type=click.IntRange(0),
    default=20,
    show_default=True,
    help="Read at most this many entries nobody has read yet before listing.",
)
@click.pass_obj
def list_pending(settings: Settings, reviewer: str, new: int) -> None:
    """Your pending alerts: read up to --new unread entries as consumer --reviewer, then
    show every entry delivered to you and not yet decided."""
    pending = with_desk(settings, lambda desk: desk.pending(new), reviewer)
    rows = [
        [
            p.alert["outlet_id"],
            p.alert["kind"],
            p.alert["severity"],
            f"{p.alert['score']:.1f}",
            short_reasons(p.alert),
            p.alert["alert_id"],
        ]
        for p in pending
    ]
    headers = ["outlet", "kind", "severity", "score", "reasons", "alert id"]
    title = f"{len(rows)} alerts pending for {reviewer}"
    click.echo(_table(headers, rows, title, left=(0, 1, 2, 4, 5)))


@review.command()
@click.argument("alert_id")
@click.pass_obj
def show(settings: Settings, alert_id: str) -> None:
    """ALERT_ID with its evidence: every reason with value, expected, threshold,
    detector and message; and its verdict if decided."""
    alert = with_desk(settings, lambda desk: desk.alert(alert_id))
    lines = [
        f"alert      {alert['alert_id']}  ({alert['kind']}, {alert['severity']}, "
        f"score {alert['score']:.1f})",
        f"outlet     {alert['outlet_id']}   settlement {alert.get('settlement_id') or '-'}   "
        f"order {alert.get('order_id') or '-'}",
        f"event time {alert['event_time']}   detected {alert['detected_at']}",
        f"rules      {alert['rule_version']}   model {alert['model_version']}",
        f"entry      {alert['entry']}   verdict {alert.get('verdict', 'pending')}",
        "reasons:",
    ]
    for number, reason in enumerate(alert.get("reasons") or (), 1):
        evidence = "  ".join(
            f"{name} {reason[name]}"
            for name in ("feature", "value", "expected", "threshold")
            if reason.get(name) is not None
        )
        lines.append(f"  {number}. [{reason.get('detector', '?')}] {evidence}")
        lines.append(f"     {reason.get('message', '')}")
    click.echo("\n".join(lines))


def decide_command(verdict: Verdict) -> click.Command:
    """The ``confirm`` or ``dismiss`` command: write ``verdict`` and acknowledge."""

    @click.command(
        "confirm" if verdict == "confirmed" else "dismiss",
        help=f"Record ALERT_ID as {verdict} on the verdicts stream (SETTLEGUARD_VERDICTS_STREAM) "
        "and acknowledge its review entry. The alert must be pending (read by `list`) and "
        "not decided yet.",
    )
    @click.argument("alert_id")
    @reviewer_option
    @reason_option
    @click.pass_obj
    def decide(settings: Settings, alert_id: str, reviewer: str, reason: str) -> None:
        entry = with_desk(settings, lambda desk: desk.decide(alert_id, verdict, reason), reviewer)
        click.echo(f"{alert_id}: {verdict} by {reviewer} (verdict entry {entry})")

    return decide


review.add_command(decide_command("confirmed"))
review.add_command(decide_command("dismissed"))


@review.command()
@click.option(
    "--reviewer",
    default="auto",
    show_default=True,
    help="Consumer name and the verdicts' reviewer.",
)
@click.option(
    "--decide", "verdict", type=click.Choice(VERDICTS), help="Give every alert this verdict."
)
@click.option(
    "--labels",
    "labels_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="The simulator's labels.jsonl: confirm alerts matching a label, dismiss the others.",
)
@click.option("--limit", type=click.IntRange(1), help="Decide at most this many alerts.")
@click.option(
    "--progress/--no-progress",
    default=None,
    help="Progress bar on stderr (default: when stderr is a terminal).",
)
@click.pass_obj
def auto(
    settings: Settings,
    reviewer: str,
    verdict: Verdict | None,
    labels_path: Path | None,
    limit: int | None,
    progress: bool | None,
) -> None:
    """Decide pending alerts automatically, for tests and demos: all with --decide, or by
    the simulator's ground truth with --labels (matched as `settleguard evaluate` does)."""
    if (verdict is None) == (labels_path is None):
        raise click.UsageError("give exactly one of --decide VERDICT or --labels LABELS.jsonl")
    if labels_path is not None:
        try:
            is_true = true_finding(read_labels(labels_path))
        except ValueError as exc:
            raise click.ClickException(str(exc)) from exc

    def choose(alert: dict[str, Any]) -> tuple[Verdict, str]:
        if verdict is not None:
            return verdict, f"auto: --decide {verdict}"
        if is_true(alert):
            return "confirmed", "auto: matches a simulator label"
        return "dismissed", "auto: matches no simulator label"

    show_bar = sys.stderr.isatty() if progress is None else progress

    async def work(desk: ReviewDesk) -> Counter[str]:
        decided: Counter[str] = Counter()
        with tqdm(total=limit, unit="alert", disable=not show_bar, file=sys.stderr) as bar:
            while limit is None or decided.total() < limit:
                room = 500 if limit is None else limit - decided.total()
                pending = (await desk.pending(min(room, 500)))[:room]
                if not pending:
                    break
                for item in pending:
                    chosen, why = choose(item.alert)
                    await desk.decide(item.alert["alert_id"], chosen, why)
                    decided[chosen] += 1
                    bar.update()
        return decided

    decided = with_desk(settings, work, reviewer)
    click.echo(
        f"decided {decided.total()} alerts as {reviewer}: {decided['confirmed']} confirmed, "
        f"{decided['dismissed']} dismissed"
    )


@review.command()
@out_option("the verdicts, each with its alert")
@click.pass_obj
def export(settings: Settings, out_path: Path) -> None:
    """Write every verdict of the verdicts stream with the alert it decides, for
    `settleguard evaluate --verdicts FILE`. Verdicts whose alert has expired from Redis
    (review_retention_days) are skipped and counted."""

    async def work(desk: ReviewDesk) -> tuple[int, int]:
        written = skipped = 0
        with out_path.open("wb") as out:
            async for record in verdicts_with_alerts(settings, desk.client):
                if record["alert"] is None:
                    skipped += 1
                    continue
                out.write(orjson.dumps(record) + b"\n")
                written += 1
        return written, skipped

    written, skipped = with_desk(settings, work)
    click.echo(f"exported {written} verdicts -> {out_path}; {skipped} without their alert")


@review.command()
@click.argument("alerts", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--per-kind", type=click.IntRange(1), required=True, help="Alerts to draw per kind.")
@click.option("--seed", type=int, required=True, help="Random seed (same seed, same sample).")
@click.option(
    "--min-severity",
    type=click.Choice(SEVERITIES),
    default="low",
    show_default=True,
    help="Draw only alerts at or above this severity.",
)
@out_option("the sample")
def sample(alerts: Path, per_kind: int, seed: int, min_severity: str, out_path: Path) -> None:
    """Draw --per-kind alerts of each kind from ALERTS (JSON Lines, e.g. from `replay` or
    the alerts topic) at random with --seed, for an independent check; deterministic."""
    try:
        chosen = sample_alerts(read_alert_lines(alerts), per_kind, seed, min_severity)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    out_path.write_bytes(b"".join(orjson.dumps(alert) + b"\n" for alert in chosen))
    kinds = Counter(alert["kind"] for alert in chosen)
    click.echo(f"sampled {len(chosen)} alerts ({dict(sorted(kinds.items()))}) -> {out_path}")


def report_verdicts(path: Path, as_json: bool) -> None:
    """Print the precision report of the verdicts in ``path`` (for `evaluate
    --verdicts`)."""
    try:
        report = accuracy(read_verdicts(path))
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    if as_json:
        click.echo(orjson.dumps(report.as_dict(), option=orjson.OPT_INDENT_2).decode())
    else:
        click.echo(format_accuracy(report), nl=False)
