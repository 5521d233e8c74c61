"""The one pruning policy of both backends: at which checks a candidate may be stopped (values by hand)."""

from __future__ import annotations

from types import SimpleNamespace

import optuna
import pytest

from nas.search.pruning import Checks, asha_settings, pruned_reason
from nas.search.ray_backend import record_trial
from nas.strategies.plan import scored_trials
from predictors.training.config import ProxyConfig
from searchspace.space import space_from_dict
from tests.search_helpers import TINY_SPACE


def test_the_default_proxy_has_four_checks_and_may_stop_a_candidate_from_half_its_epoch():
    checks = Checks.of(ProxyConfig())
    assert (checks.epochs, checks.per_epoch, checks.last, checks.first_prunable) == (1, 4, 4, 2)
    assert [checks.number(done) for done in (0.25, 0.5, 0.75, 1)] == [1, 2, 3, 4]
    assert [checks.may_prune(k) for k in (1, 2, 3, 4)] == [False, True, True, False]


@pytest.mark.parametrize("epochs, per_epoch, prunable", [
    (1, 1, []),                 # one report, at the end: nothing to save
    (3, 1, [1, 2]),             # epoch ends, as before checks existed
    (2, 4, [2, 3, 4, 5, 6, 7]),
    (1, 3, [2]),                # ceil(3 / 2) = 2
    (1, 2, [1]),
])
def test_prunable_checks(epochs, per_epoch, prunable):
    checks = Checks(epochs, per_epoch)
    assert [k for k in range(0, checks.last + 2) if checks.may_prune(k)] == prunable
    assert checks.number(epochs) == checks.last


def test_asha_uses_the_same_checks():
    assert asha_settings(Checks(1, 4)) == {"time_attr": "check", "max_t": 4, "grace_period": 2, "reduction_factor": 2}
    assert asha_settings(Checks(1, 1)) == {"time_attr": "check", "max_t": 1, "grace_period": 1, "reduction_factor": 2}
    assert asha_settings(Checks(3, 1))["grace_period"] == 1


def test_ray_accepts_the_settings():
    schedulers = pytest.importorskip("ray.tune.schedulers")
    for checks in (Checks(1, 1), Checks(1, 4), Checks(5, 8)):
        schedulers.ASHAScheduler(metric="reward", mode="max", **asha_settings(checks))


def test_pruned_reason():
    assert pruned_reason(0.5, Checks(1, 4), 0.61234) == (
        "pruned at 0.5 of 1 epoch(s) (accuracy 0.6123, below the pruner's cut there)")


def test_a_trial_asha_stopped_keeps_the_accuracy_of_the_check_it_stopped_at(tmp_path):
    """Ray's record of a trial ASHA stopped: PRUNED with its last check, so the surrogate can learn from it."""
    space = space_from_dict(TINY_SPACE)
    draw = optuna.create_study().ask()
    space.sample(draw)
    run = SimpleNamespace(space=space, folder=tmp_path)
    progress = SimpleNamespace(finished=lambda study, trial: None)
    study = optuna.create_study(direction="maximize")
    assert record_trial(study, run, draw.params, {"check": 3, "epoch": 0.75, "accuracy": 0.61, "reward": 0.6},
                        None, progress)
    trial = study.trials[0]
    assert trial.state == optuna.trial.TrialState.PRUNED and trial.intermediate_values == {3: 0.61}
    assert trial.user_attrs["reason"] == "stopped by ASHA at 0.75 epoch(s)"
    assert scored_trials(study) == [trial] and (tmp_path / "trials.csv").is_file()
