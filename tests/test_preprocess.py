"""Preprocess: derived from a nas train result.json, through ONNX metadata and back, and applied to an image
(values computed by hand)."""

from __future__ import annotations

import pytest
import torch
from PIL import Image

from nas.training.preprocess import Preprocess
from searchspace import NasError

GREY_RESULT = {"resolution": 4, "normalize": {"mean": [10.0], "std": [2.0]}, "num_classes": 2, "classes": None}


def test_grey_data_for_an_rgb_network():
    pre = Preprocess.from_result(GREY_RESULT, channels=3)
    assert pre == Preprocess(4, 3, True, [10.0, 10.0, 10.0], [2.0, 2.0, 2.0], ["0", "1"])
    flat = pre(Image.new("L", (8, 6), 30))  # shorter side 6 -> 4, centre crop: every pixel 30
    assert flat.shape == (1, 3, 4, 4) and torch.equal(flat, torch.full((1, 3, 4, 4), 10.0))  # (30 - 10) / 2
    colour = pre(Image.new("RGB", (4, 4), (30, 60, 90)))  # made grey: 0.299*30 + 0.587*60 + 0.114*90 = 54.45 -> 54
    assert torch.equal(colour, torch.full((1, 3, 4, 4), 22.0))  # (54 - 10) / 2
    cfg = pre.timm_config()
    assert cfg["input_size"] == (3, 4, 4) and cfg["mean"] == (10 / 255,) * 3 and cfg["label_names"] == ["0", "1"]


def test_rgb_data_per_channel(tmp_path):
    result = {"resolution": 2, "normalize": {"mean": [10.0, 20.0, 30.0], "std": [1.0, 2.0, 5.0]}, "num_classes": 2,
              "classes": ["cat", "dog"]}
    pre = Preprocess.from_result(result, channels=3)
    assert not pre.grey and pre.classes == ["cat", "dog"]
    Image.new("RGB", (2, 2), (11, 24, 40)).save(tmp_path / "image.png")
    x = pre(tmp_path / "image.png")  # a file path works like an image
    assert x[0, :, 0, 0].tolist() == [1.0, 2.0, 2.0]  # (11-10)/1, (24-20)/2, (40-30)/5


def test_metadata_round_trip_and_refusals():
    pre = Preprocess.from_result(GREY_RESULT, channels=3)
    meta = pre.to_metadata()
    assert all(isinstance(v, str) for v in meta.values())
    assert (meta["preprocess"], meta["grey"], meta["mean"], meta["interpolation"]) == (
        "nas-preprocess/1", "true", "[10.0, 10.0, 10.0]", "bilinear")
    assert Preprocess.from_metadata(meta) == pre
    with pytest.raises(NasError, match="m.onnx: no preprocessing recorded"):
        Preprocess.from_metadata({}, "m.onnx")
    with pytest.raises(NasError, match="malformed preprocessing entry"):
        Preprocess.from_metadata({**meta, "mean": "[1,"})
