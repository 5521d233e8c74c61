"""Live progress of a search on the terminal: trial n of N, best so far, current candidate, time left."""

from __future__ import annotations

import sys
import time

from optuna.trial import TrialState

from nas.common.text import clock, cost_text


def describe(genotype) -> str:
    """A short one-line description of a genotype: per stage type x repeat, out channels."""
    parts = []
    for stage in genotype.stages:
        b = stage[0]
        parts.append(f"{b.type}x{sum(x.repeat for x in stage)}:{b.out}")
    return " ".join(parts)


class Progress:
    """Prints one line when a candidate starts and one when it finishes (to stderr)."""

    def __init__(self, trials: int | None, budget: float | None, unit: str = "ms", stream=None,
                 quiet: bool = False) -> None:
        self.trials, self.budget, self.unit = trials, budget, unit
        self._stream = stream  # None: sys.stderr at print time (keeps Progress picklable for Ray Tune)
        self.quiet = quiet
        self.start = time.monotonic()
        self.best: str = "none yet"

    def _left(self, done: int) -> str:
        elapsed = time.monotonic() - self.start
        left = []
        if self.budget is not None:
            left.append(self.budget - elapsed)
        if self.trials is not None and done:
            left.append(elapsed / done * (self.trials - done))
        return f"~{clock(min(left))} left" if left else f"{clock(elapsed)} elapsed"

    @property
    def stream(self):
        return self._stream or sys.stderr

    def __getstate__(self) -> dict:
        # Ray Tune pickles its callbacks (and this with them); an open stream cannot be pickled.
        return {**self.__dict__, "_stream": None}

    def _print(self, text: str) -> None:
        if not self.quiet:
            print(text, file=self.stream, flush=True)

    def candidate(self, number: int, genotype) -> None:
        total = f"/{self.trials}" if self.trials else ""
        self._print(f"[trial {number + 1}{total}] {describe(genotype)}")

    def finished(self, study, trial) -> None:
        attrs = trial.user_attrs
        done = len([t for t in study.get_trials(deepcopy=False) if t.state.is_finished()])
        if trial.state == TrialState.COMPLETE:
            status = (f"acc {attrs.get('accuracy', float('nan')):.4f}  cost {cost_text(attrs.get('cost'), self.unit)}  "
                      f"reward {trial.values[0]:.4f}")
            if len(trial.values) == 1 and (study.best_trial.number == trial.number):
                self.best = f"#{trial.number} {status}"
        else:
            status = f"{trial.state.name.lower()}: {attrs.get('reason', '')}"
        self._print(f"  -> {status} | best {self.best} | {done} done, {self._left(done)}")
