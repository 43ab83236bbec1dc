"""The contract's JSON Schemas (config/schemas/), loaded from the installed package."""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

SCHEMA_NAMES = ("order", "settlement", "alert")


@cache
def load_schema(name: str) -> dict[str, Any]:
    """The JSON Schema named ``name`` (one of SCHEMA_NAMES) as a dict."""
    if name not in SCHEMA_NAMES:
        raise ValueError(f"schema name must be one of {SCHEMA_NAMES}, got {name!r}")
    text = resources.files("config").joinpath(f"schemas/{name}.schema.json").read_text("utf-8")
    return json.loads(text)
