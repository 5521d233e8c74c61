"""Running the search's trials on a Ray cluster through Ray Tune.

Ray Tune's ``OptunaSearch`` asks the same strategy sampler and the same define-by-run space as the local
backend; an ASHA scheduler stops weak candidates by their proxy reward at the proxy's checks (from half an
epoch on, :mod:`nas.search.pruning`). Each Tune trial scores its candidate with
:func:`nas.search.scoring.score_candidate` (or reuses the study's earlier score of the same network, as the
local loop does), and finished trials are written into the run's Optuna study with the same attributes, so the
outputs (best.yaml, trials.csv, ...) are the same as for a local search.
"""

from __future__ import annotations

import json
import os
from typing import Any

import optuna
from optuna.distributions import CategoricalDistribution
from optuna.trial import TrialState

try:  # loaded only for a Ray search (run.py imports this module then)
    from ray.tune import Stopper
except ImportError:  # ray without its tune extra: run_ray says how to install it
    Stopper = object

from nas.common.signals import keep_sigterm
from nas.search.cluster import (
    check_nodes,
    for_workers,
    guard_latency,
    measures_latency,
    missing_paths,
    needed_paths,
    repeats_in_every_trial,
    worker_env,
)
from nas.search.outputs import write_trials
from nas.search.pruning import Checks, asha_settings
from nas.search.scoring import TrialRecord, earlier_trial, record_attrs, score_or_reuse
from nas.search.setup import Run
from nas.search.storage import open_storage
from nas.strategies import make_sampler
from predictors.latency.node_lock import NodeLock
from searchspace.errors import NasError

RECORD = "record"  # the metric that carries a finished trial's record (its user attributes, as JSON text:
#                   Tune's loggers take numbers and text, not nested data)
FATAL = "fatal"  # the metric that carries an error every trial would meet: the search stops
WORKER_RETRIES = 1  # a trial whose worker process died runs once more


class StopOnFatal(Stopper):
    """Tune's stopper: every trial stops once one reports :data:`FATAL` (its message is kept)."""

    def __init__(self) -> None:
        self.fatal: str | None = None

    def __call__(self, trial_id: str, result: dict) -> bool:
        if FATAL in result and self.fatal is None:
            self.fatal = result[FATAL]
        return FATAL in result

    def stop_all(self) -> bool:
        return self.fatal is not None


def _last_line(error: Any) -> Any:
    """A Tune error as recorded: the exception itself, or the last line of a traceback text."""
    return (error.strip().splitlines() or ["trial failed"])[-1] if isinstance(error, str) else error


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
    score of the same network), report at each check, and end with the full record; an error that would
    repeat in every trial ends it with :data:`FATAL`, which stops the search."""
    from ray import tune

    try:
        record = _score(params, run)
        fatal = record.error
    except Exception as err:
        record, fatal = None, err
    if fatal is not None and repeats_in_every_trial(fatal):
        tune.report({"check": 0, "epoch": 0, "reward": -1.0, FATAL: _one_line(fatal)})
        return
    if record is None:
        raise fatal
    checks = Checks.of(run.config.proxy)  # the record is the last check's report (see _check_reporter)
    tune.report({"check": checks.last, "epoch": record.epochs or 0,
                 "reward": record.reward if record.reward is not None else -1.0,
                 RECORD: json.dumps({"state": record.state, **record_attrs(record, backend="ray")})})


def _score(params: dict[str, Any], run: Run) -> TrialRecord:
    genotype = run.space.sample(RecordingTrial(params))
    if run.config.proxy.threads is None:
        run.config.proxy.threads = 1
    study = optuna.load_study(study_name=run.study_name, storage=open_storage(run.storage))
    earlier = earlier_trial(study, genotype.hash(), len(study.get_trials(deepcopy=False)))
    scorer = guard_latency(run.scorer, NodeLock()) if measures_latency(run) else run.scorer
    cost: dict[str, float] = {}
    return score_or_reuse(genotype, scorer, earlier, _check_reporter(run, cost), on_cost=lambda c: cost.update(cost=c))


def _one_line(err: BaseException) -> str:
    text = (str(err).strip().splitlines() or [type(err).__name__])[0]
    return text if isinstance(err, NasError) else f"{type(err).__name__}: {text}"


def _check_reporter(run: Run, cost: dict[str, float]):
    """Reports at the proxy's checks to Tune (ASHA reads ``reward`` at ``check``); ``cost["cost"]`` is set
    before the first. The last check is left to the trial's record, so ASHA never stops a finished training
    before its score is sent."""
    from ray import tune

    checks = Checks.of(run.config.proxy)

    def report(epochs_done: float, accuracy: float) -> None:
        check = checks.number(epochs_done)
        if check < checks.last:
            tune.report({"check": check, "epoch": epochs_done, "accuracy": accuracy,
                         "reward": run.scorer.reward(accuracy, cost["cost"])})

    return report


def run_ray(run: Run, study: optuna.Study, progress) -> str | None:
    """Run the search's trials with Ray Tune, then record them in ``study``."""
    try:
        import ray
        import ray.tune  # noqa: F401  (present with the tune extra only)
    except ImportError as err:
        raise NasError(f"backend: ray is not installed ({err}); pip install 'ray[tune]'") from None
    cfg = run.config
    if run.scorer.reward.multi_objective:
        raise NasError("backend: ray runs single-objective rewards; use --backend local for --reward pareto")
    run = for_workers(run)  # Tune runs each trial in a folder of its own, maybe on another machine
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # with verbose=0: no tables of Tune's own on the terminal
    _connect(cfg.address, cfg.workers)
    try:
        _check_cluster(run)
        return _tune(run, study, progress)
    finally:
        ray.shutdown()


def _connect(address: str | None, workers: int) -> None:
    """Join the cluster at ``address``, or start a Ray of this process's own (``address="local"``: never
    a cluster that ``ray start`` left running on this machine)."""
    import ray

    env = worker_env()
    init_args = {"address": address} if address else {"address": "local", "num_cpus": workers,
                                                      "include_dashboard": False}
    try:
        with keep_sigterm():  # SIGTERM stays Ctrl-C (:mod:`nas.common.signals`), not Ray's immediate exit
            ray.init(ignore_reinit_error=True, log_to_driver=False, configure_logging=False,
                     runtime_env={"env_vars": env} if env else None, **init_args)
    except (ConnectionError, ValueError, RuntimeError) as err:
        where = f"the Ray cluster at {address!r}" if address else "a local Ray"
        raise NasError(f"address: cannot start or join {where}: {_one_line(err)}") from None


def _check_cluster(run: Run) -> None:
    """One line, before any trial, for a SQLite study on several nodes or data some node lacks."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    nodes = [n for n in ray.nodes() if n.get("Alive")]
    check_nodes(run, nodes, {})
    paths = needed_paths(run)
    if len(nodes) < 2 or not paths:
        return  # one node: the driver has already loaded the data here
    probe = ray.remote(num_cpus=0)(missing_paths)
    refs = {f"{n['NodeManagerAddress']} ({n['NodeID'][:8]})": probe.options(
        scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False)).remote(paths) for n in nodes}
    check_nodes(run, nodes, {node: ray.get(ref, timeout=120) for node, ref in refs.items()})


def _tune(run: Run, study: optuna.Study, progress) -> str | None:
    """The trials, on the cluster Ray is connected to; recorded in ``study`` as they finish."""
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler
    from ray.tune.search import ConcurrencyLimiter
    from ray.tune.search.optuna import OptunaSearch

    cfg = run.config
    sampler = make_sampler(cfg.strategy, cfg.seed, population=cfg.population, tournament=cfg.tournament,
                           cost_limit=run.scorer.reward.cost_limit)
    searcher = ConcurrencyLimiter(OptunaSearch(space=DefineBySpace(run.space), metric="reward", mode="max", sampler=sampler),
                                  max_concurrent=cfg.workers)
    scheduler = ASHAScheduler(metric="reward", mode="max", **asha_settings(Checks.of(cfg.proxy)))
    recorder = _record_as_finished(study, run, progress)
    stopper = StopOnFatal()
    tuner = tune.Tuner(
        tune.with_resources(tune.with_parameters(_trainable, run=run), {"cpu": 1}),
        tune_config=tune.TuneConfig(search_alg=searcher, scheduler=scheduler,
                                    num_samples=cfg.trials or -1, time_budget_s=cfg.budget),
        run_config=tune.RunConfig(name="tune", storage_path=str(run.folder / "ray"), verbose=0, stop=stopper,
                                  failure_config=tune.FailureConfig(max_failures=WORKER_RETRIES),
                                  callbacks=[recorder]),
    )
    results = tuner.fit()
    n = recorder.count + record_results(study, run, results, progress, skip=recorder.recorded)
    if stopper.fatal is not None:
        raise NasError(stopper.fatal)
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

        def on_trial_recover(self, iteration, trials, trial, **info) -> None:
            """A trial whose worker died: recorded failed; Tune runs it again (``WORKER_RETRIES``)."""
            error = _last_line(trial.get_pickled_error() or trial.get_error() or "its worker died")
            record_trial(study, run, dict(trial.config), {}, f"{error} (the trial is run again)", progress)

        def on_trial_error(self, iteration, trials, trial, **info) -> None:
            self._record(trial, _last_line(trial.get_pickled_error() or trial.get_error() or "trial failed"))

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
    attrs = json.loads(metrics[RECORD]) if metrics.get(RECORD) else {}
    state = attrs.pop("state", None)
    if error is None and FATAL in metrics:
        error = metrics[FATAL]
    if error is not None:
        reason = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
        attrs = record_attrs(TrialRecord(genotype, "FAIL", reason=reason[:500]), backend="ray")
        state = "FAIL"
    elif state is None:  # stopped by the scheduler before the trial sent its record
        record = TrialRecord(genotype, "PRUNED", accuracy=metrics.get("accuracy"),
                             reason=f"stopped by ASHA at {metrics.get('epoch', 0):g} epoch(s)")
        attrs, state = record_attrs(record, backend="ray"), "PRUNED"
    values = [attrs["reward"]] if state == "COMPLETE" else None
    stopped_at = {int(metrics["check"]): float(metrics["accuracy"])} if (
        state == "PRUNED" and metrics.get("check") and metrics.get("accuracy") is not None) else {}
    trial = optuna.trial.create_trial(state=TrialState[state], values=values, params=params,
                                      distributions=recorder.distributions, user_attrs=attrs,
                                      intermediate_values=stopped_at)  # the surrogate learns from it
    study.add_trial(trial)
    progress.finished(study, study.get_trials(deepcopy=False)[-1])
    write_trials(run.folder, study)
    return True
