"""Replay throughput and state size.

    python bench/bench_replay.py [--compiled] [--events FILE] [--outlets-for-size 100000]

--compiled runs everything on the compiled build of models/ (scripts/build_compiled.sh,
built into var/compiled when missing or stale; the production image's build); without
it, on the plain Python of the checkout. The first line printed says which.

1. Replays an events file (default: the simulator's default stream, 200 outlets x 60
   days) with every detector on, and a decode-only pass over the same lines in the same
   run; prints events/s of both and their ratio (target: replay >= 50,000 events/s).
2. Serialises every outlet's state after the replay and prints bytes per outlet (mean,
   p99, max; target <= 16 KB), then builds states for --outlets-for-size synthetic
   outlets (each as large as the largest real one, a worst case) to show the total.
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import sklearn.ensemble  # noqa: F401  (start-up, not per event: imported before timing)
from compiled import compiled_pythonpath

import models.engine
from config.rules import Rules
from models.decode import decode
from models.memory_stores import MemoryStores
from models.state import OutletState
from stream.replay import replay
from stream.simulator import SimulationConfig, simulate, write_outputs


def events_file(path: Path | None, workdir: Path) -> Path:
    if path is not None:
        return path
    write_outputs(simulate(SimulationConfig()), workdir)
    return workdir / "events.jsonl"


def run_compiled(argv: list[str]) -> int:
    """This benchmark again, on the compiled build (built first when missing or stale)."""
    env = {**os.environ, "PYTHONPATH": compiled_pythonpath()}
    return subprocess.run([sys.executable, __file__, *argv], env=env).returncode


def build_name() -> str:
    plain = str(models.engine.__file__).endswith(".py")
    return "plain Python" if plain else "compiled (mypyc)"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=Path, help="JSON Lines events (default: simulate)")
    parser.add_argument("--outlets-for-size", type=int, default=100_000)
    parser.add_argument("--compiled", action="store_true", help="run on the compiled build")
    args = parser.parse_args()
    if args.compiled:
        return run_compiled([a for a in sys.argv[1:] if a != "--compiled"])
    print(f"build: {build_name()} ({models.engine.__file__})")
    with tempfile.TemporaryDirectory() as tmp:
        path = events_file(args.events, Path(tmp))
        lines = path.read_bytes().splitlines()
        start = time.perf_counter()
        for line in lines:
            decode(line)
        decode_rate = len(lines) / (time.perf_counter() - start)

        stores = MemoryStores()
        start = time.perf_counter()
        with path.open("rb") as events:
            summary = replay(events, str(path), io.BytesIO(), None, Rules(), stores=stores)
        replay_rate = len(lines) / (time.perf_counter() - start)

    print(f"{len(lines)} events, {summary.alerts} alerts")
    print(f"decode only          {decode_rate:10,.0f} events/s")
    print(
        f"replay, all detectors{replay_rate:10,.0f} events/s  "
        f"(x{replay_rate / decode_rate:.3f} of decode-only; target 50,000 events/s)"
    )
    sizes = sorted(len(state.to_bytes()) for state in stores.outlets.values())
    p99 = sizes[int(0.99 * (len(sizes) - 1))]
    print(
        f"outlet state: {len(sizes)} outlets, mean {statistics.mean(sizes):,.0f} B, "
        f"p99 {p99:,} B, max {sizes[-1]:,} B (target <= 16,384 B)"
    )
    largest = max(stores.outlets.values(), key=lambda state: len(state.to_bytes())).to_bytes()
    start = time.perf_counter()
    total = 0
    for index in range(args.outlets_for_size):
        state = OutletState.from_bytes(largest)
        state.outlet_id = f"X{index:07d}"
        total += len(state.to_bytes())
    elapsed = time.perf_counter() - start
    print(
        f"{args.outlets_for_size:,} outlets as large as the largest: {total / 2**20:,.0f} MiB "
        f"of state, {total / args.outlets_for_size:,.0f} B each "
        f"(serialised and parsed in {elapsed:.1f} s)"
    )
    orders = len(stores.orders)
    print(
        f"order records held at the end: {orders:,} (expire "
        f"{Rules().crosscheck.order_retention_days:g} days after their last event)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
