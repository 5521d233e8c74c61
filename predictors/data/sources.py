"""Image classification data for proxy training, loaded into uint8 tensors (no torchvision).

Sources (``DatasetSpec.name``):
  fashion-mnist  gzipped (or plain) idx files, default dir /usr/share/datasets/fashion-mnist/
                 (Debian package dataset-fashion-mnist); ``mnist`` reads the same format.
  cifar10        the python batches data_batch_1..5 + test_batch (dir or its cifar-10-batches-py/).
  cifar100       the python pickles train + test (fine labels; dir or its cifar-100-python/).
  imagefolder    root/train/<class>/*.png|jpg with root/val/ (or root/test/), or one root/<class>/ tree;
                 read with Pillow, shorter side resized to ``image_size`` and centre-cropped;
                 :func:`stream_imagefolder` reads it from disk batch by batch instead (a tree
                 larger than memory, DataLoader workers).
  synthetic      a small deterministic, learnable set (class templates + shift + noise) for tests.

Images stay uint8 ``(N, C, H, W)`` in memory; the trainer normalises each batch on the fly. The
validation set is a seeded, stratified hold-out of ``val_fraction`` of the training split, so the
official test split stays untouched by the search; ``val_fraction=0`` validates on the test split.
The test split itself is kept as ``LoadedDataset.test`` (None when the source has none).
Nothing is downloaded unless ``download=True`` is asked for.
"""

from __future__ import annotations

import functools
import gzip
import tarfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from torch.utils.data import Dataset, TensorDataset

from predictors.data.cifar import load_batch
from predictors.training.config import DATASET_NAMES as NAMES
from searchspace.errors import NasError

DEFAULT_DIRS = {"fashion-mnist": "/usr/share/datasets/fashion-mnist", "mnist": "/usr/share/datasets/mnist"}
IDX_FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
             "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}
FASHION_URL = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
CIFAR_URLS = {"cifar10": "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
              "cifar100": "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz"}
CIFAR_SUBDIRS = {"cifar10": "cifar-10-batches-py", "cifar100": "cifar-100-python"}
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")
GREY_MODES = ("1", "L", "LA", "I", "I;16", "F")


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


class LoadedDataset(NamedTuple):
    """``(train, val, num_classes, in_channels, test)``; tensors are uint8 images and int64 labels."""

    train: TensorDataset
    val: TensorDataset
    num_classes: int
    in_channels: int
    test: TensorDataset | None = None  # the official test split (None if the source has none)


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
    _check_spec(spec)
    return _load_cached(spec)


def clear_dataset_cache() -> None:
    """Forget loaded data sets (``load_dataset`` keeps the last two, shared: do not modify them)."""
    _load_cached.cache_clear()


def _check_spec(spec: DatasetSpec) -> None:
    if spec.name not in NAMES:
        raise DatasetError(f"dataset: {spec.name!r} is not one of {', '.join(NAMES)}")
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


@functools.lru_cache(maxsize=2)
def _load_cached(spec: DatasetSpec) -> LoadedDataset:
    (train_x, train_y), test, num_classes = _load_splits(spec)
    train_idx, val_idx, val_from_test = split_indices(train_y, None if test is None else test[1], spec)
    val_x, val_y = test if val_from_test else (train_x, train_y)
    return LoadedDataset(TensorDataset(train_x[train_idx].contiguous(), train_y[train_idx]),
                         TensorDataset(val_x[val_idx].contiguous(), val_y[val_idx]),
                         num_classes, int(train_x.shape[1]), None if test is None else TensorDataset(*test))


def split_indices(train_labels: torch.Tensor, test_labels: torch.Tensor | None,
                  spec: DatasetSpec) -> tuple[torch.Tensor, torch.Tensor, bool]:
    """(training indices, validation indices, whether the latter index the test split).

    Validation is a seeded, stratified hold-out of ``val_fraction`` of the training labels (or the
    test split when it is 0); then ``subset`` and ``val_subset`` keep seeded, stratified shares.
    """
    if spec.val_fraction > 0:
        n_val = max(1, round(spec.val_fraction * len(train_labels)))
        val_idx = stratified_indices(train_labels, n_val, spec.seed)
        keep = torch.ones(len(train_labels), dtype=torch.bool)
        keep[val_idx] = False
        train_idx, val_labels = keep.nonzero().flatten(), train_labels[val_idx]
    elif test_labels is None:
        raise DatasetError(f"dataset {spec.name}: no test/val split in {spec.data_dir}; "
                           "use val_fraction > 0 to hold out part of the training images")
    else:
        train_idx, val_idx, val_labels = torch.arange(len(train_labels)), torch.arange(len(test_labels)), test_labels
    if spec.subset is not None and spec.subset < len(train_idx):
        train_idx = train_idx[stratified_indices(train_labels[train_idx], spec.subset, spec.seed + 1)]
    if spec.val_subset is not None and spec.val_subset < len(val_idx):
        val_idx = val_idx[stratified_indices(val_labels, spec.val_subset, spec.seed + 2)]
    return train_idx, val_idx, spec.val_fraction == 0


Split = tuple[torch.Tensor, torch.Tensor]


def _load_splits(spec: DatasetSpec) -> tuple[Split, Split | None, int]:
    """(train, test or None, num_classes) as uint8 NCHW images and int64 labels."""
    if spec.name == "synthetic":
        train, test = make_synthetic(seed=spec.seed, size=spec.image_size or 32)
        return train, test, 10
    if spec.name == "imagefolder":
        return load_imagefolder(Path(spec.data_dir), spec.image_size or 32)
    root = Path(spec.data_dir or DEFAULT_DIRS[spec.name])
    if spec.download:
        download(spec.name, root)
    if spec.name.startswith("cifar"):
        train, test = load_cifar(root, spec.name)
        return train, test, 10 if spec.name == "cifar10" else 100
    train, test = load_idx_dir(root, spec.name)
    return train, test, 10


def stratified_indices(labels: torch.Tensor, n: int, seed: int) -> torch.Tensor:
    """``n`` seeded indices with every class in proportion to its share of ``labels`` (sorted)."""
    gen = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(labels), generator=gen)
    shuffled = labels[order]
    rank = torch.empty(len(labels))
    for c in torch.unique(labels):
        where = (shuffled == c).nonzero().flatten()
        rank[where] = (torch.arange(len(where)) + torch.rand(len(where), generator=gen)) / len(where)
    chosen = order[torch.argsort(rank, stable=True)[:n]]
    return torch.sort(chosen).values


# ---- idx (Fashion-MNIST, MNIST) ----

def read_idx(path: Path) -> np.ndarray:
    """Parse one idx file (gzipped or plain) into a uint8 array; DatasetError when it is not one."""
    try:
        raw = path.read_bytes()
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
    except (OSError, EOFError) as err:
        raise DatasetError(f"{path}: cannot read idx file ({err.__class__.__name__}: {err})") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08 or not 1 <= raw[3] <= 4:
        raise DatasetError(f"{path}: not an unsigned-byte idx file (magic {raw[:4].hex() or 'missing'}; "
                           "expected 00000801 for labels or 00000803 for images)")
    ndim = raw[3]
    if len(raw) < 4 + 4 * ndim:
        raise DatasetError(f"{path}: idx header truncated")
    dims = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    body = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if body.size != int(np.prod(dims)):
        raise DatasetError(f"{path}: idx data has {body.size} bytes, header dims {dims} need {int(np.prod(dims))}")
    return body.reshape(dims)


def _find_idx(root: Path, base: str) -> Path:
    dotted = base.replace("-idx", ".idx")  # the train-images.idx3-ubyte spelling of some mirrors
    for name in (f"{base}.gz", base, dotted, f"{dotted}.gz"):
        if (root / name).is_file():
            return root / name
    raise DatasetError(f"{root / (base + '.gz')}: missing (expected the idx files {base}[.gz] in {root})")


def load_idx_dir(root: Path, name: str = "fashion-mnist") -> tuple[Split, Split]:
    """Train and test splits from the four idx files of an MNIST-format directory."""
    if not root.is_dir():
        hint = " (apt-get install dataset-fashion-mnist, or --data DIR)" if name == "fashion-mnist" else ""
        raise DatasetError(f"{root}: no such {name} directory{hint}")
    splits = []
    for images_base, labels_base in IDX_FILES.values():
        images_path, labels_path = _find_idx(root, images_base), _find_idx(root, labels_base)
        images, labels = read_idx(images_path), read_idx(labels_path)
        if images.ndim != 3:
            raise DatasetError(f"{images_path}: expected 3-d images (N, H, W), got dims {list(images.shape)}")
        if labels.ndim != 1 or len(labels) != len(images):
            raise DatasetError(f"{labels_path}: expected {len(images)} labels, got dims {list(labels.shape)}")
        splits.append((torch.from_numpy(images.copy()).unsqueeze(1), torch.from_numpy(labels.astype(np.int64))))
    return splits[0], splits[1]


# ---- CIFAR python batches ----

def _unpickle(path: Path) -> dict:
    if not path.is_file():
        raise DatasetError(f"{path}: missing (expected the CIFAR python batch {path.name})")
    try:
        with path.open("rb") as f:
            data = load_batch(f)  # refuses every global but numpy's array reconstruction: no code runs
    except Exception as err:  # any unpickling failure (a refused global included) means a bad file
        raise DatasetError(f"{path}: not a CIFAR python batch ({err.__class__.__name__}: {err})") from None
    if not isinstance(data, dict) or b"data" not in data:
        raise DatasetError(f"{path}: not a CIFAR python batch (expected a dict with b'data')")
    return data


def _cifar_arrays(path: Path, label_key: bytes) -> Split:
    data = _unpickle(path)
    images = np.asarray(data[b"data"], dtype=np.uint8)
    labels = data.get(label_key)
    if labels is None or images.ndim != 2 or images.shape[1] != 3072 or len(labels) != len(images):
        raise DatasetError(f"{path}: expected b'data' of shape (N, 3072) and N {label_key.decode()}")
    return (torch.from_numpy(images.reshape(-1, 3, 32, 32).copy()),
            torch.as_tensor(np.asarray(labels, dtype=np.int64)))


def load_cifar(root: Path, name: str = "cifar10") -> tuple[Split, Split]:
    """Train and test splits of CIFAR-10 (``data_batch_1..5``, ``test_batch``) or CIFAR-100."""
    if (root / CIFAR_SUBDIRS[name]).is_dir():
        root = root / CIFAR_SUBDIRS[name]
    if not root.is_dir():
        raise DatasetError(f"{root}: no such {name} directory")
    if name == "cifar10":
        parts = [_cifar_arrays(root / f"data_batch_{i}", b"labels") for i in range(1, 6)]
        train = (torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts]))
        return train, _cifar_arrays(root / "test_batch", b"labels")
    return _cifar_arrays(root / "train", b"fine_labels"), _cifar_arrays(root / "test", b"fine_labels")


# ---- ImageFolder ----

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
    """An ImageFolder tree split like :class:`LoadedDataset`, read from disk when iterated."""

    train: ImageFiles
    val: ImageFiles
    num_classes: int
    in_channels: int
    test: ImageFiles | None
    classes: list[str]


def stream_imagefolder(spec: DatasetSpec) -> StreamedDataset:
    """An ImageFolder tree (see :func:`imagefolder_files`) split by :func:`split_indices`, images read
    lazily at ``spec.image_size``. Grey (one channel) when the first image of every class is greyscale."""
    _check_spec(spec)
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


# ---- synthetic ----

def make_synthetic(num_train: int = 2000, num_test: int = 500, num_classes: int = 10, channels: int = 3,
                   size: int = 32, seed: int = 0) -> tuple[Split, Split]:
    """A learnable uint8 set: each class a smooth random template, randomly shifted, plus noise."""
    gen = torch.Generator().manual_seed(seed)
    coarse = torch.randn(num_classes, channels, 4, 4, generator=gen)
    templates = torch.nn.functional.interpolate(coarse, size=(size, size), mode="bilinear", align_corners=False)
    templates = templates / templates.flatten(1).std(dim=1).view(-1, 1, 1, 1)

    def draw(n: int) -> Split:
        labels = torch.arange(n) % num_classes
        labels = labels[torch.randperm(n, generator=gen)]
        shifts = torch.randint(-2, 3, (n, 2), generator=gen)
        images = torch.stack([torch.roll(templates[c], (dy, dx), dims=(1, 2))
                              for c, (dy, dx) in zip(labels.tolist(), shifts.tolist(), strict=True)])
        images = 128 + 40 * images + 25 * torch.randn(images.shape, generator=gen)
        return images.round().clamp(0, 255).to(torch.uint8), labels

    return draw(num_train), draw(num_test)


# ---- explicit download ----

def download(name: str, root: Path) -> Path:
    """Fetch Fashion-MNIST or CIFAR into ``root`` from the official URLs (only files still missing)."""
    root.mkdir(parents=True, exist_ok=True)
    if name == "fashion-mnist":
        for base in (b for pair in IDX_FILES.values() for b in pair):
            target = root / f"{base}.gz"
            if not target.is_file() and not (root / base).is_file():
                _fetch(FASHION_URL + target.name, target)
        return root
    if name not in CIFAR_URLS:
        raise DatasetError(f"dataset {name}: download is only available for fashion-mnist, cifar10, cifar100")
    if not (root / CIFAR_SUBDIRS[name]).is_dir():
        archive = root / CIFAR_URLS[name].rsplit("/", 1)[1]
        if not archive.is_file():
            _fetch(CIFAR_URLS[name], archive)
        with tarfile.open(archive) as tar:
            if hasattr(tarfile, "data_filter"):
                tar.extractall(root, filter="data")
            else:  # Python < 3.10.12 / 3.11.4
                tar.extractall(root)
    return root / CIFAR_SUBDIRS[name]


def _fetch(url: str, target: Path) -> None:
    tmp = target.with_name(target.name + ".part")
    try:
        with urllib.request.urlopen(url, timeout=60) as response, tmp.open("wb") as out:
            while chunk := response.read(1 << 20):
                out.write(chunk)
    except OSError as err:
        tmp.unlink(missing_ok=True)
        raise DatasetError(f"{url}: download failed ({err})") from None
    tmp.replace(target)

