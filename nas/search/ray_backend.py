"""Running the search's trials on a Ray cluster through Ray Tune.

Ray Tune's ``OptunaSearch`` asks the same strategy sampler and the same define-by-run space as the
local backend; an ASHA scheduler stops weak candidates by their per-epoch proxy reward. Each Tune
trial scores its candidate with :func:`nas.search.scoring.score_candidate` (or reuses the study's earlier
score of the same network, as the local loop does), and finished trials are written into the run's
Optuna study with the same attributes, so the outputs (best.yaml, trials.csv, ...) are the same as
for a local search.
"""

from __future__ import annotations

import os
from typing import Any

import optuna
from optuna.distributions import CategoricalDistribution
from optuna.trial import TrialState

from nas.search.outputs import write_trials
from nas.search.scoring import TrialRecord, earlier_trial, record_attrs, score_or_reuse
from nas.search.setup import Run
from nas.search.storage import open_storage
from nas.strategies import make_sampler
from searchspace.errors import NasError

RECORD = "record"  # the metric that carries a finished trial's record (its user attributes)


class RecordingTrial:
    """Replays fixed params through ``Space.sample`` and records each parameter's choices."""

    def __init__(self, params: dict[str, Any]) -> None:
        self.params = params
        self.distributions: dict[str, CategoricalDistribution] = {}

    def suggest_categorical(self, name: str, choices: Any) -> Any:
        self.distributions[name] = CategoricalDistribution(list(choices))
        return self.params[name]


class DefineBySpace:
    """Picklable define-by-run function for OptunaSearch (Tune checkpoints the searcher)."""

    def __init__(self, space) -> None:
        self.space = space

    def __call__(self, trial: optuna.Trial) -> None:
        self.space.sample(trial)


def _trainable(params: dict[str, Any], run: Run) -> None:
    """One Tune trial: rebuild the genotype from its params, score it (or reuse the study's earlier
    score of the same network), report per epoch, and end with the full record."""
    from ray import tune

    genotype = run.space.sample(RecordingTrial(params))
    cfg = run.config
    if cfg.proxy.threads is None:
        cfg.proxy.threads = 1
    study = optuna.load_study(study_name=run.study_name, storage=open_storage(run.storage))
    earlier = earlier_trial(study, genotype.hash(), len(study.get_trials(deepcopy=False)))
    cost: dict[str, float] = {}
    record = score_or_reuse(genotype, run.scorer, earlier, _epoch_reporter(run, cost),
                            on_cost=lambda c: cost.update(cost=c))
    final = {"epoch": (record.epochs or 0) + 1, "reward": record.reward if record.reward is not None else -1.0,
             RECORD: {"state": record.state, **record_attrs(record, backend="ray")}}
    tune.report(final)


def _epoch_reporter(run: Run, cost: dict[str, float]):
    """Per-epoch reports to Tune (ASHA reads ``reward``); ``cost["cost"]`` is set before the first epoch."""
    from ray import tune

    def report(epoch: int, accuracy: float) -> None:
        tune.report({"epoch": epoch, "accuracy": accuracy, "reward": run.scorer.reward(accuracy, cost["cost"])})

    return report


def run_ray(run: Run, study: optuna.Study, progress) -> str | None:
    """Run the search's trials with Ray Tune, then record them in ``study``."""
    try:
        import ray
        from ray import tune
        from ray.tune.schedulers import ASHAScheduler
        from ray.tune.search import ConcurrencyLimiter
        from ray.tune.search.optuna import OptunaSearch
    except ImportError as err:
        raise NasError(f"backend: ray is not installed ({err}); pip install 'ray[tune]'") from None
    cfg = run.config
    if run.scorer.reward.multi_objective:
        raise NasError("backend: ray runs single-objective rewards; use --backend local for --reward pareto")
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    init_args = {"address": cfg.address} if cfg.address else {"num_cpus": cfg.workers, "include_dashboard": False}
    ray.init(ignore_reinit_error=True, log_to_driver=False, configure_logging=False, **init_args)

    sampler = make_sampler(cfg.strategy, cfg.seed, population=cfg.population, tournament=cfg.tournament)
    searcher = ConcurrencyLimiter(OptunaSearch(space=DefineBySpace(run.space), metric="reward", mode="max", sampler=sampler),
                                  max_concurrent=cfg.workers)
    scheduler = ASHAScheduler(time_attr="epoch", metric="reward", mode="max", max_t=cfg.proxy.epochs + 1,
                              grace_period=1, reduction_factor=2)
    recorder = _record_as_finished(study, run, progress)
    tuner = tune.Tuner(
        tune.with_resources(tune.with_parameters(_trainable, run=run), {"cpu": 1}),
        tune_config=tune.TuneConfig(search_alg=searcher, scheduler=scheduler,
                                    num_samples=cfg.trials or -1, time_budget_s=cfg.budget),
        run_config=tune.RunConfig(name="tune", storage_path=str((run.folder / "ray").resolve()), verbose=0,
                                  failure_config=tune.FailureConfig(max_failures=0), callbacks=[recorder]),
    )
    results = tuner.fit()
    n = recorder.count + record_results(study, run, results, progress, skip=recorder.recorded)
    ray.shutdown()
    return f"ray: {n} trials recorded" if n else "ray: no trial finished"


def _record_as_finished(study: optuna.Study, run: Run, progress):
    """A Tune callback that records each trial in the study (and prints progress) as it finishes.

    Recording as Tune goes keeps the terminal live and the study complete if the driver is killed.
    """
    from ray import tune

    class RecordAsFinished(tune.Callback):
        def __init__(self) -> None:
            self.recorded: set[str] = set()
            self.count = 0
            self.started = len(study.get_trials(deepcopy=False))

        def on_trial_start(self, iteration, trials, trial, **info) -> None:
            progress.candidate(self.started, run.space.sample(RecordingTrial(dict(trial.config))))
            self.started += 1

        def on_trial_complete(self, iteration, trials, trial, **info) -> None:
            self._record(trial, None)

        def on_trial_error(self, iteration, trials, trial, **info) -> None:
            error = trial.get_pickled_error() or trial.get_error() or "trial failed"
            if isinstance(error, str):
                error = (error.strip().splitlines() or ["trial failed"])[-1]
            self._record(trial, error)

        def _record(self, trial, error) -> None:
            if trial.trial_id in self.recorded:
                return
            self.recorded.add(trial.trial_id)
            if record_trial(study, run, dict(trial.config), dict(trial.last_result or {}), error, progress):
                self.count += 1

    return RecordAsFinished()


def record_results(study: optuna.Study, run: Run, results, progress, skip: set[str] = frozenset()) -> int:
    """Copy Tune's finished trials not yet recorded (``skip``: their trial ids) into the Optuna study."""
    count = 0
    for result in results:
        metrics = result.metrics or {}
        if metrics.get("trial_id") in skip:
            continue
        if record_trial(study, run, dict(result.config or {}), metrics, result.error, progress):
            count += 1
    return count


def record_trial(study: optuna.Study, run: Run, params: dict[str, Any], metrics: dict[str, Any], error,
                 progress) -> bool:
    """Add one finished Tune trial to the study: complete, pruned or failed, with its reason."""
    if not params:
        return False
    recorder = RecordingTrial(params)
    genotype = run.space.sample(recorder)
    attrs = dict(metrics.get(RECORD) or {})
    state = attrs.pop("state", None)
    if error is not None:
        reason = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
        attrs = record_attrs(TrialRecord(genotype, "FAIL", reason=reason[:500]), backend="ray")
        state = "FAIL"
    elif state is None:  # stopped by the scheduler before the trial sent its record
        record = TrialRecord(genotype, "PRUNED", accuracy=metrics.get("accuracy"),
                             reason=f"stopped by ASHA after epoch {metrics.get('epoch')}")
        attrs, state = record_attrs(record, backend="ray"), "PRUNED"
    values = [attrs["reward"]] if state == "COMPLETE" else None
    trial = optuna.trial.create_trial(state=TrialState[state], values=values, params=params,
                                      distributions=recorder.distributions, user_attrs=attrs)
    study.add_trial(trial)
    progress.finished(study, study.get_trials(deepcopy=False)[-1])
    write_trials(run.folder, study)
    return True
