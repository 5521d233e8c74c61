"""Fitted regressors as plain arrays: they predict with numpy alone and are saved without pickle.

scikit-learn fits; :func:`linear_from_sklearn` and :func:`trees_from_sklearn` copy what prediction
needs into plain dataclasses: a standard-scaled ridge as its mean, scale, coefficients and intercept;
a gradient-boosting regressor as its initial value, learning rate and trees (child, feature,
threshold and value arrays, padded to one width). Their ``predict`` repeats scikit-learn's arithmetic
in the same order (features compared in float32 as scikit-learn's trees do), so the numbers agree
with the fitted estimator. :class:`Additive` sums parts and turns them into named arrays (for
``numpy.savez``) and back, checking every array so that a crafted file can neither index outside the
arrays nor loop forever.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

LEAF = -1  # scikit-learn's TREE_LEAF: a node without children


@dataclass(frozen=True)
class Linear:
    """``((X - mean) / scale) @ coef + intercept``: StandardScaler followed by Ridge."""

    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray
    intercept: np.ndarray  # 0-d

    def predict(self, X: np.ndarray) -> np.ndarray:
        Z = np.array(X, dtype=np.float64)
        Z -= self.mean
        Z /= self.scale
        return Z @ self.coef + self.intercept

    def check(self, n_features: int) -> None:
        for name in ("mean", "scale", "coef"):
            if getattr(self, name).shape != (n_features,):
                raise ValueError(f"linear.{name} has shape {getattr(self, name).shape}, expected ({n_features},)")
        if self.intercept.shape != ():
            raise ValueError("linear.intercept is not a single number")


@dataclass(frozen=True)
class Trees:
    """Gradient-boosted regression trees: ``init + rate * sum of the leaf values X falls into``.

    Row ``t`` of each 2-d array is tree ``t``'s nodes (root first; unused slots padded as leaves).
    """

    init: np.ndarray  # 0-d
    rate: np.ndarray  # 0-d
    left: np.ndarray
    right: np.ndarray
    feature: np.ndarray
    threshold: np.ndarray
    value: np.ndarray

    def predict(self, X: np.ndarray) -> np.ndarray:
        X32 = np.asarray(X, dtype=np.float32)  # scikit-learn's trees read features as float32
        trees, rows = np.arange(self.left.shape[0])[:, None], np.arange(len(X32))[None, :]
        node = np.zeros((self.left.shape[0], len(X32)), dtype=np.intp)  # every tree walks every row at once
        inner = self.left[trees, node] != LEAF
        while inner.any():
            go_left = X32[rows, np.where(inner, self.feature[trees, node], 0)] <= self.threshold[trees, node]
            node = np.where(inner, np.where(go_left, self.left[trees, node], self.right[trees, node]), node)
            inner = self.left[trees, node] != LEAF
        out = np.full(len(X32), float(self.init))
        for leaf_values in self.rate * self.value[trees, node]:  # tree by tree, as scikit-learn adds them
            out += leaf_values
        return out

    def check(self, n_features: int) -> None:
        shape = self.left.shape
        if len(shape) != 2 or shape[1] < 1:
            raise ValueError(f"trees.left has shape {shape}, expected (trees, nodes)")
        for name in ("right", "feature", "threshold", "value"):
            if getattr(self, name).shape != shape:
                raise ValueError(f"trees.{name} has shape {getattr(self, name).shape}, expected {shape}")
        if self.init.shape != () or self.rate.shape != ():
            raise ValueError("trees.init and trees.rate must be single numbers")
        index = np.arange(shape[1])
        inner = self.left != LEAF
        # children come after their parent (as scikit-learn numbers them), so every walk ends at a leaf
        ok = np.where(inner, (self.left > index) & (self.left < shape[1]) & (self.right > index)
                      & (self.right < shape[1]) & (self.feature >= 0) & (self.feature < n_features),
                      self.right == LEAF)
        if not ok.all():
            raise ValueError("trees hold a node whose children or feature are out of range")


@dataclass(frozen=True)
class Additive:
    """The sum of its parts' predictions, in order (ridge, then the trees fitted on its residuals)."""

    parts: tuple[Linear | Trees, ...]

    def predict(self, X: np.ndarray) -> np.ndarray:
        out = self.parts[0].predict(X)
        for part in self.parts[1:]:
            out = out + part.predict(X)
        return out

    def kinds(self) -> list[str]:
        return ["linear" if isinstance(p, Linear) else "trees" for p in self.parts]

    def arrays(self) -> dict[str, np.ndarray]:
        """Named arrays (``part0.mean``, ``part1.left``, ...) for ``numpy.savez``."""
        return {f"part{i}.{name}": np.asarray(value) for i, part in enumerate(self.parts)
                for name, value in vars(part).items()}

    @classmethod
    def from_arrays(cls, kinds: list[str], arrays, n_features: int) -> Additive:
        """Rebuild from :meth:`arrays` (a mapping such as an ``NpzFile``); ValueError/KeyError if malformed."""
        if not kinds or any(k not in ("linear", "trees") for k in kinds):
            raise ValueError(f"unknown regressor parts {kinds!r}")
        parts: list[Linear | Trees] = []
        for i, kind in enumerate(kinds):
            part_cls = Linear if kind == "linear" else Trees
            fields = {name: _numeric(arrays[f"part{i}.{name}"], f"part{i}.{name}")
                      for name in part_cls.__dataclass_fields__}
            part = part_cls(**fields)
            part.check(n_features)
            parts.append(part)
        return cls(tuple(parts))


def _numeric(array: np.ndarray, name: str) -> np.ndarray:
    if array.dtype.kind not in "iuf":
        raise ValueError(f"{name} holds {array.dtype}, not numbers")
    if array.dtype.kind == "f" and not np.isfinite(array).all():
        raise ValueError(f"{name} holds a value that is not finite")
    return array.astype(np.intp if array.dtype.kind in "iu" else np.float64)


def linear_from_sklearn(pipeline) -> Linear:
    """The arrays of a fitted ``make_pipeline(StandardScaler(), Ridge())``."""
    scaler, ridge = pipeline[0], pipeline[-1]
    return Linear(scaler.mean_.copy(), scaler.scale_.copy(), np.ravel(ridge.coef_).copy(),
                  np.asarray(float(np.ravel(ridge.intercept_)[0])))


def trees_from_sklearn(gbr) -> Trees:
    """The arrays of a fitted single-output ``GradientBoostingRegressor`` (default mean initial value)."""
    trees = [est.tree_ for est in gbr.estimators_[:, 0]]
    width = max(t.node_count for t in trees)

    def padded(get, fill, dtype) -> np.ndarray:
        out = np.full((len(trees), width), fill, dtype=dtype)
        for i, t in enumerate(trees):
            out[i, :t.node_count] = get(t)
        return out

    return Trees(np.asarray(float(np.ravel(gbr.init_.constant_)[0])), np.asarray(float(gbr.learning_rate)),
                 padded(lambda t: t.children_left, LEAF, np.intp), padded(lambda t: t.children_right, LEAF, np.intp),
                 padded(lambda t: t.feature, 0, np.intp), padded(lambda t: t.threshold, 0.0, np.float64),
                 padded(lambda t: t.value[:, 0, 0], 0.0, np.float64))
