"""Trained weights into a network: a state dict read with ``torch.load(weights_only=True)``, checked key by key.

Read by :func:`searchspace.build_model` (``weights=``) and ``nas export --weights``. A file may hold
a state dict, or a dict with one under ``state_dict`` or ``model`` (``nas train``'s ``best.pt`` is a
state dict, its ``last.pt`` holds one under ``loop.model``).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from searchspace.errors import NasError

if TYPE_CHECKING:
    import torch


def load_weights(model: torch.nn.Module, weights: str | os.PathLike | Mapping[str, Any]) -> None:
    """Load a state dict (a file read with ``torch.load(weights_only=True)``, or a mapping) into ``model``;
    one-line NasError naming the file and what does not fit."""
    import torch

    where = "the state dict" if isinstance(weights, Mapping) else repr(str(weights))
    state = weights if isinstance(weights, Mapping) else _read(weights)
    if isinstance(state, dict):
        loop = state.get("loop")
        nested = loop["model"] if isinstance(loop, dict) and "model" in loop else state  # nas train's last.pt
        state = state.get("state_dict", state.get("model", nested))
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise NasError(f"weights: {where} does not hold a state dict (a mapping of names to tensors)")
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [k for k in own if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing ({_few(missing)})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected ({_few(unexpected)})")
        if shapes:
            k = shapes[0]
            parts.append(f"{len(shapes)} of another shape ({k}: {tuple(state[k].shape)} in the file, "
                         f"{tuple(own[k].shape)} here)")
        raise NasError(f"weights: {where} does not match the network: {'; '.join(parts)}"
                       f"{_hint(weights, state, missing, unexpected, shapes)}")
    model.load_state_dict(state)


def _read(path: str | os.PathLike) -> Any:
    import torch

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. torch's notice about the file's pickle protocol
            return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise NasError(f"weights: no such file {str(path)!r}") from None
    except Exception as err:  # pickle errors, unsafe globals, truncated files
        raise NasError(f"weights: cannot read {str(path)!r} as a state dict of tensors: {_load_failure(err)}") from None


def _hint(weights: Any, state: Mapping, missing: list[str], unexpected: list[str], shapes: list[str]) -> str:
    """What to do: the genotype ``nas train`` wrote beside the weights, or the classifier's size."""
    if not isinstance(weights, Mapping):
        trained = Path(weights).parent / "genotype.yaml"
        if trained.is_file() and (Path(weights).parent / "result.json").is_file():
            return f"; these weights were trained as {trained} (use that genotype)"
    if not missing and not unexpected and all(k.startswith("head.classifier.") for k in shapes):
        return f"; pass --num-classes {state['head.classifier.weight'].shape[0]}"
    return ""


def _load_failure(err: Exception) -> str:
    """Why ``torch.load(weights_only=True)`` failed, without torch's advice to retry unsafely."""
    skip = ("Weights only load failed", "Please file an issue", "Check the documentation")
    lines = [line.strip() for line in str(err).splitlines()]
    reasons = [line.removeprefix("WeightsUnpickler error:").strip() for line in lines if line and not line.startswith(skip)]
    reasons = [r for r in reasons if r]
    if lines and lines[0].startswith(skip[0]):  # the safe unpickler refused a global or an opcode
        return f"{reasons[0] if reasons else 'refused'} (only tensors are ever loaded)"
    text = str(err).strip()
    return f"{type(err).__name__}: {text.splitlines()[0] if text else type(err).__name__}"


def _few(keys: list[str], n: int = 3) -> str:
    return ", ".join(keys[:n]) + (", ..." if len(keys) > n else "")
