"""Data loading for proxy training, on tiny files the tests write themselves."""

from __future__ import annotations

import gzip
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from predictors.data.idx import read_idx
from predictors.data.load import load_dataset
from predictors.data.spec import DatasetError, DatasetSpec
from predictors.data.split import stratified_indices
from predictors.data.synthetic import make_synthetic
from searchspace import NasError


def write_idx(path: Path, array: np.ndarray, compress: bool = True) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    raw = header + array.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(raw) if compress else raw)


def write_mnist_dir(root: Path, n_train: int = 40, n_test: int = 20, compress: bool = True,
                    dotted: bool = False) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    root.mkdir(parents=True, exist_ok=True)
    train = rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8)
    labels = np.arange(n_train) % 10
    suffix = ".gz" if compress else ""
    sep = "." if dotted else "-"
    write_idx(root / f"train-images{sep}idx3-ubyte{suffix}", train, compress)
    write_idx(root / f"train-labels{sep}idx1-ubyte{suffix}", labels, compress)
    write_idx(root / f"t10k-images{sep}idx3-ubyte{suffix}", train[:n_test], compress)
    write_idx(root / f"t10k-labels{sep}idx1-ubyte{suffix}", labels[:n_test], compress)
    return train, labels


def test_fashion_mnist_idx_gz(tmp_path):
    images, labels = write_mnist_dir(tmp_path)
    data = load_dataset("fashion-mnist", tmp_path, val_fraction=0.25)
    assert (data.num_classes, data.in_channels) == (10, 1)
    train_x, train_y = data.train.tensors
    val_x, val_y = data.val.tensors
    assert train_x.dtype == torch.uint8 and train_x.shape == (30, 1, 28, 28) and val_x.shape == (10, 1, 28, 28)
    assert train_y.dtype == torch.int64
    assert torch.bincount(val_y).tolist() == [1] * 10  # stratified hold-out
    # hold-out and training images partition the original training split
    assert sorted(torch.cat([train_y, val_y]).tolist()) == sorted(labels.tolist())
    first = train_x[0, 0].numpy()
    assert any((images[k] == first).all() and labels[k] == train_y[0] for k in range(40))


def test_val_fraction_zero_uses_test_split(tmp_path):
    images, _ = write_mnist_dir(tmp_path)
    data = load_dataset("fashion-mnist", tmp_path, val_fraction=0)
    assert len(data.train) == 40 and len(data.val) == 20
    assert torch.equal(data.val.tensors[0][:, 0], torch.from_numpy(images[:20]))


def test_mnist_style_plain_files(tmp_path):
    write_mnist_dir(tmp_path / "plain", compress=False)
    write_mnist_dir(tmp_path / "dotted", compress=False, dotted=True)
    for sub in ("plain", "dotted"):
        data = load_dataset("mnist", tmp_path / sub, val_fraction=0)
        assert data.train.tensors[0].shape == (40, 1, 28, 28)


def test_idx_bad_magic_names_path(tmp_path):
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(b"\x12\x34\x56\x78" + bytes(100)))
    with pytest.raises(DatasetError) as info:
        read_idx(path)
    message = str(info.value)
    assert "\n" not in message and str(path) in message and "00000803" in message


def test_idx_truncated_and_missing(tmp_path):
    write_mnist_dir(tmp_path)
    bad = tmp_path / "train-images-idx3-ubyte.gz"
    bad.write_bytes(gzip.compress(bytes([0, 0, 8, 3]) + (40).to_bytes(4, "big") + (28).to_bytes(4, "big")
                                  + (28).to_bytes(4, "big") + bytes(10)))
    with pytest.raises(NasError, match="idx data has 10 bytes"):
        load_dataset("fashion-mnist", tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").unlink()
    write_mnist_dir(tmp_path / "again")
    (tmp_path / "again" / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DatasetError, match="t10k-labels-idx1-ubyte.gz: missing"):
        load_dataset("fashion-mnist", tmp_path / "again")
    with pytest.raises(DatasetError, match="no such fashion-mnist directory"):
        load_dataset("fashion-mnist", tmp_path / "nowhere")


def test_labels_count_mismatch(tmp_path):
    write_mnist_dir(tmp_path)
    write_idx(tmp_path / "train-labels-idx1-ubyte.gz", np.zeros(7, dtype=np.uint8))
    with pytest.raises(DatasetError, match="expected 40 labels"):
        load_dataset("fashion-mnist", tmp_path)


def write_cifar_batch(path: Path, n: int, label_key: bytes, num_classes: int, start: int = 0) -> np.ndarray:
    data = (np.arange(n * 3072) + start).astype(np.uint8).reshape(n, 3072)
    with path.open("wb") as f:
        pickle.dump({b"data": data, label_key: [i % num_classes for i in range(n)]}, f)
    return data


def test_cifar10_batches(tmp_path):
    root = tmp_path / "cifar-10-batches-py"
    root.mkdir()
    first = write_cifar_batch(root / "data_batch_1", 4, b"labels", 10)
    for i in range(2, 6):
        write_cifar_batch(root / f"data_batch_{i}", 4, b"labels", 10, start=i)
    write_cifar_batch(root / "test_batch", 6, b"labels", 10)
    data = load_dataset("cifar10", tmp_path, val_fraction=0)  # finds the cifar-10-batches-py subfolder
    x, y = data.train.tensors
    assert x.shape == (20, 3, 32, 32) and data.val.tensors[0].shape == (6, 3, 32, 32)
    assert (data.num_classes, data.in_channels) == (10, 3)
    # rows are R plane, G plane, B plane of 32x32
    assert torch.equal(x[0, 1].flatten(), torch.from_numpy(first[0, 1024:2048]))
    assert y[:4].tolist() == [0, 1, 2, 3]


def test_cifar100_fine_labels(tmp_path):
    write_cifar_batch(tmp_path / "train", 10, b"fine_labels", 100)
    write_cifar_batch(tmp_path / "test", 5, b"fine_labels", 100)
    data = load_dataset("cifar100", tmp_path, val_fraction=0)
    assert data.num_classes == 100 and len(data.train) == 10 and len(data.val) == 5


def test_cifar_bad_and_missing_files(tmp_path):
    (tmp_path / "data_batch_1").write_bytes(b"not a pickle")
    with pytest.raises(DatasetError) as info:
        load_dataset("cifar10", tmp_path)
    assert str(tmp_path / "data_batch_1") in str(info.value) and "\n" not in str(info.value)
    write_cifar_batch(tmp_path / "data_batch_1", 2, b"labels", 10)
    with pytest.raises(DatasetError, match="data_batch_2: missing"):
        load_dataset("cifar10", tmp_path)
    with pytest.raises(DatasetError, match="give the directory"):
        load_dataset("cifar10")


def write_png(path: Path, size: tuple[int, int], colour, mode: str = "RGB") -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, colour).save(path)


def test_imagefolder_train_val(tmp_path):
    for split, n in (("train", 3), ("val", 1)):
        for cls, colour in (("cat", (255, 0, 0)), ("dog", (0, 0, 255))):
            for i in range(n):
                write_png(tmp_path / split / cls / f"{i}.png", (20 + i, 12), colour)
    data = load_dataset("imagefolder", tmp_path, val_fraction=0, image_size=8)
    x, y = data.train.tensors
    assert x.shape == (6, 3, 8, 8) and data.val.tensors[0].shape == (2, 3, 8, 8)
    assert (data.num_classes, data.in_channels) == (2, 3)
    cat = x[y == 0][0]
    assert cat[0].min() == 255 and cat[2].max() == 0  # red images of class 0 ("cat", sorted first)


def test_imagefolder_single_tree_grey(tmp_path):
    for cls, value in (("a", 10), ("b", 200)):
        for i in range(5):
            write_png(tmp_path / cls / f"{i}.png", (16, 16), value, mode="L")
    data = load_dataset("imagefolder", tmp_path, val_fraction=0.2, image_size=8)
    assert data.in_channels == 1 and len(data.train) == 8 and len(data.val) == 2
    assert sorted(data.val.tensors[1].tolist()) == [0, 1]


def test_imagefolder_errors(tmp_path):
    write_png(tmp_path / "a" / "0.png", (8, 8), (1, 2, 3))
    (tmp_path / "a" / "1.png").write_bytes(b"garbage")
    with pytest.raises(DatasetError) as info:
        load_dataset("imagefolder", tmp_path, val_fraction=0.5)
    assert str(tmp_path / "a" / "1.png") in str(info.value)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="no class folders"):
        load_dataset("imagefolder", tmp_path / "empty")


def test_synthetic_is_seeded():
    a = load_dataset("synthetic", seed=1, image_size=16)
    b = load_dataset(DatasetSpec("synthetic", seed=1, image_size=16))
    c = make_synthetic(num_train=100, num_test=10, size=16, seed=2)
    assert a is b  # cached per spec
    assert a.train.tensors[0].shape[1:] == (3, 16, 16) and a.num_classes == 10
    d = make_synthetic(num_train=100, num_test=10, size=16, seed=2)
    assert torch.equal(c[0][0], d[0][0]) and torch.equal(c[1][1], d[1][1])
    e = make_synthetic(num_train=100, num_test=10, size=16, seed=3)
    assert not torch.equal(c[0][0], e[0][0])


def test_subsets_are_stratified_and_seeded(tmp_path):
    labels = torch.tensor([0] * 60 + [1] * 30 + [2] * 10)
    idx = stratified_indices(labels, 20, seed=5)
    assert torch.bincount(labels[idx]).tolist() == [12, 6, 2]
    assert torch.equal(idx, stratified_indices(labels, 20, seed=5))
    assert not torch.equal(idx, stratified_indices(labels, 20, seed=6))
    data = load_dataset("synthetic", image_size=8, subset=100, val_subset=50)
    assert len(data.train) == 100 and len(data.val) == 50
    assert torch.bincount(data.train.tensors[1]).tolist() == [10] * 10


def test_bad_spec():
    with pytest.raises(DatasetError, match="'imagenet' is not one of"):
        load_dataset("imagenet")
    with pytest.raises(DatasetError, match="val_fraction"):
        load_dataset("synthetic", val_fraction=1.5)
    with pytest.raises(DatasetError, match="subset: 0"):
        load_dataset("synthetic", subset=0)
