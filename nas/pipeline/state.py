"""Where a ``nas run`` stands: ``run.json`` in its folder, which steps finished and what each left.

The file holds the run's settings (the search's config and the training's settings, so that ``--resume``
alone continues it) and one record per step: ``running`` while it runs (a killed run resumes that step),
``done`` with its figures (a resumed run keeps it), ``failed`` with the reason. It is rewritten atomically
at every change, so a reader never sees half of it.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from searchspace.errors import NasError
from searchspace.textio import load_json, read_text, write_text_atomic

STATE_FILE = "run.json"
FORMAT = "nas-run/1"
RUNNING, DONE, FAILED = "running", "done", "failed"


@dataclass
class RunState:
    """The state of one run folder (``run.json``)."""

    folder: Path
    search: dict[str, Any]              # the search's config (SearchConfig.to_dict())
    train: dict[str, Any]               # the training settings given (TrainConfig keys)
    steps: dict[str, dict[str, Any]] = field(default_factory=dict)
    command: str | None = None          # the command that started the run

    def done(self, step: str) -> bool:
        return self.status(step) == DONE

    def status(self, step: str) -> str | None:
        return self.steps.get(step, {}).get("status")

    def record(self, step: str) -> dict[str, Any]:
        """What a finished step left (its figures and files)."""
        return self.steps.get(step, {})

    def begin(self, step: str) -> None:
        self.steps[step] = {"status": RUNNING, "started": time.strftime("%Y-%m-%d %H:%M:%S")}
        self.save()

    def finish(self, step: str, elapsed: float, **record: Any) -> None:
        self.steps[step] = {"status": DONE, "wall_seconds": round(elapsed, 2), **record}
        self.save()

    def fail(self, step: str, reason: str, **record: Any) -> None:
        self.steps[step] = {"status": FAILED, "reason": reason, **record}
        self.save()

    def forget(self, steps: list[str]) -> None:
        """Run these steps again (``--redo``)."""
        for step in steps:
            self.steps.pop(step, None)
        self.save()

    def save(self) -> None:
        data = {"format": FORMAT, "command": self.command, "steps": self.steps, "search": self.search,
                "train": self.train}
        write_text_atomic(self.folder / STATE_FILE, json.dumps(data, indent=2, default=str) + "\n")


def read_state(folder: Path) -> RunState | None:
    """The state in ``folder``, or None when it holds none; NasError for a file that is not one."""
    path = folder / STATE_FILE
    if not path.is_file():
        return None
    data = load_json(read_text(path, "run", "the run.json of nas run"), str(path))
    if not isinstance(data, dict) or data.get("format") != FORMAT or not isinstance(data.get("steps"), dict):
        raise NasError(f"{path}: not the run.json of nas run (format {FORMAT}); give another --name")
    return RunState(folder, dict(data.get("search") or {}), dict(data.get("train") or {}), data["steps"],
                    data.get("command"))


def check_new_or_resumed(folder: Path, resume: bool, state: RunState | None) -> None:
    """Refuse to start over a run (or a search) already in ``folder``, and to resume where there is none."""
    if not resume and (state is not None or (folder / "study.db").exists()):
        raise NasError(f"name: run {str(folder)!r} exists; add --resume to continue it or pick another --name")
    if resume and state is None and not (folder / "study.db").exists():
        raise NasError(f"resume: no run to resume at {str(folder)!r}")
