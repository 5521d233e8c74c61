"""The folder of one ``nas train`` run: checkpoints, metrics, curves, result, and the trained genotype.

``best.pt`` is the network's state dict at its best validation epoch; ``last.pt`` holds the loop's
whole state after the last finished epoch (weights, optimizer, schedule, RNG states, history) with
the trained genotype's hash and the recipe, so ``--resume`` continues it and refuses another
genotype's. Both hold tensors and plain data only (``torch.load(weights_only=True)``) and are
written under a unique temporary name, then renamed: a killed run never leaves half a file.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from nas.common.failures import storage_errors
from nas.common.figures import pyplot, save_figure
from predictors.training.loop import EpochEnd, EpochStats
from searchspace import Genotype, NasError, load_genotype, save_genotype
from searchspace.textio import atomic_file, write_text_atomic

FORMAT = "nas-train/1"
GENOTYPE_FILE, BEST, LAST, METRICS, CURVES, RESULT = (
    "genotype.yaml", "best.pt", "last.pt", "metrics.csv", "curves.png", "result.json")


def save_checkpoint(obj: Any, path: Path) -> None:
    """``torch.save`` under a unique temporary name in the same folder, then an atomic rename."""
    with atomic_file(path, binary=True) as f:
        torch.save(obj, f)


def read_checkpoint(path: Path) -> Any:
    """``torch.load(weights_only=True)`` on the CPU; a one-line NasError for a missing or corrupt file."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise NasError(f"{path}: no such checkpoint") from None
    except Exception as err:  # truncated files, pickles with other globals, not a torch file at all
        text = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise NasError(f"{path}: not a readable checkpoint ({text[:200]}); delete it to start over, "
                       "or give another --out") from None


def weights_of(model: nn.Module) -> dict[str, torch.Tensor]:
    """The model's state dict as contiguous CPU tensors (loads anywhere, channels_last or not)."""
    return {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}


def open_run(out: Path, genotype: Genotype, recipe: dict, resume: bool) -> dict | None:
    """Prepare ``out`` for training ``genotype``; the saved loop state to resume from, or None.

    Without ``resume`` the folder must be new or empty (nothing written before is overwritten).
    With it, ``last.pt`` must be this genotype's and this recipe's; without ``last.pt`` (killed during
    the first epoch) the run starts over.
    """
    if out.exists() and not out.is_dir():
        raise NasError(f"out: {str(out)!r} is a file, not a folder")
    if not resume:
        if out.is_dir() and any(out.iterdir()):
            raise NasError(f"out: {str(out)!r} already holds files; pass --resume to continue that run, "
                           "or give another --out")
        save_genotype(genotype, _writable(out) / GENOTYPE_FILE)
        return None
    if (out / LAST).is_file():
        return _check_resume(out / LAST, genotype, recipe)
    if (out / GENOTYPE_FILE).is_file() and load_genotype(out / GENOTYPE_FILE).hash() != genotype.hash():
        raise NasError(f"out: {str(out)!r} holds a run of another genotype ({GENOTYPE_FILE}); give another --out")
    save_genotype(genotype, _writable(out) / GENOTYPE_FILE)
    return None


def _writable(out: Path) -> Path:
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise NasError(f"out: cannot create {str(out)!r} ({err.strerror or err})") from None
    return out


def _check_resume(path: Path, genotype: Genotype, recipe: dict) -> dict:
    saved = read_checkpoint(path)
    if not isinstance(saved, dict) or saved.get("format") != FORMAT or "loop" not in saved:
        raise NasError(f"{path}: not a nas train checkpoint; delete it to start over, or give another --out")
    if saved.get("genotype_hash") != genotype.hash():
        raise NasError(f"{path}: a checkpoint of another genotype ({saved.get('genotype_name')}, hash "
                       f"{saved.get('genotype_hash')}), not of {genotype.name} (hash {genotype.hash()}); "
                       "give another --out")
    changed = sorted(k for k in recipe.keys() | saved.get("recipe", {}).keys()
                     if recipe.get(k) != saved.get("recipe", {}).get(k))
    if changed:
        was = ", ".join(f"{k}={saved.get('recipe', {}).get(k)}" for k in changed)
        now = ", ".join(f"{k}={recipe.get(k)}" for k in changed)
        raise NasError(f"{path}: the run was started with {was}, this command asks {now}; resume with the same "
                       "settings, or give another --out")
    return saved["loop"]


def write_checkpoints(out: Path, genotype: Genotype, recipe: dict, normalize: dict, state: dict,
                      best: dict[str, torch.Tensor] | None) -> None:
    """``best.pt`` (when ``best`` is given) and then ``last.pt``, each atomically."""
    if best is not None:
        save_checkpoint(best, out / BEST)
    save_checkpoint({"format": FORMAT, "genotype_hash": genotype.hash(), "genotype_name": genotype.name,
                     "recipe": recipe, "normalize": normalize, "loop": state}, out / LAST)


class EpochWriter:
    """The loop's per-epoch hook: checkpoints (``best.pt`` when validation improved, then ``last.pt``) and
    ``metrics.csv``; a full disk or a read-only folder is one line (a StorageFailure), earlier epochs kept."""

    def __init__(self, out: Path, genotype: Genotype, recipe: dict, normalize: dict) -> None:
        self.out, self.genotype, self.recipe, self.normalize = out, genotype, recipe, normalize

    def __call__(self, end: EpochEnd) -> None:
        state = end.state()
        with storage_errors(self.out, then="continue with --resume (finished epochs are kept)"):
            write_checkpoints(self.out, self.genotype, self.recipe, self.normalize, state,
                              weights_of(end.model) if end.improved else None)
            write_metrics(self.out, [EpochStats(**h) for h in state["history"]])


def write_metrics(out: Path, history: list[EpochStats]) -> None:
    """``metrics.csv``: one row per finished epoch."""
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(["epoch", "train_loss", "val_accuracy", "lr", "seconds"])
    for h in history:
        writer.writerow([h.epoch, f"{h.train_loss:.6f}", f"{h.val_accuracy:.6f}", f"{h.lr:.6g}", f"{h.seconds:.2f}"])
    write_text_atomic(out / METRICS, text.getvalue())


def write_curves(out: Path, history: list[EpochStats], title: str) -> None:
    """``curves.png``: training loss and validation accuracy per epoch."""
    plt = pyplot()
    epochs = [h.epoch for h in history]
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.5))
    left.plot(epochs, [h.train_loss for h in history], marker="o")
    left.set(xlabel="epoch", ylabel="training loss")
    right.plot(epochs, [h.val_accuracy for h in history], marker="o", color="tab:green")
    right.set(xlabel="epoch", ylabel="validation accuracy")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    save_figure(fig, out / CURVES, dpi=100)


def write_result(out: Path, result: dict) -> None:
    write_text_atomic(out / RESULT, json.dumps(result, indent=2) + "\n")
