"""Single-event IsolationForest scoring: sklearn's ``score_samples`` on one row against
settleguard's ``ForestScorer.score_one``, same forest, same rows, in one run.

    python bench/bench_iforest.py [--trees 100] [--sklearn-calls 200] [--scorer-calls 20000]

Fits a forest (12 features, 20,000 training rows), checks that both give the same scores
bit for bit, and prints µs/event for each and the speed-up; the figures depend on the
machine, the ratio much less. Exits 1 if the scores differ or the speed-up is below 100.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from sklearn.ensemble import IsolationForest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from anywhere

from models.iforest import ForestScorer

N_FEATURES = 12
N_TRAIN = 20_000
MIN_SPEEDUP = 100.0


def best_us_per_call(
    fn: Callable[[list[float]], object], rows: list[list[float]], calls: int, repeat: int
) -> float:
    """µs per call of ``fn`` over ``calls`` rows (cycling through ``rows``), best pass."""
    batch = [rows[i % len(rows)] for i in range(calls)]
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        for row in batch:
            fn(row)
        best = min(best, time.perf_counter() - start)
    return best / calls * 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trees", type=int, default=100, help="n_estimators")
    parser.add_argument("--sklearn-calls", type=int, default=200, help="score_samples calls")
    parser.add_argument("--scorer-calls", type=int, default=20_000, help="score_one calls")
    parser.add_argument("--repeat", type=int, default=3, help="passes; the best one counts")
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    X_train = rng.normal(size=(N_TRAIN, N_FEATURES)) * rng.uniform(1, 100, N_FEATURES)
    forest = IsolationForest(n_estimators=args.trees, random_state=0).fit(X_train)
    scorer = ForestScorer.from_sklearn(forest)
    # Events as they arrive: plain Python lists of floats, some far outside the training data.
    events = X_train[rng.integers(0, N_TRAIN, 1000)] + rng.normal(size=(1000, N_FEATURES))
    events[::10] *= 50
    rows = events.tolist()

    same = np.array_equal([scorer.score_one(row) for row in rows], forest.score_samples(events))
    print(
        f"IsolationForest: {args.trees} trees, {N_FEATURES} features, {N_TRAIN} training rows, "
        f"max_samples={forest.max_samples_}; {scorer!r}"
    )
    print("score_one bit-identical to score_samples on 1000 events:", "yes" if same else "NO")

    def sklearn_one(row: list[float]) -> float:
        return float(forest.score_samples([row])[0])

    sklearn_us = best_us_per_call(sklearn_one, rows, args.sklearn_calls, args.repeat)
    scorer_us = best_us_per_call(scorer.score_one, rows, args.scorer_calls, args.repeat)
    speedup = sklearn_us / scorer_us
    for name, us, calls in (
        ("sklearn score_samples (1 row)", sklearn_us, args.sklearn_calls),
        ("ForestScorer.score_one", scorer_us, args.scorer_calls),
    ):
        print(f"{name:32s} {us:10.1f} µs/event  ({calls} calls, best of {args.repeat} passes)")
    print(
        f"speed-up x{speedup:.0f} (required: x{MIN_SPEEDUP:.0f})",
        "ok" if speedup >= MIN_SPEEDUP else "TOO SLOW",
    )
    return 0 if same and speedup >= MIN_SPEEDUP else 1


if __name__ == "__main__":
    sys.exit(main())
