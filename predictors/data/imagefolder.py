"""ImageFolder trees (``root/train/<class>/*.png|jpg`` with ``root/val/`` or ``root/test/``, or one
``root/<class>/`` tree), read with Pillow: shorter side resized to ``image_size`` and centre-cropped, either
all into memory (:func:`load_imagefolder`) or from disk batch by batch (:func:`stream_imagefolder`).

An image that cannot be read stops the run with one line naming it, unless the spec's ``skip_bad`` (the
``skip_bad_images`` key) asks to skip such images: each is then left out and its line collected
(``skipped``), for the run to list in its folder.
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
SKIP_HINT = "; --skip-bad-images (--proxy-skip-bad-images in a search) skips and lists such files"


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
            return fit_image(img.convert("RGB"), size), grey
    except (OSError, UnidentifiedImageError) as err:
        raise DatasetError(f"{path}: cannot read image ({err}){SKIP_HINT}") from None


def unreadable(err: DatasetError) -> str:
    """The line a skipped image gets: ``PATH: cannot read image (WHY)``."""
    return str(err).removesuffix(SKIP_HINT)


def fit_image(img, size: int) -> np.ndarray:
    """A Pillow image with its shorter side resized to ``size`` (bilinear) and centre-cropped to a square, as
    uint8 ``(size, size, channels)`` (``(size, size)`` for a one-band image): how every tree image is read."""
    from PIL import Image

    scale = size / min(img.size)
    w, h = max(size, round(img.size[0] * scale)), max(size, round(img.size[1] * scale))
    img = img.resize((w, h), Image.BILINEAR)
    left, top = (w - size) // 2, (h - size) // 2
    return np.array(img.crop((left, top, left + size, top + size)))


def _read_images(files: list[tuple[Path, int]], size: int, skipped: list[str] | None = None) -> tuple[Split, bool]:
    """The files decoded; an unreadable one raises, or with ``skipped`` is left out and its line added there."""
    images, grey, kept = np.empty((len(files), size, size, 3), dtype=np.uint8), True, []
    for i, (path, _) in enumerate(files):
        try:
            images[len(kept)], file_grey = _decode(path, size)
        except DatasetError as err:
            if skipped is None:
                raise
            skipped.append(unreadable(err))
            continue
        kept.append(i)
        grey = grey and file_grey
    tensor = torch.from_numpy(images[:len(kept)]).permute(0, 3, 1, 2).contiguous()
    labels = torch.tensor([files[i][1] for i in kept], dtype=torch.int64)
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


def load_imagefolder(root: Path, size: int = 32, skipped: list[str] | None = None) -> tuple[Split, Split | None, int]:
    """``root/train/<class>/`` (+ ``root/val/`` or ``root/test/``) or one ``root/<class>/`` tree. With
    ``skipped`` (a list), unreadable images are left out and their lines added to it."""
    train_files, test_files, classes = imagefolder_files(root)
    train, grey = _read_images(train_files, size, skipped)
    test = None
    if test_files:
        test, test_grey = _read_images(test_files, size, skipped)
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
    skipped: tuple[str, ...] = ()  # lines of the unreadable images left out (``spec.skip_bad``)


def stream_imagefolder(spec: DatasetSpec, workers: int = 0) -> StreamedDataset:
    """An ImageFolder tree (see :func:`imagefolder_files`) split by :func:`split_indices`, images read
    lazily at ``spec.image_size``. Grey (one channel) when the first image of every class is greyscale.
    With ``spec.skip_bad`` every image is decoded once first (by ``workers`` DataLoader processes) and the
    unreadable ones are left out."""
    check_spec(spec)
    train_files, test_files, classes = imagefolder_files(Path(spec.data_dir))
    skipped: list[str] = []
    if spec.skip_bad:
        train_files = readable(train_files, spec.image_size or 32, workers, skipped)
        test_files = None if test_files is None else readable(test_files, spec.image_size or 32, workers, skipped)
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
                           classes, tuple(skipped))


class _Check(Dataset):
    """Decodes each file once: its line when it cannot be read, else ""."""

    def __init__(self, files: Files, size: int) -> None:
        self.files, self.size = files, size

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> str:
        try:
            _decode(self.files[i][0], self.size)
        except DatasetError as err:
            return unreadable(err)
        return ""


def readable(files: Files, size: int, workers: int, skipped: list[str]) -> Files:
    """The files that decode; the lines of the others are added to ``skipped``."""
    from torch.utils.data import DataLoader

    loader = DataLoader(_Check(files, size), batch_size=64, num_workers=workers, collate_fn=list)
    lines = [line for batch in loader for line in batch]
    skipped += [line for line in lines if line]
    return [f for f, line in zip(files, lines, strict=True) if not line]


def _is_grey(path: Path) -> bool:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            return img.mode in GREY_MODES
    except (OSError, UnidentifiedImageError) as err:
        raise DatasetError(f"{path}: cannot read image ({err}){SKIP_HINT}") from None
