"""Files a user hands us cannot run code: latency model files and CIFAR batches with planted payloads.

Each payload is first shown to work (plain ``pickle.loads`` creates the marker file), then handed to our
loaders, which must refuse it in one line without creating the marker. A genuine CIFAR batch (written
here in the layout of the published Python 2 files) still loads, and a saved latency model predicts
exactly what it predicted before saving.
"""

from __future__ import annotations

import builtins
import io
import json
import os
import pickle
import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest

from nas.cli import main
from predictors.data.load import load_dataset
from predictors.data.spec import DatasetError
from predictors.latency.model import LatencyModel, Sample, _regressor, as_arrays
from searchspace import load_genotype, with_scaling
from searchspace.errors import NasError


class Shell:
    """Unpickling this runs ``touch MARKER`` through os.system."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch '{self.marker}'",)


class Exec:
    """Unpickling this runs Python code (builtins.exec) that writes MARKER."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return builtins.exec, (f"open({str(self.marker)!r}, 'w').write('ran')",)


PAYLOADS = [Shell, Exec]


def planted(payload_cls, marker: Path, wrap=lambda evil: evil, protocol: int = 4) -> bytes:
    """Pickle bytes holding the payload; proven live: plain pickle.loads creates the marker."""
    data = pickle.dumps(wrap(payload_cls(marker)), protocol=protocol)
    pickle.loads(data)
    assert marker.exists(), "the payload must work, or the test proves nothing"
    marker.unlink()
    return data


def one_line(err: Exception) -> str:
    text = str(err)
    assert text and "\n" not in text
    return text


# ---------------------------------------------------------------------------------- latency models


@pytest.mark.parametrize("payload", PAYLOADS, ids=lambda p: p.__name__)
@pytest.mark.parametrize("layout", ["joblib-style pickle", "pickled array in .npz", "pickled .npy"])
def test_latency_model_with_planted_code_is_refused(payload, layout, tmp_path) -> None:
    marker = tmp_path / "MARKER"
    path = tmp_path / "phone.model"
    if layout == "joblib-style pickle":  # what `nas latency fit` used to write
        path.write_bytes(planted(payload, marker, lambda evil: {"kind": "ridge", "regressor": evil}))
    else:
        evil = np.empty(1, dtype=object)
        evil[0] = payload(marker)
        with open(path, "wb") as f:
            if layout == "pickled .npy":
                np.save(f, evil, allow_pickle=True)
            else:
                np.savez(f, header=evil)
        if layout == "pickled .npy":  # numpy would run it if it were allowed to unpickle
            np.load(path, allow_pickle=True)
        else:
            with np.load(path, allow_pickle=True) as archive:
                archive["header"]
        assert marker.exists()
        marker.unlink()
    with pytest.raises(NasError) as info:
        LatencyModel.load(path)
    assert one_line(info.value).startswith(f"model: {path} is not a latency model")
    assert not marker.exists()


def test_latency_cli_refuses_planted_model(tmp_path, capsys) -> None:
    marker = tmp_path / "MARKER"
    path = tmp_path / "phone.model"
    path.write_bytes(planted(Shell, marker))
    code = main(["latency", "zoo:mobilenet_v3_small", "--predict", "--model", str(path), "--json"])
    out, err = capsys.readouterr()
    assert code == 2 and out == "" and not marker.exists()
    assert err.splitlines() == [f"nas latency: error: --model: {path} is not a latency model written by `nas latency "
                                "fit` (not the .npz archive of numbers it writes; an older joblib model must be fitted "
                                "again)"]


def measured_samples() -> list[Sample]:
    """12 distinct networks (MobileNetV3-Small at several widths and resolutions) with a known latency law."""
    base = load_genotype("zoo:mobilenet_v3_small")
    rng = np.random.RandomState(0)
    samples = []
    for width in (0.5, 1.0, 1.25):
        for resolution in (96, 128, 160, 224):
            g = with_scaling(base, width=width, resolution=resolution)
            samples.append(Sample(g, width * (resolution / 100) ** 2 * rng.uniform(0.95, 1.05)))
    return samples


@pytest.fixture(scope="module")
def samples() -> list[Sample]:
    return measured_samples()


@pytest.fixture(scope="module")
def good_model(samples, tmp_path_factory) -> Path:
    """A ridge + boosted trees model file to tamper with."""
    return LatencyModel("gbr").fit(samples[:9]).save(tmp_path_factory.mktemp("model") / "good.model")


@pytest.mark.parametrize("kind", ["ridge", "gbr"])
def test_saved_latency_model_predicts_exactly_the_same(kind, samples, tmp_path) -> None:
    model = LatencyModel(kind).fit(samples[:9])
    path = model.save(tmp_path / "phone.model")
    assert zipfile.is_zipfile(path)  # an .npz archive of numbers + a JSON header, nothing pickled
    with np.load(path, allow_pickle=False) as archive:
        header = json.loads(str(archive["header"]))
        assert all(archive[name].dtype.kind in "iuf" for name in archive.files if name != "header")
    assert header["parts"] == (["linear"] if kind == "ridge" else ["linear", "trees"])
    assert json.loads(Path(f"{path}.json").read_text())["regressor"] == kind
    loaded = LatencyModel.load(path)
    held_out = [s.genotype for s in samples[9:]]
    assert np.array_equal(loaded.predict_many(held_out), model.predict_many(held_out))
    for g in held_out:
        assert loaded.predict_interval(g) == model.predict_interval(g)
    assert loaded.info == model.info and loaded.families == model.families


@pytest.mark.parametrize("kind", ["ridge", "gbr"])
def test_array_form_predicts_what_scikit_learn_predicts(kind) -> None:
    rng = np.random.RandomState(1)
    X = rng.normal(size=(200, 12))
    y = X @ rng.normal(size=12) + np.sin(3 * X[:, 0]) + rng.normal(scale=0.1, size=200)
    fitted = _regressor(kind).fit(X, y)
    arrays = as_arrays(fitted)
    for rows in (X, 3 * rng.normal(size=(300, 12)), X[:1]):
        np.testing.assert_allclose(arrays.predict(rows), fitted.predict(rows), rtol=1e-13, atol=0)


def rewrite_model(src: Path, dst: Path, change) -> None:
    """Copy a saved model with ``change(arrays)`` applied to its named arrays."""
    with np.load(src, allow_pickle=False) as archive:
        arrays = {name: archive[name] for name in archive.files}
    change(arrays)
    with open(dst, "wb") as f:
        np.savez(f, **arrays)


def set_header(arrays, **fields) -> None:
    header = json.loads(str(arrays["header"]))
    header.update(fields)
    arrays["header"] = np.array(json.dumps(header))


@pytest.mark.parametrize("change, detail", [
    (lambda a: a["part1.left"].__setitem__((0, 0), 0), "children or feature are out of range"),  # root -> itself
    (lambda a: a["part1.feature"].__setitem__((0, 0), 999), "children or feature are out of range"),
    (lambda a: a.__setitem__("part0.coef", a["part0.coef"][:3]), "linear.coef has shape (3,)"),
    (lambda a: a.__setitem__("part1.value", np.full_like(a["part1.value"], np.nan)), "part1.value holds a value that is not finite"),
    (lambda a: a.__setitem__("part0.mean", a["part0.mean"].astype(str)), "part0.mean holds <U"),
    (lambda a: a.pop("part1.threshold"), "part1.threshold is not a file in the archive"),
    (lambda a: set_header(a, format="something-else/1"), "the header does not say format nas-latency-model/1"),
    (lambda a: set_header(a, parts=["linear", "forest"]), "unknown regressor parts ['linear', 'forest']"),
    (lambda a: set_header(a, families=["mbconv"]), "features named"),
    (lambda a: a.__setitem__("header", np.array(b"not json")), "Expecting value"),
], ids=["tree cycle", "feature index", "coef shape", "nan leaf", "text array", "missing array", "format",
        "unknown part", "feature count", "header not json"])
def test_crafted_model_arrays_are_refused(change, detail, good_model, tmp_path) -> None:
    LatencyModel.load(good_model)
    bad = tmp_path / "bad.model"
    rewrite_model(good_model, bad, change)
    with pytest.raises(NasError) as info:
        LatencyModel.load(bad)
    assert one_line(info.value).startswith(f"model: {bad} is not a latency model")
    assert detail in str(info.value)


def test_model_path_errors(good_model, tmp_path) -> None:
    with pytest.raises(NasError, match=r"^model: no such file"):
        LatencyModel.load(tmp_path / "missing.model")
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    with pytest.raises(NasError, match=r"is not a latency model .*not the .npz archive"):
        LatencyModel.load(text)
    with pytest.raises(NasError, match=r"^latency model: .* is a directory"):
        LatencyModel.load(good_model).save(tmp_path)


# ------------------------------------------------------------------------------------ CIFAR batches


class Py2Pickler(pickle._Pickler):
    """Writes protocol 2 as Python 2's cPickle wrote the published CIFAR batches: byte strings (and
    str) as SHORT_BINSTRING / BINSTRING, numpy's reconstructor under its numpy 1 name."""

    dispatch = dict(pickle._Pickler.dispatch)

    def save_py2_str(self, obj) -> None:
        raw = obj.encode("latin1") if isinstance(obj, str) else obj
        n = len(raw)
        self.write((pickle.SHORT_BINSTRING + bytes([n]) if n < 256 else pickle.BINSTRING + struct.pack("<i", n)) + raw)
        self.memoize(obj)

    dispatch[bytes] = save_py2_str
    dispatch[str] = save_py2_str


def py2_pickle(obj) -> bytes:
    buf = io.BytesIO()
    Py2Pickler(buf, protocol=2).dump(obj)
    return buf.getvalue().replace(b"cnumpy._core.multiarray\n_reconstruct\n", b"cnumpy.core.multiarray\n_reconstruct\n")


def cifar_batch(n: int, label_key: bytes, num_classes: int, start: int = 0) -> dict:
    data = ((np.arange(n * 3072) + start) % 251).astype(np.uint8).reshape(n, 3072)
    return {b"batch_label": b"training batch 1 of 5", label_key: [(i + start) % num_classes for i in range(n)],
            b"data": data, b"filenames": [f"img_{i}.png".encode() for i in range(n)]}


def write_cifar10(root: Path, batch: bytes | None = None) -> None:
    root.mkdir(parents=True, exist_ok=True)
    for i in range(1, 6):
        (root / f"data_batch_{i}").write_bytes(batch if batch is not None and i == 1 else
                                                py2_pickle(cifar_batch(3, b"labels", 10, start=i)))
    (root / "test_batch").write_bytes(py2_pickle(cifar_batch(4, b"labels", 10)))


def test_cifar_batches_in_the_published_layout_load(tmp_path) -> None:
    raw = py2_pickle(cifar_batch(3, b"labels", 10, start=1))
    assert b"cnumpy.core.multiarray\n_reconstruct\n" in raw and b"U\x04data" in raw  # Python 2 cPickle layout
    write_cifar10(tmp_path / "cifar-10-batches-py")
    data = load_dataset("cifar10", tmp_path, val_fraction=0)
    x, y = data.train.tensors
    assert x.shape == (15, 3, 32, 32) and data.val.tensors[0].shape == (4, 3, 32, 32)
    expected = cifar_batch(3, b"labels", 10, start=1)
    assert np.array_equal(x[:3].reshape(3, 3072).numpy(), expected[b"data"])
    assert y[:3].tolist() == expected[b"labels"] == [1, 2, 3]
    root = tmp_path / "c100"
    root.mkdir()
    (root / "train").write_bytes(py2_pickle(cifar_batch(5, b"fine_labels", 100)))
    (root / "test").write_bytes(py2_pickle(cifar_batch(2, b"fine_labels", 100)))
    assert len(load_dataset("cifar100", root, val_fraction=0).train) == 5


def evil_in_array(evil):
    array = np.empty(1, dtype=object)
    array[0] = evil
    return {b"data": array, b"labels": [0]}


@pytest.mark.parametrize("payload", PAYLOADS, ids=lambda p: p.__name__)
@pytest.mark.parametrize("wrap", [
    lambda evil: evil,
    lambda evil: {**cifar_batch(3, b"labels", 10), b"extra": evil},
    evil_in_array,
    lambda evil: {b"data": evil, b"labels": [0]},
], ids=["bare payload", "beside real data", "inside an object array", "as the data"])
@pytest.mark.parametrize("protocol", [2, 4])
def test_cifar_batch_with_planted_code_is_refused(payload, wrap, protocol, tmp_path) -> None:
    marker = tmp_path / "MARKER"
    root = tmp_path / "cifar"
    write_cifar10(root, batch=planted(payload, marker, wrap, protocol))
    with pytest.raises(DatasetError) as info:
        load_dataset("cifar10", root)
    assert one_line(info.value).startswith(f"{root / 'data_batch_1'}: not a CIFAR python batch")
    assert not marker.exists()


@pytest.mark.parametrize("stream, refused", [
    (b"\x80\x02cnumpy\nndarray\nK\x01\x85U\x02u1\x86R.", "not callable"),  # numpy.ndarray called directly
    (b"\x80\x02cnumpy.core.multiarray\n_reconstruct\ncnumpy\ndtype\nK\x00\x85U\x01b\x87R.",
     "only numpy.ndarray may be reconstructed"),
    (b"\x80\x02cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\nJ\x00\xca\x9a;J\x00\xca\x9a;\x86U\x02u8\x87R.",
     "larger than 4 GiB"),  # 8e18 bytes asked for before any data is read
    (b"\x80\x02cnumpy\ndtype\nU\x02O8\x85R.", "holds Python objects"),
    (b"\x80\x02cbuiltins\ngetattr\n.", "refused to load builtins.getattr"),
    (b"\x80\x02cnumpy\nload\n.", "refused to load numpy.load"),
], ids=["ndarray call", "reconstruct a dtype", "huge shape", "object dtype", "getattr", "numpy.load"])
def test_cifar_unpickler_allows_only_plain_arrays(stream, refused, tmp_path) -> None:
    root = tmp_path / "cifar"
    write_cifar10(root, batch=stream)
    with pytest.raises(DatasetError) as info:
        load_dataset("cifar10", root)
    assert refused in one_line(info.value)
