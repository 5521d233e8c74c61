"""A trained network back from its files, ready for an image: ``nas.load(run_dir)``.

A ``nas train`` folder holds ``genotype.yaml``, ``best.pt`` and ``result.json``; a ``nas run`` folder holds one
in its ``train/`` folder. :func:`load` rebuilds the network with its best weights and attaches its
preprocessing (:class:`~nas.training.preprocess.Preprocess`: ``model.preprocess``, and the timm-style
``model.pretrained_cfg``); :func:`load_preprocess` reads the preprocessing alone, also from an ONNX file's
metadata, which :func:`onnx_metadata` composes.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nas.training.outputs import BEST, GENOTYPE_FILE, RESULT
from nas.training.preprocess import Preprocess
from searchspace.errors import NasError
from searchspace.textio import load_json, read_text

if TYPE_CHECKING:
    from searchspace import Genotype, Network

TRAINED = "train"  # the folder of a ``nas run`` that holds its trained network


def trained_folder(path: str | os.PathLike) -> Path:
    """The ``nas train`` folder at ``path``, or in the ``nas run`` folder at ``path``."""
    path = Path(path)
    for folder in (path, path / TRAINED):
        if (folder / RESULT).is_file():
            return folder
    raise NasError(f"run: {str(path)!r} holds no trained network (a nas train folder with {RESULT}, or a nas run "
                   f"folder with {TRAINED}/{RESULT})")


def read_result(folder: str | os.PathLike) -> dict[str, Any]:
    """The ``result.json`` of a ``nas train`` folder, as plain data."""
    path = Path(folder) / RESULT
    result = load_json(read_text(path, "result", "the result.json of nas train"), str(path))
    if not isinstance(result, dict) or not {"resolution", "normalize", "num_classes"} <= result.keys():
        raise NasError(f"{path}: not the result.json of nas train (resolution, normalize and num_classes missing)")
    return result


def load(run: str | os.PathLike, device: str = "cpu") -> Network:
    """The trained network of a ``nas train`` or ``nas run`` folder, with its best weights, in eval mode, on
    ``device``; ``model.preprocess(image)`` makes its input from an image file or a Pillow image, and
    ``model.preprocess.classes`` names its outputs."""
    from searchspace import build_model

    folder = trained_folder(run)
    model = build_model(folder / GENOTYPE_FILE, weights=folder / BEST).eval().to(device)
    model.preprocess = Preprocess.from_result(read_result(folder), model.genotype.input["channels"])
    model.pretrained_cfg = model.preprocess.timm_config()
    return model


def onnx_metadata(folder: str | os.PathLike, trained: Genotype) -> dict[str, str]:
    """The ONNX metadata of the network trained in ``folder`` (``trained``: its genotype): its preprocessing, its
    genotype's name and hash, its test accuracy."""
    result = read_result(folder)
    return {**Preprocess.from_result(result, trained.input["channels"]).to_metadata(), "genotype": trained.name,
            "genotype_hash": trained.hash(), "test_accuracy": f"{float(result['test_accuracy']):.6f}"}


def trained_here(weights: str | os.PathLike, genotype: Genotype) -> Path | None:
    """The ``nas train`` folder ``weights`` come from, when ``genotype`` is the network trained there (None
    otherwise: other weights, or the genotype at another size)."""
    from searchspace import load_genotype

    folder = Path(weights).parent
    if not (folder / RESULT).is_file() or not (folder / GENOTYPE_FILE).is_file():
        return None
    return folder if load_genotype(folder / GENOTYPE_FILE).hash() == genotype.hash() else None


def load_preprocess(path: str | os.PathLike) -> Preprocess:
    """The preprocessing of a trained network: from an ONNX file's metadata, or a ``nas train`` / ``nas run``
    folder."""
    from searchspace import load_genotype

    if Path(path).suffix.lower() == ".onnx":
        from nas.export.onnx import read_metadata

        return Preprocess.from_metadata(read_metadata(path), str(path))
    folder = trained_folder(path)
    channels = load_genotype(folder / GENOTYPE_FILE).input["channels"]
    return Preprocess.from_result(read_result(folder), channels)
