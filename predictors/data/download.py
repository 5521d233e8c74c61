"""Explicit download of Fashion-MNIST and CIFAR-10/100 from their official URLs (only when
``download=True`` is asked for; only files still missing).
"""

from __future__ import annotations

import tarfile
import urllib.request
from pathlib import Path

from predictors.data.spec import CIFAR_SUBDIRS, CIFAR_URLS, FASHION_URL, IDX_FILES, DatasetError


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
