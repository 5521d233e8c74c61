"""Fashion-MNIST and MNIST from their idx files (gzipped or plain), into uint8 tensors; the default
folder of fashion-mnist is /usr/share/datasets/fashion-mnist/ (Debian package dataset-fashion-mnist).
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import torch

from predictors.data.spec import IDX_FILES, DatasetError, Split


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
