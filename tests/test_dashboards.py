"""The Grafana dashboards: generated from deploy/grafana/generate.py and committed as they
are generated, wired to the provisioned Prometheus data source, and mounted by compose
where the dashboard provider looks. (tests/test_observability_e2e.py runs their queries.)"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml
from grafana_queries import DASHBOARDS, ROOT, load_dashboards, panel_queries

GRAFANA = ROOT / "deploy" / "grafana"
PROVISIONING = GRAFANA / "provisioning"
COMPOSE = ROOT / "deploy" / "docker-compose.yml"


def test_committed_dashboards_equal_a_fresh_generation(tmp_path: Path) -> None:
    """`python deploy/grafana/generate.py` reproduces the committed JSON byte for byte."""
    subprocess.run(
        [sys.executable, str(GRAFANA / "generate.py"), "--out", str(tmp_path)],
        check=True,
        capture_output=True,
        timeout=60,
    )
    fresh = {p.name: p.read_text(encoding="utf-8") for p in tmp_path.glob("*.json")}
    committed = {p.name: p.read_text(encoding="utf-8") for p in DASHBOARDS.glob("*.json")}
    assert set(fresh) == set(committed), "run: python deploy/grafana/generate.py"
    for name, text in fresh.items():
        assert committed[name] == text, f"{name} is stale: run python deploy/grafana/generate.py"


def test_three_dashboards_every_panel_queries_the_provisioned_prometheus() -> None:
    """overview, outlet and pipeline exist with unique uids; each panel has a query and
    uses the data source provisioned with the same uid."""
    (source,) = yaml.safe_load((PROVISIONING / "datasources" / "prometheus.yml").read_text())[
        "datasources"
    ]
    boards = load_dashboards()
    assert {b["uid"] for b in boards.values()} == {
        "settleguard-overview",
        "settleguard-outlet",
        "settleguard-pipeline",
    }
    for name, board in boards.items():
        for panel in board["panels"]:
            assert panel["datasource"] == {"type": "prometheus", "uid": source["uid"]}, name
            assert panel["targets"] and all(t["expr"] for t in panel["targets"]), panel["title"]
    assert source["url"] == "http://prometheus:9090"


def test_outlet_dashboard_selects_outlets_from_the_outlet_gauges() -> None:
    """The drill-down's `outlet` variable lists outlet ids of the rating gauge, and every
    one of its panels filters by it."""
    board = load_dashboards()["settleguard-outlet.json"]
    (variable,) = board["templating"]["list"]
    assert variable["name"] == "outlet"
    assert variable["query"] == "label_values(settleguard_outlet_rating, outlet_id)"
    outlet_queries = [q for q in panel_queries() if q.dashboard == "settleguard-outlet.json"]
    assert outlet_queries and all('outlet_id="$outlet"' in q.expr for q in outlet_queries)


def test_compose_mounts_the_dashboards_where_the_provider_reads_them() -> None:
    """The provider's path is where compose mounts deploy/grafana/dashboards."""
    (provider,) = yaml.safe_load((PROVISIONING / "dashboards" / "settleguard.yml").read_text())[
        "providers"
    ]
    grafana = yaml.safe_load(COMPOSE.read_text())["services"]["grafana"]
    mounts = dict(v.split(":")[:2] for v in grafana["volumes"] if v.startswith("./"))
    assert mounts["./grafana/dashboards"] == provider["options"]["path"]
    assert mounts["./grafana/provisioning"] == "/etc/grafana/provisioning"
