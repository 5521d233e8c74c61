"""Search strategies as Optuna samplers, one module each, behind one contract: ``make_sampler(name, ...)``.

``random``, ``tpe`` and ``nsga2`` are Optuna's own samplers; ``evolution`` (:mod:`.evolution`) and
``surrogate`` (:mod:`.surrogate.sampler`) are plan samplers (:mod:`.plan`). This module is the one list
of the names and imports optuna only when a sampler is built, so :mod:`nas.config` reads the names
without it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from searchspace.errors import NasError

if TYPE_CHECKING:
    from optuna.samplers import BaseSampler


def _random(seed: int | None, space: Any, **_: Any) -> BaseSampler:
    from optuna.samplers import RandomSampler

    from nas.strategies.plan import PlanSampler

    return PlanSampler(seed, space) if space is not None else RandomSampler(seed=seed)


def _tpe(seed: int | None, n_startup: int, cost_limit: float | None, **_: Any) -> BaseSampler:
    import warnings

    import optuna
    from optuna.samplers import TPESampler

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return TPESampler(seed=seed, n_startup_trials=n_startup, multivariate=True, group=True,
                          constraints_func=_constraints(cost_limit))


def _nsga2(seed: int | None, population: int, cost_limit: float | None, **_: Any) -> BaseSampler:
    import warnings

    import optuna
    from optuna.samplers import NSGAIISampler

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return NSGAIISampler(seed=seed, population_size=population, constraints_func=_constraints(cost_limit))


def _constraints(cost_limit: float | None) -> Any:
    from nas.strategies.feasible import CostLimit

    return CostLimit(cost_limit) if cost_limit is not None else None


def _evolution(seed: int | None, population: int, tournament: int, space: Any, **_: Any) -> BaseSampler:
    from nas.strategies.evolution import EvolutionSampler

    return EvolutionSampler(seed=seed, population=population, tournament=tournament, space=space)


def _surrogate(seed: int | None, population: int, n_startup: int, space: Any, cost_limit: float | None,
               **_: Any) -> BaseSampler:
    from nas.strategies.surrogate.sampler import SurrogateSampler

    return SurrogateSampler(seed=seed, parents=population, n_startup=max(n_startup, 2), space=space,
                            cost_limit=cost_limit)


# the registry: each strategy's name and how to build it, best first as measured on NAS-Bench-201
# (experiments/results/bench_strategies.md): the order users see them in
_BUILDERS: dict[str, Callable[..., BaseSampler]] = {
    "surrogate": _surrogate, "evolution": _evolution, "tpe": _tpe, "nsga2": _nsga2, "random": _random}
STRATEGIES: tuple[str, ...] = tuple(_BUILDERS)
SINGLE_OBJECTIVE_ONLY: tuple[str, ...] = ("surrogate",)


def make_sampler(name: str, seed: int | None = None, *, population: int = 10, tournament: int = 3,
                 n_startup: int = 10, multi_objective: bool = False, space: Any = None,
                 cost_limit: float | None = None) -> BaseSampler:
    """The sampler of strategy ``name``; raises ``NasError`` for an unknown name or a bad setting.

    ``population``: evolution's population, NSGA-II's population size, the surrogate's number of parents.
    ``tournament``: evolution's sample size. ``n_startup``: random trials before TPE / the surrogate start.
    ``multi_objective``: the study has several objectives (the surrogate refuses it).
    ``space``: the search space (a ``searchspace.space.Space``); with it, random trials are networks the
    study does not hold yet (:class:`nas.strategies.plan.PlanSampler`).
    ``cost_limit``: the budget T of a constrained search; TPE, NSGA-II and the surrogate then learn where
    candidates are within it (:mod:`nas.strategies.feasible`).
    """
    if name not in STRATEGIES:
        raise NasError(f"strategy: {name!r} is not one of {', '.join(STRATEGIES)}")
    if population < 2 or tournament < 1 or tournament > population or n_startup < 0:
        raise NasError(f"strategy: need population >= 2, 1 <= tournament <= population and n_startup >= 0, "
                       f"got population={population}, tournament={tournament}, n_startup={n_startup}")
    if multi_objective and name in SINGLE_OBJECTIVE_ONLY:
        allowed = ", ".join(s for s in STRATEGIES if s not in SINGLE_OBJECTIVE_ONLY)
        raise NasError(f"strategy: {name!r} is single-objective; for multi-objective use one of {allowed}")
    return _BUILDERS[name](seed, population=population, tournament=tournament, n_startup=n_startup,
                           space=space, cost_limit=cost_limit)
