"""ONNX and TorchScript export: files that match PyTorch, dynamic batch, weights, one-line errors."""

from __future__ import annotations

import json

import pytest
import torch
from block_helpers import randomize_bn

from nas.cli import main
from searchspace import build_model, zoo_names

torch.set_num_threads(1)
RESOLUTION = 64
# one network per block family that is in the zoo (mbconv, basic, shuffle)
NETWORKS = [n for n in ("mobilenet_v3_large", "resnet18", "shufflenet_v2_x0_5") if n in zoo_names()]


def trained_like(name: str, num_classes: int | None = None) -> torch.nn.Module:
    """A zoo network whose BN statistics and classifier are random, so outputs are O(1), not ~0."""
    torch.manual_seed(0)
    return randomize_bn(build_model(f"zoo:{name}", num_classes=num_classes, resolution=RESOLUTION))


def run_cli(argv: list[str], capsys: pytest.CaptureFixture) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("name", NETWORKS)
def test_onnx_export_matches_pytorch(name: str, tmp_path, capsys) -> None:
    import onnxruntime

    model = trained_like(name)
    torch.save(model.state_dict(), tmp_path / "w.pt")
    path = tmp_path / "m.onnx"
    code, out, err = run_cli(["export", f"zoo:{name}", "--format", "onnx", "-o", str(path), "--resolution",
                              str(RESOLUTION), "--weights", str(tmp_path / "w.pt"), "--json"], capsys)
    assert code == 0, err
    result = json.loads(out)
    assert result["max_abs_diff"] <= 1e-4 and result["max_abs_output"] > 0.1
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = torch.randn(3, 3, RESOLUTION, RESOLUTION)  # exported with batch 1: the batch axis is dynamic
    (y,) = session.run(None, {"input": x.numpy()})
    with torch.no_grad():
        assert (torch.from_numpy(y) - model(x)).abs().max().item() <= 1e-4


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # torch 2.13 deprecates torch.jit.load
@pytest.mark.parametrize("name", NETWORKS)
def test_torchscript_export_matches_pytorch(name: str, tmp_path, capsys) -> None:
    model = trained_like(name, num_classes=10)
    torch.save({"state_dict": model.state_dict()}, tmp_path / "w.pt")
    path = tmp_path / "m.pt"
    code, out, err = run_cli(["export", f"zoo:{name}", "--format", "torchscript", "-o", str(path),
                              "--resolution", str(RESOLUTION), "--num-classes", "10",
                              "--weights", str(tmp_path / "w.pt")], capsys)
    assert code == 0, err
    assert "max abs difference" in out
    loaded = torch.jit.load(str(path))
    x = torch.randn(3, 3, RESOLUTION, RESOLUTION)
    with torch.no_grad():
        y = loaded(x)
        assert y.shape == (3, 10)
        assert (y - model(x)).abs().max().item() <= 1e-4


def one_line_error(code: int, out: str, err: str) -> str:
    assert code == 2
    assert out == ""
    assert len(err.strip().splitlines()) == 1, err
    return err


def test_mismatching_weights_give_one_line(tmp_path, capsys) -> None:
    torch.save(build_model("zoo:mobilenet_v2", num_classes=10).state_dict(), tmp_path / "w.pt")
    err = one_line_error(*run_cli(["export", "zoo:mobilenet_v2", "--format", "onnx", "-o", str(tmp_path / "m.onnx"),
                                   "--weights", str(tmp_path / "w.pt")], capsys))
    assert "head.classifier.weight: (10, 1280) in the file, (1000, 1280) here" in err
    assert "pass --num-classes 10" in err
    torch.save(build_model("zoo:mnasnet0_5").state_dict(), tmp_path / "other.pt")
    err = one_line_error(*run_cli(["export", "zoo:mobilenet_v2", "--format", "torchscript", "-o",
                                   str(tmp_path / "m.pt"), "--weights", str(tmp_path / "other.pt")], capsys))
    assert "does not match the network" in err
    (tmp_path / "junk.pt").write_text("not a checkpoint")
    err = one_line_error(*run_cli(["export", "zoo:mobilenet_v2", "--format", "torchscript", "-o",
                                   str(tmp_path / "m.pt"), "--weights", str(tmp_path / "junk.pt")], capsys))
    assert "cannot read" in err
    assert not (tmp_path / "m.onnx").exists() and not (tmp_path / "m.pt").exists()


def test_missing_output_and_bad_genotype(capsys) -> None:
    assert "-o/--output: required" in one_line_error(*run_cli(["export", "zoo:mobilenet_v2", "--format",
                                                                "onnx"], capsys))
    assert "unknown zoo name" in one_line_error(*run_cli(["export", "zoo:nope", "--format", "onnx", "-o", "x"],
                                                         capsys))


def test_failed_check_writes_nothing(tmp_path, monkeypatch, capsys) -> None:
    import nas.export.onnx

    monkeypatch.setattr(nas.export.onnx, "TOLERANCE", -1.0)  # every difference is too large
    err = one_line_error(*run_cli(["export", "zoo:mnasnet0_5", "--format", "torchscript", "-o",
                                   str(tmp_path / "m.pt"), "--resolution", "32"], capsys))
    assert "differs from PyTorch" in err and "nothing written" in err
    assert list(tmp_path.iterdir()) == []
