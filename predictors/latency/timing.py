"""Timing runners: repetition times of modules run side by side, and their robust summary.

Warm-up, then timed repetitions in interleaved rounds (round-robin over the candidates measured
together, so drift hits all of them alike), each repetition timed on its own; the result is the
median with the inter-quartile range. Repetitions adapt: a round lasts about ``round_seconds`` per
candidate and a candidate stops early once its spread is small. Backends: ``torch`` (eager, eval,
inference mode, channels_last unless told otherwise), ``torchscript`` (trace + freeze) and
``onnxruntime`` (legacy exporter, intra-op threads set).
"""

from __future__ import annotations

import contextlib
import io
import os
import statistics
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from predictors.latency.conditions import MeasureConfig, memory_format_of

Runner = Callable[[], object]
Clock = Callable[[], float]


@dataclass(frozen=True)
class Timing:
    """Summary of the repetition times of one module, in milliseconds."""

    median_ms: float
    q25_ms: float
    q75_ms: float
    min_ms: float
    reps: int
    memory_format: str = "contiguous"

    @property
    def iqr_ms(self) -> float:
        return self.q75_ms - self.q25_ms

    @property
    def spread(self) -> float:
        """IQR relative to the median."""
        return self.iqr_ms / self.median_ms if self.median_ms > 0 else 0.0


@contextlib.contextmanager
def torch_threads(threads: int) -> Iterator[None]:
    """Run with ``torch.set_num_threads(threads)``, restoring the previous count afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def _median_of(run: Runner, n: int, device: str, clock: Clock = time.perf_counter) -> float:
    times = []
    for _ in range(n):
        start = clock()
        run()
        _sync(device)
        times.append(clock() - start)
    return statistics.median(times)


def _torch_runner(model: nn.Module, x: torch.Tensor) -> Runner:
    def run() -> object:
        with torch.inference_mode():
            return model(x)

    return run


def make_runner(model: nn.Module, x: torch.Tensor, config: MeasureConfig) -> tuple[Runner, str]:
    """A zero-argument callable running ``model`` on ``x`` with the configured backend.

    Returns the runner and the memory format used (:func:`memory_format_of`). The caller sets the
    thread count.
    """
    model = model.eval().to(config.device)
    x = x.to(config.device)
    if config.backend == "torchscript":
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            frozen = torch.jit.freeze(torch.jit.trace(model, x))

        def run() -> object:
            with torch.no_grad():
                return frozen(x)

        return run, "contiguous"
    if config.backend == "onnxruntime":
        return _onnx_runner(model, x, config), "contiguous"
    if memory_format_of(config) == "channels_last" and x.dim() == 4:
        model = model.to(memory_format=torch.channels_last)
        return _torch_runner(model, x.contiguous(memory_format=torch.channels_last)), "channels_last"
    return _torch_runner(model, x), "contiguous"


def _onnx_runner(model: nn.Module, x: torch.Tensor, config: MeasureConfig) -> Runner:
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (x,), buffer, dynamo=False, opset_version=17, input_names=["x"],
                          output_names=["y"])
    return onnx_runner(buffer.getvalue(), x, config)


def onnx_runner(onnx_model: bytes | str | os.PathLike, x: torch.Tensor, config: MeasureConfig) -> Runner:
    """A runner of an ONNX model (its bytes, or a file such as a shipped ``model.onnx``) on ``x`` in
    onnxruntime, with the intra-op threads of ``config`` and every graph optimisation."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = config.threads or torch.get_num_threads()
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    providers = ["CUDAExecutionProvider"] if config.device == "cuda" else ["CPUExecutionProvider"]
    source = onnx_model if isinstance(onnx_model, bytes) else str(onnx_model)
    session = ort.InferenceSession(source, options, providers=providers)
    feed = {session.get_inputs()[0].name: x.detach().cpu().numpy()}
    return lambda: session.run(None, feed)


def summarize(samples: Sequence[float], memory_format: str = "contiguous") -> Timing:
    """Median, quartiles and minimum of repetition times (ms)."""
    if len(samples) >= 2:
        q25, _, q75 = statistics.quantiles(samples, n=4, method="inclusive")
    else:
        q25 = q75 = samples[0]
    return Timing(statistics.median(samples), q25, q75, min(samples), len(samples), memory_format)


def time_runners(runners: Sequence[Runner], config: MeasureConfig, clock: Clock = time.perf_counter) -> list[list[float]]:
    """Repetition times (ms) of each runner: warm-up, then interleaved rounds with adaptive counts.

    A runner stops once it has ``min_reps`` repetitions over ``min_rounds`` rounds and its spread
    (IQR / median) is at most ``target_spread``; otherwise it runs up to ``reps``.
    """
    per_round_max = max(1, -(-config.reps // config.rounds))
    estimates = []
    for run in runners:
        estimates.append(max(_median_of(run, max(1, config.warmup), config.device, clock), 1e-6))
    samples: list[list[float]] = [[] for _ in runners]
    done = [False] * len(runners)
    for r in range(config.rounds):
        for i, run in enumerate(runners):
            if done[i]:
                continue
            n = int(min(per_round_max, max(1, config.round_seconds / estimates[i])))
            if r == config.rounds - 1:
                n = max(n, config.min_reps - len(samples[i]))
            n = min(n, config.reps - len(samples[i]))
            for _ in range(n):
                start = clock()
                run()
                _sync(config.device)
                samples[i].append((clock() - start) * 1e3)
            enough = len(samples[i]) >= config.min_reps and summarize(samples[i]).spread <= config.target_spread
            if len(samples[i]) >= config.reps or (r + 1 >= config.min_rounds and enough):
                done[i] = True
    return samples
