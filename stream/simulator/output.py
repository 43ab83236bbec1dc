"""Writing a SimulationResult to a directory: events.jsonl (raw bytes, arrival order),
labels.jsonl, patterns.jsonl, malformed.jsonl, fee_table.json and summary.json.

events.jsonl is written as bytes because malformed lines may not be UTF-8.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import orjson
from tqdm import tqdm

from stream.simulator.engine import SimulationResult

FILES = (
    "events.jsonl",
    "labels.jsonl",
    "patterns.jsonl",
    "malformed.jsonl",
    "fee_table.json",
    "summary.json",
)
_CHUNK = 20_000


def _jsonl(rows: Iterable[dict[str, Any]]) -> bytes:
    return b"".join(orjson.dumps(row) + b"\n" for row in rows)


def write_outputs(result: SimulationResult, out_dir: str | Path, progress: bool = False) -> Path:
    """Write all output files into ``out_dir`` (created if missing); returns the directory."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    events = result.events
    bar = tqdm(total=len(events), desc="write", unit="ev", disable=not progress)
    with (out / "events.jsonl").open("wb") as fh:
        for start in range(0, len(events), _CHUNK):
            chunk = events[start : start + _CHUNK]
            fh.write(b"\n".join(chunk) + b"\n")
            bar.update(len(chunk))
    bar.close()
    (out / "labels.jsonl").write_bytes(_jsonl(result.labels))
    (out / "patterns.jsonl").write_bytes(_jsonl(result.patterns))
    (out / "malformed.jsonl").write_bytes(_jsonl(result.malformed))
    pretty = orjson.OPT_INDENT_2
    (out / "fee_table.json").write_bytes(orjson.dumps(result.fee_table, option=pretty) + b"\n")
    (out / "summary.json").write_bytes(orjson.dumps(result.summary, option=pretty) + b"\n")
    return out
