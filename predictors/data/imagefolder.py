"""ImageFolder trees (``root/train/<class>/*.png|jpg`` with ``root/val/`` or ``root/test/``, or one
``root/<class>/`` tree), read with Pillow: shorter side resized to ``image_size`` and centre-cropped, either
all into memory (:func:`load_imagefolder`) or from disk batch by batch (:func:`stream_imagefolder`).
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from torch.utils.data import Dataset

from predictors.data.spec import DatasetError, DatasetSpec, Split, check_spec
from predictors.data.split import split_indices

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")
GREY_MODES = ("1", "L", "LA", "I", "I;16", "F")


def _class_files(root: Path) -> dict[str, list[Path]]:
    classes = sorted(p for p in root.iterdir() if p.is_dir())
    files = {c.name: sorted(f for f in c.rglob("*") if f.suffix.lower() in IMAGE_SUFFIXES) for c in classes}
    return {name: paths for name, paths in files.items() if paths}


def _decode(path: Path, size: int) -> tuple[np.ndarray, bool]:
    """One image as uint8 ``(size, size, 3)`` RGB (shorter side resized to ``size``, centre-cropped), and
    whether the file was greyscale."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            grey = img.mode in GREY_MODES
            img = img.convert("RGB")
            scale = size / min(img.size)
            w, h = max(size, round(img.size[0] * scale)), max(size, round(img.size[1] * scale))
            img = img.resize((w, h), Image.BILINEAR)
            left, top = (w - size) // 2, (h - size) // 2
            return np.array(img.crop((left, top, left + size, top + size))), grey
    except (OSError, UnidentifiedImageError) as err:
        raise DatasetError(f"{path}: cannot read image ({err})") from None


def _read_images(files: list[tuple[Path, int]], size: int) -> tuple[Split, bool]:
    images, grey = np.empty((len(files), size, size, 3), dtype=np.uint8), True
    for i, (path, _) in enumerate(files):
        images[i], file_grey = _decode(path, size)
        grey = grey and file_grey
    tensor = torch.from_numpy(images).permute(0, 3, 1, 2).contiguous()
    labels = torch.tensor([label for _, label in files], dtype=torch.int64)
    return (tensor, labels), grey


Files = list[tuple[Path, int]]


def imagefolder_files(root: Path) -> tuple[Files, Files | None, list[str]]:
    """(training files, test files or None, class names) of an ImageFolder tree; labels follow the
    sorted class folder names of the training tree."""
    if not root.is_dir():
        raise DatasetError(f"{root}: no such imagefolder directory")
    train_dir = root / "train" if (root / "train").is_dir() else root
    per_class = _class_files(train_dir)
    if not per_class:
        raise DatasetError(f"{train_dir}: no class folders with images (expected {train_dir}/<class>/*.png|jpg)")
    index = {name: i for i, name in enumerate(per_class)}
    train_files = [(p, index[c]) for c, paths in per_class.items() for p in paths]
    test_files = None
    for name in ("val", "test"):
        if train_dir != root and (root / name).is_dir():
            extra = sorted(set(_class_files(root / name)) - set(index))
            if extra:
                raise DatasetError(f"{root / name}: classes {', '.join(extra)} are not in {train_dir}")
            test_files = [(p, index[c]) for c, paths in _class_files(root / name).items() for p in paths]
            break
    return train_files, test_files, list(index)


def load_imagefolder(root: Path, size: int = 32) -> tuple[Split, Split | None, int]:
    """``root/train/<class>/`` (+ ``root/val/`` or ``root/test/``) or one ``root/<class>/`` tree."""
    train_files, test_files, classes = imagefolder_files(root)
    train, grey = _read_images(train_files, size)
    test = None
    if test_files:
        test, test_grey = _read_images(test_files, size)
        grey = grey and test_grey
    if grey:  # every image was greyscale: keep one channel
        train = (train[0][:, :1].contiguous(), train[1])
        test = None if test is None else (test[0][:, :1].contiguous(), test[1])
    return train, test, len(classes)


class ImageFiles(Dataset):
    """Images read from disk one at a time, ``(uint8 (C, size, size), label)`` each: only the paths are
    held, so a tree larger than memory streams through DataLoader workers."""

    def __init__(self, files: Files, size: int, grey: bool) -> None:
        self.files, self.size, self.grey = files, size, grey
        self.labels = torch.tensor([label for _, label in files], dtype=torch.int64)

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        path, label = self.files[i]
        image = torch.from_numpy(_decode(path, self.size)[0]).permute(2, 0, 1)
        return (image[:1] if self.grey else image).contiguous(), label


class StreamedDataset(NamedTuple):
    """An ImageFolder tree split like :class:`~predictors.data.load.LoadedDataset`, read from disk when
    iterated."""

    train: ImageFiles
    val: ImageFiles
    num_classes: int
    in_channels: int
    test: ImageFiles | None
    classes: list[str]


def stream_imagefolder(spec: DatasetSpec) -> StreamedDataset:
    """An ImageFolder tree (see :func:`imagefolder_files`) split by :func:`split_indices`, images read
    lazily at ``spec.image_size``. Grey (one channel) when the first image of every class is greyscale."""
    check_spec(spec)
    train_files, test_files, classes = imagefolder_files(Path(spec.data_dir))
    labels = torch.tensor([label for _, label in train_files], dtype=torch.int64)
    test_labels = None if test_files is None else torch.tensor([label for _, label in test_files])
    train_idx, val_idx, val_from_test = split_indices(labels, test_labels, spec)
    firsts = {label: path for path, label in reversed(train_files)}
    grey = all(_is_grey(path) for path in firsts.values())
    size = spec.image_size or 32
    val_files = test_files if val_from_test else train_files
    return StreamedDataset(ImageFiles([train_files[i] for i in train_idx.tolist()], size, grey),
                           ImageFiles([val_files[i] for i in val_idx.tolist()], size, grey), len(classes),
                           1 if grey else 3, None if test_files is None else ImageFiles(test_files, size, grey),
                           classes)


def _is_grey(path: Path) -> bool:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            return img.mode in GREY_MODES
    except (OSError, UnidentifiedImageError) as err:
        raise DatasetError(f"{path}: cannot read image ({err})") from None
