"""What a dataset is before anything is read: the source names, :class:`DatasetSpec`, :class:`DatasetError`,
default folders, file layouts and download URLs, and the checks of a spec (imports no torch, so a config
can name its data without it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from searchspace.errors import NasError

if TYPE_CHECKING:
    import torch

DATASET_NAMES = ("fashion-mnist", "mnist", "cifar10", "cifar100", "imagefolder", "synthetic")
DEFAULT_DIRS = {"fashion-mnist": "/usr/share/datasets/fashion-mnist", "mnist": "/usr/share/datasets/mnist"}
IDX_FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
             "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}
FASHION_URL = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
CIFAR_URLS = {"cifar10": "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
              "cifar100": "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz"}
CIFAR_SUBDIRS = {"cifar10": "cifar-10-batches-py", "cifar100": "cifar-100-python"}
CLASS_NAMES = {  # label order of each source's files (an ImageFolder tree names its own: its sorted folders)
    "fashion-mnist": ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                      "Ankle boot"),
    "mnist": tuple(str(d) for d in range(10)),
    "cifar10": ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"),
}

Split = tuple["torch.Tensor", "torch.Tensor"]  # uint8 (N, C, H, W) images and int64 labels


class DatasetError(NasError):
    """Missing, unreadable or malformed data (one line naming the path and what was expected)."""


@dataclass(frozen=True)
class DatasetSpec:
    """Which data to load and how much of it. Hashable: loaded sets are cached per spec."""

    name: str = "fashion-mnist"
    data_dir: str | None = None
    seed: int = 0
    subset: int | None = None          # training images kept (seeded, stratified); None = all
    val_subset: int | None = None      # validation images kept; None = all
    val_fraction: float = 0.1          # hold-out of the training split; 0 = use the test split
    image_size: int | None = None      # imagefolder storage size (default 32); synthetic image size
    download: bool = False             # fetch fashion-mnist / cifar into data_dir when missing
    skip_bad: bool = False             # imagefolder: skip unreadable images (and say which) instead of stopping


def check_spec(spec: DatasetSpec) -> None:
    """DatasetError when ``spec`` names an unknown source, a value out of range or no folder it needs."""
    if spec.name not in DATASET_NAMES:
        raise DatasetError(f"dataset: {spec.name!r} is not one of {', '.join(DATASET_NAMES)}")
    if not 0.0 <= spec.val_fraction < 1.0:
        raise DatasetError(f"dataset.val_fraction: {spec.val_fraction} is not in [0, 1)")
    for field_name in ("subset", "val_subset", "image_size"):
        value = getattr(spec, field_name)
        if value is not None and value < 1:
            raise DatasetError(f"dataset.{field_name}: {value} must be at least 1")
    if spec.name == "imagefolder" and spec.data_dir is None:
        raise DatasetError("dataset imagefolder: give the root directory (--data DIR)")
    if spec.name.startswith("cifar") and spec.data_dir is None:
        raise DatasetError(f"dataset {spec.name}: give the directory of the python batches (--data DIR)")


def class_names(name: str, num_classes: int) -> list[str]:
    """The class names of data set ``name`` in label order; the label numbers where the source names none
    (synthetic, CIFAR-100's are not read)."""
    names = CLASS_NAMES.get(name)
    return list(names) if names is not None and len(names) == num_classes else [str(i) for i in range(num_classes)]
