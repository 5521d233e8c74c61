"""Verify what ships: the exported ONNX file, run in onnxruntime, against the trained PyTorch network.

Accuracy: the file and the trained network (in float32 on the CPU, as ``nas train`` evaluates it) classify the
test split, read and normalised as the training read it, batch by batch on the same inputs; the file's accuracy
must equal the network's within :data:`ACCURACY_TOLERANCE` (0.1 point). Latency: the file in
onnxruntime and the PyTorch network, both at the deployment resolution, timed side by side (interleaved
rounds, so the same load hits both) under the conditions the search measured its finalists with.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING, Any

from predictors.latency.conditions import CAREFUL, MeasureConfig, config_from_conditions, memory_format_of
from searchspace import Genotype

if TYPE_CHECKING:
    import torch

    from nas.config import SearchConfig
    from predictors.latency.timing import Timing

ACCURACY_TOLERANCE = 0.001  # 0.1 point of accuracy


@dataclass
class Verification:
    """What the shipped file does, next to what the trained network did."""

    onnx_accuracy: float            # the file in onnxruntime, on the test split
    torch_accuracy: float           # the trained network in PyTorch, on the same inputs
    trained_accuracy: float         # the test accuracy nas train reported (result.json)
    test_images: int
    accuracy_ok: bool               # within ACCURACY_TOLERANCE
    resolution: int                 # of the accuracy check: the training resolution
    latency_resolution: int         # the deployment resolution: the one T holds at
    onnx_ms: float                  # median latency of the file in onnxruntime
    onnx_iqr_ms: float
    torch_ms: float                 # median latency of the PyTorch network
    torch_iqr_ms: float
    conditions: dict[str, Any]      # threads, batch, PyTorch's memory format, device fingerprint
    target_ms: float | None = None  # T, when the search's target is a latency

    def within(self, ms: float) -> bool | None:
        """Whether a latency meets T (None without a latency target)."""
        return None if self.target_ms is None else ms <= self.target_ms

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def measure_config(best: Genotype, search: SearchConfig) -> MeasureConfig:
    """The conditions the search measured its finalists under: recorded in ``best.yaml``'s provenance, else its
    config's latency backend, threads and resolution; careful repetitions, batch 1."""
    recorded = best.provenance.get("latency_conditions")
    base = replace(CAREFUL, backend=search.latency_backend, threads=search.latency_threads,
                   resolution=search.latency_resolution)
    return config_from_conditions(recorded, base=base, where="provenance.latency_conditions") if recorded else base


def accuracies(path: str | os.PathLike, model: torch.nn.Module, test: Iterable, norm: tuple,
               channels_last: bool = True) -> tuple[float, float, int]:
    """Top-1 accuracy of the ONNX file (onnxruntime) and of ``model`` (PyTorch, float32, in ``channels_last`` as
    the training evaluated it) on a split of uint8 ``(images, labels)`` batches normalised by ``norm``
    (``(mean, std, in_channels)``), and the number of images."""
    import onnxruntime
    import torch

    from predictors.training.loop import normalize_batch

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    model = model.to(memory_format=torch.channels_last) if channels_last else model
    onnx_correct = torch_correct = total = 0
    for images, labels in test:
        images, labels = images.cpu(), labels.cpu()
        logits = torch.from_numpy(session.run(None, {name: normalize_batch(images, norm).numpy()})[0])
        onnx_correct += int((logits.argmax(1) == labels).sum())
        with torch.no_grad():
            torch_correct += int((model(normalize_batch(images, norm, channels_last)).argmax(1) == labels).sum())
        total += len(labels)
    return onnx_correct / max(1, total), torch_correct / max(1, total), total


def latency_side_by_side(path: str | os.PathLike, model: torch.nn.Module, channels: int,
                         config: MeasureConfig) -> tuple[Timing, Timing, dict[str, Any]]:
    """The ONNX file in onnxruntime and ``model`` in PyTorch, timed in interleaved rounds at ``config.resolution``:
    (onnxruntime timing, PyTorch timing, conditions)."""
    import torch

    from predictors.latency import timing
    from predictors.latency.allocator import steady_allocator
    from predictors.latency.fingerprint import fingerprint

    fp = fingerprint("torch", config.device, config.threads)
    x = torch.randn(config.batch, channels, config.resolution, config.resolution)
    torch_config = replace(config, backend="torch")
    steady_allocator()
    with timing.torch_threads(fp.threads):
        onnx_run = timing.onnx_runner(path, x, replace(config, threads=fp.threads))
        torch_run, fmt = timing.make_runner(model, x, torch_config)
        onnx_samples, torch_samples = timing.time_runners([onnx_run, torch_run], config)
    conditions = {"threads": fp.threads, "batch": config.batch, "device": config.device,
                  "torch_memory_format": memory_format_of(torch_config), "fingerprint_id": fp.id(),
                  "cpu": fp.cpu}
    return timing.summarize(onnx_samples), timing.summarize(torch_samples, fmt), conditions


def verify_export(path: str | os.PathLike, trained: Genotype, weights: str | os.PathLike, result: dict[str, Any],
                  test: Iterable, config: MeasureConfig, target_ms: float | None,
                  channels_last: bool = True) -> Verification:
    """Check the ONNX file at ``path`` against the trained network (``trained`` with ``weights``; ``result`` its
    ``result.json``) on the ``test`` split, and time both at ``config.resolution``."""
    import torch

    from searchspace import build_model

    norm = (torch.tensor(result["normalize"]["mean"]).view(1, -1, 1, 1),
            torch.tensor(result["normalize"]["std"]).view(1, -1, 1, 1), trained.input["channels"])
    model = build_model(trained, weights=weights).eval()
    accuracy, torch_accuracy, images = accuracies(path, model, test, norm, channels_last)
    deployed = build_model(trained, resolution=config.resolution, weights=weights).eval()
    onnx_t, torch_t, conditions = latency_side_by_side(path, deployed, trained.input["channels"], config)
    within = round(abs(accuracy - torch_accuracy), 9) <= ACCURACY_TOLERANCE
    return Verification(accuracy, torch_accuracy, float(result["test_accuracy"]), images, within,
                        trained.resolution, int(config.resolution), onnx_t.median_ms, onnx_t.iqr_ms,
                        torch_t.median_ms, torch_t.iqr_ms, conditions, target_ms)
