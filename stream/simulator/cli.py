"""``settleguard simulate``: generate a stream into a directory and, optionally, publish it
to Kafka. The lead registers ``simulate`` in the main ``settleguard`` group."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime

import click

from stream.simulator.config import SimulationConfig
from stream.simulator.engine import simulate as run_simulation
from stream.simulator.kafka import publish
from stream.simulator.output import write_outputs


@click.command("simulate")
@click.option(
    "--outlets",
    type=click.IntRange(min=1),
    default=200,
    show_default=True,
    help="Number of service outlets (网点) to simulate.",
)
@click.option(
    "--days",
    type=click.IntRange(min=1),
    default=60,
    show_default=True,
    help="Length of the simulated period in days.",
)
@click.option(
    "--seed",
    type=int,
    default=7,
    show_default=True,
    help="Random seed; the same options always give byte-identical files.",
)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False),
    required=True,
    help="Directory for events.jsonl, labels.jsonl, patterns.jsonl, "
    "malformed.jsonl, fee_table.json and summary.json (created if missing).",
)
@click.option(
    "--start",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    default="2026-06-01",
    show_default=True,
    help="First day (YYYY-MM-DD, times are +08:00); the default window covers "
    "the summer air-conditioner peak.",
)
@click.option(
    "--malformed",
    type=click.FloatRange(0.0, 0.5),
    default=0.0,
    show_default=True,
    help="Fraction of bad lines to mix into events.jsonl (0 = none; any value "
    "> 0 gives at least one line of every defect).",
)
@click.option(
    "--price-steps",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Outlets whose labour tariff steps up 1.5-1.8x for good (a legitimate pattern "
    "that needs reviewers' dismissals; listed in patterns.jsonl as price_step).",
)
@click.option(
    "--to-kafka",
    "bootstrap",
    metavar="BOOTSTRAP",
    default=None,
    help="Also publish every line of events.jsonl, in file order, to Kafka at "
    "this bootstrap address (host:port).",
)
@click.option(
    "--rate",
    type=click.FloatRange(min=0.0),
    default=2000.0,
    show_default=True,
    help="Publishing rate in events per second with --to-kafka (0 = as fast as possible).",
)
@click.option(
    "--orders-topic",
    default="settleguard.orders",
    show_default=True,
    help="Kafka topic for order events.",
)
@click.option(
    "--settlements-topic",
    default="settleguard.settlements",
    show_default=True,
    help="Kafka topic for settlement events and malformed lines.",
)
@click.option("--no-progress", is_flag=True, default=False, help="Hide the progress bars.")
def simulate(
    outlets: int,
    days: int,
    seed: int,
    out_dir: str,
    start: datetime,
    malformed: float,
    price_steps: int,
    bootstrap: str | None,
    rate: float,
    orders_topic: str,
    settlements_topic: str,
    no_progress: bool,
) -> None:
    """Generate a synthetic settlement-review stream with labelled anomalies."""
    progress = not no_progress
    config = SimulationConfig(
        outlets=outlets,
        days=days,
        seed=seed,
        start=start.date(),
        malformed=malformed,
        price_steps=price_steps,
    )
    began = time.monotonic()
    result = run_simulation(config, progress=progress)
    path = write_outputs(result, out_dir, progress=progress)
    summary = result.summary
    click.echo(
        f"wrote {summary['lines']} lines ({summary['events_by_kind']['order']} order, "
        f"{summary['events_by_kind']['settlement']} settlement, {summary['redeliveries']} "
        f"re-deliveries, {summary['malformed']} malformed), {len(result.labels)} anomalies, "
        f"{len(result.patterns)} patterns to {path} in {time.monotonic() - began:.1f}s"
    )
    if bootstrap:
        bad = {int(m["line"]) for m in result.malformed}
        stats = asyncio.run(
            publish(
                result.events,
                bad,
                bootstrap,
                orders_topic,
                settlements_topic,
                rate,
                progress=progress,
            )
        )
        click.echo(
            f"published {stats.sent} events ({stats.orders} to {orders_topic}, "
            f"{stats.settlements} to {settlements_topic}) in {stats.elapsed_s:.1f}s"
        )
