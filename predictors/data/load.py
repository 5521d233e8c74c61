"""``load_dataset``: the data a :class:`DatasetSpec` names, read by its source's module into uint8
``(N, C, H, W)`` tensors (the trainer normalises each batch on the fly) and cached in-process. The validation
set is a seeded, stratified hold-out of ``val_fraction`` of the training split, so the official test split
stays untouched by the search; ``val_fraction=0`` validates on the test split. The test split itself is
kept as ``LoadedDataset.test`` (None when the source has none). Nothing is downloaded unless
``download=True`` is asked for.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import NamedTuple

from torch.utils.data import TensorDataset

from predictors.data.cifar import load_cifar
from predictors.data.download import download
from predictors.data.idx import load_idx_dir
from predictors.data.imagefolder import load_imagefolder
from predictors.data.spec import DEFAULT_DIRS, DatasetSpec, Split, check_spec
from predictors.data.split import split_indices
from predictors.data.synthetic import make_synthetic


class LoadedDataset(NamedTuple):
    """``(train, val, num_classes, in_channels, test)``; tensors are uint8 images and int64 labels."""

    train: TensorDataset
    val: TensorDataset
    num_classes: int
    in_channels: int
    test: TensorDataset | None = None  # the official test split (None if the source has none)
    skipped: tuple[str, ...] = ()      # lines of the unreadable images left out (``spec.skip_bad``)


def load_dataset(name: str | DatasetSpec = "fashion-mnist", data_dir: str | Path | None = None, *,
                 seed: int = 0, subset: int | None = None, val_subset: int | None = None,
                 val_fraction: float = 0.1, image_size: int | None = None,
                 download: bool = False) -> LoadedDataset:
    """Load a dataset by name (or a :class:`DatasetSpec`) into uint8 tensors; see the module doc."""
    if isinstance(name, DatasetSpec):
        spec = name
    else:
        spec = DatasetSpec(name, None if data_dir is None else str(data_dir), seed, subset, val_subset,
                           val_fraction, image_size, download)
    check_spec(spec)
    return _load_cached(spec)


def clear_dataset_cache() -> None:
    """Forget loaded data sets (``load_dataset`` keeps the last two, shared: do not modify them)."""
    _load_cached.cache_clear()


@functools.lru_cache(maxsize=2)
def _load_cached(spec: DatasetSpec) -> LoadedDataset:
    skipped: list[str] = []
    (train_x, train_y), test, num_classes = _load_splits(spec, skipped)
    train_idx, val_idx, val_from_test = split_indices(train_y, None if test is None else test[1], spec)
    val_x, val_y = test if val_from_test else (train_x, train_y)
    return LoadedDataset(TensorDataset(train_x[train_idx].contiguous(), train_y[train_idx]),
                         TensorDataset(val_x[val_idx].contiguous(), val_y[val_idx]),
                         num_classes, int(train_x.shape[1]), None if test is None else TensorDataset(*test),
                         tuple(skipped))


def _load_splits(spec: DatasetSpec, skipped: list[str]) -> tuple[Split, Split | None, int]:
    """(train, test or None, num_classes) as uint8 NCHW images and int64 labels (the lines of unreadable
    images left out added to ``skipped``)."""
    if spec.name == "synthetic":
        train, test = make_synthetic(seed=spec.seed, size=spec.image_size or 32)
        return train, test, 10
    if spec.name == "imagefolder":
        return load_imagefolder(Path(spec.data_dir), spec.image_size or 32, skipped if spec.skip_bad else None)
    root = Path(spec.data_dir or DEFAULT_DIRS[spec.name])
    if spec.download:
        download(spec.name, root)
    if spec.name.startswith("cifar"):
        train, test = load_cifar(root, spec.name)
        return train, test, 10 if spec.name == "cifar10" else 100
    train, test = load_idx_dir(root, spec.name)
    return train, test, 10
