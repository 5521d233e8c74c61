"""Learned latency predictor fitted on measured (genotype, latency) pairs.

Features: the cost features of :mod:`predictors.latency.parts` (log MACs, params, memory access,
element-wise work; kernels, blocks, resolution), the count of blocks of each family, the lookup-table
sum when a table is given, and any named extra features. The target is log latency. Two regressors:
``ridge`` (log-linear; best with ~100 networks) and ``gbr`` (ridge plus gradient boosting on its
residuals, for larger sets); ``auto`` picks by 5-fold cross-validation. The interval comes from the
10% / 90% quantiles of the out-of-fold log residuals (split-conformal style).

The fitted regressor is kept as plain arrays (:mod:`predictors.latency.regressors`) and saved as an ``.npz``
archive of numbers plus a JSON header, read back with ``numpy.load(allow_pickle=False)``: loading a
model file can never run code, and the loaded model predicts exactly what the saved one did. A JSON
sidecar ``<file>.json`` says what the model is.
"""

from __future__ import annotations

import csv
import io
import json
import math
import time
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

from predictors.latency.parts import COST_FEATURES, FeatureCache, cost_features
from predictors.latency.regressors import Additive, linear_from_sklearn, trees_from_sklearn
from predictors.latency.table import LatencyTable, Prediction
from searchspace.blocks import FAMILIES
from searchspace.errors import NasError
from searchspace.genotype import Genotype
from searchspace.textio import (
    atomic_file,
    check_output_file,
    is_file,
    load_json,
    read_text,
    write_text_atomic,
)

KINDS = ("auto", "ridge", "gbr")
FORMAT = "nas-latency-model/1"
MAX_MODEL_BYTES = 256 * 2**20  # arrays of a few hundred trees are well under 1 MiB
MAX_CSV_BYTES = 512 * 2**20
SHARED_FEATURES = FeatureCache()  # feature vectors shared by the models of one process


def _regressor(kind: str, seed: int = 0):
    from sklearn.ensemble import GradientBoostingRegressor
    from sklearn.linear_model import Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    ridge = make_pipeline(StandardScaler(), Ridge(alpha=1.0))
    if kind == "ridge":
        return ridge
    return _RidgeBoost(ridge, GradientBoostingRegressor(n_estimators=200, max_depth=3, learning_rate=0.05,
                                                        subsample=0.8, random_state=seed))


class _RidgeBoost:
    """Ridge, then gradient boosting on the ridge residuals."""

    def __init__(self, base, boost) -> None:
        self.base, self.boost = base, boost

    def fit(self, X: np.ndarray, y: np.ndarray) -> _RidgeBoost:
        self.base.fit(X, y)
        self.boost.fit(X, y - self.base.predict(X))
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self.base.predict(X) + self.boost.predict(X)


def as_arrays(fitted) -> Additive:
    """The plain-array form of a regressor from :func:`_regressor` (predicts the same numbers)."""
    if isinstance(fitted, _RidgeBoost):
        return Additive((linear_from_sklearn(fitted.base), trees_from_sklearn(fitted.boost)))
    return Additive((linear_from_sklearn(fitted),))


def _out_of_fold(kind: str, X: np.ndarray, y: np.ndarray, folds: int = 5, seed: int = 0) -> np.ndarray:
    from sklearn.model_selection import KFold

    pred = np.zeros_like(y)
    for train, test in KFold(n_splits=min(folds, len(y)), shuffle=True, random_state=seed).split(X):
        pred[test] = _regressor(kind, seed).fit(X[train], y[train]).predict(X[test])
    return pred


@dataclass(frozen=True)
class Sample:
    """One measured network: its genotype, latency and optional extra features."""

    genotype: Genotype
    latency_ms: float
    extra: dict[str, float] | None = None


class LatencyModel:
    """A learned latency predictor for one device setting (batch, resolution as in training data)."""

    def __init__(self, kind: str = "auto", batch: int = 1, table: LatencyTable | None = None,
                 extra_names: Sequence[str] = (), seed: int = 0) -> None:
        if kind not in KINDS:
            raise NasError(f"kind: {kind!r} is not one of {', '.join(KINDS)}")
        self.kind, self.batch, self.table, self.seed = kind, batch, table, seed
        self.extra_names = list(extra_names)
        self.families = list(FAMILIES)
        self.regressor = None
        self.info: dict = {}
        self._features = SHARED_FEATURES

    @property
    def feature_names(self) -> list[str]:
        names = list(COST_FEATURES) + [f"n_{f}" for f in self.families]
        if self.table is not None:
            names.append("log_table_ms")
        return names + self.extra_names

    def features(self, genotype: Genotype, extra: dict[str, float] | None = None) -> np.ndarray:
        """The feature vector of one network (cached by genotype hash)."""

        def compute() -> np.ndarray:
            f = cost_features(genotype, self.batch)
            counts = {name: 0.0 for name in self.families}
            for stage in genotype.stages:
                for block in stage:
                    if block.type in counts:
                        counts[block.type] += block.repeat
            values = [f[n] for n in COST_FEATURES] + [counts[n] for n in self.families]
            if self.table is not None:
                values.append(math.log(self.table.table_ms(genotype)))
            return np.array(values, dtype=float)

        table_id = self.table.path if self.table is not None else None
        base = self._features.get((genotype.hash(), self.batch, table_id, tuple(self.families)), compute)
        if not self.extra_names:
            return base
        extra = extra or {}
        return np.concatenate([base, [float(extra.get(n, 0.0)) for n in self.extra_names]])

    def clear_cache(self) -> None:
        """Forget cached feature vectors (to time cold predictions)."""
        self._features = FeatureCache()

    def fit(self, samples: Sequence[Sample]) -> LatencyModel:
        """Fit on measured samples (at least 5); picks the regressor by cross-validation if ``auto``."""
        if len(samples) < 5:
            raise NasError(f"need at least 5 measured networks to fit a latency model, got {len(samples)}")
        X = np.stack([self.features(s.genotype, s.extra) for s in samples])
        y = np.log([s.latency_ms for s in samples])
        kinds = ["ridge", "gbr"] if self.kind == "auto" else [self.kind]
        oof = {k: _out_of_fold(k, X, y, seed=self.seed) for k in kinds}
        rmse = {k: float(np.sqrt(np.mean((oof[k] - y) ** 2))) for k in kinds}
        chosen = min(rmse, key=rmse.get)
        resid = y - oof[chosen]
        self.regressor = as_arrays(_regressor(chosen, self.seed).fit(X, y))
        low, high = np.quantile(resid, [0.1, 0.9])
        self.info = {"regressor": chosen, "n": len(samples), "cv_log_rmse": rmse, "resid_low": float(low),
                     "resid_high": float(high), "batch": self.batch, "features": self.feature_names,
                     "table_fingerprint": self.table.fingerprint.to_dict() if self.table is not None else None}
        return self

    def predict_interval(self, genotype: Genotype, extra: dict[str, float] | None = None) -> Prediction:
        if self.regressor is None:
            raise NasError("latency model is not fitted")
        log_ms = float(self.regressor.predict(self.features(genotype, extra)[None, :])[0])
        ms = math.exp(log_ms)
        return Prediction(ms, min(ms, math.exp(log_ms + self.info["resid_low"])),
                          max(ms, math.exp(log_ms + self.info["resid_high"])))

    def predict(self, genotype: Genotype, extra: dict[str, float] | None = None) -> float:
        """Predicted latency (ms)."""
        return self.predict_interval(genotype, extra).ms

    def predict_many(self, genotypes: Sequence[Genotype], extras: Sequence[dict] | None = None) -> np.ndarray:
        X = np.stack([self.features(g, e) for g, e in zip(genotypes, extras or [None] * len(genotypes), strict=True)])
        return np.exp(self.regressor.predict(X))

    def save(self, path: str | Path) -> Path:
        """Write the model (an ``.npz`` of numbers and a JSON header) and ``<path>.json`` describing it."""
        if self.regressor is None:
            raise NasError("latency model is not fitted")
        path = check_output_file(path, "latency model")
        header = {"format": FORMAT, "kind": self.kind, "batch": self.batch, "families": self.families,
                  "extra_names": self.extra_names, "parts": self.regressor.kinds(), "info": self.info}
        with atomic_file(path, binary=True) as f:
            np.savez(f, header=np.array(json.dumps(header)), **self.regressor.arrays())
        write_text_atomic(f"{path}.json", json.dumps({"format": FORMAT, **self.info}, indent=1))
        return path

    @classmethod
    def load(cls, path: str | Path, table: LatencyTable | None = None) -> LatencyModel:
        """Load a model written by :meth:`save` (needs ``table`` if it was fitted with one).

        Only numbers and JSON are read (``allow_pickle=False``); anything else is a one-line NasError.
        """
        path = Path(path)
        if not path.is_file():
            raise NasError(f"model: no such file {str(path)!r}")
        try:
            header, regressor = _read_model(path)
        except (ValueError, KeyError, TypeError, OSError, EOFError, zipfile.BadZipFile) as err:
            detail = str(err).splitlines()[0] if str(err) else type(err).__name__
            raise NasError(f"model: {path} is not a latency model written by `nas latency fit` ({detail})") from None
        model = cls(header["kind"], header["batch"], None, header["extra_names"])
        model.families, model.regressor, model.info = header["families"], regressor, header["info"]
        if "log_table_ms" in model.info["features"]:
            if table is None:
                fp = model.info["table_fingerprint"] or {}
                table = LatencyTable.for_this_device(fp.get("backend", "torch"), fp.get("threads"),
                                                     fp.get("device", "cpu"), model.batch)
            model.table = table
        return model


def _read_model(path: Path) -> tuple[dict, Additive]:
    """The header and regressor of a model file; ValueError (or an I/O error) if it is anything else."""
    if path.stat().st_size > MAX_MODEL_BYTES:
        raise ValueError(f"{path.stat().st_size / 2**20:.0f} MiB is larger than a model file can be")
    if not zipfile.is_zipfile(path):  # a pickle (joblib files of older versions), text, a lone array, ...
        raise ValueError("not the .npz archive of numbers it writes; an older joblib model must be fitted again")
    archive = np.load(path, allow_pickle=False)
    with archive:
        unpacked = sum(info.file_size for info in archive.zip.infolist())
        if unpacked > MAX_MODEL_BYTES:
            raise ValueError(f"it unpacks to {unpacked / 2**20:.0f} MiB")
        header = load_json(str(archive["header"]), f"model: {path}: header")
        if not isinstance(header, dict) or header.get("format") != FORMAT:
            raise ValueError(f"the header does not say format {FORMAT}")
        _check_header(header)
        regressor = Additive.from_arrays(header["parts"], archive, len(header["info"]["features"]))
    return header, regressor


def _check_header(header: dict) -> None:
    kinds = {"kind": str, "batch": int, "families": list, "extra_names": list, "parts": list, "info": dict}
    for key, kind in kinds.items():
        if not isinstance(header.get(key), kind):
            raise ValueError(f"header field {key!r} is missing or not a {kind.__name__}")
    info = header["info"]
    for key in ("features", "resid_low", "resid_high"):
        if key not in info:
            raise ValueError(f"header info has no {key!r}")
    if not isinstance(info["features"], list) or not all(isinstance(f, str) for f in info["features"]):
        raise ValueError("header info 'features' is not a list of names")
    expected = len(COST_FEATURES) + len(header["families"]) + len(header["extra_names"]) + \
        ("log_table_ms" in info["features"])
    if len(info["features"]) != expected:
        raise ValueError(f"{len(info['features'])} features named, {expected} expected")


def read_measurements(path: str | Path) -> list[Sample]:
    """Measured networks from a CSV: columns ``genotype`` (file, zoo:NAME, or inline YAML/JSON) and
    ``latency_ms``; other columns named ``extra_*`` become extra features. Errors name row and column."""
    path = Path(path)
    if not path.is_file():
        raise NasError(f"measurements: no such file {str(path)!r}")
    text = read_text(path, "measurements", expected="a CSV file", max_bytes=MAX_CSV_BYTES)
    try:
        samples = _samples(csv.DictReader(io.StringIO(text, newline="")), path)
    except csv.Error as err:
        raise NasError(f"{path}: not a readable CSV file ({err})") from None
    if not samples:
        raise NasError(f"{path}: no rows")
    return samples


def _samples(reader: csv.DictReader, path: Path) -> list[Sample]:
    from searchspace.io import load_genotype

    columns = reader.fieldnames or []
    for needed in ("genotype", "latency_ms"):
        if needed not in columns:
            raise NasError(f"{path}: missing column {needed!r} (columns: {', '.join(columns) or 'none'})")
    extras = [c for c in columns if c.startswith("extra_")]
    samples = []
    for row_no, row in enumerate(reader, start=2):
        where = f"{path} row {row_no}"
        samples.append(Sample(_row_genotype(row, where, load_genotype, path.parent),
                              _positive(row, "latency_ms", where),
                              {c: _number(row, c, where) for c in extras} or None))
    return samples


def _row_genotype(row: dict, where: str, load, folder: Path) -> Genotype:
    text = (row.get("genotype") or "").strip()
    if not text:
        raise NasError(f"{where}, column genotype: empty")
    beside = folder / text
    if not text.startswith(("zoo:", "{", "[")) and "\n" not in text and not is_file(text) and is_file(beside):
        text = str(beside)  # a path relative to the CSV's folder
    try:
        return load(text)
    except (NasError, OSError, ValueError) as err:
        raise NasError(f"{where}, column genotype: {err}") from None


def _number(row: dict, column: str, where: str) -> float:
    try:
        value = float(row.get(column) or "")
    except ValueError:
        raise NasError(f"{where}, column {column}: {row.get(column)!r} is not a number") from None
    if not math.isfinite(value):
        raise NasError(f"{where}, column {column}: {value} is not finite")
    return value


def _positive(row: dict, column: str, where: str) -> float:
    value = _number(row, column, where)
    if value <= 0:
        raise NasError(f"{where}, column {column}: {value:g} is not a positive latency")
    return value


def accuracy_report(measured: Sequence[float], predicted: Sequence[float]) -> dict[str, float]:
    """Fraction within +-10% / +-20%, Spearman rank correlation and MAPE of predictions."""
    m, p = np.asarray(measured, dtype=float), np.asarray(predicted, dtype=float)
    rel = np.abs(p / m - 1.0)
    return {"n": int(len(m)), "within_10": float(np.mean(rel <= 0.10)), "within_20": float(np.mean(rel <= 0.20)),
            "spearman": float(spearmanr(m, p)[0]) if len(m) > 2 else float("nan"), "mape": float(np.mean(rel) * 100)}


def time_per_prediction(predict, genotypes: Sequence[Genotype], repeat: int = 3) -> float:
    """Mean seconds per ``predict(genotype)`` call with features already cached (best of ``repeat``)."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        for g in genotypes:
            predict(g)
        best = min(best, (time.perf_counter() - start) / max(1, len(genotypes)))
    return best
