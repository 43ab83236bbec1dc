"""Writes settleguard's Grafana dashboards (JSON) from code, with Grafana's foundation SDK.

    python deploy/grafana/generate.py            # rewrite deploy/grafana/dashboards/*.json
    python deploy/grafana/generate.py --out DIR  # write them elsewhere (tests compare)

The JSON files are committed and provisioned by the compose stack (deploy/grafana/
provisioning/); edit this file, never the JSON, and regenerate. Every panel queries the
Prometheus data source provisioned with uid ``prometheus``; the metrics are those of
alerts/metrics.py (``settleguard_*``) and Faust's sensor (``faust_*``).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Sequence
from pathlib import Path

from grafana_foundation_sdk.builders import bargauge, stat, table, timeseries
from grafana_foundation_sdk.builders import dashboard as dash
from grafana_foundation_sdk.builders import prometheus as prom
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.dashboard import (
    DashboardCursorSync,
    DataSourceRef,
    VariableRefresh,
    VariableSort,
)

DASHBOARDS = Path(__file__).resolve().parent / "dashboards"
DATASOURCE = DataSourceRef(type_val="prometheus", uid="prometheus")
WORKER = 'job="settleguard-worker"'
RATE = "[$__rate_interval]"
OUTLET = 'outlet_id="$outlet"'

Query = tuple[str, str]  # (PromQL, legend)


def targets(queries: Sequence[Query], instant: bool = False) -> list[prom.Dataquery]:
    """Prometheus queries with ref ids A, B, ..."""
    built = []
    for ref, (expr, legend) in zip("ABCDEFGH", queries, strict=False):
        query = prom.Dataquery().expr(expr).legend_format(legend).ref_id(ref)
        built.append(query.instant() if instant else query.range())
    return built


def graph(title: str, description: str, unit: str, *queries: Query) -> timeseries.Panel:
    """A time series panel, half the dashboard wide."""
    return (
        timeseries.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .targets(targets(queries))
        .unit(unit)
        .height(8)
        .span(12)
    )


def number(title: str, description: str, unit: str, query: Query) -> stat.Panel:
    """A single-value panel, a quarter of the dashboard wide."""
    return (
        stat.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .targets(targets([query], instant=True))
        .unit(unit)
        .height(4)
        .span(6)
    )


def rate_of(metric: str, by: str = "") -> str:
    """Per-second rate of a counter, summed (by the ``by`` labels when given)."""
    grouping = f" by ({by}) " if by else ""
    return f"sum{grouping}(rate({metric}{RATE}))"


def quantiles(metric: str) -> list[Query]:
    """p50, p95 and p99 of a histogram over the rate interval."""
    buckets = f"sum by (le) (rate({metric}_bucket{RATE}))"
    return [
        (f"histogram_quantile({q}, {buckets})", f"p{round(q * 100)}") for q in (0.5, 0.95, 0.99)
    ]


# ------------------------------------------------------------------ shared panels


def throughput() -> timeseries.Panel:
    return graph(
        "Throughput (events/s)",
        "Orders and settlements decoded per second, all workers.",
        "reqps",
        (rate_of("settleguard_events_in_total", "kind"), "{{kind}}"),
    )


def dead_letters() -> timeseries.Panel:
    return graph(
        "Dead letters by reason",
        "Bad input sent to the dead-letter topic per second, by rejection reason.",
        "reqps",
        (rate_of("settleguard_dead_letters_total", "reason"), "{{reason}}"),
    )


def consumer_lag(by: str, legend: str) -> timeseries.Panel:
    return graph(
        "Consumer lag",
        "Input messages on the broker not yet committed by the workers (end offset minus "
        "committed offset, refreshed by each worker every few seconds).",
        "short",
        (f"sum by ({by}) (settleguard_consumer_lag)", legend),
    )


# ------------------------------------------------------------------ dashboards


def overview() -> dash.Dashboard:
    """What settleguard finds and how fast: alerts, outlets, bad input, latency, lag."""
    return (
        base("settleguard-overview", "settleguard overview")
        .with_panel(
            graph(
                "Alert rate by kind and severity",
                "Alerts published per second.",
                "reqps",
                (rate_of("settleguard_alerts_total", "kind, severity"), "{{kind}} {{severity}}"),
            )
        )
        .with_panel(
            bargauge.Panel()
            .title("Top outlets by alerts")
            .description("The 10 outlets with the most alerts in the rating window.")
            .datasource(DATASOURCE)
            .targets(
                targets(
                    [("topk(10, sum by (outlet_id) (settleguard_outlet_alerts))", "{{outlet_id}}")],
                    instant=True,
                )
            )
            .unit("short")
            .height(8)
            .span(12)
        )
        .with_panel(throughput())
        .with_panel(dead_letters())
        .with_panel(
            graph(
                "Detection latency (arrival to alert)",
                "From the triggering message's Kafka timestamp to its alert being sent.",
                "s",
                *quantiles("settleguard_arrival_to_alert_seconds"),
            )
        )
        .with_panel(
            graph(
                "Event time to alert",
                "From the event time of the finding's event to its alert (includes upstream "
                "delay and grace periods).",
                "s",
                *quantiles("settleguard_event_time_to_alert_seconds"),
            )
        )
        .with_panel(consumer_lag("topic", "{{topic}}"))
    )


def outlet() -> dash.Dashboard:
    """One outlet: its claims against its baseline, its alerts, verdicts and rating."""
    figure = 'settleguard_outlet_rating{%s, figure="%s"}'
    return (
        base("settleguard-outlet", "settleguard outlet drill-down")
        .with_variable(
            dash.QueryVariable("outlet")
            .label("Outlet")
            .datasource(DATASOURCE)
            .query("label_values(settleguard_outlet_rating, outlet_id)")
            .refresh(VariableRefresh.ON_TIME_RANGE_CHANGED)
            .sort(VariableSort.ALPHABETICAL_ASC)
        )
        .with_panel(
            number(
                "Stars", "The outlet's 1-5 star figure.", "none", (figure % (OUTLET, "stars"), "")
            )
        )
        .with_panel(
            number(
                "Compliance rate",
                "Share of the outlet's settlements without a confirmed finding.",
                "percentunit",
                (figure % (OUTLET, "compliance_rate"), ""),
            )
        )
        .with_panel(
            number(
                "Anomaly rate",
                "Share of the outlet's settlements that alerted.",
                "percentunit",
                (figure % (OUTLET, "anomaly_rate"), ""),
            )
        )
        .with_panel(
            number(
                "Settlements in window",
                "Settlements of the outlet in the rating window.",
                "short",
                (figure % (OUTLET, "settlements"), ""),
            )
        )
        .with_panel(
            graph(
                "Claims against baseline",
                "The outlet's latest settlement claim and what its baseline expected.",
                "currencyCNY",
                (f"settleguard_outlet_claim_amount{{{OUTLET}}}", "{{quantity}}"),
            )
        )
        .with_panel(
            graph(
                "Alerts by kind",
                "The outlet's alerts in the rating window, by kind.",
                "short",
                (f"settleguard_outlet_alerts{{{OUTLET}}}", "{{kind}}"),
            )
        )
        .with_panel(
            graph(
                "Verdicts",
                "Reviewers' verdicts on the outlet's alerts in the rating window.",
                "short",
                (
                    f'settleguard_outlet_rating{{{OUTLET}, figure=~"confirmed|dismissed"}}',
                    "{{figure}}",
                ),
            )
        )
        .with_panel(
            graph(
                "Rating figures",
                "Every rating figure of the outlet over time.",
                "short",
                (f"settleguard_outlet_rating{{{OUTLET}}}", "{{figure}}"),
            )
        )
    )


def pipeline() -> dash.Dashboard:
    """Is the pipeline healthy: workers, input, lag, commits, sinks, review, mail, versions."""
    return (
        base("settleguard-pipeline", "settleguard pipeline health")
        .with_panel(
            number(
                "Workers up",
                "Worker targets Prometheus scrapes.",
                "short",
                (f"sum(up{{{WORKER}}})", ""),
            )
        )
        .with_panel(
            number(
                "Review queue depth",
                "Entries in the review queue stream.",
                "short",
                ("sum(settleguard_review_queue_depth)", ""),
            )
        )
        .with_panel(
            number(
                "Review queue pending",
                "Review queue entries not yet acknowledged by reviewers.",
                "short",
                ("sum(settleguard_review_queue_pending)", ""),
            )
        )
        .with_panel(
            number(
                "Sink backlog",
                "Alerts read by the sinks and not yet delivered.",
                "short",
                ("sum(settleguard_sink_backlog)", ""),
            )
        )
        .with_panel(
            graph(
                "Workers up", "1 per scraped worker.", "short", (f"up{{{WORKER}}}", "{{instance}}")
            )
        )
        .with_panel(throughput())
        .with_panel(consumer_lag("topic, partition", "{{topic}}/{{partition}}"))
        .with_panel(
            graph(
                "Commit progress",
                "Committed input offsets per second (Faust's sensor) and commit latency.",
                "short",
                (
                    f"sum by (topic) (deriv(faust_topic_partition_offset_commited{RATE}))",
                    "{{topic}} offsets/s",
                ),
                (
                    "histogram_quantile(0.95, sum by (le) "
                    f"(rate(faust_consumer_commit_latency_bucket{RATE}))) / 1000",
                    "commit p95 (s)",
                ),
            )
        )
        .with_panel(
            graph(
                "Messages written",
                "Outputs and checkpoint records handed to Kafka per second, by topic.",
                "reqps",
                (rate_of("faust_topic_messages_sent_total", "topic"), "{{topic}}"),
            )
        )
        .with_panel(
            graph(
                "Redeliveries and re-keying",
                "Events dropped as re-deliveries and events forwarded to their outlet's "
                "partition, per second.",
                "reqps",
                (
                    rate_of("settleguard_redeliveries_dropped_total"),
                    "redeliveries dropped",
                ),
                (rate_of("settleguard_rekeyed_total"), "re-keyed"),
            )
        )
        .with_panel(
            graph(
                "Sinks",
                "Alerts waiting in each sink, and its failed delivery attempts per second.",
                "short",
                ("sum by (sink) (settleguard_sink_backlog)", "{{sink}} backlog"),
                (rate_of("settleguard_sink_failures_total", "sink"), "{{sink}} failures/s"),
            )
        )
        .with_panel(
            graph(
                "Review queue",
                "Review stream length, entries not yet acknowledged, and alerts enqueued/s.",
                "short",
                ("sum(settleguard_review_queue_depth)", "depth"),
                ("sum(settleguard_review_queue_pending)", "pending"),
                (rate_of("settleguard_review_enqueued_total"), "enqueued/s"),
            )
        )
        .with_panel(
            graph(
                "Mail",
                "Alert mails sent, retried and given up, per second.",
                "reqps",
                *[
                    (rate_of(f"settleguard_mails_{what}_total"), what)
                    for what in ("sent", "retried", "failed")
                ],
            )
        )
        .with_panel(dead_letters())
        .with_panel(
            graph(
                "Verdicts",
                "Reviewers' verdicts applied per second, by outcome.",
                "reqps",
                (rate_of("settleguard_verdicts_total", "verdict"), "{{verdict}}"),
            )
        )
        .with_panel(
            table.Panel()
            .title("Rule and model versions")
            .description("The rule set and the forest model each worker (partition) runs.")
            .datasource(DATASOURCE)
            .targets(
                targets(
                    [
                        ("count by (rule_version) (settleguard_rules_info)", "{{rule_version}}"),
                        (
                            "count by (partition, model_version) (settleguard_model_info)",
                            "{{partition}} {{model_version}}",
                        ),
                    ],
                    instant=True,
                )
            )
            .height(8)
            .span(24)
        )
    )


def base(uid: str, title: str) -> dash.Dashboard:
    """A dashboard with the settings all three share."""
    return (
        dash.Dashboard(title)
        .uid(uid)
        .tags(["settleguard"])
        .refresh("30s")
        .time("now-6h", "now")
        .timezone("browser")
        .tooltip(DashboardCursorSync.CROSSHAIR)
        .readonly()
    )


BUILDERS: tuple[Callable[[], dash.Dashboard], ...] = (overview, outlet, pipeline)


def render(builder: Callable[[], dash.Dashboard]) -> tuple[str, str]:
    """(file name, JSON text) of one dashboard, panels numbered in order."""
    model = builder().build()
    for number_, panel in enumerate(model.panels or [], start=1):
        panel.id_val = number_
    return f"{model.uid}.json", json.dumps(model, cls=JSONEncoder, indent=2, sort_keys=True) + "\n"


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DASHBOARDS, help="directory to write to")
    out = parser.parse_args(argv).out
    out.mkdir(parents=True, exist_ok=True)
    for builder in BUILDERS:
        name, text = render(builder)
        (out / name).write_text(text, encoding="utf-8")
        print(f"wrote {out / name}")


if __name__ == "__main__":
    main()
