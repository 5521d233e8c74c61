"""Export a genotype's network: ONNX and TorchScript (checked against PyTorch), timm arch_def text.

ONNX uses the legacy TorchScript-based exporter (``dynamo=False``, opset 17) by default. On this
stack (torch 2.13 CPU, onnx 1.23, onnxruntime 1.32, onnxscript 0.7) both exporters give graphs that
match PyTorch for every block family in the zoo, but the dynamo exporter takes 12-25 s per model
(torch.export tracing, decompositions, onnxscript optimisation) against about 1 s, prints progress
and registry warnings, and needs torch.export-friendly shapes; our networks are static
convolutional graphs, where tracing is exact. ``exporter="dynamo"`` (opset 18) is kept for when
torch drops the legacy path (it warns that it will).

An ONNX file may carry metadata (``metadata``: string entries, e.g. a trained network's preprocessing; read back
by :func:`read_metadata`) and may take other input sizes (``sizes``: height and width become dynamic axes, and
the file is checked against PyTorch at each size).
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from searchspace.errors import NasError
from searchspace.textio import check_output_file
from searchspace.weights import load_weights

if TYPE_CHECKING:
    import torch

    from nas.export.timm.convert import TimmArch
    from searchspace import Genotype, Network

TOLERANCE = 1e-4
CHECK_BATCH = 2  # export with batch 1, check with batch 2: proves the batch axis is dynamic


@dataclass
class ExportResult:
    """Where an export went and how closely the exported graph matches PyTorch."""

    path: str
    format: str
    method: str
    resolution: int
    in_channels: int
    max_abs_diff: float
    max_abs_output: float  # scale of PyTorch's output on the check input, to read the difference against
    seconds: float
    sizes: list[int] | None = None  # input sides checked besides ``resolution`` (height and width dynamic)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _first_line(err: Exception) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def prepare_model(genotype: Any, num_classes: int | None = None, resolution: int | None = None,
                  weights: str | os.PathLike | None = None) -> Network:
    """The network of a genotype (path, text, ``zoo:NAME`` or object), weights loaded, in eval mode."""
    from searchspace import build_model

    model = build_model(genotype, num_classes=num_classes, resolution=resolution)
    if weights is not None:
        load_weights(model, weights)
    return model.eval()


def _inputs(model: Network, batch: int, size: int | None = None) -> torch.Tensor:
    import torch

    in_channels = model.genotype.input["channels"]
    return torch.randn(batch, in_channels, size or model.resolution, size or model.resolution)


def _finish(tmp: Path, path: Path, diff: float, fmt: str) -> None:
    if not diff <= TOLERANCE:  # also catches NaN
        tmp.unlink(missing_ok=True)
        raise NasError(f"{fmt}: the exported graph differs from PyTorch by {diff:.3g} (max abs) on random "
                       f"input, more than {TOLERANCE:g}; nothing written")
    tmp.replace(path)


def _onnx_export(model: Network, x: torch.Tensor, tmp: Path, exporter: str, opset: int,
                 dynamic_size: bool = False) -> None:
    import torch

    names = {"input_names": ["input"], "output_names": ["logits"]}
    axes = {0: "batch", 2: "height", 3: "width"} if dynamic_size else {0: "batch"}
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")  # legacy: deprecation notice; dynamo: pytree/registry chatter
        if exporter == "legacy":
            torch.onnx.export(model, (x,), str(tmp), dynamo=False, opset_version=opset,
                              dynamic_axes={"input": axes, "logits": {0: "batch"}}, **names)
            return
        logger = logging.getLogger("torch.onnx")  # quiet its "torchvision is not installed" notices
        level = logger.level
        logger.setLevel(logging.ERROR)
        try:
            torch.onnx.export(model, (x,), str(tmp), dynamo=True, opset_version=opset, external_data=False,
                              dynamic_shapes=({0: torch.export.Dim("batch")},), verbose=False, **names)
        finally:
            logger.setLevel(level)


def export_onnx(model: Network, path: str | os.PathLike, exporter: str = "legacy", opset: int | None = None,
                metadata: Mapping[str, str] | None = None, sizes: Sequence[int] = ()) -> ExportResult:
    """Write ``model`` as ONNX (dynamic batch axis) and check it in onnxruntime against PyTorch.

    ``metadata``: string entries stored in the file. ``sizes``: other input sides the file must run at (height
    and width become dynamic axes; legacy exporter only); the check runs at each of them too."""
    import torch

    if exporter not in ("legacy", "dynamo"):
        raise NasError(f"exporter: {exporter!r} is not one of legacy, dynamo")
    if sizes and exporter != "legacy":
        raise NasError("sizes: other input sizes need the legacy exporter")
    opset = opset or (17 if exporter == "legacy" else 18)
    path = check_output_file(path, "output")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    start = time.perf_counter()
    model.eval()
    inputs = [_inputs(model, CHECK_BATCH, size) for size in (model.resolution, *sizes)]
    try:
        _onnx_export(model, _inputs(model, 1), tmp, exporter, opset, dynamic_size=bool(sizes))
        outputs = _check_in_onnxruntime(tmp, inputs, metadata)
    except Exception as err:  # exporter, checker or runtime failure: report it in one line
        tmp.unlink(missing_ok=True)
        raise NasError(f"onnx: {exporter} export at opset {opset} failed: {_first_line(err)}") from None
    with torch.no_grad():
        refs = [model(x) for x in inputs]
    diff = max((torch.from_numpy(out) - ref).abs().max().item() for out, ref in zip(outputs, refs, strict=True))
    _finish(tmp, path, diff, "onnx")
    return ExportResult(str(path), "onnx", f"{exporter} exporter, opset {opset}", model.resolution,
                        inputs[0].shape[1], diff, max(ref.abs().max().item() for ref in refs),
                        time.perf_counter() - start, list(sizes) or None)


def _check_in_onnxruntime(path: Path, inputs: list[torch.Tensor], metadata: Mapping[str, str] | None) -> list:
    """Store ``metadata`` in the file, check the graph, and run it in onnxruntime on each input."""
    import onnx
    import onnxruntime

    if metadata:
        graph = onnx.load(str(path))
        onnx.helper.set_model_props(graph, {str(k): str(v) for k, v in metadata.items()})
        onnx.save(graph, str(path))
    onnx.checker.check_model(str(path))
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return [session.run(None, {name: x.numpy()})[0] for x in inputs]


def read_metadata(path: str | os.PathLike) -> dict[str, str]:
    """The metadata entries of an ONNX file; a one-line NasError for a missing or unreadable file."""
    import onnx

    try:
        graph = onnx.load(str(path), load_external_data=False)
    except FileNotFoundError:
        raise NasError(f"{path}: no such ONNX file") from None
    except Exception as err:  # not protobuf, truncated
        raise NasError(f"{path}: not a readable ONNX file ({_first_line(err)})") from None
    return {entry.key: entry.value for entry in graph.metadata_props}


def export_torchscript(model: Network, path: str | os.PathLike) -> ExportResult:
    """Write ``model`` as TorchScript (``torch.jit.script``), reload it and check it against PyTorch."""
    import torch

    path = check_output_file(path, "output")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    start = time.perf_counter()
    model.eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch 2.13 marks torch.jit deprecated; it still works
        try:
            scripted, method = torch.jit.script(model), "torch.jit.script"
        except Exception:  # a module that scripting cannot compile: trace it (same graph, static control flow)
            scripted, method = None, "torch.jit.trace"
        try:
            if scripted is None:
                scripted = torch.jit.trace(model, _inputs(model, 1))
            torch.jit.save(scripted, str(tmp))
            loaded = torch.jit.load(str(tmp))
        except Exception as err:
            tmp.unlink(missing_ok=True)
            raise NasError(f"torchscript: {method} failed: {_first_line(err)}") from None
    x = _inputs(model, CHECK_BATCH)
    with torch.no_grad():
        ref = model(x)
        diff = (loaded(x) - ref).abs().max().item()
    _finish(tmp, path, diff, "torchscript")
    return ExportResult(str(path), "torchscript", method, model.resolution, x.shape[1], diff,
                        ref.abs().max().item(), time.perf_counter() - start)


def import_command(arch: TimmArch) -> str:
    """The ``nas import timm`` command line that turns ``arch`` back into the genotype."""
    from nas.export.timm.grammar import SETTING_PARAMS

    parts = ["nas", "import", "timm", '"' + repr(arch.arch_def) + '"']
    for p in SETTING_PARAMS:
        value = getattr(arch.settings, p.name)
        if value == p.default:
            continue
        flag = "--" + p.name.replace("_", "-")
        parts.extend([flag] if p.kind is bool else [flag, f"{value:g}" if isinstance(value, float) else str(value)])
    return " ".join(parts)


def timm_kwargs(arch: TimmArch, genotype: Genotype) -> dict[str, str]:
    """Constructor arguments of timm's EfficientNet / MobileNetV3 as Python source text."""
    from nas.export.timm.grammar import TIMM_ACT_NAMES
    from searchspace.resolve import resolve

    s, head = arch.settings, resolve(genotype).head
    se = [f"gate_layer={TIMM_ACT_NAMES[s.se_gate]!r}"]
    if s.se_act:
        se.append(f"force_act_layer=get_act_layer({TIMM_ACT_NAMES[s.se_act]!r})")
    if s.se_divisor > 1:
        se.append(f"rd_round_fn=partial(round_channels, divisor={s.se_divisor})")
    kwargs = {"block_args": f"decode_arch_def(arch_def, depth_multiplier={s.depth!r})",
              "stem_size": str(s.stem)}
    if s.model == "efficientnet":
        kwargs.update(stem_kernel_size=str(s.stem_kernel), num_features=str(head["conv"]))
    else:
        kwargs.update(num_features=str(head["hidden"]), head_bias="True", se_from_exp=str(s.se_from_exp))
    kwargs.update(act_layer=f"get_act_layer({TIMM_ACT_NAMES[s.act]!r})",
                  se_layer=f"partial(SqueezeExcite, {', '.join(se)})",
                  round_chs_fn=f"partial(round_channels, multiplier={s.width!r}, divisor={s.divisor})",
                  drop_rate=repr(s.dropout), global_pool=repr(s.pool), num_classes=str(s.num_classes),
                  in_chans=str(s.in_chans))
    return kwargs


def timm_snippet(arch: TimmArch, genotype: Genotype) -> str:
    """Python source that builds the network with timm (``model``), plus the way back."""
    cls, module = (("EfficientNet", "efficientnet") if arch.settings.model == "efficientnet"
                   else ("MobileNetV3", "mobilenetv3"))
    lines = [
        f"# {genotype.name} ({genotype.hash()}) as a timm {cls}; input {arch.settings.in_chans}x"
        f"{genotype.resolution}x{genotype.resolution}",
        "from functools import partial", "",
        "from timm.layers import get_act_layer",
        "from timm.models._efficientnet_blocks import SqueezeExcite",
        "from timm.models._efficientnet_builder import decode_arch_def, round_channels",
        f"from timm.models.{module} import {cls}", "",
        "arch_def = [",
        *[f"    {stage!r}," for stage in arch.arch_def],
        "]",
        f"model = {cls}(",
        *[f"    {k}={v}," for k, v in timm_kwargs(arch, genotype).items()],
        ")",
        "# back to the genotype:",
        f"# {import_command(arch)}",
    ]
    return "\n".join(lines) + "\n"


def timm_json(arch: TimmArch, genotype: Genotype) -> dict[str, Any]:
    """The timm export as plain data (``nas import timm FILE.json`` reads it back)."""
    from nas.export.timm.grammar import settings_to_dict

    return {"name": genotype.name, "hash": genotype.hash(), "arch_def": arch.arch_def,
            "settings": settings_to_dict(arch.settings), "timm_class": "EfficientNet"
            if arch.settings.model == "efficientnet" else "MobileNetV3",
            "timm_kwargs": timm_kwargs(arch, genotype), "import_command": import_command(arch)}
