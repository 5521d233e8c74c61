"""When a search may stop a candidate early: the one policy of the local pruner and Ray's ASHA scheduler.

Proxy training reports its validation accuracy at checks: ``proxy.checks_per_epoch`` per epoch (see
:func:`predictors.training.loop.check_steps`), numbered 1, 2, ... over the whole run; the last one is the
end of training. A candidate may be stopped from the check at half an epoch on (the first quarter of a
one-epoch proxy is its learning-rate warm-up, where accuracies say little) and never at the last check:
a finished training has nothing left to save, so stopping it would only discard its score.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Checks:
    """The checks of a proxy run: ``per_epoch`` per epoch over ``epochs`` epochs."""

    epochs: int
    per_epoch: int

    @classmethod
    def of(cls, proxy) -> Checks:
        """The checks of a :class:`~predictors.training.config.ProxyConfig`."""
        return cls(int(proxy.epochs), int(proxy.checks_per_epoch))

    @property
    def last(self) -> int:
        """The number of the last check (the end of training)."""
        return self.epochs * self.per_epoch

    @property
    def first_prunable(self) -> int:
        """The first check a candidate may be stopped at: half an epoch (the first epoch's end with 1 check)."""
        return max(1, math.ceil(self.per_epoch / 2))

    def number(self, epochs_done: float) -> int:
        """The check number of a report at ``epochs_done`` (0.25, 1, ...)."""
        return round(epochs_done * self.per_epoch)

    def may_prune(self, check: int) -> bool:
        """Whether a candidate may be stopped at check ``check``."""
        return self.first_prunable <= check < self.last


def asha_settings(checks: Checks) -> dict[str, int | str]:
    """Ray's ASHA scheduler on the same checks: milestones from :attr:`Checks.first_prunable` on (doubling),
    the record of a finished trial reported at the last check (where every trial ends anyway)."""
    return {"time_attr": "check", "max_t": checks.last, "grace_period": checks.first_prunable,
            "reduction_factor": 2}


def pruned_reason(epochs_done: float, checks: Checks, accuracy: float) -> str:
    """The reason a pruned trial records (trials.csv, report.md)."""
    return (f"pruned at {epochs_done:g} of {checks.epochs} epoch(s) (accuracy {accuracy:.4f}, below the pruner's "
            f"cut there)")
