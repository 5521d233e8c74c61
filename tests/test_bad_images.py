"""An ImageFolder tree with one unreadable image among many: without skip_bad_images the run stops with one
line naming the file; with it, the image is left out, listed in bad_images.txt and counted (nas train, whose
tree streams from disk, and nas search, whose proxy data is read into memory)."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
import yaml

import nas
from nas.cli import main
from nas.config import load_config
from nas.search.run import search
from predictors.data.spec import DatasetError
from tests.search_helpers import FakeCost, FakeTrainer, tiny_overrides
from tests.test_train import TINY, write_tree

HINT = "; --skip-bad-images (--proxy-skip-bad-images in a search) skips and lists such files"


def tree_with_a_broken_image(root: Path) -> Path:
    """24 training and 6 test images (red cats, blue dogs) and one PNG cut off mid-file, as a scrape leaves them."""
    from PIL import Image

    write_tree(root)
    png = io.BytesIO()
    Image.new("RGB", (20, 18), (0, 0, 255)).save(png, "PNG")
    bad = root / "train" / "dog" / "broken.png"
    bad.write_bytes(png.getvalue()[:60])
    return bad


def test_without_the_flag_a_training_stops_naming_the_file(tmp_path, capsys):
    bad = tree_with_a_broken_image(tmp_path / "tree")
    genotype = tmp_path / "tiny.yaml"
    genotype.write_text(yaml.safe_dump(TINY))
    code = main(["train", str(genotype), "--data", str(tmp_path / "tree"), "--resolution", "8", "--epochs", "1",
                 "--batch-size", "4", "--workers", "0", "--threads", "1", "--num-classes", "2", "--quiet",
                 "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and len(err.splitlines()) == 1, err
    assert err.startswith(f"nas train: error: {bad}: cannot read image (") and err.endswith(f"{HINT}\n")


def test_with_the_flag_a_training_skips_lists_and_counts_it(tmp_path):
    bad = tree_with_a_broken_image(tmp_path / "tree")
    out = tmp_path / "out"
    with pytest.warns(UserWarning, match=rf"skipped 1 unreadable image \(skip_bad_images\); listed in {out}/bad_images"):
        result = nas.train(TINY, data=str(tmp_path / "tree"), out=str(out), resolution=8, epochs=1, batch_size=4,
                           workers=2, threads=1, num_classes=2, val_fraction=0.25, skip_bad_images=True)
    assert result.skipped_images == 1 and result.images == {"train": 18, "val": 6, "test": 6}
    listed = (out / "bad_images.txt").read_text().splitlines()
    assert len(listed) == 1 and listed[0].startswith(f"{bad}: cannot read image (") and HINT not in listed[0]


def _search(tmp_path: Path, name: str, **extra):
    overrides = tiny_overrides(tmp_path, name, trials=1, finalists=1, **{
        "proxy.dataset": "imagefolder", "proxy.data_dir": str(tmp_path / "tree"), "proxy.subset": None,
        "proxy.val_subset": None, "proxy.val_fraction": 0.25, **extra})
    return search(load_config(overrides=overrides), quiet=True, cost_model=FakeCost(), trainer=FakeTrainer())


def test_a_search_stops_before_any_trial_or_skips_and_lists_it(tmp_path):
    bad = tree_with_a_broken_image(tmp_path / "tree")
    with pytest.raises(DatasetError, match=f"^{bad}: cannot read image"):
        _search(tmp_path, "strict")
    assert not (tmp_path / "runs" / "strict").exists()  # refused before the run folder is made
    with pytest.warns(UserWarning, match=r"skipped 1 unreadable image"):
        summary = _search(tmp_path, "skips", **{"proxy.skip_bad_images": True})
    assert summary.completed == 1
    listed = (tmp_path / "runs" / "skips" / "bad_images.txt").read_text().splitlines()
    assert len(listed) == 1 and listed[0].startswith(f"{bad}: cannot read image (")
