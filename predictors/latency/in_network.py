"""Parts timed inside the network they run in: forward hooks around the stem, every block and the head.

A part timed alone repeats on the same input with the same weights, which stay in the caches; inside a
network it meets its weights after the other parts have pushed them out, so memory-bound parts (inverted
residuals, ghost modules, the stem, a wide head) run 1.1-2x slower there than alone, compute-bound ones
do not (``experiments/README.md``, "Why a table of parts under-predicts mobile networks here"). Timed
inside, the parts add up to the whole forward (96-103% measured), whatever the CPU's caches, thread count
or memory format: the table's entries are right by construction and the correction has little to learn.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from predictors.latency.allocator import steady_allocator
from predictors.latency.conditions import MeasureConfig, memory_format_of
from predictors.latency.fingerprint import fingerprint
from predictors.latency.timing import Timing, summarize, torch_threads
from searchspace.genotype import Genotype

Clock = Callable[[], float]


@dataclass(frozen=True)
class NetworkTiming:
    """One network timed part by part: the parts' timings (stem, blocks in order, head; or the ones asked
    for) and the whole forward's, without hooks, from forwards interleaved with the hooked ones: the parts
    and the whole are read in the same minutes, so their ratio does not depend on how fast the machine
    happened to run then."""

    parts: list[Timing]
    whole: Timing


def top_level_parts(model: nn.Module) -> list[nn.Module]:
    """A built network's parts in the order :func:`predictors.latency.parts.network_parts` lists them."""
    return [model.stem, *[block for stage in model.stages for block in stage], model.head]


@contextlib.contextmanager
def _hooked(parts: Sequence[nn.Module], samples: list[list[float]], clock: Clock) -> Iterator[None]:
    """Hooks appending each part's forward time (ms) to its list, removed on leaving."""
    started = [0.0]
    handles = []
    for i, part in enumerate(parts):
        handles.append(part.register_forward_pre_hook(lambda *_: started.__setitem__(0, clock())))
        handles.append(part.register_forward_hook(
            lambda *_, i=i: samples[i].append((clock() - started[0]) * 1e3)))
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def _settled(samples: list[list[float]], watched: Sequence[int], config: MeasureConfig) -> bool:
    """Whether the watched parts' summed time per forward has a spread within ``config.target_spread``."""
    sums = [sum(samples[i][k] for i in watched) for k in range(len(samples[watched[0]]))]
    return len(sums) >= config.min_reps and summarize(sums).spread <= config.target_spread


def time_in_network(model: nn.Module, x: torch.Tensor, config: MeasureConfig, watched: Sequence[int] | None = None,
                    clock: Clock = time.perf_counter) -> NetworkTiming:
    """Time ``model``'s parts (:func:`top_level_parts`) inside its forward on ``x``, in eval and inference mode,
    and the whole forward without hooks, alternating a hooked and a plain forward.

    ``config.warmup`` plain forwards first, then up to ``config.reps`` pairs; from ``config.min_reps`` on it
    stops once the parts listed in ``watched`` (indices, default all) sum to a per-forward time whose spread
    is within ``target_spread``, or once the timed forwards took ``config.rounds * config.round_seconds``
    seconds. The caller sets the threads and the memory format of ``model`` and ``x``.
    """
    parts = top_level_parts(model)
    watched = list(range(len(parts))) if watched is None else list(watched)
    samples: list[list[float]] = [[] for _ in parts]
    whole: list[float] = []
    budget = config.rounds * config.round_seconds
    with torch.inference_mode():
        for _ in range(max(1, config.warmup)):
            model(x)
        began = clock()
        while len(whole) < config.reps and not (len(whole) >= config.min_reps and clock() - began >= budget) \
                and not (watched and _settled(samples, watched, config)):
            with _hooked(parts, samples, clock):
                model(x)
            start = clock()
            model(x)
            whole.append((clock() - start) * 1e3)
    fmt = "channels_last" if x.is_contiguous(memory_format=torch.channels_last) and x.dim() == 4 else "contiguous"
    return NetworkTiming([summarize(s, fmt) for s in samples], summarize(whole, fmt))


def time_genotype_parts(genotype: Genotype, config: MeasureConfig, resolution: int | None = None,
                        watched: Sequence[int] | None = None) -> NetworkTiming:
    """Build ``genotype`` (at ``resolution``) and time its parts inside it under ``config``'s threads, memory
    format and batch (torch backend, CPU or CUDA), with the allocator's thresholds fixed."""
    from searchspace import build_model

    if config.backend != "torch":
        raise ValueError(f"parts are timed inside a network with the torch backend only, not {config.backend}")
    res = resolution or genotype.resolution
    model = build_model(genotype, resolution=res).eval().to(config.device)
    x = torch.randn(config.batch, genotype.input["channels"], res, res, device=config.device)
    if memory_format_of(config) == "channels_last":
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    steady_allocator()
    clock = _synced_clock(config.device)
    with torch_threads(fingerprint(config.backend, config.device, config.threads).threads):
        return time_in_network(model, x, config, watched, clock)


def _synced_clock(device: str) -> Clock:
    """``time.perf_counter``, after waiting for the GPU when the network runs on one."""
    if device != "cuda":
        return time.perf_counter

    def clock() -> float:
        torch.cuda.synchronize()
        return time.perf_counter()

    return clock
