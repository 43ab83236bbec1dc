"""The PromQL of the generated Grafana dashboards, for tests that check or run them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, NamedTuple

ROOT = Path(__file__).resolve().parent.parent
DASHBOARDS = ROOT / "deploy" / "grafana" / "dashboards"


class PanelQuery(NamedTuple):
    dashboard: str
    panel: str
    expr: str


def load_dashboards() -> dict[str, dict[str, Any]]:
    """Every committed dashboard JSON, by file name."""
    return {p.name: json.loads(p.read_text(encoding="utf-8")) for p in DASHBOARDS.glob("*.json")}


def panel_queries() -> list[PanelQuery]:
    """Each query of each panel (rows' nested panels included) of every dashboard."""
    found = []
    for name, board in sorted(load_dashboards().items()):
        panels = list(board.get("panels", []))
        while panels:
            panel = panels.pop(0)
            panels += panel.get("panels", [])
            found += [
                PanelQuery(name, panel["title"], target["expr"])
                for target in panel.get("targets", [])
            ]
    return found
