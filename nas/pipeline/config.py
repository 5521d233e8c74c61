"""What ``nas run`` is asked: the search's config and the training's settings, checked before any step runs.

The search's keys are :class:`~nas.config.SearchConfig`'s (a YAML file, then flags or keyword arguments);
the training's are :class:`~predictors.training.recipe.TrainConfig`'s, except its data, which is the search's
(``data`` sets both), and its folder and resume flag, which the run decides. On ``--resume`` the run's saved
settings (``run.json``) are the base, so ``nas run --name NAME --resume`` alone continues a run; a setting that
decides what the run finds may not change then (one line names it).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nas.config import SearchConfig, load_config
from nas.pipeline.state import RunState, check_new_or_resumed, read_state
from predictors.training.recipe import TrainConfig, data_keys, train_flag_keys
from searchspace.errors import NasError
from searchspace.settings import flag_name, hashed_dict
from searchspace.textio import shorten

STEPS = ("search", "train", "export", "verify", "card")
REDO_STEPS = ("export", "verify", "card")  # steps --redo may run again (with the ones after them)
FROM_SEARCH = ("dataset", "data_dir", "download")  # the training reads the search's data
OWNED = ("out", "resume")  # the run decides them: its folder's train/, and the run's --resume
PREFIXED = ("seed", "workers")  # keys the search has too: --train-seed, --train-workers on nas run
SEARCH_FILE = "search.yaml"  # the search as asked: a config for nas search --config and nas run --config
PLACE_KEYS = ("name", "runs_dir", "resume", "storage", "address")  # where a run goes (and credentials), left out


def train_keys() -> list[str]:
    """The training keys ``nas run`` takes."""
    return [k for k in train_flag_keys() if k not in FROM_SEARCH + OWNED]


def run_flag(key: str) -> str:
    """A training key's flag on ``nas run``: ``--epochs``, or ``--train-seed`` where the search has the key too."""
    return flag_name(f"train_{key}" if key in PREFIXED else key)


@dataclass
class RunPlan:
    """The checked settings of one run."""

    search: SearchConfig
    train: dict[str, Any]           # the training settings given (TrainConfig keys, values as given)
    redo: str | None = None         # run this step and the ones after it again

    @property
    def folder(self) -> Path:
        return Path(self.search.runs_dir) / str(self.search.name)

    def train_settings(self) -> dict[str, Any]:
        """Settings of the training step: those given, on the search's data, at the search's proxy resolution
        unless a resolution is given."""
        proxy = self.search.proxy
        return {"resolution": proxy.resolution, **self.train, "dataset": proxy.dataset, "data_dir": proxy.data_dir,
                "download": proxy.download}

    def train_config(self) -> TrainConfig:
        """The training's recipe, checked (learning rate and weight decay filled in)."""
        from nas.training.run import train_config

        return train_config(None, **self.train_settings())

    def check_data(self) -> None:
        """The data fails before any file is written: it loads with the search's space (and stays loaded for
        the search), and an ImageFolder tree has the test split the training needs."""
        from nas.search.setup import searched_space
        from predictors.data.imagefolder import imagefolder_files
        from predictors.data.spec import DatasetError

        searched_space(self.search)  # it leaves the config as given
        proxy = self.search.proxy
        if proxy.dataset == "imagefolder" and imagefolder_files(Path(str(proxy.data_dir)))[1] is None:
            raise DatasetError(f"{proxy.data_dir}: no test split (nas run tests the trained network on "
                               f"{proxy.data_dir}/test/<class>/ or {proxy.data_dir}/val/<class>/)")


def search_file_text(config: SearchConfig) -> str:
    """:data:`SEARCH_FILE`'s text: every key of the search as asked but where it ran (:data:`PLACE_KEYS`)."""
    import yaml

    return yaml.safe_dump({k: v for k, v in config.to_dict().items() if k not in PLACE_KEYS}, sort_keys=False)


def plan_run(config: str | Path | SearchConfig | None = None, settings: Mapping[str, Any] | None = None,
             train: Mapping[str, Any] | None = None, data: str | None = None,
             redo: str | None = None) -> tuple[RunPlan, RunState | None]:
    """The run's settings and, when it resumes a run, that run's state.

    ``config``: a search config YAML file or object; ``settings``: search keys (``proxy.epochs`` inside the
    proxy section); ``train``: training keys; ``data``: a data set name or an ImageFolder folder, for both."""
    overrides = {**dict(settings or {}), **_data_overrides(data, settings or {})}
    given = _train_keys_given(train or {})
    search = _search_config(config, overrides)
    if search.name is None:
        if search.resume:
            raise NasError("name: give the run to resume (--name NAME)")
        from nas.search.setup import dated_name

        search.name = dated_name("run")
    if redo is not None and (redo not in REDO_STEPS or not search.resume):
        raise NasError(f"redo: {redo!r} is not one of {', '.join(REDO_STEPS)}" if redo not in REDO_STEPS
                       else "redo: only with --resume (it runs a step of an existing run again)")
    folder = Path(search.runs_dir) / search.name
    state = read_state(folder) if folder.is_dir() else None
    check_new_or_resumed(folder, search.resume, state)
    if state is not None:
        saved = RunPlan(_search_config(None, {}, state.search), dict(state.train))
        search = _search_config(config, overrides, state.search)
        plan = RunPlan(search, {**state.train, **given}, redo)
        _check_unchanged(hashed_dict(saved.search), hashed_dict(search))
        _check_unchanged(hashed_dict(saved.train_config()), hashed_dict(plan.train_config()), "train.")
        return plan, state
    plan = RunPlan(search, given, redo)
    plan.train_config()  # bad training settings fail before the search starts
    return plan, None


def _search_config(config: str | Path | SearchConfig | None, overrides: dict[str, Any],
                   saved: dict[str, Any] | None = None) -> SearchConfig:
    if isinstance(config, SearchConfig):
        return load_config(None, overrides, base=config.to_dict())
    return load_config(config, overrides, base=saved)


def _data_overrides(data: str | None, settings: Mapping[str, Any]) -> dict[str, str]:
    """``data`` (a data set name or a folder) as the search's proxy keys."""
    if data is None:
        return {}
    keys = {f"proxy.{k}": v for k, v in data_keys(str(data)).items()}
    clash = [k for k in keys if settings.get(k) is not None]
    if clash:
        raise NasError(f"data: give the data set either as data or as {clash[0]}, not both")
    return keys


def _train_keys_given(train: Mapping[str, Any]) -> dict[str, Any]:
    """The training settings with ``_`` names; NasError for the keys the run takes from the search or decides."""
    out = {}
    for key, value in train.items():
        name = str(key).replace("-", "_")
        if name in FROM_SEARCH:
            raise NasError(f"train.{name}: the training reads the search's data; give it as data (--data) or as "
                           f"proxy.{name}")
        if name in OWNED:
            raise NasError(f"train.{name}: the run decides it (the trained network goes to the run's train/ "
                           "folder; --resume continues the whole run)")
        out[name] = value
    return out


def _check_unchanged(before: dict[str, Any], now: dict[str, Any], prefix: str = "") -> None:
    """NasError naming the settings that decide the run and differ from the saved ones."""
    old, new = _flat(before, prefix), _flat(now, prefix)
    changed = sorted(k for k in old.keys() | new.keys() if old.get(k) != new.get(k))
    if changed:
        was = shorten(", ".join(f"{k}={old.get(k)}" for k in changed), 200)
        asks = shorten(", ".join(f"{k}={new.get(k)}" for k in changed), 200)
        raise NasError(f"resume: the run was started with {was}, this command asks {asks}; resume with the same "
                       "settings (or none: the saved ones are used), or pick another --name")


def _flat(values: dict[str, Any], prefix: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, dict) and key != "space":
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out
