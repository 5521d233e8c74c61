"""Robust latency measurement of a genotype (or any module) on this machine.

Warm-up, then timed repetitions in interleaved rounds (round-robin over the candidates measured
together, so drift hits all of them alike), each repetition timed on its own; the result is the
median with the inter-quartile range, flagged ``noisy`` when IQR / median exceeds a threshold.
Repetitions adapt: a round lasts about ``round_seconds`` per candidate and a candidate stops early
once its spread is small. Backends: ``torch`` (eager, eval, inference mode, channels_last unless
told otherwise), ``torchscript`` (trace + freeze) and ``onnxruntime`` (legacy exporter, intra-op
threads set). Every result carries its conditions (backend, device, threads, memory format, batch,
resolution, device fingerprint) and is cached on disk, keyed by (genotype hash, fingerprint,
resolution, batch, memory format), so a candidate is never measured twice.

On Linux with glibc, timing first fixes the allocator's thresholds (:func:`steady_allocator`): by
default glibc returns large freed blocks to the system and adapts its thresholds to what the process
has done so far, so a forward paid page faults for its activations, or not, depending on what the
process had allocated before (MobileNetV2: 2,320 per forward; one of its blocks ran 2.3x as long inside
the network as alone: ``experiments/parts_in_network.py``). With fixed thresholds freed memory is kept
and reused, as the allocators PyTorch's CPU tuning guide recommends (jemalloc, tcmalloc) do.
"""

from __future__ import annotations

import contextlib
import ctypes
import io
import statistics
import sys
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, fields, replace

import torch
from torch import nn

from predictors.latency.cache import TORCH_FORMAT, LatencyCache
from predictors.latency.fingerprint import BACKENDS, DEVICES, Fingerprint, fingerprint
from searchspace.errors import NasError
from searchspace.genotype import Genotype

Runner = Callable[[], object]
Clock = Callable[[], float]
DEFAULT = "default"
MEMORY_FORMATS = ("channels_last", "contiguous")
CHANNELS_LAST_HOWTO = ("to run it the same way: model = model.to(memory_format=torch.channels_last) and "
                       "x = x.to(memory_format=torch.channels_last)")
# glibc allocator thresholds while timing: blocks up to 32 MiB (glibc's largest mmap threshold) come from
# the heap, and the heap is not trimmed below 1 GiB of free memory (freed activations are reused)
MMAP_THRESHOLD = 32 * 2**20
TRIM_THRESHOLD = 2**30
ALLOCATOR_HOWTO = ("to time it the same way in your own program, start Python with "
                   f"MALLOC_MMAP_THRESHOLD_={MMAP_THRESHOLD} MALLOC_TRIM_THRESHOLD_={TRIM_THRESHOLD} "
                   "(glibc then reuses freed activation memory)")
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # mallopt parameter numbers in glibc's malloc.h
_default_cache: LatencyCache | None = None
_allocator_steady: bool | None = None


@dataclass(frozen=True)
class MeasureConfig:
    """How to measure: backend, device, threads, input shape and the repetition policy."""

    backend: str = "torch"
    device: str = "cpu"
    threads: int | None = None
    batch: int = 1
    resolution: int | None = None  # None: the genotype's own resolution
    warmup: int = 5
    reps: int = 60  # most timed repetitions per candidate
    min_reps: int = 10  # fewest before stopping early
    rounds: int = 5
    min_rounds: int = 2  # rounds before a candidate may stop early
    round_seconds: float = 0.3  # time per candidate per round (decides reps per round)
    target_spread: float = 0.02  # stop early when IQR / median is below this
    noise_threshold: float = 0.10  # IQR / median above this: flagged noisy
    memory_format: str | None = None  # channels_last or contiguous; None: the backend's (see memory_format_of)


# Careful measurements: about 6 s per network (1 s per round), 30 to 180 repetitions, no early stop.
# For the few measurements that decide something (a search's finalists, a latency ladder's rungs).
CAREFUL = MeasureConfig(reps=180, min_reps=30, rounds=6, round_seconds=1.0, target_spread=0.0)


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


@dataclass
class Measurement:
    """One network's latency on one device setting."""

    genotype_hash: str
    median_ms: float
    iqr_ms: float
    q25_ms: float
    q75_ms: float
    min_ms: float
    reps: int
    noisy: bool
    backend: str
    device: str
    threads: int
    batch: int
    resolution: int
    memory_format: str
    fingerprint: dict
    cached: bool = False

    @property
    def conditions(self) -> dict:
        """What this number is valid for: backend, device, threads, memory format, batch, resolution,
        device fingerprint id (plain data, e.g. for a genotype's ``provenance.latency_conditions``)."""
        return conditions_of(self.backend, self.device, self.threads, self.memory_format, self.batch,
                             self.resolution, self.fingerprint.get("id"))

    def to_dict(self) -> dict:
        out = asdict(self)
        out.pop("cached")
        return out

    @classmethod
    def from_dict(cls, raw: dict, cached: bool = True) -> Measurement:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in raw.items() if k in names and k != "cached"}, cached=cached)


def conditions_of(backend: str, device: str, threads: int, memory_format: str, batch: int, resolution: int,
                  fingerprint_id: str | None) -> dict:
    """The plain conditions dict of a latency (measured or predicted); one shape everywhere."""
    return {"backend": backend, "device": device, "threads": threads, "memory_format": memory_format,
            "batch": batch, "resolution": resolution, "fingerprint_id": fingerprint_id}


def memory_format_of(config: MeasureConfig) -> str:
    """The memory format a whole network (and each lookup-table part) runs in under ``config``.

    The torch backend runs channels_last unless ``config.memory_format`` says otherwise (oneDNN's
    preferred layout for convolutions; one fixed format, so that a user can reproduce the number and
    the lookup table profiles its parts in the same one); torchscript and onnxruntime run contiguous.
    """
    if config.memory_format is not None and config.memory_format not in MEMORY_FORMATS:
        raise NasError(f"memory_format: {config.memory_format!r} is not one of {', '.join(MEMORY_FORMATS)}")
    if config.backend != "torch":
        return "contiguous"
    return config.memory_format or TORCH_FORMAT


def config_from_conditions(conditions: dict, base: MeasureConfig | None = None,
                           where: str = "latency_conditions") -> MeasureConfig:
    """``base`` with the backend, device, threads, memory format, batch and resolution of a conditions dict
    (keys missing from it keep ``base``'s values); NasError naming the field for a bad value."""
    if not isinstance(conditions, dict):
        raise NasError(f"{where}: expected a mapping of backend, threads, memory_format, batch, resolution")
    config = base or MeasureConfig()
    allowed = {"backend": BACKENDS, "device": DEVICES, "memory_format": MEMORY_FORMATS}
    changes: dict = {}
    for key, choices in allowed.items():
        if conditions.get(key) is not None:
            if conditions[key] not in choices:
                raise NasError(f"{where}.{key}: {conditions[key]!r} is not one of {', '.join(choices)}")
            changes[key] = conditions[key]
    for key in ("threads", "batch", "resolution"):
        value = conditions.get(key)
        if value is not None:
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise NasError(f"{where}.{key}: {value!r} is not a positive integer")
            changes[key] = value
    return replace(config, **changes)


def default_cache() -> LatencyCache:
    """The process-wide measurement cache under :func:`predictors.latency.cache.cache_dir`."""
    global _default_cache
    if _default_cache is None:
        _default_cache = LatencyCache()
    return _default_cache


@contextlib.contextmanager
def torch_threads(threads: int) -> Iterator[None]:
    """Run with ``torch.set_num_threads(threads)``, restoring the previous count afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _glibc_mallopt() -> Callable[[int, int], int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):  # musl or another libc: nothing to fix
        return None


def _fix_thresholds(mallopt: Callable[[int, int], int]) -> bool:
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))


def steady_allocator(mallopt: Callable[[int, int], int] | None = None) -> bool:
    """Fix glibc's mmap and trim thresholds (:data:`MMAP_THRESHOLD`, :data:`TRIM_THRESHOLD`), once per
    process, so a timing does not depend on what the process allocated before; True when they are fixed.
    ``mallopt``: call this one instead of glibc's (tests)."""
    global _allocator_steady
    if mallopt is not None:
        return _fix_thresholds(mallopt)
    if _allocator_steady is None:
        real = _glibc_mallopt()
        _allocator_steady = real is not None and _fix_thresholds(real)
    return _allocator_steady


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
    import onnxruntime as ort

    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (x,), buffer, dynamo=False, opset_version=17, input_names=["x"],
                          output_names=["y"])
    options = ort.SessionOptions()
    options.intra_op_num_threads = config.threads or torch.get_num_threads()
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    providers = ["CUDAExecutionProvider"] if config.device == "cuda" else ["CPUExecutionProvider"]
    session = ort.InferenceSession(buffer.getvalue(), options, providers=providers)
    feed = {"x": x.detach().cpu().numpy()}
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


def _input(config: MeasureConfig, channels: int, resolution: int) -> torch.Tensor:
    return torch.randn(config.batch, channels, resolution, resolution)


def measure_modules(modules: Sequence[tuple[nn.Module, tuple[int, ...]]], config: MeasureConfig) -> list[Timing]:
    """Time each ``(module, input_shape)`` in isolation (interleaved), e.g. lookup-table entries."""
    fp = fingerprint(config.backend, config.device, config.threads)
    steady_allocator()
    with torch_threads(fp.threads):
        prepared = [make_runner(m, torch.randn(*shape), config) for m, shape in modules]
        samples = time_runners([run for run, _ in prepared], config)
    return [summarize(s, fmt) for s, (_, fmt) in zip(samples, prepared, strict=True)]


def _resolution(genotype: Genotype, config: MeasureConfig) -> int:
    return config.resolution or genotype.resolution


def measure_many(genotypes: Sequence[Genotype], config: MeasureConfig | None = None,
                 cache: LatencyCache | None | str = DEFAULT, group: int = 6,
                 progress: Callable[[int, int], None] | None = None) -> list[Measurement]:
    """Measure many genotypes in interleaved groups; cached ones are reused unless flagged noisy."""
    from searchspace import build_model

    config = config or MeasureConfig()
    cache = default_cache() if cache == DEFAULT else cache
    fp = fingerprint(config.backend, config.device, config.threads)
    fid = fp.id()
    results: list[Measurement | None] = [None] * len(genotypes)
    todo = []
    fmt = memory_format_of(config)
    for i, g in enumerate(genotypes):
        hit = cache.lookup(g.hash(), fid, _resolution(g, config), config.batch, fmt) if cache is not None else None
        if hit is not None and not hit.get("noisy"):  # a noisy result is not trusted twice: measured again
            results[i] = Measurement.from_dict(hit)
        else:
            todo.append(i)
    finished = len(genotypes) - len(todo)
    if todo:
        steady_allocator()
    with torch_threads(fp.threads):
        for start in range(0, len(todo), group):
            chunk = todo[start:start + group]
            prepared = []
            for i in chunk:
                g = genotypes[i]
                res = _resolution(g, config)
                model = build_model(g, resolution=res)
                prepared.append(make_runner(model, _input(config, g.input["channels"], res), config))
            samples = time_runners([run for run, _ in prepared], config)
            for i, s, (_, fmt) in zip(chunk, samples, prepared, strict=True):
                results[i] = _record(genotypes[i], summarize(s, fmt), config, fp, cache)
            finished += len(chunk)
            if progress is not None:
                progress(finished, len(genotypes))
    return [r for r in results if r is not None]


def _record(genotype: Genotype, timing: Timing, config: MeasureConfig, fp: Fingerprint,
            cache: LatencyCache | None) -> Measurement:
    res = _resolution(genotype, config)
    m = Measurement(
        genotype_hash=genotype.hash(), median_ms=timing.median_ms, iqr_ms=timing.iqr_ms, q25_ms=timing.q25_ms,
        q75_ms=timing.q75_ms, min_ms=timing.min_ms, reps=timing.reps,
        noisy=timing.spread > config.noise_threshold, backend=config.backend, device=config.device,
        threads=fp.threads, batch=config.batch, resolution=res, memory_format=timing.memory_format,
        fingerprint=fp.to_dict(),
    )
    if m.noisy:
        warnings.warn(f"latency of {m.genotype_hash} is noisy: IQR {m.iqr_ms:.3g} ms is "
                      f"{timing.spread:.0%} of the median {m.median_ms:.3g} ms", RuntimeWarning, stacklevel=3)
    if cache is not None:
        cache.store(m.genotype_hash, fp.id(), res, config.batch, m.to_dict(), m.memory_format)
    return m


def measure_latency(genotype: Genotype, config: MeasureConfig | None = None,
                    cache: LatencyCache | None | str = DEFAULT, **overrides) -> Measurement:
    """Measure (or fetch from the cache) the latency of one genotype.

    ``overrides`` replace fields of ``config`` (``backend``, ``threads``, ``batch``, ``resolution``,
    ``device``, ``memory_format``, ``warmup``, ``reps``, ...). ``cache=None`` disables the cache.
    The result's ``conditions`` say what it is valid for.
    """
    config = replace(config or MeasureConfig(), **overrides)
    return measure_many([genotype], config, cache)[0]
