"""Proxy training: a few epochs of a shrunk candidate, scored by val top-1.

The candidate is built at the proxy ``resolution`` with its width multiplied by the proxy ``width``
(through :func:`searchspace.with_scaling`) and trained in the loop full training shares
(:func:`predictors.training.loop.fit`) with the proxy's recipe; ``report(epoch, accuracy)`` lets an
Optuna pruner stop a bad candidate (whatever ``report`` raises propagates unchanged). Runs are
deterministic for a given seed, thread count and device.
"""

from __future__ import annotations

from contextlib import nullcontext

import torch
from torch import nn

from predictors.data.load import LoadedDataset, load_dataset
from predictors.latency.timing import torch_threads
from predictors.training.batches import TensorBatches, TensorChunks, channel_stats, prepare_tensors
from predictors.training.config import ProxyConfig
from predictors.training.loop import ProxyError, ProxyResult, Report, fit
from searchspace import Genotype, GenotypeError, build, load_genotype, with_scaling
from searchspace.settings import validate_settings


def proxy_genotype(genotype: Genotype, config: ProxyConfig) -> Genotype:
    """The candidate as proxy-trained: width multiplied by ``config.width``, at ``config.resolution``."""
    return with_scaling(genotype, width=genotype.scaling["width"] * config.width, resolution=config.resolution)


def train_proxy(genotype: Genotype | str | dict, config: ProxyConfig | None = None,
                report: Report | None = None, data: LoadedDataset | None = None) -> ProxyResult:
    """Train ``genotype`` briefly and return its validation accuracy.

    ``report(epoch, val_accuracy)`` is called after each epoch (1-based); an exception it raises
    (e.g. ``optuna.TrialPruned``) propagates unchanged. A NaN/inf loss raises
    :class:`~predictors.training.loop.NonFiniteLoss`, running out of memory
    :class:`~predictors.training.loop.ProxyOutOfMemory`. ``data`` replaces loading ``config``'s data set.

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
        in_ch = check_channels(data.in_channels, genotype)
        train_x, train_y = prepare_tensors(data.train, config.resolution, device)
        val_x, val_y = prepare_tensors(data.val, config.resolution, device)
        mean, std = channel_stats(train_x)
        model = build_network(genotype, data.num_classes, config, device)
        params = sum(p.numel() for p in model.parameters())
        return fit(model, config, TensorBatches(train_x, train_y, config.batch_size), TensorChunks(val_x, val_y),
                   (mean, std, in_ch), report, params=params)


def check_channels(data_channels: int, genotype: Genotype, name: str = "proxy") -> int:
    """The genotype's input channels, if the data can feed them (same, or grey data repeated)."""
    in_ch = genotype.input["channels"]
    if data_channels not in (1, in_ch):
        raise ProxyError(f"{name}: the data set has {data_channels} channels but the genotype's "
                         f"input.channels is {in_ch}")
    return in_ch


def build_network(genotype: Genotype, num_classes: int, config: ProxyConfig, device: torch.device) -> nn.Module:
    """The network, initialised from ``config.seed``, on ``device`` (channels_last if configured)."""
    torch.manual_seed(config.seed)
    model = build(genotype, num_classes=num_classes).to(device)
    return model.to(memory_format=torch.channels_last) if config.channels_last else model


def check_proxy_config(config: ProxyConfig, prefix: str = "proxy.") -> torch.device:
    """Validate every declared setting and the device (CUDA present?); the device to train on.

    ``prefix`` starts the key names in error messages (``proxy.epochs: ...``)."""
    try:
        validate_settings(config, prefix)
    except GenotypeError as err:
        raise ProxyError(str(err)) from None
    return _device(config.device, f"{prefix}device")


def _device(name: str, key: str = "proxy.device") -> torch.device:
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ProxyError(f"{key}: {name!r} is not a device (use cpu, cuda or cuda:N)") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ProxyError(f"{key}: {name!r} requested but CUDA is not available "
                             f"(torch {torch.__version__}, CUDA build: {torch.version.cuda or 'none'})")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ProxyError(f"{key}: {name!r} but only {torch.cuda.device_count()} CUDA device(s)")
    elif device.type != "cpu":
        raise ProxyError(f"{key}: {name!r} is not supported (use cpu, cuda or cuda:N)")
    return device


__all__ = ["ProxyConfig", "build_network", "check_channels", "proxy_genotype", "train_proxy"]
