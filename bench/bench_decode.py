"""Decoding speed: settleguard's decoder (orjson + contract checks + typed events) against
plain ``json.loads`` and ``orjson.loads`` over the same simulated events, in one run.

    python bench/bench_decode.py [--events FILE] [--repeat 3]

Prints events/s for each and the ratios; the figures depend on the machine, the ratios
much less. The fair reference for the decoder is the same decoder with ``json.loads`` as
its parser (same checks, same typed events): the ratio between the two is what orjson buys.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from unittest.mock import patch

import orjson

import models.decode
from models.decode import Rejection, decode
from stream.simulator.config import SimulationConfig
from stream.simulator.engine import simulate


def load_events(path: Path | None) -> list[bytes]:
    """Event lines from ``path``, or a fresh simulated stream (100 outlets x 30 days)."""
    if path is not None:
        return path.read_bytes().splitlines()
    return simulate(SimulationConfig(outlets=100, days=30, seed=1)).events


def best_rate(fn: Callable[[bytes], Any], lines: list[bytes], repeat: int) -> float:
    """Events/s of ``fn`` over ``lines``, best of ``repeat`` passes."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        for line in lines:
            fn(line)
        best = min(best, time.perf_counter() - start)
    return len(lines) / best


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=Path, help="JSON Lines events (default: simulate)")
    parser.add_argument("--repeat", type=int, default=3, help="passes; the best one counts")
    args = parser.parse_args()
    lines = load_events(args.events)
    rejected = sum(isinstance(decode(line), Rejection) for line in lines)
    print(f"{len(lines)} events ({rejected} rejected), best of {args.repeat} passes")
    rates = {
        "json.loads (parse only)": best_rate(json.loads, lines, args.repeat),
        "orjson.loads (parse only)": best_rate(orjson.loads, lines, args.repeat),
    }
    with patch.object(models.decode.orjson, "loads", json.loads):
        rates["decode with json.loads as parser"] = best_rate(decode, lines, args.repeat)
    rates["settleguard decode (orjson + checks + typed)"] = best_rate(decode, lines, args.repeat)
    reference = rates["json.loads (parse only)"]
    for name, rate in rates.items():
        print(
            f"{name:45s} {rate:12,.0f} events/s  {1e6 / rate:6.2f} µs/event  "
            f"x{rate / reference:.2f} vs json.loads"
        )
    gain = (
        rates["settleguard decode (orjson + checks + typed)"]
        / rates["decode with json.loads as parser"]
    )
    print(f"orjson makes the full decoder x{gain:.2f} faster than the same decoder on json.loads")
    return 0


if __name__ == "__main__":
    sys.exit(main())
