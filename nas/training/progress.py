"""``nas train`` on the terminal: a rich progress bar (epoch, step, loss, time left), one line per epoch, and
notes (a classifier replaced for the data's classes)."""

from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from predictors.training.loop import EpochStats


def epoch_line(stats: EpochStats, epochs: int, best: float) -> str:
    """The summary line of one finished epoch."""
    return (f"epoch {stats.epoch}/{epochs}  train loss {stats.train_loss:.4f}  val accuracy {stats.val_accuracy:.4f} "
            f"(best {best:.4f})  lr {stats.lr:.4g}  {stats.seconds:.1f} s")


class TrainProgress:
    """A transient progress bar over all steps of the run, and a kept summary line per epoch (stderr).

    ``label`` starts the bar and every line (``nas run`` names its step); ``quiet`` shows notes only."""

    def __init__(self, console: Console | None = None, label: str = "", quiet: bool = False) -> None:
        self.console = console or Console(stderr=True)
        self.bar: Progress | None = None
        self.epochs = self.steps = 0
        self.label, self.quiet = label, quiet

    def note(self, text: str) -> None:
        """A kept line, shown even when quiet."""
        self.console.print(self.label + text, soft_wrap=True, highlight=False, markup=False)

    def start(self, first_epoch: int, epochs: int, steps: int) -> None:
        self.epochs, self.steps = epochs, steps
        if self.quiet:
            return
        label = self.label.replace("[", "\\[")  # rich markup: a literal bracket
        self.bar = Progress(TextColumn(label + "epoch {task.fields[epoch]}/{task.fields[epochs]}"), BarColumn(),
                            TextColumn("step {task.fields[step]}/{task.fields[steps]}"),
                            TextColumn("loss {task.fields[loss]}"), TimeElapsedColumn(), TextColumn("left"),
                            TimeRemainingColumn(), console=self.console, transient=True)
        self.task = self.bar.add_task("train", total=epochs * steps, completed=(first_epoch - 1) * steps,
                                      epoch=first_epoch, epochs=epochs, step=0, steps=steps, loss="-")
        if first_epoch > 1:
            self.console.print(f"{self.label}resuming after epoch {first_epoch - 1}/{epochs}", soft_wrap=True,
                               highlight=False, markup=False)
        self.bar.start()

    def step(self, epoch: int, step: int, loss: float) -> None:
        if self.bar is not None:
            self.bar.update(self.task, advance=1, epoch=epoch, step=step, loss=f"{loss:.4f}")

    def epoch(self, stats: EpochStats, best: float) -> None:
        if not self.quiet:
            self.console.print(self.label + epoch_line(stats, self.epochs, best), soft_wrap=True, highlight=False,
                               markup=False)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()
