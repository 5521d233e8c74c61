"""What an image goes through before a trained network sees it, kept with the network (as timm's pretrained
config): the input size, the per-channel normalisation and the class names.

:class:`Preprocess` is derived from a ``nas train`` run's ``result.json`` (its ``resolution``, ``normalize`` and
``classes``), travels in the ONNX file's metadata (:meth:`Preprocess.to_metadata`, one string per key) and
turns an image into the network's input (:meth:`Preprocess.__call__`) the way the training read its images:
the shorter side resized to the resolution (bilinear), a centre crop, ``(pixel - mean) / std`` per channel in
pixel units (0-255), and grey data repeated to the network's input channels.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from searchspace.errors import NasError

if TYPE_CHECKING:
    import torch

FORMAT = "nas-preprocess/1"
METADATA_KEYS = ("resolution", "channels", "grey", "mean", "std", "classes", "interpolation")


@dataclass
class Preprocess:
    """How an image becomes the network's input, and what its outputs name."""

    resolution: int                 # side of the square input, in pixels
    channels: int                   # the network's input channels
    grey: bool                      # trained on grey images: an image is made grey, then repeated to ``channels``
    mean: list[float]               # per input channel, in pixel units (0-255): x = (pixel - mean) / std
    std: list[float]
    classes: list[str]              # output i is classes[i]
    interpolation: str = "bilinear"  # of the resize of the shorter side to ``resolution``, before a centre crop

    @classmethod
    def from_result(cls, result: Mapping[str, Any], channels: int) -> Preprocess:
        """From a ``nas train`` ``result.json`` and the trained network's input channels."""
        mean, std = list(result["normalize"]["mean"]), list(result["normalize"]["std"])
        grey = len(mean) == 1
        classes = result.get("classes") or [str(i) for i in range(int(result["num_classes"]))]
        return cls(int(result["resolution"]), channels, grey, mean * channels if grey else mean,
                   std * channels if grey else std, [str(c) for c in classes])

    def to_metadata(self) -> dict[str, str]:
        """The ONNX metadata entries (strings: numbers, and JSON for lists and booleans)."""
        values = asdict(self)
        return {"preprocess": FORMAT, **{k: v if isinstance(v, str) else json.dumps(v) for k, v in values.items()}}

    @classmethod
    def from_metadata(cls, metadata: Mapping[str, str], where: str = "metadata") -> Preprocess:
        """Back from :meth:`to_metadata`'s entries; NasError naming what is missing or malformed."""
        if metadata.get("preprocess") != FORMAT:
            raise NasError(f"{where}: no preprocessing recorded (expected the entry preprocess: {FORMAT}, which "
                           "nas run and nas export of a trained run write)")
        try:
            values = {k: metadata[k] if k == "interpolation" else json.loads(metadata[k]) for k in METADATA_KEYS}
            return cls(**values)
        except (KeyError, TypeError, ValueError) as err:
            raise NasError(f"{where}: malformed preprocessing entry ({type(err).__name__}: {err})") from None

    def timm_config(self) -> dict[str, Any]:
        """The same as a timm ``pretrained_cfg`` (mean and std in 0-1 units; ``crop_pct`` 1: a centre crop of the
        resized image), for ``timm.data.resolve_data_config`` and friends."""
        return {"input_size": (self.channels, self.resolution, self.resolution), "interpolation": self.interpolation,
                "mean": tuple(m / 255 for m in self.mean), "std": tuple(s / 255 for s in self.std),
                "crop_pct": 1.0, "crop_mode": "center", "num_classes": len(self.classes),
                "label_names": list(self.classes)}

    def __call__(self, image: Any) -> torch.Tensor:
        """The network's input for one image (a file path or a Pillow image): float ``(1, channels, resolution,
        resolution)``."""
        import torch
        from PIL import Image

        from predictors.data.imagefolder import fit_image

        if isinstance(image, (str, os.PathLike)):
            with Image.open(image) as img:
                return self(img.copy())
        pixels = torch.from_numpy(fit_image(image.convert("L" if self.grey else "RGB"), self.resolution)).float()
        x = pixels.unsqueeze(0).expand(self.channels, -1, -1) if pixels.dim() == 2 else pixels.permute(2, 0, 1)
        mean = torch.tensor(self.mean).view(-1, 1, 1)
        std = torch.tensor(self.std).view(-1, 1, 1)
        return ((x - mean) / std).unsqueeze(0).contiguous()
