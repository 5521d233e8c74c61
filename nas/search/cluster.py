"""What a search must settle before its trials run on Ray workers, and what every worker does the same.

Ray Tune starts each trial in a working directory of its own, possibly on another machine, so:

- every path a worker reads or writes (run folder, SQLite file, data folder, latency model and caches)
  is made absolute against where the user ran the command (:func:`for_workers`);
- a SQLite study on a cluster of several nodes is refused (the file lives on one node's disk), and data
  a worker needs that is missing on some node is named before any trial starts (:func:`check_nodes`);
- a latency is never taken while another trial trains on the same node (:func:`guard_latency`);
- an error that would repeat in every trial (no data, no storage, a missing file) stops the search at
  its first occurrence with one line (:func:`repeats_in_every_trial`).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from nas.search.scoring import Scorer, Trainer
from nas.search.setup import Run
from predictors.data.spec import DEFAULT_DIRS, DatasetError
from predictors.latency.cache import CACHE_ENV
from predictors.latency.node_lock import NodeLock
from searchspace.errors import NasError

POSTGRES_HOWTO = ("use a database every node reaches: --storage postgresql://USER:PASSWORD@HOST:5432/DB "
                  "(pip install 'nas[postgres]'; createdb DB once on the database host)")
NODE_LOCK = "node lock: a measurement waits for the trainings on its node to end and holds new ones back"


def absolute_sqlite(url: str, cwd: Path) -> str:
    """``url`` with a relative SQLite path made absolute against ``cwd`` (other URLs unchanged)."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.split("+")[0] != "sqlite" or not rest.startswith("/"):
        return url
    path = rest[1:]
    if not path or path == ":memory:" or Path(path).is_absolute():
        return url
    return f"{scheme}:///{cwd / path}"


def for_workers(run: Run, cwd: Path | None = None) -> Run:
    """A copy of ``run`` whose paths mean the same in every worker: absolute against ``cwd`` (default:
    where the command runs). The caller's config and run are left as they are."""
    cwd = cwd or Path.cwd()
    config = dataclasses.replace(run.config, proxy=dataclasses.replace(run.config.proxy))
    config.runs_dir = str(cwd / config.runs_dir)
    if config.proxy.data_dir:
        config.proxy.data_dir = str(cwd / config.proxy.data_dir)
    if config.latency_model:
        config.latency_model = str(cwd / config.latency_model)
    if config.storage:
        config.storage = absolute_sqlite(config.storage, cwd)
    return dataclasses.replace(run, config=config, folder=cwd / run.folder, storage=absolute_sqlite(run.storage, cwd))


def worker_env(cwd: Path | None = None) -> dict[str, str]:
    """Environment every worker gets: the latency cache folder, absolute, when the user set one."""
    folder = os.environ.get(CACHE_ENV)
    return {CACHE_ENV: str((cwd or Path.cwd()) / folder)} if folder else {}


def needed_paths(run: Run) -> list[str]:
    """Files and folders every node must have for a trial to run there."""
    proxy = run.config.proxy
    data = proxy.data_dir or (None if proxy.download else DEFAULT_DIRS.get(proxy.dataset))
    return [p for p in (data, run.config.latency_model) if p]


def check_nodes(run: Run, nodes: Sequence[dict[str, Any]], missing_on: dict[str, list[str]]) -> None:
    """Refuse, in one line, a SQLite study on several nodes or a path some node lacks.

    ``nodes``: the cluster's alive nodes (``ray.nodes()`` entries); ``missing_on``: node address -> the
    :func:`needed_paths` that do not exist there."""
    if len(nodes) > 1 and run.storage.startswith("sqlite"):
        raise NasError(f"storage: the cluster has {len(nodes)} nodes and a SQLite file on this one cannot be "
                       f"shared with the others; {POSTGRES_HOWTO}")
    for node, missing in sorted(missing_on.items()):
        if missing:
            raise NasError(f"cluster: node {node} has no {', '.join(repr(p) for p in missing)}; every node "
                           f"needs the data (and any --latency-model file) at the same path")


def missing_paths(paths: Sequence[str]) -> list[str]:
    """Those of ``paths`` that do not exist on the machine this runs on (run on each node)."""
    return [p for p in paths if not Path(p).exists()]


def repeats_in_every_trial(err: BaseException) -> bool:
    """An error of the set-up, not of the candidate: no data, no storage, a missing or unreadable file."""
    return isinstance(err, (DatasetError, OSError)) or (
        isinstance(err, NasError) and str(err).startswith(("storage:", "dataset:", "proxy.data_dir:")))


@dataclasses.dataclass
class GuardedCost:
    """A cost model whose measurements wait for the node's trainings to end (see ``NodeLock``)."""

    inner: Any
    lock: NodeLock

    def __getattr__(self, name: str) -> Any:  # unit and the rest: the inner model's
        if "inner" not in self.__dict__:  # while being copied or unpickled
            raise AttributeError(name)
        return getattr(self.__dict__["inner"], name)

    def cost(self, genotype) -> float:
        with self.lock.measuring():
            return self.inner.cost(genotype)

    def measure(self, genotypes, careful: bool = False) -> list:
        with self.lock.measuring():
            return self.inner.measure(genotypes, careful)


@dataclasses.dataclass
class GuardedTrainer:
    """A trainer that trains only while no measurement runs on the node."""

    inner: Trainer
    lock: NodeLock

    def __call__(self, genotype, report=None) -> Any:
        with self.lock.training():
            return self.inner(genotype, report)


def measures_latency(run: Run) -> bool:
    """Whether the run's cost model times networks on this node (a measured latency or a table that
    profiles its missing parts), as opposed to counting MACs or asking a learned model."""
    return run.config.objective == "latency" and run.config.latency in ("measure", "lut")


def guard_latency(scorer: Scorer, lock: NodeLock) -> Scorer:
    """``scorer`` with its measurements and trainings kept apart on this node."""
    return dataclasses.replace(scorer, cost_model=GuardedCost(scorer.cost_model, lock),
                               trainer=GuardedTrainer(scorer.trainer, lock))
