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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nas import strategies
from nas.search.reward import REWARDS
from predictors.latency.fingerprint import BACKENDS as LATENCY_BACKENDS
from predictors.training.config import ProxyConfig
from searchspace.errors import GenotypeError, NasError
from searchspace.settings import apply_settings, hashed_dict, section, setting
from searchspace.textio import load_yaml, read_text

LATENCY_SOURCES = ("measure", "lut", "predictor")
BACKENDS = ("local", "ray")
PRUNERS = ("median", "halving", "none")
OBJECTIVES = ("latency", "macs")
# the hand-designed networks a user would otherwise scale to T themselves: the search's first candidates
START_NETWORKS = ("mobilenet_v3_large", "mobilenet_v3_small", "efficientnet_b0", "shufflenet_v2_x1_0", "ghostnet_100")
MIN_BUDGET_SECONDS = 10.0  # a trial loads, measures and trains: no budget below this can finish one
STRATEGY_CHOICES = ("auto", *strategies.STRATEGIES)  # nas.strategies builds each but auto, which the config resolves


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


@dataclass
class SearchConfig:
    """Everything a search run needs; each field is one key, declared once (:mod:`searchspace.settings`).

    The declaration gives YAML loading (:func:`load_config`), validation, the command-line flags and
    ``--help`` (``nas/commands/flags.py``). Keys with ``in_hash=False`` say where and how long a run
    goes, not what it finds, and are left out of :meth:`hash`.
    """

    name: str | None = setting(None, "run name: outputs go to RUNS_DIR/NAME (default: search-<time>; nas run: "
                                     "run-<time>)", in_hash=False)
    runs_dir: str = setting("runs", "folder holding runs", in_hash=False, example="DIR")
    target_latency: float | None = setting(20.0, "latency target T, e.g. 20ms or 0.02s", low=1e-6,
                                           parse=parse_latency_ms, example="20ms")
    target_macs: float | None = setting(None, "MACs target T for --objective macs, e.g. 400M", low=1.0,
                                        parse=parse_count, example="400M")
    objective: str = setting("latency", "what the target constrains: latency (ms on this device) or macs",
                             choices=OBJECTIVES)
    reward: str = setting("mnasnet-hard", "mnasnet-hard (the most accurate within T: no bonus below T, "
                          "accuracy * T / cost beyond), mnasnet (soft, w=-0.07: pays for being faster), "
                          "tunas-abs, pareto (NSGA-II front)", choices=REWARDS)
    reward_weight: float | None = setting(None, "override w (mnasnet) or beta (tunas-abs)", low=-10.0, high=10.0)
    reject_factor: float = setting(1.1, "with mnasnet-hard: skip training of candidates whose cost exceeds "
                                        "FACTOR * T (0: never); 1.1 = beyond T by more than a quick "
                                        "measurement's retest noise (a tenth)", low=0.0)
    strategy: str = setting("auto", "search strategy: auto (surrogate; nsga2 for --reward pareto), surrogate, "
                                    "evolution, tpe, nsga2, random (see experiments/results/bench_strategies.md)",
                            choices=STRATEGY_CHOICES)
    population: int = setting(10, "evolution population size", low=2, high=100000)
    tournament: int = setting(3, "evolution tournament (sample) size", low=1, high=100000)
    trials: int | None = setting(None, "stop when the study holds this many finished trials (completed, "
                                       "pruned and failed, less interrupted ones, which run again; counted over "
                                       "all workers sharing the study)", low=1,
                                 in_hash=False)
    budget: float | None = setting(840.0, "stop after this much wall time, e.g. 15m, 900s, 1h", low=1e-3,
                                   parse=parse_duration, in_hash=False, example="15m")
    latency: str = setting("measure", "latency source: measure (on this machine), lut (lookup table) or "
                                      "predictor (--latency-model)", choices=LATENCY_SOURCES)
    latency_backend: str = setting("torch", "measurement backend", choices=LATENCY_BACKENDS)
    latency_threads: int | None = setting(None, "threads for latency measurement (default: all)", low=1,
                                          high=1024)
    latency_resolution: int = setting(224, "resolution at which latency is measured/predicted", low=8, high=4096)
    latency_model: str | None = setting(None, "learned latency model file (for --latency predictor)",
                                        example="FILE")
    pruner: str = setting("median", "stop weak candidates early by their accuracy at the proxy's checks (from "
                                    "half an epoch on; proxy.checks_per_epoch)", choices=PRUNERS)
    storage: str | None = setting(None, "Optuna storage URL (default: sqlite in the run folder); share it to "
                                        "search from many processes", in_hash=False, example="URL")
    storage_patience: float = setting(60.0, "how long a lost database connection (a server restarting) or a "
                                            "locked SQLite file is retried, with back-off, before the search "
                                            "stops with one line", low=0.0, parse=parse_duration, in_hash=False,
                                      example="60s")
    resume: bool = setting(False, "continue the named run, keeping every finished trial", in_hash=False)
    backend: str = setting("local", "local (Optuna in this process) or ray (Ray Tune trials)", choices=BACKENDS)
    address: str | None = setting(None, "Ray address (auto, ray://HOST:PORT); default starts a local Ray",
                                  in_hash=False)
    workers: int = setting(2, "concurrent Ray trials", low=1, high=4096, in_hash=False)
    max_failures: int = setting(5, "stop after this many failed trials in a row", low=1)
    finalists: int = setting(5, "the best N distinct networks of the search are trained again (finalist_seeds) and "
                                "their cost measured again side by side; the winner is the best reward on those "
                                "numbers within the target (1: keep the search's pick)", low=1, high=1000)
    finalist_seeds: int = setting(2, "fresh proxy trainings per finalist (new seeds, all held-out validation images); "
                                     "their mean is the finalist score (0: re-measure the cost only)", low=0, high=20)
    finalist_max_seeds: int = setting(4, "most fresh trainings of the two leading finalists: they are trained again "
                                         "until the winner's lead is beyond 2 standard errors or the budget ends "
                                         "(else report.md calls it a tie); finalist_seeds or fewer: no more",
                                      low=0, high=50)
    finalist_epochs: int | None = setting(None, "epochs of a finalist training (null: the proxy's)", low=1, high=1000)
    start_from: str = setting(",".join(START_NETWORKS), "hand-designed zoo networks, width-scaled to T, that the "
                              "search scores first as candidates (comma-separated; '' for none)", example="NAMES")
    seed: int = setting(0, "seed of the strategy", low=0)
    proxy: ProxyConfig = section(ProxyConfig, "proxy training settings")
    space: dict[str, Any] = section(dict, "the search space (see docs/genotype.md)")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def hash(self) -> str:
        """Hash of what decides the search (not the run name, storage, resume flag or budget)."""
        return hashlib.sha256(json.dumps(hashed_dict(self), sort_keys=True).encode()).hexdigest()[:12]

    @property
    def target(self) -> float:
        """The target in the objective's unit (ms or MACs)."""
        return float(self.target_latency if self.objective == "latency" else self.target_macs)

    @property
    def unit(self) -> str:
        """``ms`` for a latency target, ``macs`` for a MACs target."""
        return "ms" if self.objective == "latency" else "macs"

    def start_names(self) -> list[str]:
        """The zoo networks of ``start_from``, each checked against the zoo."""
        from searchspace import zoo_names

        names = [n.strip() for n in self.start_from.split(",") if n.strip()]
        unknown = sorted(set(names) - set(zoo_names()))
        if unknown:
            raise NasError(f"start_from: {unknown[0]!r} is not a zoo network (`nas zoo` lists them)")
        return names


def read_yaml_mapping(path: str | Path, what: str = "config") -> dict[str, Any]:
    """The mapping in a YAML file, or a one-line NasError naming the file and the problem (missing,
    unreadable, not UTF-8, not YAML, too deeply nested, a repeated key)."""
    raw = load_yaml(read_text(path, what, "a YAML search config"), f"{what} {path}") or {}
    if not isinstance(raw, dict):
        raise NasError(f"{what}: {path} must hold a mapping of keys")
    return raw


def load_config(path: str | Path | None = None, overrides: dict[str, Any] | None = None,
                cls: type = SearchConfig, base: dict[str, Any] | None = None) -> Any:
    """Defaults, then ``base`` (a mapping as in the YAML file, e.g. a run's saved config), then the YAML file (if
    any), then ``overrides`` (flag values; keys may be ``proxy.x``).

    Every value is validated by its key's declaration; cross-key rules follow (:func:`check_config`).
    """
    config = cls()
    if base is not None:
        apply_settings(config, base)
    if path is not None:
        apply_settings(config, read_yaml_mapping(path))
    nested: dict[str, Any] = {}
    for key, value in (overrides or {}).items():
        section_name, dot, rest = key.partition(".")
        if dot:
            nested.setdefault(section_name, {})[rest] = value
        else:
            nested[key] = value
    apply_settings(config, nested)
    check_config(config)
    return config


def check_config(config: SearchConfig) -> None:
    """Rules that tie keys together, and choices that need this machine (devices, backends, files)."""
    if config.objective == "latency" and config.target_latency is None:
        raise NasError("target_latency: required when objective is latency (e.g. 20ms)")
    if config.objective == "macs" and config.target_macs is None:
        raise NasError("target_macs: required when objective is macs (e.g. 400M)")
    if config.latency == "predictor" and not config.latency_model:
        raise NasError("latency_model: required with latency: predictor (a file from `nas latency fit`)")
    if config.latency_model and not Path(config.latency_model).is_file():
        raise NasError(f"latency_model: no such file {config.latency_model!r}")
    if config.name is not None and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}", config.name):
        raise NasError(f"name: {config.name!r} is not a plain name (letters, digits, '.', '_', '-'; no '/'): "
                       "it names a folder inside runs_dir")
    runs = Path(config.runs_dir)
    if runs.exists() and not runs.is_dir():
        raise NasError(f"runs_dir: {config.runs_dir!r} is a file, not a folder")
    if config.budget is not None and config.budget < MIN_BUDGET_SECONDS:
        raise NasError(f"budget: {config.budget:g} s is shorter than one trial can be (at least "
                       f"{MIN_BUDGET_SECONDS:g} s: loading data, measuring and training a candidate)")
    if config.strategy == "auto":  # the best measured on NAS-Bench-201 (bench_strategies.md)
        config.strategy = "nsga2" if config.reward == "pareto" else "surrogate"
    config.start_names()
    if config.tournament > config.population:
        raise GenotypeError("tournament", f"{config.tournament} must be at most population ({config.population})")
    from predictors.latency.fingerprint import check_backend
    from predictors.training.proxy import check_proxy_config

    check_backend(config.latency_backend)
    check_proxy_config(config.proxy)
