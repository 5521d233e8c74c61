"""Full training of a genotype: ``nas train`` and ``nas.train(...)``.

The network is the genotype with its width multiplied by ``width``, at ``resolution``, for the data's
classes; it trains in the proxy's loop (:func:`predictors.training.loop.fit`) with the recipe of
:class:`~predictors.training.recipe.TrainConfig`. After every epoch ``last.pt`` (the loop's whole state)
and, when validation accuracy improved, ``best.pt`` (weights) are written; the test split is used
once, at the end, on ``best.pt``. The folder's files are described in :mod:`nas.training.outputs`.
"""

from __future__ import annotations

import dataclasses
import re
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nas.common.skipped import list_skipped
from nas.training.outputs import (
    BEST,
    EpochWriter,
    open_run,
    read_checkpoint,
    write_curves,
    write_metrics,
    write_result,
)
from predictors.training.recipe import TrainConfig, data_keys
from searchspace import Genotype, NasError, load_genotype, parse_genotype
from searchspace.settings import apply_settings, hashed_dict

if TYPE_CHECKING:
    import torch

    from predictors.training.batches import TrainData
    from predictors.training.loop import LoopProgress, ProxyResult


@dataclass
class TrainResult:
    """What ``result.json`` holds: the test accuracy of the best epoch's weights and how it was made."""

    out: str
    test_accuracy: float            # on the test split, once, with best.pt
    best_val_accuracy: float
    best_epoch: int
    epochs: int
    params: int
    macs: int                       # one image at the training resolution
    genotype: str                   # name of the trained genotype (genotype.yaml in the folder)
    genotype_hash: str
    seed: int
    device: str
    train_seconds: float            # the epochs, over all resumed parts
    wall_seconds: float             # this call, start to end
    dataset: str
    num_classes: int
    resolution: int
    width: float
    images: dict[str, int]          # per split
    normalize: dict[str, list[float]]  # per-channel mean and std in [0, 255] units: x = (pixel - mean) / std
    classes: list[str] | None       # class names in label order
    config: dict[str, Any]
    replaced_head: int | None = None  # the genotype's own class count when its classifier was replaced
    skipped_images: int = 0         # unreadable images left out (skip_bad_images; listed in bad_images.txt)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def train_config(config: TrainConfig | None = None, **settings: Any) -> TrainConfig:
    """``config`` (default: the recipe's defaults) with ``settings`` applied and checked, learning rate and
    weight decay filled in. ``data`` is a data set name or an ImageFolder folder (sets dataset/data_dir)."""
    from predictors.training.proxy import check_proxy_config

    config = dataclasses.replace(config) if config is not None else TrainConfig()
    if settings.get("data") is not None:
        keys = data_keys(str(settings.pop("data")))
        clash = [k for k in keys if settings.get(k) is not None]
        if clash:
            raise NasError(f"data: give the data set either as data or as {clash[0]}, not both")
        settings.update(keys)
    settings.pop("data", None)
    apply_settings(config, settings)
    check_proxy_config(config, prefix="")
    return config.resolved()


def head_for_data(genotype: Genotype, config: TrainConfig, data_classes: int) -> tuple[Genotype, int | None]:
    """``genotype`` with a classifier for the data's classes, and its own class count when that differed (None
    when it fit). As timm's ``create_model(name, num_classes=N)``, a genotype made for other data (a zoo network's
    1000 ImageNet classes, a search on another data set) gets a new classifier; an explicit ``num_classes`` must
    be the data's."""
    if config.num_classes is not None and config.num_classes != data_classes:
        raise NasError(f"num_classes: {config.num_classes} is not the data's number of classes ({config.dataset} "
                       f"has {data_classes}); give {data_classes}, or leave it out: the classifier follows the data")
    classes = genotype.head["num_classes"]
    if classes == data_classes:
        return genotype, None
    return parse_genotype({**genotype.to_dict(), "head": {**genotype.head, "num_classes": data_classes}}), classes


def head_note(replaced: int, data_classes: int, dataset: str) -> str:
    """The line that says a classifier was replaced."""
    return (f"head: the genotype has {replaced} classes and the data ({dataset}) {data_classes}: its classifier is "
            f"replaced by a new one for {data_classes} classes (as timm's create_model(..., num_classes="
            f"{data_classes}))")


def trained_genotype(genotype: Genotype, config: TrainConfig, data_classes: int) -> Genotype:
    """The genotype as trained: width x ``config.width``, at ``config.resolution``, with a classifier for the
    data's classes (:func:`head_for_data`)."""
    from predictors.training.proxy import proxy_genotype

    return proxy_genotype(head_for_data(genotype, config, data_classes)[0], config)


def default_out(genotype: Genotype, config: TrainConfig) -> Path:
    """``runs/train/<name>-<hash>-seed<seed>``."""
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", genotype.name or "genotype")
    return Path("runs") / "train" / f"{name}-{genotype.hash()[:8]}-seed{config.seed}"


def train(genotype: Genotype | str | dict, config: TrainConfig | None = None, *,
          progress: LoopProgress | None = None, **settings: Any) -> TrainResult:
    """Train ``genotype`` (object, path, YAML text or ``zoo:NAME``) and return its test accuracy.

    ``settings`` are :class:`TrainConfig` keys (``epochs=30``, ``data="cifar10"``, ``out=...``,
    ``resume=True``); ``progress`` receives the loop's progress (:class:`nas.training.progress.TrainProgress`),
    and through its ``note(text)``, if it has one, the line that says a classifier was replaced for the data's
    classes (:func:`head_for_data`). Bad input raises :class:`searchspace.NasError` with one line naming what is wrong.
    """
    from predictors.latency.timing import torch_threads
    from predictors.training.proxy import check_proxy_config

    started = time.perf_counter()
    config = train_config(config, **settings)
    device = check_proxy_config(config, prefix="")
    source = load_genotype(genotype)
    with torch_threads(config.threads) if config.threads else nullcontext():
        setup = _prepare(source, config, device)
        if setup.replaced is not None and hasattr(progress, "note"):
            progress.note(head_note(setup.replaced, setup.data.num_classes, config.dataset))
        run, test_accuracy = _fit_and_test(setup, config, device, progress)
    result = _train_result(setup, run, test_accuracy, config, device, started)
    _write_outputs(setup, run, result, config)
    return result


@dataclass
class _Setup:
    """What the run is made from, fixed before training starts."""

    trained: Genotype               # the genotype as trained (:func:`trained_genotype`)
    data: TrainData
    norm: tuple                     # (mean, std, input channels) of the input normalisation
    out: Path                       # the run folder
    normalize: dict[str, list[float]]  # ``norm``'s mean and std as plain lists, for the outputs
    replaced: int | None = None     # the genotype's own class count when its classifier was replaced


def _prepare(source: Genotype, config: TrainConfig, device: torch.device) -> _Setup:
    """Load the data, fit the genotype to it and pick the run folder; nothing is written yet."""
    from predictors.training.batches import training_data
    from predictors.training.proxy import check_channels, proxy_genotype

    data = training_data(config, device)
    fitted, replaced = head_for_data(source, config, data.num_classes)
    trained = proxy_genotype(fitted, config)
    norm = (data.mean, data.std, check_channels(data.in_channels, trained, "train"))
    out = Path(config.out) if config.out else default_out(trained, config)
    normalize = {"mean": data.mean.flatten().tolist(), "std": data.std.flatten().tolist()}
    return _Setup(trained, data, norm, out, normalize, replaced)


def _fit_and_test(setup: _Setup, config: TrainConfig, device: torch.device,
                  progress: LoopProgress | None) -> tuple[ProxyResult, float]:
    """Run the loop (writing checkpoints, resuming from ``last.pt`` if asked), then test ``best.pt``."""
    from predictors.training.loop import LoopOptions, evaluate, fit, precision_for
    from predictors.training.proxy import build_network

    recipe = hashed_dict(config)
    saved = open_run(setup.out, setup.trained, recipe, config.resume)
    list_skipped(setup.out, setup.data.skipped)
    model = build_network(setup.trained, setup.data.num_classes, config, device)
    on_epoch = EpochWriter(setup.out, setup.trained, recipe, setup.normalize)
    options = LoopOptions(amp=config.amp, progress=progress, name="train", on_epoch=on_epoch, resume=saved)
    run = fit(model, config, setup.data.train, setup.data.val, setup.norm, options=options,
              params=sum(p.numel() for p in model.parameters()))
    model.load_state_dict(read_checkpoint(setup.out / BEST))  # the test split is used once, on the best epoch
    return run, evaluate(model, setup.data.test, setup.norm, config, precision_for(device, config.amp))


def _train_result(setup: _Setup, run: ProxyResult, test_accuracy: float, config: TrainConfig,
                  device: torch.device, started: float) -> TrainResult:
    trained, data = setup.trained, setup.data
    best = max(run.history, key=lambda h: h.val_accuracy)  # the first epoch with the best accuracy
    return TrainResult(
        out=str(setup.out), test_accuracy=test_accuracy, best_val_accuracy=best.val_accuracy, best_epoch=best.epoch,
        epochs=run.epochs_run, params=run.params,
        macs=_macs(trained, data.num_classes, config.resolution, setup.norm[2]),
        genotype=trained.name, genotype_hash=trained.hash(), seed=config.seed, device=str(device),
        train_seconds=run.train_seconds, wall_seconds=time.perf_counter() - started, dataset=config.dataset,
        num_classes=data.num_classes, resolution=config.resolution, width=config.width, images=data.sizes,
        normalize=setup.normalize, classes=data.classes, config=dataclasses.asdict(config),
        replaced_head=setup.replaced, skipped_images=len(data.skipped))


def _write_outputs(setup: _Setup, run: ProxyResult, result: TrainResult, config: TrainConfig) -> None:
    write_metrics(setup.out, run.history)
    title = (f"{setup.trained.name} ({config.dataset}, seed {config.seed}): "
             f"test accuracy {result.test_accuracy:.4f}")
    write_curves(setup.out, run.history, title)
    write_result(setup.out, result.to_dict())


def _macs(genotype: Genotype, num_classes: int, resolution: int, in_channels: int) -> int:
    from predictors.cost import count_macs
    from searchspace import build

    return count_macs(build(genotype, num_classes=num_classes), resolution, in_channels)
