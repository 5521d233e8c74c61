"""The full-training recipe of ``nas train``, declared once (importing this module does not import torch).

:class:`TrainConfig` is the proxy's :class:`~predictors.training.config.ProxyConfig` with the defaults of a
real training run (all images, more epochs, label smoothing, augmentation, BN statistics as trained)
and the keys only a real run has (mixed precision, DataLoader workers, output folder,
resume). Both run through the one loop in :mod:`predictors.training.loop`. Every field is a key of
``nas.train(...)`` and a flag of ``nas train`` (``--weight-decay``), validated from the declaration.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from predictors.data.spec import DATASET_NAMES
from predictors.training.config import ProxyConfig
from searchspace.errors import NasError
from searchspace.settings import META, declared, setting

DEFAULT_LR = {"sgd": 0.1, "adamw": 0.002}
SEARCH_ONLY = ("checks_per_epoch",)  # proxy keys a full training has no use for (no pruner listens)
DEFAULT_WEIGHT_DECAY = {"sgd": 5e-4, "adamw": 0.05}


def train_flag_keys() -> list[str]:
    """The keys of :class:`TrainConfig` that ``nas train`` offers as flags (not the search-only ones)."""
    return [k for k in declared(TrainConfig) if k not in SEARCH_ONLY]


def _like(name: str, default: Any, doc: str | None = None, **changes: Any) -> Any:
    """ProxyConfig's declaration of key ``name`` with another default (and doc, bounds or in_hash)."""
    info = ProxyConfig.__dataclass_fields__[name].metadata[META]
    kept = {k: getattr(info, k) for k in ("choices", "low", "high", "parse", "in_hash", "example")}
    return setting(default, doc or info.doc, **(kept | changes))


@dataclass
class TrainConfig(ProxyConfig):
    """Settings of one full training run (``nas train``); see docs/train.md for the recipe."""

    dataset: str = _like("dataset", "fashion-mnist", "data set (--data NAME|DIR sets this and --data-dir)")
    data_dir: str | None = _like("data_dir", None, in_hash=False)
    resolution: int = _like("resolution", 32, "input size the network is trained at (the search's proxy "
                                              "resolution is 32)")
    width: float = _like("width", 1.0, "multiplies the genotype's own width (the search's proxy width is 0.5)")
    epochs: int = _like("epochs", 20, "training epochs")
    subset: int | None = _like("subset", None, "training images (seeded, stratified; null: all)")
    val_subset: int | None = _like("val_subset", None)
    val_fraction: float = _like("val_fraction", 0.1, "hold-out fraction of the training split that picks the best "
                                                     "epoch (the test split is used once, at the end)", low=0.001)
    lr: float | None = _like("lr", None, "peak learning rate after warm-up (null: 0.1 for sgd, 0.002 for adamw)")
    weight_decay: float | None = _like("weight_decay", None, "weight decay, not on norms and biases "
                                                             "(null: 5e-4 for sgd, 0.05 for adamw)")
    label_smoothing: float = _like("label_smoothing", 0.1)
    threads: int | None = _like("threads", None, "torch CPU threads (null: leave as is)", in_hash=False)
    device: str = _like("device", "cpu", "cpu, cuda or cuda:N (cuda: mixed precision and channels_last)",
                        in_hash=False)
    bn_images: int = _like("bn_images", 0, "training images that re-estimate BatchNorm statistics before each "
                                           "evaluation (0: statistics as trained)")
    download: bool = _like("download", False, in_hash=False)
    warmup: float = _like("warmup", 0.05)
    augment: bool = setting(True, "random crop with zero padding of 1/8 of the side, and a horizontal flip for "
                                  "RGB data (crop only for grey data)")
    amp: bool = setting(True, "mixed precision on CUDA (bfloat16, or float16 with loss scaling); not used on CPU")
    num_classes: int | None = setting(None, "classes of the classifier (null: the data's; a genotype made for "
                                            "another number of classes gets a new classifier, as timm's "
                                            "num_classes=N); given, it must be the data's", low=1)
    workers: int = setting(2, "DataLoader worker processes that read an ImageFolder tree from disk", low=0,
                           high=256, in_hash=False)
    out: str | None = setting(None, "output folder (default: runs/train/<genotype name>-<hash>-seed<seed>)",
                              in_hash=False, example="DIR")
    resume: bool = setting(False, "continue the run in --out from its last finished epoch", in_hash=False)

    def resolved(self) -> TrainConfig:
        """A copy with the optimizer's learning rate and weight decay filled in where they are null."""
        lr = DEFAULT_LR[self.optimizer] if self.lr is None else self.lr
        decay = DEFAULT_WEIGHT_DECAY[self.optimizer] if self.weight_decay is None else self.weight_decay
        return dataclasses.replace(self, lr=lr, weight_decay=decay)


def data_keys(value: str) -> dict[str, str]:
    """``--data`` text as config keys: a data set name, or else the folder of an ImageFolder tree."""
    if value in DATASET_NAMES and value != "imagefolder":
        return {"dataset": value}
    if not Path(value).is_dir():
        names = ", ".join(n for n in DATASET_NAMES if n != "imagefolder")
        raise NasError(f"data: {value!r} is neither a data set ({names}) nor a folder")
    return {"dataset": "imagefolder", "data_dir": value}
