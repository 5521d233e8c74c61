"""``nas run`` on the terminal: one line as each step starts and ends, naming the step (``[2/5 train]``) and the
run's time so far; inside a step, the step's own display with its time left (the search's trial lines, within
its budget; the training's bar and epoch lines, labelled with the step)."""

from __future__ import annotations

import time

from rich.console import Console

from nas.common.text import clock
from nas.pipeline.config import STEPS
from nas.training.progress import TrainProgress

STEP_WORDS = {"search": "search the space", "train": "train the winner with the full recipe",
              "export": "export it to ONNX with its trained weights", "verify": "verify the exported file",
              "card": "write the model card"}


class RunProgress:
    """The run's step lines (stderr); ``quiet``: none, and the steps' own displays quiet too."""

    def __init__(self, quiet: bool = False, console: Console | None = None) -> None:
        self.quiet = quiet
        self.console = console or Console(stderr=True)
        self.start = time.monotonic()

    def header(self, folder: str, resume_command: str, resumed: bool) -> None:
        """The run's folder, and how to continue it if it stops."""
        if not self.quiet:
            self.console.print(f"nas run: {'resuming ' if resumed else ''}{folder}; if it stops, continue it with "
                               f"{resume_command}", soft_wrap=True, highlight=False, markup=False)

    def label(self, step: str) -> str:
        return f"[{STEPS.index(step) + 1}/{len(STEPS)} {step}] "

    def say(self, step: str, text: str) -> None:
        if not self.quiet:
            self.console.print(f"nas run: {self.label(step)}{text}", soft_wrap=True, highlight=False, markup=False)

    def begin(self, step: str, detail: str = "") -> None:
        """A step starts (its detail says how long it may take, or which display shows its time left)."""
        when = f"{clock(time.monotonic() - self.start)} into the run"
        self.say(step, f"{STEP_WORDS[step]}{': ' + detail if detail else ''} ({when})")

    def kept(self, step: str, what: str) -> None:
        self.say(step, f"kept from before: {what}")

    def done(self, step: str, seconds: float, summary: str) -> None:
        self.say(step, f"done in {clock(seconds)}: {summary}")

    def training(self) -> TrainProgress:
        """The training step's display: its bar (epoch, loss, time left) and epoch lines, labelled."""
        return TrainProgress(self.console, label=self.label("train"), quiet=self.quiet)
