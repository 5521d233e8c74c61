"""Full training (nas.train): the run folder, best.pt as the best epoch, weights that rebuild the network,
resume refusals, streamed ImageFolder trees, augmentation and the progress display. Tiny synthetic data."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
import torch
from rich.console import Console

import nas
from nas.training.progress import TrainProgress
from predictors.data.imagefolder import ImageFiles, load_imagefolder, stream_imagefolder
from predictors.data.load import load_dataset
from predictors.data.spec import DatasetSpec
from predictors.training.batches import crop_flip
from predictors.training.loop import Precision, precision_for
from searchspace import NasError, build_model

TINY = {
    "format": "nas-genotype/1", "name": "tiny", "input": {"channels": 3, "resolution": 16},
    "stem": {"type": "conv", "out": 8, "stride": 1},
    "stages": [{"blocks": [{"type": "mbconv", "out": 16, "stride": 2, "expand": 2.0}]},
               {"blocks": [{"type": "mbconv", "out": 24, "stride": 2, "expand": 2.0}]}],
    "head": {"num_classes": 10, "dropout": 0.1},
}
SMALL = dict(data="synthetic", resolution=16, subset=1024, batch_size=32, epochs=3, threads=1)


def accuracy(model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor, normalize: dict) -> float:
    """Top-1 of a rebuilt network on raw uint8 images, normalised as result.json says (channels_last, as trained)."""
    mean = torch.tensor(normalize["mean"]).view(1, -1, 1, 1)
    std = torch.tensor(normalize["std"]).view(1, -1, 1, 1)
    x = ((images.float() - mean) / std).contiguous(memory_format=torch.channels_last)
    model = model.to(memory_format=torch.channels_last).eval()
    with torch.no_grad():
        return (model(x).argmax(1) == labels).sum().item() / len(labels)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("train") / "tiny"
    return nas.train(TINY, out=str(out), **SMALL), out


def test_run_folder(run):
    result, out = run
    assert sorted(p.name for p in out.iterdir()) == ["best.pt", "curves.png", "genotype.yaml", "last.pt",
                                                     "metrics.csv", "result.json"]
    rows = list(csv.DictReader((out / "metrics.csv").open()))
    assert [r["epoch"] for r in rows] == ["1", "2", "3"]
    assert list(rows[0]) == ["epoch", "train_loss", "val_accuracy", "lr", "seconds"]
    saved = json.loads((out / "result.json").read_text())
    assert saved == json.loads(json.dumps(result.to_dict()))
    assert saved["images"] == {"train": 1024, "val": 200, "test": 500} and saved["epochs"] == 3
    assert saved["params"] == sum(p.numel() for p in build_model(TINY).parameters())
    assert saved["config"]["lr"] == 0.1 and saved["config"]["weight_decay"] == 5e-4  # sgd defaults filled in
    assert saved["genotype_hash"] == nas.load_genotype(out / "genotype.yaml").hash()
    assert (out / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    last = torch.load(out / "last.pt", weights_only=True)
    assert last["format"] == "nas-train/1" and last["loop"]["epoch"] == 3
    assert isinstance(torch.load(out / "best.pt", weights_only=True), dict)


def test_best_pt_is_the_best_epoch_and_gives_the_test_accuracy(run):
    result, out = run
    rows = list(csv.DictReader((out / "metrics.csv").open()))
    vals = [float(r["val_accuracy"]) for r in rows]
    assert result.best_epoch == vals.index(max(vals)) + 1 and result.best_val_accuracy == pytest.approx(max(vals))
    model = nas.build_model(out / "genotype.yaml", weights=out / "best.pt")
    data = load_dataset(DatasetSpec("synthetic", seed=0, subset=1024, val_fraction=0.1, image_size=16))
    assert accuracy(model, *data.val.tensors, result.normalize) == result.best_val_accuracy
    assert accuracy(model, *data.test.tensors, result.normalize) == result.test_accuracy
    assert result.test_accuracy > 0.2  # chance is 0.1


def test_weights_of_a_wider_network_name_the_trained_genotype(run, tmp_path):
    _, out = run
    with pytest.raises(NasError, match="trained as .*genotype.yaml"):
        nas.build_model(TINY, width=2.0, weights=out / "best.pt")
    state = torch.load(out / "last.pt", weights_only=True)["loop"]["model"]
    nas.build_model(out / "genotype.yaml", weights=state)  # a state dict in memory
    nas.build_model(out / "genotype.yaml", weights=out / "last.pt")  # last.pt holds one too


def test_resume_refuses_another_genotype_a_changed_recipe_and_a_corrupt_file(run, tmp_path):
    _, out = run
    wider = {**TINY, "stem": {"type": "conv", "out": 16, "stride": 1}}
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    with pytest.raises(NasError, match="checkpoint of another genotype"):
        nas.train(wider, out=str(out), resume=True, **SMALL)
    with pytest.raises(NasError, match=r"started with epochs=3, this command asks epochs=4"):
        nas.train(TINY, out=str(out), resume=True, **{**SMALL, "epochs": 4})
    with pytest.raises(NasError, match="already holds files; pass --resume"):
        nas.train(TINY, out=str(out), **SMALL)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # nothing written was lost
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "last.pt").write_bytes(before["last.pt"][:500])
    with pytest.raises(NasError, match="last.pt: not a readable checkpoint"):
        nas.train(TINY, out=str(broken), resume=True, **SMALL)


def test_finished_run_resumes_to_the_same_result(run):
    result, out = run
    again = nas.train(TINY, out=str(out), resume=True, **SMALL)
    assert again.test_accuracy == result.test_accuracy and again.best_epoch == result.best_epoch


def test_bad_settings_and_classes():
    with pytest.raises(NasError, match="epochs: 0 is out of range"):
        nas.train(TINY, **{**SMALL, "epochs": 0})
    with pytest.raises(NasError, match="'imagenet' is neither a data set"):
        nas.train(TINY, **{**SMALL, "data": "imagenet"})
    with pytest.raises(NasError, match=r"num_classes: 7 is not the data's number of classes \(synthetic has 10\)"):
        nas.train(TINY, **{**SMALL, "num_classes": 7})
    if not torch.cuda.is_available():
        with pytest.raises(NasError, match="CUDA is not available"):
            nas.train(TINY, **{**SMALL, "device": "cuda"})


def test_mixed_precision_only_on_cuda():
    cpu = precision_for(torch.device("cpu"), amp=True)
    assert cpu == Precision() and cpu.scaler is None


COLOURS = ((250, 20, 20), (20, 20, 250), (20, 250, 20))


def write_tree(root: Path, classes: tuple[str, ...] = ("cat", "dog")) -> None:
    """An ImageFolder tree: one colour per class (red, blue, green), images of slightly different sizes."""
    from PIL import Image

    for split, n in (("train", 12), ("test", 3)):
        for cls, colour in zip(classes, COLOURS, strict=False):
            for i in range(n):
                path = root / split / cls / f"{i}.png"
                path.parent.mkdir(parents=True, exist_ok=True)
                Image.new("RGB", (20 + i, 18), tuple(c + 2 * i for c in colour)).save(path)


def test_imagefolder_streams_from_disk(tmp_path):
    write_tree(tmp_path / "tree")
    tree = stream_imagefolder(DatasetSpec("imagefolder", str(tmp_path / "tree"), val_fraction=0.25, image_size=8))
    assert isinstance(tree.train, ImageFiles) and (len(tree.train), len(tree.val), len(tree.test)) == (18, 6, 6)
    assert tree.classes == ["cat", "dog"] and tree.in_channels == 3
    assert not any(isinstance(v, torch.Tensor) and v.dtype == torch.uint8 for v in vars(tree.train).values())
    (train_x, _), (test_x, test_y), _ = load_imagefolder(tmp_path / "tree", 8)  # read whole, in memory
    streamed = torch.stack([tree.test[i][0] for i in range(len(tree.test))])
    assert torch.equal(streamed, test_x) and tree.test.labels.tolist() == test_y.tolist()
    result = nas.train(TINY, data=str(tmp_path / "tree"), out=str(tmp_path / "out"), resolution=8, epochs=4,
                       batch_size=4, workers=2, val_fraction=0.25, threads=1, num_classes=2, bn_images=18)
    assert result.classes == ["cat", "dog"] and result.images == {"train": 18, "val": 6, "test": 6}
    assert result.test_accuracy == 1.0  # red against blue


def test_head_is_replaced_for_the_data_classes(tmp_path):
    text = io.StringIO()
    progress = TrainProgress(Console(file=text, width=300), quiet=True)
    five = nas.train({**TINY, "head": {"num_classes": 5, "dropout": 0.1}}, out=str(tmp_path / "five"),
                     progress=progress, **{**SMALL, "epochs": 1})
    ten = sum(p.numel() for p in build_model(TINY).parameters())
    # the classifier is Linear(24, classes): 25 parameters per class, 10 classes whatever the genotype said
    assert five.params == ten and five.num_classes == 10 and five.replaced_head == 5
    assert nas.load_genotype(tmp_path / "five" / "genotype.yaml").head["num_classes"] == 10
    assert text.getvalue().splitlines() == [
        "head: the genotype has 5 classes and the data (synthetic) 10: its classifier is replaced by a new one for "
        "10 classes (as timm's create_model(..., num_classes=10))"]
    same = nas.train(TINY, out=str(tmp_path / "same"), **{**SMALL, "epochs": 1, "num_classes": 10})
    assert same.replaced_head is None and same.params == ten  # an explicit choice, equal to the data's


def test_a_zoo_network_trains_on_three_classes(tmp_path):
    write_tree(tmp_path / "tree", ("cat", "dog", "fox"))
    result = nas.train("zoo:mobilenet_v3_small", data=str(tmp_path / "tree"), out=str(tmp_path / "out"),
                       resolution=32, epochs=1, batch_size=4, workers=0, val_fraction=0.25, threads=1, bn_images=0)
    # 2,542,856 parameters with 1000 classes (timm); the classifier Linear(1024, N) has 1,025 per class
    assert result.params == 2_542_856 - 1025 * 1000 + 1025 * 3 == 1_520_931
    assert result.replaced_head == 1000 and result.classes == ["cat", "dog", "fox"]


def test_imagefolder_without_test_split_is_refused(tmp_path):
    write_tree(tmp_path / "tree")
    with pytest.raises(NasError, match="no test split"):
        nas.train(TINY, data=str(tmp_path / "tree" / "train"), out=str(tmp_path / "o"), num_classes=2, **{
            k: v for k, v in SMALL.items() if k != "data"})
    assert not (tmp_path / "o").exists()


def test_crop_flip_takes_crops_of_the_padded_image():
    images = torch.arange(2 * 3 * 6 * 6, dtype=torch.uint8).view(2, 3, 6, 6).repeat(20, 1, 1, 1)
    out = crop_flip(2, flip=True)(images, torch.Generator().manual_seed(0))
    again = crop_flip(2, flip=True)(images, torch.Generator().manual_seed(0))
    assert torch.equal(out, again) and out.shape == images.shape
    padded = torch.nn.functional.pad(images, (2, 2, 2, 2))
    seen = set()
    for i in range(len(images)):
        matches = [(dy, dx, f) for dy in range(5) for dx in range(5) for f in (False, True)
                   if torch.equal(out[i], (lambda c: c.flip(2) if f else c)(padded[i, :, dy:dy + 6, dx:dx + 6]))]
        assert matches, f"image {i} is not a crop of the padded image"
        seen.add(matches[0])
    assert len(seen) > 10 and {f for _, _, f in seen} == {False, True}
    grey = crop_flip(2, flip=False)(images[:, :1], torch.Generator().manual_seed(0))
    assert all(any(torch.equal(grey[i], padded[i, :1, dy:dy + 6, dx:dx + 6]) for dy in range(5) for dx in range(5))
               for i in range(len(images)))


def test_progress_prints_one_line_per_epoch(tmp_path):
    text = io.StringIO()
    progress = TrainProgress(Console(file=text, width=200))
    try:
        nas.train(TINY, out=str(tmp_path / "p"), progress=progress, **{**SMALL, "epochs": 2})
    finally:
        progress.close()
    lines = [line for line in text.getvalue().splitlines() if line.startswith("epoch ")]
    assert len(lines) == 2 and lines[1].startswith("epoch 2/2  train loss ") and "val accuracy" in lines[1]
