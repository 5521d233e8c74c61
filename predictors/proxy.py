"""Proxy training: a few epochs of a shrunk candidate on a small data set, scored by val top-1.

The candidate is built at the proxy ``resolution`` with its width multiplied by the proxy ``width``
(through :func:`searchspace.with_scaling`), trained with SGD + Nesterov momentum (or AdamW) under a
warm-up + cosine schedule, and evaluated after every epoch; ``report(epoch, accuracy)`` lets an Optuna pruner
stop a bad candidate (whatever ``report`` raises propagates unchanged). Runs are deterministic for a
given seed, thread count and device.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from predictors.datasets import LoadedDataset, load_dataset
from predictors.latency import torch_threads
from predictors.proxy_config import ProxyConfig
from searchspace import Genotype, GenotypeError, NasError, build, load_genotype, with_scaling
from searchspace.settings import validate_settings

Report = Callable[[int, float], None]


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


def proxy_genotype(genotype: Genotype, config: ProxyConfig) -> Genotype:
    """The candidate as proxy-trained: width multiplied by ``config.width``, at ``config.resolution``."""
    return with_scaling(genotype, width=genotype.scaling["width"] * config.width, resolution=config.resolution)


def train_proxy(genotype: Genotype | str | dict, config: ProxyConfig | None = None,
                report: Report | None = None, data: LoadedDataset | None = None) -> ProxyResult:
    """Train ``genotype`` briefly and return its validation accuracy.

    ``report(epoch, val_accuracy)`` is called after each epoch (1-based); an exception it raises
    (e.g. ``optuna.TrialPruned``) propagates unchanged. A NaN/inf loss raises :class:`NonFiniteLoss`,
    running out of memory :class:`ProxyOutOfMemory`. ``data`` replaces loading ``config``'s data set.

    Grey data (1 channel) fed to a genotype with 3 input channels is repeated to 3 channels rather
    than building the stem for 1 channel: the trained network is then exactly the searched genotype,
    deployable on RGB input, and the repeated channel costs only the stem's first convolution.
    """
    config = config or ProxyConfig()
    device = check_proxy_config(config)
    genotype = proxy_genotype(load_genotype(genotype), config)
    with torch_threads(config.threads) if config.threads else nullcontext():
        if data is None:
            data = load_dataset(config.dataset_spec())
        if len(data.train.tensors[1]) < 2 or len(data.val.tensors[1]) < 1:
            raise ProxyError("proxy: need at least 2 training and 1 validation image")
        in_ch = genotype.input["channels"]
        if data.in_channels not in (1, in_ch):
            raise ProxyError(f"proxy: the data set has {data.in_channels} channels but the genotype's "
                             f"input.channels is {in_ch}")
        train_x, train_y = _prepare(data.train, config.resolution, device)
        val_x, val_y = _prepare(data.val, config.resolution, device)
        mean, std = _channel_stats(train_x)
        torch.manual_seed(config.seed)
        model = build(genotype, num_classes=data.num_classes).to(device)
        if config.channels_last:
            model = model.to(memory_format=torch.channels_last)
        params = sum(p.numel() for p in model.parameters())
        return _fit(model, config, (train_x, train_y), (val_x, val_y), (mean, std, in_ch), report, params)


def _fit(model: nn.Module, config: ProxyConfig, train: tuple, val: tuple, norm: tuple,
         report: Report | None, params: int) -> ProxyResult:
    device = train[0].device
    steps_per_epoch = _num_batches(len(train[1]), config.batch_size)
    optimizer = _optimizer(model, config)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_cosine(config.epochs * steps_per_epoch))
    loss_fn = nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)
    gen = torch.Generator().manual_seed(config.seed)
    result = ProxyResult(accuracy=0.0, best_accuracy=0.0, params=params)
    for epoch in range(1, config.epochs + 1):
        start = time.perf_counter()
        with _oom_guard(device):
            model.train()
            total = torch.zeros((), device=device)
            for step, idx in enumerate(_batches(len(train[1]), config.batch_size, gen)):
                x = _normalize(train[0][idx.to(device)], *norm, config.channels_last)
                loss = loss_fn(model(x), train[1][idx.to(device)])
                if not torch.isfinite(loss):
                    raise NonFiniteLoss(
                        f"proxy: training loss became {loss.item()} at epoch {epoch}, step {step + 1} "
                        f"(lr {config.lr}, {config.optimizer}); the candidate diverged")
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                schedule.step()
                total += loss.detach()
            recalibrate_bn(model, train[0][:config.bn_images], norm, config)
            accuracy = evaluate(model, val, norm, config)
        seconds = time.perf_counter() - start
        result.history.append(EpochStats(epoch, float(total) / steps_per_epoch, accuracy, seconds))
        result.epochs_run, result.accuracy = epoch, accuracy
        result.best_accuracy = max(result.best_accuracy, accuracy)
        result.train_seconds += seconds
        if report is not None:
            report(epoch, accuracy)
    return result


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
def evaluate(model: nn.Module, val: tuple, norm: tuple, config: ProxyConfig) -> float:
    """Top-1 accuracy of ``model`` on prepared validation tensors."""
    model.eval()
    images, labels = val
    correct = 0
    for start in range(0, len(labels), 512):
        x = _normalize(images[start:start + 512], *norm, config.channels_last)
        correct += int((model(x).argmax(1) == labels[start:start + 512]).sum())
    return correct / max(1, len(labels))


def warmup_cosine(total_steps: int, warmup: float = 0.25) -> Callable[[int], float]:
    """LR factor per step: linear warm-up over the first ``warmup`` share, then cosine decay to 0."""
    warm = int(total_steps * warmup)

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        return 0.5 * (1.0 + math.cos(math.pi * (step - warm) / max(1, total_steps - warm)))

    return factor


def check_proxy_config(config: ProxyConfig) -> torch.device:
    """Validate every declared setting and the device (CUDA present?); the device to train on."""
    try:
        validate_settings(config, "proxy.")
    except GenotypeError as err:
        raise ProxyError(str(err)) from None
    return _device(config.device)


def _device(name: str) -> torch.device:
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ProxyError(f"proxy.device: {name!r} is not a device (use cpu, cuda or cuda:N)") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ProxyError(f"proxy.device: {name!r} requested but CUDA is not available "
                             f"(torch {torch.__version__}, CUDA build: {torch.version.cuda or 'none'})")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ProxyError(f"proxy.device: {name!r} but only {torch.cuda.device_count()} CUDA device(s)")
    elif device.type != "cpu":
        raise ProxyError(f"proxy.device: {name!r} is not supported (use cpu, cuda or cuda:N)")
    return device


@contextmanager
def _oom_guard(device: torch.device) -> Iterator[None]:
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
        raise ProxyOutOfMemory(f"proxy: out of memory on {device} ({first[:200]})") from err


def _prepare(dataset, resolution: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 images resized to ``resolution`` (bilinear, in chunks) and labels, on ``device``."""
    images, labels = dataset.tensors
    if images.shape[-2:] != (resolution, resolution):
        chunks = []
        for start in range(0, len(images), 2048):
            x = images[start:start + 2048].float()
            x = F.interpolate(x, size=(resolution, resolution), mode="bilinear", align_corners=False,
                              antialias=resolution < images.shape[-1])
            chunks.append(x.round_().clamp_(0, 255).to(torch.uint8))
        images = torch.cat(chunks)
    return images.to(device), labels.to(device)


def _channel_stats(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and std of uint8 images (on a sample), shaped (1, C, 1, 1) in [0, 255] units."""
    sample = images[:4096].float()
    mean = sample.mean(dim=(0, 2, 3))
    std = sample.std(dim=(0, 2, 3)).clamp_min(1.0)
    return mean.view(1, -1, 1, 1), std.view(1, -1, 1, 1)


def _normalize(images: torch.Tensor, mean: torch.Tensor, std: torch.Tensor, in_ch: int,
               channels_last: bool) -> torch.Tensor:
    x = (images.float() - mean) / std
    if x.shape[1] != in_ch:  # grey data, RGB genotype: repeat the channel
        x = x.expand(-1, in_ch, -1, -1)
    return x.contiguous(memory_format=torch.channels_last if channels_last else torch.contiguous_format)


def _num_batches(n: int, batch_size: int) -> int:
    return max(1, n // batch_size)


def _batches(n: int, batch_size: int, gen: torch.Generator) -> Iterator[torch.Tensor]:
    """Seeded shuffled index batches; the ragged tail is dropped (BatchNorm needs > 1 sample)."""
    order = torch.randperm(n, generator=gen)
    size = min(batch_size, n)
    for b in range(_num_batches(n, batch_size)):
        yield order[b * size:(b + 1) * size]


def _optimizer(model: nn.Module, config: ProxyConfig) -> torch.optim.Optimizer:
    decay = [p for p in model.parameters() if p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.ndim <= 1]
    groups = [{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    if config.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=config.lr)
    return torch.optim.SGD(groups, lr=config.lr, momentum=0.9, nesterov=True)



__all__ = ["EpochStats", "NonFiniteLoss", "ProxyConfig", "ProxyError", "ProxyOutOfMemory", "ProxyResult",
           "evaluate", "proxy_genotype", "recalibrate_bn", "train_proxy"]
