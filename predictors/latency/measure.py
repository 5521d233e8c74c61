"""Robust latency measurement of genotypes (or any modules) on this machine, cached on disk.

Genotypes measured together are timed side by side (:func:`predictors.latency.timing.time_runners`),
with the allocator's thresholds fixed first (:func:`predictors.latency.allocator.steady_allocator`); a
result is flagged ``noisy`` when IQR / median exceeds a threshold. Every result carries its conditions
(:class:`predictors.latency.conditions.Measurement`) and is cached on disk, keyed by (genotype hash,
fingerprint, resolution, batch, memory format), so a candidate is never measured twice.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

import torch
from torch import nn

from predictors.latency import timing  # by module: tests count make_runner calls through it
from predictors.latency.allocator import steady_allocator
from predictors.latency.cache import LatencyCache, cache_dir
from predictors.latency.conditions import MeasureConfig, Measurement, memory_format_of
from predictors.latency.fingerprint import Fingerprint, fingerprint
from predictors.latency.load import BusyMachineWarning, LoadMonitor, default_monitor
from searchspace.genotype import Genotype

DEFAULT = "default"


def default_cache() -> LatencyCache:
    """The process-wide measurement cache under :func:`predictors.latency.cache.cache_dir` (one per
    folder, so a changed ``$NAS_CACHE_DIR`` is followed)."""
    return _cache_in(cache_dir())


@functools.cache
def _cache_in(folder: Path) -> LatencyCache:
    return LatencyCache(folder / LatencyCache.FILE_NAME)


def _input(config: MeasureConfig, channels: int, resolution: int) -> torch.Tensor:
    return torch.randn(config.batch, channels, resolution, resolution)


def measure_modules(modules: Sequence[tuple[nn.Module, tuple[int, ...]]], config: MeasureConfig) -> list[timing.Timing]:
    """Time each ``(module, input_shape)`` in isolation (interleaved), e.g. lookup-table entries."""
    fp = fingerprint(config.backend, config.device, config.threads)
    steady_allocator()
    with timing.torch_threads(fp.threads):
        prepared = [timing.make_runner(m, torch.randn(*shape), config) for m, shape in modules]
        samples = timing.time_runners([run for run, _ in prepared], config)
    return [timing.summarize(s, fmt) for s, (_, fmt) in zip(samples, prepared, strict=True)]


def _resolution(genotype: Genotype, config: MeasureConfig) -> int:
    return config.resolution or genotype.resolution


def measure_many(genotypes: Sequence[Genotype], config: MeasureConfig | None = None,
                 cache: LatencyCache | None | str = DEFAULT, group: int = 6,
                 progress: Callable[[int, int], None] | None = None,
                 monitor: LoadMonitor | None = None) -> list[Measurement]:
    """Measure many genotypes in interleaved groups; cached ones are reused unless flagged noisy.

    A group measured while other work ran on the machine (``monitor``, by default from ``/proc/stat``)
    is flagged noisy with a warning: it is not trusted from the cache and not added to a correction."""
    from searchspace import build_model

    config = config or MeasureConfig()
    cache = default_cache() if cache == DEFAULT else cache
    fp = fingerprint(config.backend, config.device, config.threads)
    monitor = monitor or default_monitor(fp.threads)
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
    busy = []  # the loads of the groups measured while other work ran
    if todo:
        steady_allocator()
    with timing.torch_threads(fp.threads):
        for start in range(0, len(todo), group):
            chunk = todo[start:start + group]
            prepared = []
            for i in chunk:
                g = genotypes[i]
                res = _resolution(g, config)
                model = build_model(g, resolution=res)
                prepared.append(timing.make_runner(model, _input(config, g.input["channels"], res), config))
            with monitor.watch() as window:
                samples = timing.time_runners([run for run, _ in prepared], config)
            if window.load.busy:
                busy.append(window.load)
            for i, s, (_, fmt) in zip(chunk, samples, prepared, strict=True):
                results[i] = _record(genotypes[i], timing.summarize(s, fmt), config, fp, cache, window.load.busy)
            finished += len(chunk)
            if progress is not None:
                progress(finished, len(genotypes))
    if busy:
        worst = max(busy, key=lambda load: load.other_cores)
        groups = -(-len(todo) // group)
        warnings.warn(f"{len(busy)} of {groups} groups of networks measured while the machine was busy (up to "
                      f"{worst.describe()}): flagged noisy", BusyMachineWarning, stacklevel=2)
    return [r for r in results if r is not None]


def _record(genotype: Genotype, summary: timing.Timing, config: MeasureConfig, fp: Fingerprint,
            cache: LatencyCache | None, loaded: bool = False) -> Measurement:
    res = _resolution(genotype, config)
    m = Measurement(
        genotype_hash=genotype.hash(), median_ms=summary.median_ms, iqr_ms=summary.iqr_ms, q25_ms=summary.q25_ms,
        q75_ms=summary.q75_ms, min_ms=summary.min_ms, reps=summary.reps,
        noisy=loaded or summary.spread > config.noise_threshold, backend=config.backend, device=config.device,
        threads=fp.threads, batch=config.batch, resolution=res, memory_format=summary.memory_format,
        fingerprint=fp.to_dict(),
    )
    if summary.spread > config.noise_threshold:
        warnings.warn(f"latency of {m.genotype_hash} is noisy: IQR {m.iqr_ms:.3g} ms is "
                      f"{summary.spread:.0%} of the median {m.median_ms:.3g} ms", RuntimeWarning, stacklevel=3)
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
