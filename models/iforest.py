"""Fast single-event scoring for a fitted scikit-learn ``IsolationForest``.

``IsolationForest.score_samples`` on one row costs milliseconds (input validation, joblib
dispatch, one Cython call per tree). ``ForestScorer`` packs the fitted trees into one flat
node table, and a small C loop (models/_treewalk.c) walks one row through every tree in
a few microseconds.

The scores are **bit-identical** to ``forest.score_samples``; this module replays
scikit-learn 1.9's ``IsolationForest._compute_score_samples`` step by step:

- the row is cast to float32 (as ``validate_data(dtype=np.float32)`` does) and each split
  compares ``float32(x[f]) <= threshold`` with the float64 threshold, as ``Tree.apply``
  does; a NaN goes the way the node's ``missing_go_to_left`` says, ±inf compares as usual
  (sklearn accepts both; values too large for float32 become ±inf in the cast, with
  numpy's overflow warning, exactly as in sklearn);
- with ``max_features < 1`` each tree sees only its ``estimators_features_``: the packed
  table stores the original column index, so the full row is used for every tree;
- a leaf adds ``node_depth + _average_path_length(n_node_samples) - 1.0`` (sklearn's
  per-tree ``_decision_path_lengths`` and ``_average_path_length_per_tree``), summed over
  the trees sequentially in ``estimators_`` order in float64 (not ``np.sum``: its pairwise
  summation can differ in the last bit);
- ``score = -(2 ** (-depths / (n_estimators * _average_path_length([max_samples_]))))``,
  evaluated with the same numpy expression on a float64 array.

Sign convention: ``score_one``/``score_many`` keep sklearn's ``score_samples`` sign — the
*higher*, the *more normal* (roughly -1 for clear anomalies, about -0.5 and above for
normal points). ``anomaly_score_one`` is its negation (higher = more anomalous, the
convention of the rest of settleguard's detectors). Deciding (a threshold) is separate;
``offset`` carries sklearn's ``offset_`` so that ``score - offset < 0`` is exactly
``forest.predict(x) == -1``.

A scorer needs numpy only: scikit-learn is imported by ``from_sklearn`` alone, so a
worker that loads a scorer with ``from_bytes`` never imports it.
"""

from __future__ import annotations

import hashlib
import io
import zipfile
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from models import _treewalk  # C (models/_treewalk.c), built by setup.py

if TYPE_CHECKING:
    from sklearn.ensemble import IsolationForest

FORMAT_VERSION = 1
"""Version of the ``to_bytes`` layout; ``from_bytes`` rejects any other."""

_LEAF = -1  # sklearn's TREE_LEAF marker in children_left / children_right
_MAX_FEATURES = 2**15 - 1  # the walk table stores a feature index in 16 bits

# The packed model: these arrays (with these dtypes) are what to_bytes stores and what
# the version hash covers. Nodes of all trees are concatenated in ``estimators_`` order;
# ``left``/``right`` hold indices into the concatenated table (-1 for leaves).
_ARRAY_DTYPES: dict[str, str] = {
    "roots": "<i8",  # index of each tree's root node, in estimators_ order
    "left": "<i8",
    "right": "<i8",
    "feature": "<i8",  # original column index (estimators_features_ already applied)
    "threshold": "<f8",
    "missing_go_left": "|u1",  # where a NaN goes at a split (sklearn's missing_go_to_left)
    "leaf_value": "<f8",  # node_depth + average_path_length(n_node_samples) - 1.0
    "n_features": "<i8",  # shape (1,)
    "denominator": "<f8",  # shape (1,): n_estimators * average_path_length([max_samples_])
    "offset": "<f8",  # shape (1,): sklearn's offset_
}

_NODE = np.dtype(
    [("value", "<f8"), ("left", "<i4"), ("feature", "<i2"), ("nan_right", "u1"), ("pad", "u1")]
)
"""One node as models/_treewalk.c reads it (``struct node``, 16 bytes): ``value`` is the
split threshold, or the leaf value of a leaf (``left`` -1); the right child is left + 1."""

FloatArray = npt.NDArray[np.float64]
IndexArray = npt.NDArray[np.intp]


class ForestScorer:
    """A fitted IsolationForest packed into flat arrays, scoring one event in microseconds.

    Build it with ``ForestScorer.from_sklearn(forest)`` or ``ForestScorer.from_bytes(b)``.
    ``version`` is a short hash of the packed arrays: the same model always gets the same
    version (it goes into alerts' ``model_version``), a different model a different one.
    Scoring does not change the scorer, so one instance can serve any number of callers.
    """

    def __init__(self, arrays: dict[str, npt.NDArray[Any]]) -> None:
        """Check the packed arrays (see ``_ARRAY_DTYPES``) and build the walk tables.

        Prefer ``from_sklearn`` / ``from_bytes``; this raises ``ValueError`` saying what is
        inconsistent if the arrays do not describe a forest of binary trees.
        """
        missing = sorted(set(_ARRAY_DTYPES) - set(arrays))
        if missing:
            raise ValueError(f"packed forest lacks arrays {missing}; rebuild it with from_sklearn")
        packed = {
            name: np.ascontiguousarray(arrays[name], dtype=dtype)
            for name, dtype in _ARRAY_DTYPES.items()
        }
        self._packed = packed
        self.n_features = int(packed["n_features"][0])
        self.denominator = float(packed["denominator"][0])
        self.offset = float(packed["offset"][0])
        self.n_estimators = len(packed["roots"])
        levels = _check_forest(packed, self.n_features)
        self.version = _content_version(packed)
        self._build_walk_table(packed, np.concatenate(levels))

    def _build_walk_table(self, packed: dict[str, npt.NDArray[Any]], order: IndexArray) -> None:
        """The node table models/_treewalk.c walks: the nodes renumbered in ``order``
        (level by level across all trees, siblings side by side, so a right child is
        always its left sibling + 1), 16 bytes each. Level order keeps the nodes every
        walk visits first (the top levels of all trees) in a few cache lines. The
        renumbering changes no comparison and no sum: scores stay bit-identical."""
        renumbered = np.empty(len(order), dtype=np.intp)
        renumbered[order] = np.arange(len(order), dtype=np.intp)
        left = packed["left"][order]
        is_leaf = left == _LEAF
        nodes = np.zeros(len(order), dtype=_NODE)
        nodes["value"] = np.where(is_leaf, packed["leaf_value"][order], packed["threshold"][order])
        nodes["left"] = np.where(is_leaf, _LEAF, renumbered[np.where(is_leaf, 0, left)])
        nodes["feature"] = np.where(is_leaf, 0, packed["feature"][order])
        nodes["nan_right"] = packed["missing_go_left"][order] == 0
        self._nodes = nodes.tobytes()
        self._roots = renumbered[packed["roots"]].astype("<i4").tobytes()

    # ------------------------------------------------------------------ construction

    @classmethod
    def from_sklearn(cls, forest: IsolationForest) -> ForestScorer:
        """Pack a fitted ``sklearn.ensemble.IsolationForest`` (any max_samples/max_features)."""
        # The same helper sklearn's fit() applies to every tree's n_node_samples.
        from sklearn.ensemble._iforest import _average_path_length

        estimators = getattr(forest, "estimators_", None)
        if not estimators:
            raise ValueError(
                f"{type(forest).__name__} is not fitted: call forest.fit(X) before "
                "ForestScorer.from_sklearn(forest)"
            )
        n_features = int(forest.n_features_in_)
        roots, left, right, feature, threshold, go_left, leaf_value = ([] for _ in range(7))
        n_nodes = 0
        for tree_estimator, columns in zip(estimators, forest.estimators_features_, strict=True):
            tree = tree_estimator.tree_
            # sklearn indexes X[:, features] only when a tree sees fewer columns than the
            # forest (IsolationForest never bootstraps features); otherwise the tree was
            # fitted on X itself and its feature indices are the original columns.
            columns = np.asarray(columns, dtype=np.int64)
            subsampled = len(columns) != n_features
            is_leaf = tree.children_left == _LEAF
            local_feature = np.where(is_leaf, 0, tree.feature)
            roots.append(np.array([n_nodes]))
            left.append(np.where(is_leaf, _LEAF, tree.children_left + n_nodes))
            right.append(np.where(is_leaf, _LEAF, tree.children_right + n_nodes))
            feature.append(
                np.where(is_leaf, -1, columns[local_feature] if subsampled else local_feature)
            )
            threshold.append(tree.threshold)
            go_left.append(tree.missing_go_to_left)
            # Exactly the operands and the order of sklearn's
            # ``_decision_path_lengths[leaf] + _average_path_length_per_tree[leaf] - 1.0``.
            leaf_value.append(
                tree.compute_node_depths() + _average_path_length(tree.n_node_samples) - 1.0
            )
            n_nodes += tree.node_count
        # Same operands as _compute_score_samples: len(estimators_) * array([apl]).
        max_samples = getattr(forest, "_max_samples", forest.max_samples_)
        denominator = len(estimators) * _average_path_length([max_samples])
        return cls(
            {
                "roots": np.concatenate(roots),
                "left": np.concatenate(left),
                "right": np.concatenate(right),
                "feature": np.concatenate(feature),
                "threshold": np.concatenate(threshold),
                "missing_go_left": np.concatenate(go_left),
                "leaf_value": np.concatenate(leaf_value),
                "n_features": np.array([n_features]),
                "denominator": np.asarray(denominator, dtype=np.float64).reshape(1),
                "offset": np.array([forest.offset_], dtype=np.float64),
            }
        )

    def to_bytes(self) -> bytes:
        """The packed model as an in-memory ``.npz`` (no pickle), with ``format_version``."""
        buffer = io.BytesIO()
        arrays: dict[str, Any] = {"format_version": np.array([FORMAT_VERSION]), **self._packed}
        np.savez(buffer, allow_pickle=False, **arrays)
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> ForestScorer:
        """Load what ``to_bytes`` wrote; ``ValueError`` for another format version or bad data."""
        expected = "expected the .npz bytes of ForestScorer.to_bytes()"
        try:
            loaded = np.load(io.BytesIO(data), allow_pickle=False)
            if not isinstance(loaded, np.lib.npyio.NpzFile):
                raise ValueError(f"got a {type(loaded).__name__}, not an .npz archive")
            with loaded:
                arrays = {name: loaded[name] for name in loaded.files}
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:
            raise ValueError(f"not a ForestScorer model ({expected}): {error}") from error
        if "format_version" not in arrays:
            raise ValueError(f"not a ForestScorer model: no format_version array ({expected})")
        version = arrays.pop("format_version").reshape(-1)
        if version.shape != (1,) or version.dtype.kind not in "iu" or version[0] != FORMAT_VERSION:
            raise ValueError(
                f"unsupported ForestScorer format version {version.tolist()} (this code reads "
                f"version {FORMAT_VERSION}); re-export the model with this settleguard version"
            )
        return cls(arrays)

    # ----------------------------------------------------------------------- scoring

    def score_one(self, x: Sequence[float] | npt.ArrayLike) -> float:
        """``forest.score_samples([x])[0]``, bit for bit: higher = more normal (sklearn's sign).

        ``x`` is one row of ``n_features`` numbers (list, tuple or 1-D array); it is not
        modified. ``ValueError`` if it has another length or shape.
        """
        row = np.asarray(x, dtype=np.float32)
        if row.shape != (self.n_features,):
            raise ValueError(self._shape_message(row.shape, "a 1-D row"))
        # exact: float64 vs float64 thresholds; the trees are walked in C (_treewalk.c)
        depth = _treewalk.walk(self._nodes, self._roots, row.astype(np.float64))
        # _scores_from_depths for one value: the division and negations are exact IEEE
        # operations in Python too; the power stays numpy's (on a 1-element array, the
        # way sklearn computes it), as numpy's float64 power may not be the C library's.
        denominator = self.denominator
        normalised = depth / denominator if denominator != 0 else 1.0
        return -float((2 ** np.array([-normalised]))[0])

    def anomaly_score_one(self, x: Sequence[float] | npt.ArrayLike) -> float:
        """``-score_one(x)``: higher = more anomalous (settleguard's detector convention)."""
        return -self.score_one(x)

    def score_many(self, X: npt.ArrayLike) -> FloatArray:
        """``forest.score_samples(X)``, bit for bit, for a 2-D ``(n_rows, n_features)`` input."""
        rows = np.asarray(X, dtype=np.float32)
        if rows.ndim != 2 or rows.shape[1] != self.n_features:
            raise ValueError(self._shape_message(rows.shape, "a 2-D array of rows"))
        nodes, roots = self._nodes, self._roots
        walks = (_treewalk.walk(nodes, roots, row) for row in rows.astype(np.float64))
        return self._scores_from_depths(np.fromiter(walks, np.float64, len(rows)))

    def _scores_from_depths(self, depths: FloatArray) -> FloatArray:
        """sklearn's last step, same expression and operands (incl. the zero-denominator case)."""
        denominator = self.denominator
        normalised = np.divide(
            depths, denominator, out=np.ones_like(depths), where=denominator != 0
        )
        scores: FloatArray = -(2 ** (-normalised))
        return scores

    def _shape_message(self, shape: tuple[int, ...], expected: str) -> str:
        return (
            f"expected {expected} of {self.n_features} features (the forest was fitted on "
            f"{self.n_features}), got an input of shape {shape}"
        )

    def __repr__(self) -> str:
        return (
            f"ForestScorer(version={self.version!r}, n_estimators={self.n_estimators}, "
            f"n_features={self.n_features}, nodes={len(self._packed['left'])})"
        )


def _check_forest(packed: dict[str, npt.NDArray[Any]], n_features: int) -> list[IndexArray]:
    """Validate the node table; return its nodes level by level (roots first, then their
    children, ... down to the deepest tree's leaves; every node exactly once)."""
    n_nodes = len(packed["left"])
    for name in ("right", "feature", "threshold", "missing_go_left", "leaf_value"):
        if packed[name].shape != (n_nodes,):
            raise ValueError(
                f"packed forest: '{name}' has shape {packed[name].shape}, expected ({n_nodes},) "
                "like 'left'"
            )
    for name in ("n_features", "denominator", "offset"):
        if packed[name].shape != (1,):
            raise ValueError(f"packed forest: '{name}' must hold one value")
    roots, left, right, feature = (
        packed["roots"],
        packed["left"],
        packed["right"],
        packed["feature"],
    )
    if n_features < 1 or len(roots) == 0 or roots.ndim != 1:
        raise ValueError("packed forest: needs at least one tree and one feature")
    if n_features > _MAX_FEATURES or n_nodes >= 2**31:
        raise ValueError(f"packed forest: at most {_MAX_FEATURES} features and 2**31 nodes")
    split = left != _LEAF
    if (
        not np.all((right == _LEAF) == ~split)
        or not np.all((left[split] >= 0) & (left[split] < n_nodes))
        or not np.all((right[split] >= 0) & (right[split] < n_nodes))
        or not np.all((feature[split] >= 0) & (feature[split] < n_features))
        or not np.all((roots >= 0) & (roots < n_nodes))
    ):
        raise ValueError(
            "packed forest: child or feature indices out of range; rebuild it with from_sklearn"
        )
    # Walk all trees level by level (which proves there are no cycles or shared nodes).
    levels = [roots.astype(np.intp)]
    seen = len(roots)
    while True:
        parents = levels[-1][split[levels[-1]]]
        if len(parents) == 0:
            break
        # siblings side by side, in tree order
        levels.append(np.stack([left[parents], right[parents]], axis=1).ravel().astype(np.intp))
        seen += len(levels[-1])
        if seen > n_nodes:
            raise ValueError("packed forest: the child links do not form trees (a node is shared)")
    if len(np.unique(np.concatenate(levels))) != n_nodes:
        raise ValueError("packed forest: some nodes belong to no tree, or trees share nodes")
    return levels


def _content_version(packed: dict[str, npt.NDArray[Any]]) -> str:
    """``iforest-`` + 12 hex digits of SHA-256 over the packed arrays' names, shapes, bytes."""
    digest = hashlib.sha256()
    for name in sorted(packed):
        array = packed[name]
        digest.update(f"{name}:{array.dtype.str}:{array.shape};".encode())
        digest.update(array.tobytes())
    return f"iforest-{digest.hexdigest()[:12]}"
