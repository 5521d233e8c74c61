"""The one training loop, shared by proxy training and full training, and the parts it is made of.

:func:`fit` is the loop that proxy training (:func:`predictors.training.proxy.train_proxy`) and full
training (``nas train``, :mod:`nas.training.run`) share: SGD + Nesterov momentum (or AdamW, no weight
decay on norms and biases) under a warm-up + cosine schedule, label smoothing, an evaluation after
every epoch (and, when someone listens through ``report``, at ``checks_per_epoch`` points inside it,
without changing the training). A recipe changes its numbers (the config, warm-up share included) and
hands in what it adds through :class:`LoopOptions`: mixed precision, a progress display, a per-epoch hook that writes
checkpoints, and a saved :func:`loop_state` to resume from. The proxy's recipe is the default of each.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

import torch
from torch import nn

from predictors.training.batches import BatchSource, TensorChunks
from predictors.training.config import ProxyConfig
from searchspace import NasError

Report = Callable[[float, float], None]  # (epochs done, e.g. 0.25 or 1, validation accuracy there)


class ProxyError(NasError):
    """Proxy training could not produce a score (bad settings, or the run failed)."""


class NonFiniteLoss(ProxyError):
    """The training loss became NaN or infinite: the candidate (at these settings) diverged."""


class ProxyOutOfMemory(ProxyError):
    """The device ran out of memory while training or evaluating the candidate."""


@dataclass
class EpochStats:
    epoch: int          # 1-based
    train_loss: float   # mean over the epoch's batches
    val_accuracy: float
    seconds: float      # training + evaluation time of this epoch
    lr: float = 0.0     # learning rate of the epoch's last step


@dataclass
class ProxyResult:
    accuracy: float                 # val top-1 after the last epoch run, in [0, 1]
    best_accuracy: float
    history: list[EpochStats] = field(default_factory=list)
    epochs_run: int = 0
    train_seconds: float = 0.0      # wall time of the epochs (data loading and building excluded)
    params: int = 0                 # parameters of the proxy network (proxy width, data's classes)

    def to_dict(self) -> dict:
        return asdict(self)


class LoopProgress(Protocol):
    """A display of the loop's progress (``nas train``'s rich bar)."""

    def start(self, first_epoch: int, epochs: int, steps: int) -> None: ...

    def step(self, epoch: int, step: int, loss: float) -> None: ...

    def epoch(self, stats: EpochStats, best: float) -> None: ...


@dataclass
class EpochEnd:
    """What ``LoopOptions.on_epoch`` receives after each epoch (everything a checkpoint needs)."""

    stats: EpochStats
    improved: bool                  # the best validation accuracy so far (the first epoch always is)
    model: nn.Module
    state: Callable[[], dict]       # the loop's whole state (:func:`loop_state`), built on demand


@dataclass
class LoopOptions:
    """What a recipe adds to the loop besides its config; the defaults are the proxy's recipe."""

    amp: bool = False                                   # mixed precision (on CUDA only)
    progress: LoopProgress | None = None
    on_epoch: Callable[[EpochEnd], None] | None = None  # e.g. write checkpoints
    resume: dict | None = None                          # a :func:`loop_state` to continue from
    name: str = "proxy"                                 # names the run in error messages


@dataclass
class Precision:
    """Autocast dtype and (float16 only) a gradient scaler; neither: full precision."""

    dtype: torch.dtype | None = None
    scaler: torch.amp.GradScaler | None = None

    def autocast(self) -> AbstractContextManager:
        return torch.autocast("cuda", dtype=self.dtype) if self.dtype is not None else nullcontext()


def precision_for(device: torch.device, amp: bool) -> Precision:
    """Mixed precision on CUDA when ``amp``: bfloat16 where supported, else float16 with loss scaling."""
    if not amp or device.type != "cuda":
        return Precision()
    if torch.cuda.is_bf16_supported():
        return Precision(torch.bfloat16)
    return Precision(torch.float16, torch.amp.GradScaler("cuda"))


@dataclass
class LoopParts:
    """The objects whose state is the loop's state."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    schedule: torch.optim.lr_scheduler.LRScheduler
    gen: torch.Generator
    precision: Precision


def fit(model: nn.Module, config: ProxyConfig, train: BatchSource, val: Iterable, norm: tuple,
        report: Report | None = None, options: LoopOptions | None = None, params: int = 0) -> ProxyResult:
    """The training loop: ``config.epochs`` epochs over ``train``, each evaluated on ``val``.

    ``norm`` is ``(mean, std, in_channels)`` of the input normalisation. ``options.resume`` (a
    :func:`loop_state`) continues after its epoch; ``options.on_epoch`` runs after each epoch's
    evaluation, before ``report``. ``report(epochs_done, accuracy)`` is called at every check: after
    each epoch and ``config.checks_per_epoch - 1`` times inside it (see :func:`check_steps`).
    """
    options = options or LoopOptions()
    device = train.device
    steps = len(train)
    optimizer = _optimizer(model, config)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_cosine(config.epochs * steps, config.warmup))
    parts = LoopParts(model, optimizer, schedule, torch.Generator().manual_seed(config.seed),
                      precision_for(device, options.amp))
    result = ProxyResult(accuracy=0.0, best_accuracy=0.0, params=params)
    first = 1 if options.resume is None else restore_loop(options.resume, parts, result, options.name) + 1
    loss_fn = nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)
    if options.progress is not None:
        options.progress.start(first, config.epochs, steps)
    checks = check_steps(steps, config.checks_per_epoch) if report is not None else {}
    for epoch in range(first, config.epochs + 1):
        start = time.perf_counter()
        on_check = _checker(parts, train, val, norm, config, report, epoch) if checks else None
        with _oom_guard(device, options.name):
            loss, lr = _train_epoch(parts, train, norm, config, loss_fn, epoch, options, checks, on_check)
            recalibrate_bn(model, train.calibration(config.bn_images), norm, config)
            accuracy = evaluate(model, val, norm, config, parts.precision)
        seconds = time.perf_counter() - start
        stats = EpochStats(epoch, loss, accuracy, seconds, lr)
        improved = not result.history or accuracy > result.best_accuracy
        result.history.append(stats)
        result.epochs_run, result.accuracy = epoch, accuracy
        result.best_accuracy = max(result.best_accuracy, accuracy)
        result.train_seconds += seconds
        if options.progress is not None:
            options.progress.epoch(stats, result.best_accuracy)
        if options.on_epoch is not None:
            options.on_epoch(EpochEnd(stats, improved, model, lambda e=epoch: loop_state(parts, result, e)))
        if report is not None:
            report(epoch, accuracy)
    return result


def check_steps(steps: int, checks_per_epoch: int) -> dict[int, int]:
    """The checks inside an epoch of ``steps`` steps: {steps done: check number k}, at k / checks_per_epoch
    of the epoch for k = 1 .. checks_per_epoch - 1 (the last check is the epoch's end). A check that
    would fall on the start, the end or the same step as another is left out (an epoch of few steps)."""
    found: dict[int, int] = {}
    for k in range(1, checks_per_epoch):
        done = round(k * steps / checks_per_epoch)
        if 0 < done < steps and done not in found:
            found[done] = k
    return found


def _checker(parts: LoopParts, train: BatchSource, val: Iterable, norm: tuple, config: ProxyConfig,
             report: Report, epoch: int) -> Callable[[int], None]:
    """A check inside ``epoch``: BatchNorm statistics re-estimated and the validation accuracy reported,
    with the random state forked so that the training goes on exactly as without the check (the epoch's
    end re-estimates the statistics from scratch)."""
    device = train.device
    devices = [device.index if device.index is not None else torch.cuda.current_device()] \
        if device.type == "cuda" else []

    def check(k: int) -> None:
        with torch.random.fork_rng(devices=devices):
            recalibrate_bn(parts.model, train.calibration(config.bn_images), norm, config)
            accuracy = evaluate(parts.model, val, norm, config, parts.precision)
        parts.model.train()
        report(epoch - 1 + k / config.checks_per_epoch, accuracy)

    return check


def _train_epoch(parts: LoopParts, train: BatchSource, norm: tuple, config: ProxyConfig, loss_fn: nn.Module,
                 epoch: int, options: LoopOptions, checks: dict[int, int] | None = None,
                 on_check: Callable[[int], None] | None = None) -> tuple[float, float]:
    """One pass over ``train``: (mean loss, learning rate of the last step); ``on_check(k)`` after the
    steps that ``checks`` names."""
    model, optimizer, scaler = parts.model, parts.optimizer, parts.precision.scaler
    model.train()
    total = torch.zeros((), device=train.device)
    lr = optimizer.param_groups[0]["lr"]
    for step, (images, labels) in enumerate(train.epoch(parts.gen)):
        x = _normalize(images, *norm, config.channels_last)
        with parts.precision.autocast():
            loss = loss_fn(model(x), labels)
        if not torch.isfinite(loss):
            raise NonFiniteLoss(
                f"{options.name}: training loss became {loss.item()} at epoch {epoch}, step {step + 1} "
                f"(lr {config.lr}, {config.optimizer}); the {'candidate' if options.name == 'proxy' else 'network'} "
                f"diverged")
        optimizer.zero_grad(set_to_none=True)
        lr = optimizer.param_groups[0]["lr"]
        if scaler is None:
            loss.backward()
            optimizer.step()
        else:
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        parts.schedule.step()
        total += loss.detach()
        if options.progress is not None:
            options.progress.step(epoch, step + 1, float(loss.detach()))
        if on_check is not None and step + 1 in checks:
            on_check(checks[step + 1])
    return float(total) / len(train), lr


def loop_state(parts: LoopParts, result: ProxyResult, epoch: int) -> dict[str, Any]:
    """Everything the loop needs to continue after ``epoch`` exactly as if it had not stopped: weights,
    optimizer, schedule, the data-order generator, the global RNG (dropout) and the history so far.
    Tensors and plain data only (``torch.load(weights_only=True)`` reads it)."""
    state = {"epoch": epoch, "model": parts.model.state_dict(), "optimizer": parts.optimizer.state_dict(),
             "schedule": parts.schedule.state_dict(), "generator": parts.gen.get_state(),
             "torch_rng": torch.get_rng_state(), "history": [asdict(h) for h in result.history],
             "train_seconds": result.train_seconds}
    if parts.precision.scaler is not None:
        state["scaler"] = parts.precision.scaler.state_dict()
    if next(parts.model.parameters()).device.type == "cuda":
        state["cuda_rng"] = torch.cuda.get_rng_state_all()
    return state


def restore_loop(state: dict[str, Any], parts: LoopParts, result: ProxyResult, name: str = "proxy") -> int:
    """Load a :func:`loop_state` into the loop's objects and ``result``; the epoch it ended."""
    try:
        parts.model.load_state_dict(state["model"])
        parts.optimizer.load_state_dict(state["optimizer"])
        parts.schedule.load_state_dict(state["schedule"])
        parts.gen.set_state(state["generator"])
        torch.set_rng_state(state["torch_rng"])
        if parts.precision.scaler is not None and "scaler" in state:
            parts.precision.scaler.load_state_dict(state["scaler"])
        if "cuda_rng" in state and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda_rng"])
        result.history = [EpochStats(**h) for h in state["history"]]
        epoch = int(state["epoch"])
    except (KeyError, TypeError, ValueError, RuntimeError) as err:
        text = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ProxyError(f"{name}: the saved loop state does not fit this run ({text[:200]})") from None
    if result.history:
        result.epochs_run, result.accuracy = epoch, result.history[-1].val_accuracy
        result.best_accuracy = max(h.val_accuracy for h in result.history)
    result.train_seconds = float(state.get("train_seconds", 0.0))
    return epoch


@torch.no_grad()
def recalibrate_bn(model: nn.Module, images: torch.Tensor, norm: tuple, config: ProxyConfig) -> None:
    """Replace BatchNorm running statistics by exact averages over ``images``.

    After a few hundred steps the exponential running averages still lag far behind the weights,
    so evaluating with them scores a good candidate near chance; re-estimating them on some training
    images (as Once-for-All does for its sub-networks) makes the short-run accuracy meaningful.
    """
    layers = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not layers or len(images) == 0:
        return
    momenta = [m.momentum for m in layers]
    for m in layers:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the batches below
    model.train()
    for start in range(0, len(images), config.batch_size):
        batch = images[start:start + config.batch_size]
        if len(batch) > 1:
            model(_normalize(batch, *norm, config.channels_last))
    for m, momentum in zip(layers, momenta, strict=True):
        m.momentum = momentum


@torch.no_grad()
def evaluate(model: nn.Module, val: Iterable | tuple, norm: tuple, config: ProxyConfig,
             precision: Precision | None = None) -> float:
    """Top-1 accuracy of ``model`` on a split: ``(images, labels)`` tensors or chunks of them."""
    model.eval()
    chunks = TensorChunks(*val) if isinstance(val, tuple) else val
    correct = total = 0
    for images, labels in chunks:
        x = _normalize(images, *norm, config.channels_last)
        with (precision or Precision()).autocast():
            correct += int((model(x).argmax(1) == labels).sum())
        total += len(labels)
    return correct / max(1, total)


def warmup_cosine(total_steps: int, warmup: float = 0.25) -> Callable[[int], float]:
    """LR factor per step: linear warm-up over the first ``warmup`` share, then cosine decay to 0."""
    warm = int(total_steps * warmup)

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        return 0.5 * (1.0 + math.cos(math.pi * (step - warm) / max(1, total_steps - warm)))

    return factor


@contextmanager
def _oom_guard(device: torch.device, name: str = "proxy") -> Iterator[None]:
    """Re-raise out-of-memory errors as :class:`ProxyOutOfMemory`."""
    try:
        yield
    except RuntimeError as err:  # torch.cuda.OutOfMemoryError is a RuntimeError
        text = str(err)
        if "out of memory" not in text and "can't allocate memory" not in text:
            raise
        if device.type == "cuda":
            torch.cuda.empty_cache()
        first = text.strip().splitlines()[0] if text.strip() else "out of memory"
        raise ProxyOutOfMemory(f"{name}: out of memory on {device} ({first[:200]})") from err


def _normalize(images: torch.Tensor, mean: torch.Tensor, std: torch.Tensor, in_ch: int,
               channels_last: bool) -> torch.Tensor:
    x = (images.float() - mean) / std
    if x.shape[1] != in_ch:  # grey data, RGB genotype: repeat the channel
        x = x.expand(-1, in_ch, -1, -1)
    return x.contiguous(memory_format=torch.channels_last if channels_last else torch.contiguous_format)


def normalize_batch(images: torch.Tensor, norm: tuple, channels_last: bool = False) -> torch.Tensor:
    """uint8 images as the loop feeds them to the network: ``(pixel - mean) / std`` per channel, grey data
    repeated to the network's input channels (``norm`` is ``(mean, std, in_channels)``)."""
    return _normalize(images, *norm, channels_last)


def _optimizer(model: nn.Module, config: ProxyConfig) -> torch.optim.Optimizer:
    decay = [p for p in model.parameters() if p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.ndim <= 1]
    groups = [{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    if config.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=config.lr)
    return torch.optim.SGD(groups, lr=config.lr, momentum=0.9, nesterov=True)


__all__ = ["EpochEnd", "EpochStats", "LoopOptions", "NonFiniteLoss", "ProxyError", "ProxyOutOfMemory",
           "ProxyResult", "evaluate", "fit", "loop_state", "normalize_batch", "recalibrate_bn", "restore_loop"]
