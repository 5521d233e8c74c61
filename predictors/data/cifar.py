"""CIFAR-10 and CIFAR-100 from their python batches (a directory or its ``cifar-10-batches-py/`` /
``cifar-100-python/``), into uint8 tensors, unpickled by :class:`CifarUnpickler` so a file cannot run code.
"""

from __future__ import annotations

import math
import pickle
from pathlib import Path
from typing import IO, Any

import numpy as np
import torch

from predictors.data.spec import CIFAR_SUBDIRS, DatasetError, Split

try:  # numpy >= 2
    from numpy._core.multiarray import _reconstruct
except ImportError:  # numpy 1.x
    from numpy.core.multiarray import _reconstruct

MAX_ARRAY_BYTES = 4 * 2**30  # a CIFAR-100 training batch holds 150 MiB


class _ArrayType:
    """Stands for ``numpy.ndarray`` in a batch: only an argument of ``_reconstruct``, never called."""


ARRAY_TYPE = _ArrayType()


def _dtype(spec: Any, *args: Any) -> np.dtype:
    """``numpy.dtype`` for plain types only (an object dtype could reference arbitrary values)."""
    if isinstance(spec, bytes):
        spec = spec.decode("latin1")  # Python 2 str under encoding="bytes"
    if not isinstance(spec, (str, np.dtype)):
        raise pickle.UnpicklingError(f"numpy.dtype of {type(spec).__name__} is not allowed here")
    dtype = np.dtype(spec, *args)
    if dtype.hasobject:
        raise pickle.UnpicklingError(f"numpy.dtype {dtype} holds Python objects; not allowed here")
    return dtype


def _array(subtype: Any, shape: Any, dtype: Any) -> np.ndarray:
    """numpy's ``_reconstruct`` for a plain ndarray of at most MAX_ARRAY_BYTES."""
    if subtype is not ARRAY_TYPE:
        raise pickle.UnpicklingError("only numpy.ndarray may be reconstructed")
    dtype = dtype if isinstance(dtype, np.dtype) else _dtype(dtype)
    if dtype.hasobject:
        raise pickle.UnpicklingError(f"numpy.dtype {dtype} holds Python objects; not allowed here")
    if not isinstance(shape, tuple) or not all(isinstance(n, int) and n >= 0 for n in shape):
        raise pickle.UnpicklingError(f"array shape {shape!r} is not a tuple of sizes")
    if math.prod(shape) * dtype.itemsize > MAX_ARRAY_BYTES:
        raise pickle.UnpicklingError(f"array of shape {shape} is larger than {MAX_ARRAY_BYTES / 2**30:g} GiB")
    return _reconstruct(np.ndarray, shape, dtype)


ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"): _array,   # what the published batches name
    ("numpy._core.multiarray", "_reconstruct"): _array,  # the same, as numpy 2 writes it
    ("numpy", "ndarray"): ARRAY_TYPE,
    ("numpy", "dtype"): _dtype,
}


class CifarUnpickler(pickle.Unpickler):
    """An unpickler that resolves only :data:`ALLOWED` globals.

    The CIFAR-10/100 "python version" batches are pickles (written by Python 2's cPickle) of a dict of
    byte strings, lists of ints and byte strings, and one uint8 numpy array. Unpickling such a file with
    :func:`pickle.load` would call any function the file names; :class:`CifarUnpickler` resolves only the
    three globals that hold the array: ``numpy.core.multiarray._reconstruct`` (``numpy._core`` in numpy 2),
    ``numpy.ndarray`` and ``numpy.dtype``, and only for plain (non-object) arrays of bounded size.
    Everything else a file names is refused with :class:`pickle.UnpicklingError` before it is looked up.
    """

    def find_class(self, module: str, name: str) -> Any:
        found = ALLOWED.get((module, name))
        if found is None:
            raise pickle.UnpicklingError(f"refused to load {module}.{name} (a CIFAR batch names only numpy's "
                                         "array reconstruction)")
        return found


def load_batch(f: IO[bytes]) -> Any:
    """Unpickle one CIFAR python batch from a binary file (byte-string keys, as ``encoding="bytes"``)."""
    return CifarUnpickler(f, encoding="bytes").load()


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
