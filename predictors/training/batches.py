"""Where the training loop's images come from, in seeded batches of uint8 images on the device.

:class:`TensorBatches` shuffles a data set held in memory (the proxy's and Fashion-MNIST / CIFAR
training); :class:`FileBatches` reads an ImageFolder tree from disk through DataLoader workers, so a
tree larger than memory trains. Both draw the order (and the augmentation) from the loop's one
generator, in the main process, so a run is reproducible whatever the number of workers.
:class:`TensorChunks` / :class:`FileChunks` walk a split in order for evaluation.
:func:`crop_flip` is the full-training augmentation: a random crop with zero padding, plus a
horizontal flip for RGB data.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Protocol

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from predictors.data.imagefolder import ImageFiles, stream_imagefolder
from predictors.data.load import load_dataset
from predictors.data.spec import DatasetError, class_names

Batch = tuple[torch.Tensor, torch.Tensor]  # uint8 images (N, C, H, W) and int64 labels, on the device
Augment = Callable[[torch.Tensor, torch.Generator], torch.Tensor]
EVAL_CHUNK = 512


class BatchSource(Protocol):
    """Training batches for the loop: ``len()`` batches per epoch, the ragged tail dropped."""

    device: torch.device

    def __len__(self) -> int: ...

    def epoch(self, gen: torch.Generator) -> Iterator[Batch]:
        """One epoch's batches in an order drawn from ``gen``."""
        ...

    def calibration(self, n: int) -> torch.Tensor:
        """``n`` fixed training images (uint8, on the device) that re-estimate BatchNorm statistics."""
        ...


def num_batches(n: int, batch_size: int) -> int:
    return max(1, n // batch_size)


def _order(n: int, batch_size: int, gen: torch.Generator) -> list[torch.Tensor]:
    """Seeded shuffled index batches; the ragged tail is dropped (BatchNorm needs > 1 sample)."""
    order = torch.randperm(n, generator=gen)
    size = min(batch_size, n)
    return [order[b * size:(b + 1) * size] for b in range(num_batches(n, batch_size))]


class TensorBatches:
    """Shuffled batches of images held in memory (on the device), optionally augmented."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, batch_size: int,
                 augment: Augment | None = None) -> None:
        self.images, self.labels, self.batch_size, self.augment = images, labels, batch_size, augment
        self.device = images.device

    def __len__(self) -> int:
        return num_batches(len(self.labels), self.batch_size)

    def epoch(self, gen: torch.Generator) -> Iterator[Batch]:
        for idx in _order(len(self.labels), self.batch_size, gen):
            idx = idx.to(self.device)
            images = self.images[idx]
            yield (images if self.augment is None else self.augment(images, gen)), self.labels[idx]

    def calibration(self, n: int) -> torch.Tensor:
        return self.images[:n]


class TensorChunks:
    """A split held in memory, in order, in chunks (evaluation)."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, size: int = EVAL_CHUNK) -> None:
        self.images, self.labels, self.size = images, labels, size

    def __len__(self) -> int:
        return len(self.labels)

    def __iter__(self) -> Iterator[Batch]:
        for start in range(0, len(self.labels), self.size):
            yield self.images[start:start + self.size], self.labels[start:start + self.size]


class FileBatches:
    """Shuffled batches of an :class:`~predictors.data.imagefolder.ImageFiles` split, decoded by DataLoader workers."""

    def __init__(self, files: ImageFiles, batch_size: int, workers: int, device: torch.device,
                 augment: Augment | None = None) -> None:
        self.files, self.batch_size, self.workers, self.augment = files, batch_size, workers, augment
        self.device = device
        self._calibration: torch.Tensor | None = None

    def __len__(self) -> int:
        return num_batches(len(self.files), self.batch_size)

    def epoch(self, gen: torch.Generator) -> Iterator[Batch]:
        batches = [idx.tolist() for idx in _order(len(self.files), self.batch_size, gen)]
        loader = DataLoader(self.files, batch_sampler=batches, num_workers=self.workers,
                            pin_memory=self.device.type == "cuda")
        for images, labels in _one_line_errors(loader):
            images = images.to(self.device, non_blocking=True)
            yield (images if self.augment is None else self.augment(images, gen)), labels.to(self.device)

    def calibration(self, n: int) -> torch.Tensor:
        if self._calibration is None or len(self._calibration) != min(n, len(self.files)):
            self._calibration = sample_images(self.files, n, seed=0).to(self.device)
        return self._calibration


class FileChunks:
    """An :class:`~predictors.data.imagefolder.ImageFiles` split, in order, decoded by DataLoader workers."""

    def __init__(self, files: ImageFiles, size: int, workers: int, device: torch.device) -> None:
        self.files, self.size, self.workers, self.device = files, size, workers, device

    def __len__(self) -> int:
        return len(self.files)

    def __iter__(self) -> Iterator[Batch]:
        loader = DataLoader(self.files, batch_size=self.size, num_workers=self.workers,
                            pin_memory=self.device.type == "cuda")
        for images, labels in _one_line_errors(loader):
            yield images.to(self.device, non_blocking=True), labels.to(self.device)


def _one_line_errors(loader: DataLoader) -> Iterator[Batch]:
    """A worker's DatasetError arrives wrapped in a traceback: re-raise it as its own one line."""
    try:
        yield from loader
    except DatasetError as err:
        raise DatasetError(str(err).strip().splitlines()[-1].split("DatasetError: ", 1)[-1]) from None


def sample_images(files: ImageFiles, n: int, seed: int) -> torch.Tensor:
    """``n`` images of a file split picked by a seeded draw, stacked (uint8, on the CPU)."""
    gen = torch.Generator().manual_seed(seed)
    idx = torch.randperm(len(files), generator=gen)[:n].sort().values
    return torch.stack([files[i][0] for i in idx.tolist()]) if len(idx) else torch.empty(0, dtype=torch.uint8)


def crop_flip(pad: int, flip: bool) -> Augment:
    """Random crop of the original size from the image zero-padded by ``pad`` on each side, and (``flip``)
    a horizontal flip of half the images; offsets and flips are drawn from the loop's generator."""

    def augment(images: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        n, c, h, w = images.shape
        dy = torch.randint(0, 2 * pad + 1, (n,), generator=gen)
        dx = torch.randint(0, 2 * pad + 1, (n,), generator=gen)
        rows = dy[:, None] + torch.arange(h)
        cols = dx[:, None] + torch.arange(w)
        if flip:
            cols = torch.where((torch.rand(n, generator=gen) < 0.5)[:, None], cols.flip(1), cols)
        dev = images.device
        padded = F.pad(images, (pad, pad, pad, pad))
        return padded[torch.arange(n, device=dev)[:, None, None, None], torch.arange(c, device=dev)[None, :, None, None],
                      rows.to(dev)[:, None, :, None], cols.to(dev)[:, None, None, :]]

    return augment


def prepare_tensors(dataset, resolution: int, device: torch.device) -> Batch:
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


def channel_stats(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and std of uint8 images (on a sample), shaped (1, C, 1, 1) in [0, 255] units."""
    sample = images[:4096].float()
    mean = sample.mean(dim=(0, 2, 3))
    std = sample.std(dim=(0, 2, 3)).clamp_min(1.0)
    return mean.view(1, -1, 1, 1), std.view(1, -1, 1, 1)


@dataclass
class TrainData:
    """The three splits of a full training run, ready for the loop, and what describes them."""

    train: BatchSource
    val: Iterable[Batch]
    test: Iterable[Batch]
    num_classes: int
    in_channels: int
    mean: torch.Tensor              # (1, C, 1, 1), [0, 255] units: the input normalisation
    std: torch.Tensor
    sizes: dict[str, int]           # images per split
    classes: list[str] | None = None  # class names in label order (a tree's folders, or the data set's names)
    skipped: tuple[str, ...] = ()   # lines of the unreadable images left out (``skip_bad_images``)


STATS_FILES = 1024  # images of a streamed tree that give the normalisation


def training_data(config, device: torch.device) -> TrainData:
    """``config``'s data set (a :class:`~predictors.training.recipe.TrainConfig`) as loop inputs: Fashion-MNIST,
    MNIST, CIFAR and synthetic held in memory at the training resolution, an ImageFolder tree streamed.
    Training batches are augmented when ``config.augment`` (crop; flip too for RGB data)."""
    spec = config.dataset_spec()
    if config.dataset == "imagefolder":
        tree = stream_imagefolder(spec, config.workers)
        if tree.test is None:
            raise DatasetError(f"{config.data_dir}: no test split (nas train needs {config.data_dir}/train/<class>/ "
                               f"and {config.data_dir}/test/<class>/ or {config.data_dir}/val/<class>/)")
        mean, std = channel_stats(sample_images(tree.train, STATS_FILES, config.seed))
        augment = _augment(config, tree.in_channels)
        data = TrainData(FileBatches(tree.train, config.batch_size, config.workers, device, augment),
                         FileChunks(tree.val, config.batch_size, config.workers, device),
                         FileChunks(tree.test, config.batch_size, config.workers, device),
                         tree.num_classes, tree.in_channels, mean.to(device), std.to(device),
                         {"train": len(tree.train), "val": len(tree.val), "test": len(tree.test)}, tree.classes,
                         tree.skipped)
    else:
        loaded = load_dataset(spec)
        if loaded.test is None:
            raise DatasetError(f"dataset {config.dataset}: no test split")
        train_x, train_y = prepare_tensors(loaded.train, config.resolution, device)
        mean, std = channel_stats(train_x)
        data = TrainData(TensorBatches(train_x, train_y, config.batch_size, _augment(config, loaded.in_channels)),
                         TensorChunks(*prepare_tensors(loaded.val, config.resolution, device)),
                         TensorChunks(*prepare_tensors(loaded.test, config.resolution, device)),
                         loaded.num_classes, loaded.in_channels, mean, std,
                         {"train": len(loaded.train), "val": len(loaded.val), "test": len(loaded.test)},
                         class_names(config.dataset, loaded.num_classes), loaded.skipped)
    if data.sizes["train"] < 2 or data.sizes["val"] < 1 or data.sizes["test"] < 1:
        raise DatasetError(f"dataset {config.dataset}: need at least 2 training, 1 validation and 1 test image "
                           f"(have {data.sizes['train']}, {data.sizes['val']}, {data.sizes['test']})")
    return data


def _augment(config, in_channels: int) -> Augment | None:
    return crop_flip(max(1, config.resolution // 8), flip=in_channels == 3) if config.augment else None
