"""Search configuration: a YAML file, defaults, and command-line overrides, validated in one place.

Every key of :class:`SearchConfig` can be set in the YAML file (``key: value``; proxy settings under
``proxy:``, the search space under ``space:``) and overridden by a flag (``--key-name VALUE``,
``--proxy-epochs 3``). Errors name the key and what is allowed and exit 2.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from predictors.proxy import ProxyConfig
from searchspace.errors import NasError

LATENCY_SOURCES = ("measure", "lut", "predictor")
BACKENDS = ("local", "ray")
PRUNERS = ("median", "halving", "none")
OBJECTIVES = ("latency", "macs")


@dataclass
class SearchConfig:
    """Everything a search run needs. Field docs double as ``--help`` text (see ``HELP``)."""

    name: str | None = None
    runs_dir: str = "runs"
    target_latency: float | None = 20.0
    target_macs: float | None = None
    objective: str = "latency"
    reward: str = "mnasnet"
    reward_weight: float | None = None
    reject_factor: float = 2.0
    strategy: str = "auto"
    population: int = 10
    tournament: int = 3
    trials: int | None = None
    budget: float | None = 840.0
    latency: str = "measure"
    latency_backend: str = "torch"
    latency_threads: int | None = None
    latency_resolution: int = 224
    latency_model: str | None = None
    pruner: str = "median"
    storage: str | None = None
    resume: bool = False
    backend: str = "local"
    address: str | None = None
    workers: int = 2
    max_failures: int = 5
    finalists: int = 5
    seed: int = 0
    proxy: ProxyConfig = field(default_factory=ProxyConfig)
    space: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def hash(self) -> str:
        """Hash of what decides the search (not the run name, storage or resume flag)."""
        body = self.to_dict()
        for key in ("name", "runs_dir", "storage", "resume", "address", "workers", "trials", "budget"):
            body.pop(key)
        return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:12]

    @property
    def target(self) -> float:
        """The target in the objective's unit (ms or MACs)."""
        return float(self.target_latency if self.objective == "latency" else self.target_macs)


HELP = {
    "name": "run name: outputs go to RUNS_DIR/NAME (default: search-<time>)",
    "runs_dir": "folder holding runs",
    "target_latency": "latency target T, e.g. 20ms or 0.02s",
    "target_macs": "MACs target T for --objective macs, e.g. 400M",
    "objective": "what the target constrains: latency (ms on this device) or macs",
    "reward": "mnasnet (soft, w=-0.07), mnasnet-hard, tunas-abs, pareto (NSGA-II front)",
    "reward_weight": "override w (mnasnet) or beta (tunas-abs)",
    "reject_factor": "with mnasnet-hard: skip training of candidates whose cost exceeds FACTOR * T (0: never)",
    "strategy": "search strategy: auto (surrogate; nsga2 for --reward pareto), surrogate, evolution, tpe, "
                "nsga2, random (see experiments/results/bench_strategies.md)",
    "population": "evolution population size",
    "tournament": "evolution tournament (sample) size",
    "trials": "stop after this many trials (including failed and pruned)",
    "budget": "stop after this much wall time, e.g. 15m, 900s, 1h",
    "latency": "latency source: measure (on this machine), lut (lookup table) or predictor (--latency-model)",
    "latency_backend": "measurement backend: torch, torchscript or onnxruntime",
    "latency_threads": "threads for latency measurement (default: all)",
    "latency_resolution": "resolution at which latency is measured/predicted",
    "latency_model": "learned latency model file (for --latency predictor)",
    "pruner": "stop bad candidates early by their per-epoch accuracy: median, halving or none",
    "storage": "Optuna storage URL (default: sqlite in the run folder); share it to search from many processes",
    "resume": "continue the named run, keeping every finished trial",
    "backend": "local (Optuna in this process) or ray (Ray Tune trials)",
    "address": "Ray address (auto, ray://HOST:PORT); default starts a local Ray",
    "workers": "concurrent Ray trials",
    "max_failures": "stop after this many failed trials in a row",
    "finalists": "with --latency measure: the best N networks are re-measured side by side after the search "
                 "and the winner is the best reward on those numbers (1: keep the search's pick)",
    "seed": "seed of the strategy",
}

_UNITS_TIME = {"ms": 1e-3, "s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0}


def parse_duration(text: Any, key: str) -> float:
    """Seconds from ``900``, ``900s``, ``15m``, ``1h``."""
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*(ms|s|m|min|h)?\s*", str(text))
    if not match:
        raise NasError(f"{key}: {text!r} is not a duration; use e.g. 900s, 15m or 1h")
    return float(match.group(1)) * _UNITS_TIME[match.group(2) or "s"]


def parse_latency_ms(text: Any, key: str) -> float:
    """Milliseconds from ``20ms``, ``0.02s`` or a bare number (ms)."""
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*(ms|s|us)?\s*", str(text))
    if not match or float(match.group(1)) <= 0:
        raise NasError(f"{key}: {text!r} is not a positive latency; use e.g. 20ms or 0.02s")
    scale = {"ms": 1.0, "s": 1000.0, "us": 1e-3}[match.group(2) or "ms"]
    return float(match.group(1)) * scale


def parse_count(text: Any, key: str) -> float:
    """A count with an optional K/M/G suffix: ``400M``."""
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([kKmMgG])?\s*", str(text))
    if not match or float(match.group(1)) <= 0:
        raise NasError(f"{key}: {text!r} is not a positive count; use e.g. 400M")
    return float(match.group(1)) * {None: 1, "k": 1e3, "m": 1e6, "g": 1e9}[(match.group(2) or "").lower() or None]


SPECIAL_PARSERS = {"target_latency": parse_latency_ms, "budget": parse_duration, "target_macs": parse_count}
CHOICES = {"latency": LATENCY_SOURCES, "backend": BACKENDS, "pruner": PRUNERS, "objective": OBJECTIVES}


def _coerce(value: Any, annotation: Any, key: str) -> Any:
    """Convert a YAML or flag value to the field's type, or raise a one-line NasError."""
    text = str(annotation)
    if value is None or (isinstance(value, str) and value.lower() in ("none", "null") and "None" in text):
        if "None" in text:
            return None
        raise NasError(f"{key}: null is not allowed")
    if key.split(".")[-1] in SPECIAL_PARSERS:
        return SPECIAL_PARSERS[key.split(".")[-1]](value, key)
    try:
        if "bool" in text:
            if isinstance(value, bool):
                return value
            if str(value).lower() in ("true", "yes", "1", "on"):
                return True
            if str(value).lower() in ("false", "no", "0", "off"):
                return False
            raise ValueError
        if "int" in text and "float" not in text:
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError
            return int(value)
        if "float" in text:
            if isinstance(value, bool):
                raise ValueError
            return float(value)
        if "str" in text:
            if not isinstance(value, (str, int, float)) or isinstance(value, bool):
                raise ValueError
            return str(value)
    except (TypeError, ValueError):
        kind = "true or false" if "bool" in text else "an integer" if "int" in text and "float" not in text \
            else "a number" if "float" in text else "a string"
        raise NasError(f"{key}: {value!r} is not {kind}") from None
    return value


def _apply(target: Any, values: dict[str, Any], prefix: str) -> None:
    fields = {f.name: f for f in dataclasses.fields(target)}
    for key, value in values.items():
        path = f"{prefix}{key}"
        name = str(key).replace("-", "_")
        if name not in fields:
            raise NasError(f"{path}: unknown key; allowed keys are {', '.join(fields)}")
        if name == "proxy":
            if not isinstance(value, dict):
                raise NasError(f"{path}: expected a mapping")
            _apply(target.proxy, value, "proxy.")
        elif name == "space":
            if not isinstance(value, dict):
                raise NasError(f"{path}: expected a mapping")
            target.space = value
        else:
            coerced = _coerce(value, fields[name].type, path)
            if name in CHOICES and coerced not in CHOICES[name]:
                raise NasError(f"{path}: {coerced!r} is not one of {', '.join(CHOICES[name])}")
            setattr(target, name, coerced)


def load_config(path: str | Path | None = None, overrides: dict[str, Any] | None = None) -> SearchConfig:
    """Defaults, then the YAML file (if any), then ``overrides`` (flag values; keys may be ``proxy.x``)."""
    config = SearchConfig()
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise NasError(f"config: no such file {str(path)!r}")
        try:
            raw = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as err:
            raise NasError(f"config: {path} is not valid YAML: {getattr(err, 'problem', err)}") from None
        if not isinstance(raw, dict):
            raise NasError(f"config: {path} must hold a mapping of keys")
        _apply(config, raw, "")
    nested: dict[str, Any] = {}
    for key, value in (overrides or {}).items():
        if key.startswith("proxy."):
            nested.setdefault("proxy", {})[key[6:]] = value
        else:
            nested[key] = value
    _apply(config, nested, "")
    check_config(config)
    return config


def check_config(config: SearchConfig) -> None:
    """Cross-field checks that a single key cannot catch."""
    from nas.reward import REWARDS

    if config.reward not in REWARDS:
        raise NasError(f"reward: {config.reward!r} is not one of {', '.join(REWARDS)}")
    if config.objective == "latency" and config.target_latency is None:
        raise NasError("target_latency: required when objective is latency (e.g. --target-latency 20ms)")
    if config.objective == "macs" and config.target_macs is None:
        raise NasError("target_macs: required when objective is macs (e.g. --target-macs 400M)")
    if config.trials is not None and config.trials < 1:
        raise NasError(f"trials: {config.trials} must be >= 1")
    if config.budget is not None and config.budget <= 0:
        raise NasError(f"budget: {config.budget} must be > 0")
    if config.latency == "predictor" and not config.latency_model:
        raise NasError("latency_model: required with --latency predictor (a file from `nas latency fit`)")
    if config.strategy == "auto":  # the best measured on NAS-Bench-201 (bench_strategies.md)
        config.strategy = "nsga2" if config.reward == "pareto" else "surrogate"
    if config.finalists < 1:
        raise NasError(f"finalists: {config.finalists} must be >= 1")
    if config.workers < 1:
        raise NasError(f"workers: {config.workers} must be >= 1")
    if config.population < 2 or not 1 <= config.tournament <= config.population:
        raise NasError(f"tournament: {config.tournament} must be between 1 and population ({config.population})")
    from predictors.proxy import _check_config as check_proxy

    check_proxy(config.proxy)
