"""ForestScorer (models/iforest.py) against scikit-learn's own IsolationForest.score_samples:
bit-identical scores (np.array_equal, never allclose), serialisation and versions."""

from __future__ import annotations

import copy
import io
import subprocess
import sys
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.ensemble import IsolationForest

from models.iforest import FORMAT_VERSION, ForestScorer

N_FEATURES = 8
N_TEST_ROWS = 10_000
ROOT = Path(__file__).resolve().parent.parent

# Values too large for float32 overflow to inf in the cast (sklearn and ForestScorer alike).
pytestmark = pytest.mark.filterwarnings("ignore:overflow encountered in cast:RuntimeWarning")


@dataclass(frozen=True)
class Config:
    """One forest to compare: sklearn parameters plus the kind of training data."""

    n_estimators: int
    max_samples: int | float | str
    max_features: float
    contamination: float | str
    data: str  # "normal" or "ties" (rounded values, duplicated rows, a constant column)
    n_train: int = 4_000
    seed: int = 0

    def __str__(self) -> str:
        return (
            f"{self.n_estimators}trees-samples_{self.max_samples}-features_{self.max_features}"
            f"-contamination_{self.contamination}-{self.data}"
        )


CONFIGS = [
    Config(50, "auto", 1.0, "auto", "normal"),
    Config(100, 256, 0.5, 0.05, "ties"),
    Config(200, 0.5, 1.0, 0.1, "ties", n_train=1_200),
    Config(100, 0.5, 0.5, "auto", "normal", n_train=2_000),
    Config(100, "auto", 1.0, 0.02, "ties", n_train=20_000, seed=7),
]


def training_data(config: Config) -> np.ndarray:
    """Deterministic training rows for ``config``."""
    rng = np.random.default_rng(config.seed)
    X = rng.normal(size=(config.n_train, N_FEATURES)) * rng.uniform(0.1, 100, N_FEATURES)
    if config.data == "ties":
        X[:, :3] = np.round(X[:, :3])  # many equal values
        X[:, 3] = rng.integers(0, 3, config.n_train)  # three distinct values
        X[:, 7] = 42.0  # constant feature: never split on
        X[: config.n_train // 4] = X[0]  # a quarter of the rows are one duplicated row
    return X


@cache
def fitted(config: Config) -> tuple[IsolationForest, ForestScorer]:
    """The sklearn forest for ``config`` and its ForestScorer (built once per test run)."""
    forest = IsolationForest(
        n_estimators=config.n_estimators,
        max_samples=config.max_samples,
        max_features=config.max_features,
        contamination=config.contamination,
        random_state=config.seed,
    ).fit(training_data(config))
    return forest, ForestScorer.from_sklearn(forest)


def tree_columns(forest: IsolationForest) -> list[np.ndarray]:
    """Original column of each tree feature index (sklearn subsets X only if max_features < 1)."""
    n = forest.n_features_in_
    return [
        np.asarray(columns) if len(columns) != n else np.arange(n)
        for columns in forest.estimators_features_
    ]


@cache
def scoring_rows(config: Config) -> np.ndarray:
    """>= 10,000 rows: in range, on the thresholds, far outside, duplicates, NaN and inf."""
    rng = np.random.default_rng(config.seed + 1000)
    train = training_data(config)
    forest, _ = fitted(config)
    n = N_TEST_ROWS // 5
    in_range = train[rng.integers(0, len(train), n)] + rng.normal(size=(n, N_FEATURES))
    duplicates = train[rng.integers(0, len(train), n)]  # training rows, ties included
    far = rng.normal(size=(n, N_FEATURES)) * 10.0 ** rng.integers(2, 12, (n, N_FEATURES))
    # Rows whose values sit exactly on split thresholds (float64), or one float32 step
    # either side: the float32 cast decides which way they go.
    on_split = np.empty((n, N_FEATURES))
    for column in range(N_FEATURES):
        thresholds = np.concatenate(
            [
                e.tree_.threshold[e.tree_.feature == local]
                for e, columns in zip(forest.estimators_, tree_columns(forest), strict=True)
                for local in np.nonzero(columns == column)[0]
            ]
        )
        if len(thresholds) == 0:  # a constant column is never split on
            thresholds = np.array([42.0])
        picked = rng.choice(thresholds, n).astype(np.float32)
        step = rng.integers(-1, 2, n)
        toward = np.where(step > 0, np.inf, -np.inf).astype(np.float32)
        on_split[:, column] = np.where(
            step == 0, rng.choice(thresholds, n), np.nextafter(picked, toward)
        )
    special = train[rng.integers(0, len(train), n)]
    cells = rng.integers(0, N_FEATURES, (n, 2))
    kinds = np.array([np.nan, np.inf, -np.inf, 1e39, -1e300, 0.0])
    special[np.arange(n), cells[:, 0]] = rng.choice(kinds, n)
    special[np.arange(n) % 3 == 0, cells[np.arange(n) % 3 == 0, 1]] = np.nan
    return np.vstack([in_range, duplicates, far, on_split, special])


@pytest.mark.parametrize("config", CONFIGS, ids=str)
def test_score_many_is_bit_identical_to_score_samples(config: Config) -> None:
    """score_many equals sklearn's score_samples exactly on 10,000 varied rows."""
    forest, scorer = fitted(config)
    X = scoring_rows(config)
    assert len(X) >= 10_000
    expected = forest.score_samples(X)
    assert np.array_equal(scorer.score_many(X), expected)


@pytest.mark.parametrize("config", CONFIGS, ids=str)
def test_score_one_is_bit_identical_to_score_samples(config: Config) -> None:
    """score_one equals sklearn's score_samples exactly, row by row, on a sample of rows."""
    forest, scorer = fitted(config)
    X = scoring_rows(config)
    picked = np.random.default_rng(3).choice(len(X), 400, replace=False)
    expected = forest.score_samples(X)[picked]
    assert np.array_equal([scorer.score_one(row) for row in X[picked]], expected)


def test_values_exactly_on_a_threshold_go_left_like_sklearn() -> None:
    """A value equal to a split threshold goes left (sklearn's ``x <= threshold``)."""
    # Round the thresholds of a copy to float32 values, so inputs can hit them exactly.
    forest = copy.deepcopy(fitted(CONFIGS[1])[0])
    for estimator in forest.estimators_:
        state = estimator.tree_.__getstate__()
        state["nodes"]["threshold"] = state["nodes"]["threshold"].astype(np.float32)
        estimator.tree_.__setstate__(state)
    scorer = ForestScorer.from_sklearn(forest)
    rng = np.random.default_rng(5)
    X = np.empty((3000, N_FEATURES))
    for column in range(N_FEATURES):
        thresholds = np.concatenate(
            [
                e.tree_.threshold[np.isin(e.tree_.feature, np.nonzero(tree_cols == column)[0])]
                for e, tree_cols in zip(forest.estimators_, tree_columns(forest), strict=True)
            ]
        )
        X[:, column] = rng.choice(thresholds, len(X)) if len(thresholds) else 42.0
    expected = forest.score_samples(X)
    assert np.array_equal(scorer.score_many(X), expected)
    assert np.array_equal([scorer.score_one(row) for row in X[:300]], expected[:300])
    # The ties matter: one float32 step up sends them right and changes the scores.
    above = np.nextafter(X.astype(np.float32), np.float32(np.inf))
    assert not np.array_equal(scorer.score_many(above), expected)


def test_score_one_accepts_lists_tuples_and_float32_without_mutating() -> None:
    """A list, tuple, float32 or int row scores like the float64 row; the input is unchanged."""
    forest, scorer = fitted(CONFIGS[0])
    row = scoring_rows(CONFIGS[0])[5]
    as_list = row.tolist()
    expected = forest.score_samples(row.reshape(1, -1))[0]
    assert scorer.score_one(as_list) == expected
    assert scorer.score_one(tuple(as_list)) == expected
    assert as_list == row.tolist()
    row32 = row.astype(np.float32)
    kept = row32.copy()
    assert scorer.score_one(row32) == forest.score_samples(row32.reshape(1, -1))[0]
    assert np.array_equal(row32, kept)
    ints = [3, -2, 0, 1, 7, 100, -50, 2]
    assert scorer.score_one(ints) == forest.score_samples([ints])[0]
    assert isinstance(scorer.score_one(ints), float)


def test_anomaly_score_one_is_the_negated_score() -> None:
    """anomaly_score_one is -score_one: higher means more anomalous."""
    _, scorer = fitted(CONFIGS[0])
    normal, outlier = np.zeros(N_FEATURES), np.full(N_FEATURES, 1e6)
    assert scorer.anomaly_score_one(normal) == -scorer.score_one(normal)
    assert scorer.anomaly_score_one(outlier) > scorer.anomaly_score_one(normal)


@pytest.mark.parametrize("config", CONFIGS[:3], ids=str)
def test_offset_reproduces_sklearn_predict(config: Config) -> None:
    """score - offset < 0 flags exactly the rows sklearn's predict marks -1."""
    forest, scorer = fitted(config)
    X = scoring_rows(config)[:3000]
    assert scorer.offset == forest.offset_
    assert np.array_equal(scorer.score_many(X) - scorer.offset < 0, forest.predict(X) == -1)


def test_single_sample_trees_score_like_sklearn() -> None:
    """max_samples=1 (zero denominator) gives sklearn's constant score of -0.5."""
    X = np.random.default_rng(0).normal(size=(50, 3))
    forest = IsolationForest(n_estimators=10, max_samples=1, random_state=0).fit(X)
    scorer = ForestScorer.from_sklearn(forest)
    assert np.array_equal(scorer.score_many(X), forest.score_samples(X))
    assert scorer.score_one(X[0]) == forest.score_samples(X[:1])[0] == -0.5


def test_wrong_row_length_is_rejected_with_the_expected_count() -> None:
    """A row of the wrong length or shape raises ValueError naming the feature count."""
    _, scorer = fitted(CONFIGS[0])
    with pytest.raises(ValueError, match=r"expected a 1-D row of 8 features .* shape \(7,\)"):
        scorer.score_one([0.0] * 7)
    with pytest.raises(ValueError, match=r"expected a 1-D row of 8 features .* shape \(1, 8\)"):
        scorer.score_one(np.zeros((1, 8)))
    with pytest.raises(ValueError, match=r"expected a 2-D array of rows of 8 features"):
        scorer.score_many(np.zeros(8))


def test_unfitted_forest_is_rejected() -> None:
    """from_sklearn on an unfitted forest says to fit it first."""
    with pytest.raises(ValueError, match=r"IsolationForest is not fitted: call forest.fit"):
        ForestScorer.from_sklearn(IsolationForest())


@pytest.mark.parametrize("config", [CONFIGS[0], CONFIGS[3]], ids=str)
def test_bytes_round_trip_keeps_scores_and_version(config: Config) -> None:
    """from_bytes(to_bytes()) scores identically and keeps the version."""
    forest, scorer = fitted(config)
    loaded = ForestScorer.from_bytes(scorer.to_bytes())
    X = scoring_rows(config)[::5]
    assert loaded.version == scorer.version
    assert np.array_equal(loaded.score_many(X), forest.score_samples(X))
    assert loaded.score_one(X[0]) == scorer.score_one(X[0])
    assert (loaded.n_estimators, loaded.n_features) == (scorer.n_estimators, N_FEATURES)


def test_same_model_same_version_different_model_different_version() -> None:
    """The version depends only on the model: same fit, same version; other fit, other one."""
    config = CONFIGS[0]
    forest, scorer = fitted(config)
    refit = IsolationForest(n_estimators=50, random_state=0).fit(training_data(config))
    assert ForestScorer.from_sklearn(forest).version == scorer.version
    assert ForestScorer.from_sklearn(refit).version == scorer.version
    assert scorer.version.startswith("iforest-") and len(scorer.version) == len("iforest-") + 12
    others = {
        ForestScorer.from_sklearn(
            IsolationForest(n_estimators=50, random_state=1).fit(training_data(config))
        ).version,
        ForestScorer.from_sklearn(
            IsolationForest(n_estimators=51, random_state=0).fit(training_data(config))
        ).version,
        ForestScorer.from_sklearn(
            IsolationForest(n_estimators=50, random_state=0, contamination=0.1).fit(
                training_data(config)
            )
        ).version,
        *(fitted(other)[1].version for other in CONFIGS[1:]),
    }
    assert scorer.version not in others
    assert len(others) == 3 + len(CONFIGS) - 1


def rewrite_npz(data: bytes, **changes: Any) -> bytes:
    """The npz ``data`` with some arrays replaced (or removed when the value is None)."""
    with np.load(io.BytesIO(data)) as npz:
        arrays = {name: npz[name] for name in npz.files}
    for name, value in changes.items():
        if value is None:
            del arrays[name]
        else:
            arrays[name] = value
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def test_unknown_format_version_is_rejected() -> None:
    """Bytes with another format version raise ValueError naming both versions."""
    _, scorer = fitted(CONFIGS[0])
    future = rewrite_npz(scorer.to_bytes(), format_version=np.array([FORMAT_VERSION + 98]))
    with pytest.raises(
        ValueError,
        match=rf"unsupported ForestScorer format version \[{FORMAT_VERSION + 98}\] "
        rf"\(this code reads version {FORMAT_VERSION}\)",
    ):
        ForestScorer.from_bytes(future)
    with pytest.raises(ValueError, match=r"unsupported ForestScorer format version \['1'\]"):
        ForestScorer.from_bytes(rewrite_npz(scorer.to_bytes(), format_version=np.array(["1"])))
    with pytest.raises(ValueError, match="no format_version array"):
        ForestScorer.from_bytes(rewrite_npz(scorer.to_bytes(), format_version=None))


def test_bytes_that_are_not_a_model_are_rejected() -> None:
    """Garbage, missing arrays, out-of-range and shared child links raise a clear
    ValueError."""
    _, scorer = fitted(CONFIGS[0])
    data = scorer.to_bytes()
    with pytest.raises(ValueError, match="not a ForestScorer model"):
        ForestScorer.from_bytes(b"not an npz file")
    npy = io.BytesIO()
    np.save(npy, np.zeros(3))
    with pytest.raises(ValueError, match=r"not a ForestScorer model .*not an \.npz archive"):
        ForestScorer.from_bytes(npy.getvalue())
    with pytest.raises(ValueError, match=r"lacks arrays \['threshold'\]"):
        ForestScorer.from_bytes(rewrite_npz(data, threshold=None))
    with np.load(io.BytesIO(data)) as npz:
        left = npz["left"].copy()
    left[np.argmax(left >= 0)] = len(left) + 5
    with pytest.raises(ValueError, match="child or feature indices out of range"):
        ForestScorer.from_bytes(rewrite_npz(data, left=left))
    with np.load(io.BytesIO(data)) as npz:
        left, right = npz["left"], npz["right"].copy()
    split = np.argmax(left >= 0)
    right[split] = left[split]  # one subtree reached twice, another from nowhere
    with pytest.raises(ValueError, match=r"do not form trees|trees share nodes"):
        ForestScorer.from_bytes(rewrite_npz(data, right=right))


def test_loading_a_scorer_does_not_import_sklearn(tmp_path: Path) -> None:
    """from_bytes and score_one need numpy only (a worker never imports scikit-learn)."""
    _, scorer = fitted(CONFIGS[0])
    model = tmp_path / "model.npz"
    model.write_bytes(scorer.to_bytes())
    code = (
        "import sys; from pathlib import Path; from models.iforest import ForestScorer; "
        f"s = ForestScorer.from_bytes(Path({str(model)!r}).read_bytes()); "
        f"print(repr(s.score_one([0.0] * {N_FEATURES})), s.version, 'sklearn' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    ).stdout.split()
    assert out == [repr(scorer.score_one([0.0] * N_FEATURES)), scorer.version, "False"]
