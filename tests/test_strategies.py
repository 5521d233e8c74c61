"""Search strategies (nas.strategies) and the NAS-Bench-201 benchmark harness on a synthetic table."""

from __future__ import annotations

import importlib.util
import itertools
import sys
import warnings
from pathlib import Path

import numpy as np
import optuna
import pytest

from nas.strategies import STRATEGIES, make_sampler, plan
from nas.strategies.held import AT_CHANCE
from nas.strategies.plan import MUTATED_ATTR, PARENT_ATTR
from searchspace.errors import NasError
from searchspace.space import space_from_dict

optuna.logging.set_verbosity(optuna.logging.WARNING)
warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("bench_strategies", ROOT / "experiments" / "bench_strategies.py")
bench = importlib.util.module_from_spec(_spec)
sys.modules["bench_strategies"] = bench  # dataclasses look their module up there
_spec.loader.exec_module(bench)

SMALL = {"population": 4, "tournament": 2, "n_startup": 4}


def conditional_objective(trial: optuna.Trial) -> float:
    """A define-by-run space: the block type decides which sub-parameters exist."""
    kind = trial.suggest_categorical("kind", ["conv", "mlp", "none"])
    if kind == "conv":
        kernel = trial.suggest_categorical("conv_kernel", [3, 5, 7])
        width = trial.suggest_int("conv_width", 8, 64, log=True)
        return kernel / 7 + width / 64
    if kind == "mlp":
        return trial.suggest_float("mlp_dropout", 0.0, 0.5) + trial.suggest_float("mlp_lr", 1e-4, 1e-1, log=True)
    return 0.5


def flat_objective(trial: optuna.Trial) -> float:
    return float(sum(trial.suggest_categorical(f"x{i}", [0, 1, 2, 3]) for i in range(3)))


@pytest.mark.parametrize("direction", ["minimize", "maximize"])
@pytest.mark.parametrize("name", STRATEGIES)
def test_every_strategy_runs_on_a_conditional_space(name: str, direction: str) -> None:
    study = optuna.create_study(direction=direction, sampler=make_sampler(name, seed=0, **SMALL))
    study.optimize(conditional_objective, n_trials=16)
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(done) == 16
    for t in done:
        assert set(t.params) in ({"kind"}, {"kind", "conv_kernel", "conv_width"}, {"kind", "mlp_dropout", "mlp_lr"})


@pytest.mark.parametrize("direction", ["minimize", "maximize"])
def test_evolution_child_is_one_mutation_of_the_tournament_winner(direction: str) -> None:
    # tournament == population: the parent is always the best of the last `population` completed trials
    sampler = make_sampler("evolution", seed=1, population=3, tournament=3)
    study = optuna.create_study(direction=direction, sampler=sampler)
    for params in ({"x0": 0, "x1": 0, "x2": 1}, {"x0": 3, "x1": 2, "x2": 3}, {"x0": 1, "x1": 1, "x2": 1}):
        study.enqueue_trial(params)
    study.optimize(flat_objective, n_trials=12)
    pick = max if direction == "maximize" else min
    for child in study.trials[3:]:
        alive = study.trials[child.number - 3: child.number]
        parent = pick(alive, key=lambda t: t.value)
        assert child.system_attrs[PARENT_ATTR] == parent.number
        changed = [k for k in child.params if child.params[k] != parent.params[k]]
        assert changed == child.system_attrs[MUTATED_ATTR] and len(changed) == 1


def test_evolution_ignores_failed_and_pruned_trials() -> None:
    def objective(trial: optuna.Trial) -> float:
        value = flat_objective(trial)
        if trial.number % 3 == 1:
            raise RuntimeError("candidate crashed")
        if trial.number % 3 == 2:
            raise optuna.TrialPruned()
        return value

    study = optuna.create_study(sampler=make_sampler("evolution", seed=0, population=3, tournament=2))
    study.optimize(objective, n_trials=30, catch=(RuntimeError,))
    states = {t.number: t.state for t in study.trials}
    children = [t for t in study.trials if PARENT_ATTR in t.system_attrs]
    assert children, "the population fills from completed trials only, then evolution starts"
    assert all(states[t.system_attrs[PARENT_ATTR]] == optuna.trial.TrialState.COMPLETE for t in children)
    assert min(t.number for t in children) >= 7  # needs 3 completed trials: numbers 0, 3, 6


def test_surrogate_ignores_failed_trials_and_avoids_repeats() -> None:
    def objective(trial: optuna.Trial) -> float:
        value = flat_objective(trial)
        if value == 4:
            raise RuntimeError("candidate crashed")
        return value

    study = optuna.create_study(direction="maximize", sampler=make_sampler("surrogate", seed=0, **SMALL))
    study.optimize(objective, n_trials=20, catch=(RuntimeError,))
    keys = [tuple(sorted(t.params.items())) for t in study.trials[4:]
            if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(set(keys)) == len(keys)
    assert study.best_value == 9


def test_evolution_resumes_from_rdb_storage(tmp_path: Path) -> None:
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    study = optuna.create_study(study_name="s", storage=storage,
                                sampler=make_sampler("evolution", seed=0, population=4, tournament=2))
    study.optimize(flat_objective, n_trials=5)
    resumed = optuna.load_study(study_name="s", storage=storage,
                                sampler=make_sampler("evolution", seed=1, population=4, tournament=2))
    resumed.optimize(flat_objective, n_trials=3)
    assert all(PARENT_ATTR in t.system_attrs for t in resumed.trials[4:])


def test_unknown_strategy_names_the_allowed_ones() -> None:
    with pytest.raises(NasError, match="'anneal' is not one of surrogate, evolution, tpe, nsga2, random"):
        make_sampler("anneal")
    with pytest.raises(NasError, match="tournament"):
        make_sampler("evolution", population=3, tournament=5)
    with pytest.raises(NasError, match="single-objective"):
        make_sampler("surrogate", multi_objective=True)


def test_evolution_multi_objective_runs() -> None:
    study = optuna.create_study(directions=["maximize", "minimize"],
                                sampler=make_sampler("evolution", seed=0, multi_objective=True, **SMALL))
    study.optimize(lambda t: (flat_objective(t), float(t.params["x0"])), n_trials=12)
    assert len(study.trials) == 12
    points = {tuple(t.values) for t in study.trials}
    front = {p for p in points if not any(q[0] >= p[0] and q[1] <= p[1] and q != p for q in points)}
    assert {tuple(t.values) for t in study.best_trials} == front  # the front, computed by hand


# --- the benchmark harness ----------------------------------------------------------------------------

def synthetic_table() -> bench.Table:
    """3 edges x 3 ops; the best cell is (c, c, c) = 9.0, then 8.5 (within 0.5), 8.0, ..."""
    ops = ("a", "b", "c")
    acc = {cell: float(sum(ops.index(o) for o in cell)) * 1.5 for cell in itertools.product(ops, repeat=3)}
    acc[("c", "c", "b")] = 8.5
    return bench.Table(edges=("1<-0", "2<-0", "2<-1"), ops=ops, acc={"toy": acc})


def test_parse_arch_reads_nb201_strings() -> None:
    arch = "|nor_conv_3x3~0|+|none~0|skip_connect~1|+|avg_pool_3x3~0|nor_conv_1x1~1|none~2|"
    assert bench.parse_arch(arch) == ("nor_conv_3x3", "none", "skip_connect", "avg_pool_3x3",
                                      "nor_conv_1x1", "none")


def test_within_probability_counts_runs_within_tolerance() -> None:
    curves = np.array([[7.0, 8.5, 9.0], [8.0, 8.0, 8.4], [9.0, 9.0, 9.0], [6.0, 8.49, 8.5]])
    p, mean = bench.within_probability(curves, best=9.0, checkpoints=[1, 2, 3], tol=0.5)
    assert p == [0.25, 0.5, 0.75]
    assert mean == pytest.approx([7.5, 33.99 / 4, 34.9 / 4])


def test_benchmark_on_a_synthetic_table() -> None:
    table = synthetic_table()
    settings = bench.Settings(population=4, tournament=2, n_startup=4)
    [summary] = bench.run_benchmark(table, ["evolution"], ["toy"], seeds=6, checkpoints=[3, 20], settings=settings)
    curves = np.stack([bench.run_one(table, "toy", "evolution", s, 20, settings)[0] for s in range(6)])
    expected = [float(np.mean(curves[:, c - 1] >= 8.5)) for c in (3, 20)]
    assert summary.p_within == pytest.approx(expected)
    assert summary.mean_best == pytest.approx([curves[:, 2].mean(), curves[:, 19].mean()])
    assert np.all(np.diff(curves, axis=1) >= 0) and curves.max() <= 9.0
    report = bench.to_markdown([summary], table, "python bench", settings)
    assert "## toy (best 9.00; 2 of 27 cells within 0.5)" in report and "| evolution |" in report


def test_benchmark_cli_writes_the_report(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bench, "load_nb201", lambda path: synthetic_table())
    out = tmp_path / "bench.md"
    bench.main(["--seeds", "2", "--queries", "5,10", "--datasets", "toy", "--strategies", "random,surrogate",
                "--n-startup", "3", "--out", str(out)])
    text = out.read_text()
    assert "--strategies random,surrogate" in text and "| surrogate |" in text and "P@10" in text


@pytest.mark.parametrize("name", ["surrogate", "evolution"])
def test_pruned_points_are_never_proposed_again(name: str) -> None:
    """A candidate stopped by a pruner counts as seen: the next trials must differ from it."""
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    options = {"n_startup": 5} if name == "surrogate" else {"population": 5, "tournament": 2}
    study = optuna.create_study(direction="maximize", sampler=make_sampler(name, seed=0, **options))

    def objective(trial):
        x = [trial.suggest_categorical(f"x{i}", [0, 1, 2]) for i in range(4)]
        if trial.number >= 5:
            raise optuna.TrialPruned()
        return float(sum(x))

    study.optimize(objective, n_trials=20)
    keys = [tuple(sorted(t.params.items())) for t in study.trials]
    assert len(set(keys)) == len(keys)


def test_random_plan_does_not_propose_a_network_that_failed_at_chance_again() -> None:
    """A network trained to chance accuracy is held, though its trial failed: never proposed again."""
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    space = space_from_dict({"stages": [{"stride": 1, "out": [8], "repeat": [1], "types": ["basic"]}],
                             "params": {"basic": {"kernel": [3, 5], "se": [0.0], "avg_down": [False],
                                                  "act": ["relu"]}}})  # two networks in all

    def objective(trial):
        trial.set_user_attr("hash", space.sample(trial).hash())
        if trial.number == 0:
            trial.set_user_attr(AT_CHANCE, True)
            raise RuntimeError("accuracy at chance")
        return 1.0

    for seed in range(8):
        study = optuna.create_study(sampler=make_sampler("random", seed=seed, space=space))
        study.optimize(objective, n_trials=2, catch=(RuntimeError,))
        failed, second = study.trials
        assert failed.state == optuna.trial.TrialState.FAIL
        assert second.user_attrs["hash"] != failed.user_attrs["hash"]


def _add(study: optuna.Study, params: dict, state: str, value: float | None = None,
         checks: dict[int, float] | None = None) -> None:
    distributions = {k: optuna.distributions.CategoricalDistribution([0, 1, 2, 3]) for k in params}
    study.add_trial(optuna.trial.create_trial(state=optuna.trial.TrialState[state], params=params,
                                              distributions=distributions, value=value,
                                              intermediate_values=checks or {}))


def test_a_trial_stopped_at_a_check_ranks_below_every_completed_one() -> None:
    study = optuna.create_study(direction="maximize")
    _add(study, {"x0": 0}, "COMPLETE", 0.8, {4: 0.8})
    _add(study, {"x0": 1}, "PRUNED", checks={1: 0.4, 2: 0.6})            # stopped at check 2
    _add(study, {"x0": 2}, "COMPLETE", 0.7, {4: 0.7})
    _add(study, {"x0": 3}, "PRUNED", checks={1: 0.3, 2: 0.4, 3: 0.5})    # stopped at check 3
    _add(study, {"x1": 0}, "PRUNED")  # rejected before training: reported nothing, learned from its cost only
    trials = plan.scored_trials(study)
    assert [t.number for t in trials] == [0, 1, 2, 3]
    # by hand: floor = 0.7 - 1 = -0.3; check 3 (the latest stop): -0.3 + 0.5 - 1; check 2: -0.3 - 3 + 0.6 - 1
    assert plan.trial_scores(study, trials) == pytest.approx([0.8, -3.7, 0.7, -0.8])
    assert plan.completed_trials(study) == [trials[0], trials[2]]


def test_the_surrogate_learns_from_stopped_trials_and_plans_once_enough_are_scored() -> None:
    """With a pruner stopping most candidates, the GP must not wait for ``n_startup`` completed trials."""
    study = optuna.create_study(direction="maximize", sampler=make_sampler("surrogate", seed=0, n_startup=4))
    _add(study, {"x0": 3, "x1": 3, "x2": 3}, "COMPLETE", 0.9, {4: 0.9})
    for i, params in enumerate(({"x0": 0, "x1": 0, "x2": 0}, {"x0": 1, "x1": 0, "x2": 0}, {"x0": 0, "x1": 1, "x2": 0})):
        _add(study, params, "PRUNED", checks={2: 0.3 + 0.1 * i})
    study.optimize(flat_objective, n_trials=1)
    planned = study.trials[-1]
    assert PARENT_ATTR in planned.system_attrs  # the GP planned it (a random startup trial has no parent)
    assert planned.system_attrs[PARENT_ATTR] == 0  # mutated from the completed trial, the best scored
    evolution = optuna.create_study(direction="maximize", sampler=make_sampler("evolution", seed=0, population=4,
                                                                                 tournament=2))
    for t in study.trials[:4]:
        evolution.add_trial(t)
    evolution.optimize(flat_objective, n_trials=1)
    assert PARENT_ATTR not in evolution.trials[-1].system_attrs  # evolution counts completed trials only
