"""Dashboards and alerting rules against a live worker: a real worker on real Kafka fed by
the simulator (with malformed lines), scraped every second by a Prometheus private to the
test (own port and data dir) that loads the project's rule files. Every dashboard panel's
query and every alerting rule's expression is run through Prometheus's HTTP API and must
return data; then the rules are provoked and seen firing: dead-letter spike (malformed
input), mail retrying and sink failing (SMTP down), mail rejected (a receiver refused), no
events (input stopped), worker down (kill -9). Lag growing is left to promtool's unit tests
(deploy/prometheus/tests): it needs a worker slower than its input for minutes.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml
from conftest import ROOT, free_port, run_settleguard
from grafana_queries import panel_queries
from kafka_harness import publish, scrape, start_worker, stop, total, wait_consumed
from test_mail_e2e import private_smtp

from stream.simulator import SimulationConfig, simulate

pytestmark = pytest.mark.e2e

RULES = ROOT / "deploy" / "prometheus" / "rules"
METRIC_NAME = re.compile(r"\b(?:settleguard|faust)_[a-z_]+\b")
DASHBOARD_VARIABLES = {"$__rate_interval": "1m"}  # $outlet: an outlet of the stream
TEST_FOR = "2s"  # the test's copy of the rules waits this long instead of their `for:`
TEST_RANGES = {
    "SettleguardNoEvents": "20s",
    "SettleguardMailRetrying": "1m",
    "SettleguardMailRejected": "1m",
    "SettleguardSinkFailing": "1m",
}
"""Rules provoked here look back over these ranges in the test's copy (their own ranges
are minutes long: NoEvents would need ten quiet minutes)."""
MAIL_RULES = """
version: observability-e2e
mail:
  receivers:
    finance: {to: [finance@ok.example]}
    gone: {to: [nobody@rejected.example]}
  routes:
    - receivers: [finance, gone]
  grouping: {group_wait: 1s, group_interval: 2s, repeat_interval: 1m}
"""
"""Every alert mailed to a receiver the SMTP server accepts and to one it rejects."""


def stream() -> list[bytes]:
    """~5,000 simulated events, 3% malformed lines (dead letters above the 1% alert)."""
    return simulate(SimulationConfig(outlets=8, days=15, seed=5, malformed=0.03)).events


def first_outlet(lines: list[bytes]) -> str:
    for line in lines:
        try:
            return str(orjson.loads(line)["outlet_id"])
        except (orjson.JSONDecodeError, KeyError, TypeError):
            continue
    raise AssertionError("the stream has no event with an outlet_id")


def metric_names(expr: str) -> set[str]:
    """The settleguard_/faust_ metric names a PromQL expression reads (histograms by their
    base name)."""
    return {re.sub(r"_bucket$", "", name) for name in METRIC_NAME.findall(expr)}


@pytest.fixture
def prometheus(tmp_path: Path, isolated_env: dict[str, str]) -> Iterator[str]:
    """A Prometheus of this test only, scraping the worker's port every second and
    evaluating a copy of the project's rules (with short ``for:``) every second."""
    rules_dir = tmp_path / "rules"
    rules_dir.mkdir()
    for path in RULES.glob("*.yml"):
        rules = yaml.safe_load(path.read_text(encoding="utf-8"))
        for group in rules["groups"]:
            for rule in group["rules"]:
                if "for" in rule:
                    rule["for"] = TEST_FOR
                if rule.get("alert") in TEST_RANGES:
                    rule["expr"] = re.sub(
                        r"\[\d+[smhd]\]", f"[{TEST_RANGES[rule['alert']]}]", rule["expr"]
                    )
        (rules_dir / path.name).write_text(yaml.safe_dump(rules), encoding="utf-8")
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s", "scrape_timeout": "1s"},
        "rule_files": [f"{rules_dir}/*.yml"],
        "scrape_configs": [
            {
                "job_name": "settleguard-worker",
                "static_configs": [
                    {"targets": [f"127.0.0.1:{isolated_env['SETTLEGUARD_WEB_PORT']}"]}
                ],
            }
        ],
    }
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config), encoding="utf-8")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with (tmp_path / "prometheus.log").open("wb") as log:
        server = subprocess.Popen(
            [
                "prometheus",
                f"--config.file={tmp_path / 'prometheus.yml'}",
                f"--storage.tsdb.path={tmp_path / 'prometheus-data'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=log,
            stderr=log,
        )
        try:
            wait_for(lambda: ready(url), 30, f"Prometheus on {url} to be ready", server)
            yield url
        finally:
            stop(server)


def ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/-/ready", timeout=2) as page:
            return bool(page.status == 200)
    except OSError:
        return False


def wait_for(condition: Callable[[], Any], timeout: float, what: str, process: Any = None) -> Any:
    """Poll ``condition`` until it returns something truthy; fail after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if process is not None and process.poll() is not None:
            raise AssertionError(f"process exited ({process.returncode}) waiting for {what}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.5)


def api(url: str, path: str, **params: str) -> Any:
    """``data`` of a Prometheus API answer; fails the test on an error answer."""
    query = f"?{urllib.parse.urlencode(params)}" if params else ""
    with urllib.request.urlopen(f"{url}/api/v1/{path}{query}", timeout=10) as page:
        body = orjson.loads(page.read())
    assert body["status"] == "success", body
    return body["data"]


def has_data(url: str, expr: str) -> bool:
    return bool(api(url, "query", query=expr)["result"])


def without_data(url: str, exprs: list[str]) -> list[str]:
    return [expr for expr in exprs if not has_data(url, expr)]


def firing(url: str) -> set[str]:
    return {
        a["labels"]["alertname"] for a in api(url, "alerts")["alerts"] if a["state"] == "firing"
    }


def rule_problems(url: str) -> list[str]:
    """Alerting rules not (yet) evaluated cleanly: unknown health or an error."""
    rules = [r for g in api(url, "rules")["groups"] for r in g["rules"] if r["type"] == "alerting"]
    assert rules, "Prometheus loaded no alerting rules"
    return [
        f"{r['name']}: {r['health']} {r.get('lastError', '')}" for r in rules if r["health"] != "ok"
    ]


def rule_expressions() -> dict[str, str]:
    return {
        rule["alert"]: rule["expr"]
        for path in RULES.glob("*.yml")
        for group in yaml.safe_load(path.read_text(encoding="utf-8"))["groups"]
        for rule in group["rules"]
        if "alert" in rule
    }


def test_dashboard_queries_and_alert_rules_on_a_live_worker(
    isolated_env: dict[str, str], prometheus: str, redis_url: str, tmp_path: Path
) -> None:
    lines = stream()
    smtp_port = free_port()  # nothing listens there until the test starts its SMTP server
    rules = tmp_path / "rules.yaml"
    rules.write_text(MAIL_RULES, encoding="utf-8")
    env = {
        **isolated_env,
        "SETTLEGUARD_LAG_SECONDS": "1",
        "SETTLEGUARD_REDIS_URL": redis_url,
        "SETTLEGUARD_SMTP_HOST": "127.0.0.1",
        "SETTLEGUARD_SMTP_PORT": str(smtp_port),
    }
    bootstrap = env["SETTLEGUARD_KAFKA_BOOTSTRAP"]
    run_settleguard(["topics", "create"], env)
    port = int(env["SETTLEGUARD_WEB_PORT"])
    variables = {**DASHBOARD_VARIABLES, "$outlet": first_outlet(lines)}
    with (tmp_path / "worker.log").open("wb") as log:
        worker = start_worker(env, log, "--config", str(rules))
        try:
            # Input only once Prometheus has the counters at 0: a counter first seen with
            # its final value shows no increase.
            wait_for(
                lambda: has_data(prometheus, "settleguard_events_in_total"),
                60,
                "the first scrape of the worker",
                worker,
            )
            asyncio.run(publish(bootstrap, env["SETTLEGUARD_ORDERS_TOPIC"], lines))
            topics = [env["SETTLEGUARD_ORDERS_TOPIC"], env["SETTLEGUARD_SETTLEMENTS_TOPIC"]]
            app_id = env["SETTLEGUARD_APP_ID"]
            assert wait_consumed(bootstrap, app_id, topics, 300, [worker]) == 1.0

            # The lag gauge: one series per assigned input partition, 0 once all committed.
            def caught_up() -> bool:
                samples = scrape(port)
                lags = [k for k in samples if k.startswith("settleguard_consumer_lag{")]
                return bool(lags) and total(samples, "settleguard_consumer_lag") == 0

            wait_for(caught_up, 30, "the lag gauge to show 0 for every partition", worker)

            # Every dashboard query returns data.
            queries = {}
            for query in panel_queries():
                expr = query.expr
                for name, value in variables.items():
                    expr = expr.replace(name, value)
                queries[expr] = query
            assert "$" not in "".join(queries), "a dashboard variable is not substituted"
            exprs = list(queries)
            wait_for(lambda: not without_data(prometheus, exprs), 90, "dashboard data", worker)

            # Every alerting rule evaluates without error, on series that exist.
            wait_for(lambda: not rule_problems(prometheus), 30, "rules evaluated", worker)
            for alert, expr in rule_expressions().items():
                missing = {
                    name
                    for name in metric_names(expr)
                    if not has_data(prometheus, f"count({name})")
                }
                assert not missing, f"{alert} reads series that do not exist: {missing}"
            assert has_data(prometheus, 'up{job="settleguard-worker"} == 1')

            # 3% malformed input: the dead-letter spike fires; the worker is not down.
            wait_for(
                lambda: "SettleguardDeadLetterSpike" in firing(prometheus),
                60,
                "SettleguardDeadLetterSpike to fire",
                worker,
            )
            assert "SettleguardWorkerDown" not in firing(prometheus)

            # SMTP down: the mail sink retries, so its rules fire; once the server is up
            # and rejects one receiver, the rejection rule fires.
            for rule in ("SettleguardMailRetrying", "SettleguardSinkFailing"):
                wait_for(lambda r=rule: r in firing(prometheus), 90, f"{rule} to fire", worker)
            with private_smtp(smtp_port, tmp_path / "maildir", reject=("*@rejected.example",)):
                wait_for(
                    lambda: "SettleguardMailRejected" in firing(prometheus),
                    90,
                    "SettleguardMailRejected to fire",
                    worker,
                )
                assert list((tmp_path / "maildir" / "new").glob("*.eml")), "nothing delivered"
            # No more input: after the (shortened) window, the no-events rule fires.
            wait_for(
                lambda: "SettleguardNoEvents" in firing(prometheus),
                90,
                "SettleguardNoEvents to fire",
                worker,
            )
            os.kill(worker.pid, signal.SIGKILL)
            worker.wait(10)
            wait_for(
                lambda: "SettleguardWorkerDown" in firing(prometheus),
                60,
                "SettleguardWorkerDown to fire after kill -9",
            )
        finally:
            stop(worker)
