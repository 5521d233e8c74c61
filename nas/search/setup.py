"""A search run's set-up: its folder, its collaborators (cost model, reward, trainer; each may be handed
in instead) and its Optuna study, built once before any trial. The audit sets up its folder the same way.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import optuna

from nas.common.skipped import list_skipped
from nas.config import SearchConfig
from nas.search.cost_models import CostModel, cost_model_for
from nas.search.finalists import Retrain
from nas.search.reward import reward_for
from nas.search.scoring import FinalistTrainer, ProxyTrainer, Scorer, Trainer
from nas.search.storage import driver_url, fail_dead_workers_trials, open_storage
from nas.strategies import make_sampler
from searchspace.errors import NasError
from searchspace.space import Space, space_from_dict
from searchspace.textio import check_folder_creatable, write_text_atomic


@dataclass
class Run:
    """Where a run lives and what it searches."""

    config: SearchConfig
    folder: Path
    storage: str
    space: Space
    scorer: Scorer
    retrain: Retrain | None = None  # a finalist's fresh training (seed -> accuracy)

    @property
    def finalist_seeds(self) -> list[int]:
        """Seeds of the finalists' fresh trainings: after the search's own proxy seed."""
        return [self.config.proxy.seed + 1 + i for i in range(self.config.finalist_seeds)]

    @property
    def settle_seeds(self) -> list[int]:
        """Seeds the two leading finalists may be trained with: the finalist seeds, then more."""
        most = max(self.config.finalist_seeds, self.config.finalist_max_seeds)
        return [self.config.proxy.seed + 1 + i for i in range(most)]

    @property
    def study_name(self) -> str:
        return self.folder.name


def prepare_run(config: SearchConfig, cost_model: CostModel | None = None, trainer: Trainer | None = None,
                retrain: Retrain | None = None) -> Run:
    """Create (or, with resume, reopen) the run folder and build the collaborators; refuse to overwrite
    a finished run. ``cost_model`` / ``trainer`` / ``retrain`` (the finalists' trainer) replace the
    configured ones (tests hand in fakes)."""
    scorer = Scorer(cost_model or cost_model_for(config), reward_for(config), trainer or ProxyTrainer(config.proxy))
    config.name = config.name or dated_name("search")
    folder = Path(config.runs_dir) / config.name
    db = folder / "study.db"
    if config.storage is not None:
        driver_url(config.storage)  # an unusable URL fails before the run folder is made
    if folder.exists() and db.exists() and not config.resume and config.storage is None:
        raise NasError(f"name: run {str(folder)!r} exists; add --resume to continue it or pick another --name")
    if config.resume and config.storage is None and not db.exists():
        raise NasError(f"resume: no run to resume at {str(folder)!r}")
    check_folder_creatable(folder, "runs_dir")
    space = searched_space(config)  # a bad data folder fails before any file is made
    make_folder(folder, "runs_dir")
    write_text_atomic(folder / "config.json", json.dumps(config.to_dict(), indent=2))
    list_skipped(folder, skipped_images(config))
    storage = config.storage or f"sqlite:///{db}"
    scorer.chance = 1.0 / space.config.head["num_classes"]
    return Run(config, folder, storage, space, scorer, retrain or FinalistTrainer(config.proxy, config.finalist_epochs))


def dated_name(kind: str) -> str:
    """A run's default name: ``KIND-YYYYmmdd-HHMMSS``."""
    return datetime.now().strftime(f"{kind}-%Y%m%d-%H%M%S")


def make_folder(folder: Path, flag: str) -> None:
    """Create a run folder (and its parents); NasError naming ``flag`` if the system refuses."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise NasError(f"{flag}: cannot create {str(folder)!r}: {err.strerror or err}") from None


def skipped_images(config: SearchConfig) -> tuple[str, ...]:
    """The proxy data's unreadable images left out (``proxy.skip_bad_images``; the data is loaded already)."""
    from predictors.data.load import load_dataset

    return load_dataset(config.proxy.dataset_spec()).skipped


def searched_space(config: SearchConfig) -> Space:
    """The config's space with the proxy data's class count; loading the data once up front makes a bad
    data folder fail before any trial or training."""
    from predictors.data.load import load_dataset

    space = space_from_dict(copy.deepcopy(config.space))  # the config (and config.json) stay as given
    space.config.head["num_classes"] = load_dataset(config.proxy.dataset_spec()).num_classes
    return space


def create_study(run: Run) -> optuna.Study:
    """The run's study (created, or loaded for resume / a shared storage)."""
    cfg = run.config
    reward = run.scorer.reward
    sampler = make_sampler(cfg.strategy, cfg.seed, population=cfg.population, tournament=cfg.tournament,
                           multi_objective=reward.multi_objective, space=run.space, cost_limit=reward.cost_limit)
    pruner = {"median": optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=0),
              "halving": optuna.pruners.SuccessiveHalvingPruner(),
              "none": optuna.pruners.NopPruner()}[cfg.pruner]
    if reward.multi_objective:
        pruner = optuna.pruners.NopPruner()  # Optuna prunes single-objective studies only
    directions = ["maximize", "minimize"] if reward.multi_objective else ["maximize"]
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    storage = open_storage(run.storage, patience=cfg.storage_patience)
    try:
        study = optuna.create_study(study_name=run.study_name, storage=storage, sampler=sampler,
                                    pruner=pruner, directions=directions, load_if_exists=True)
    except ValueError as err:
        raise NasError(f"storage: cannot use {run.storage!r}: {err}") from None
    fail_dead_workers_trials(study)
    study.set_user_attr("config_hash", cfg.hash())
    return study
