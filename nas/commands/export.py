"""``nas export GENOTYPE --format onnx|torchscript|timm``: a deployable file or a timm arch_def."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from nas.commands.show import add_scaling_arguments

FORMATS = ("onnx", "torchscript", "timm")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export", help="export a genotype to ONNX, TorchScript or a timm arch_def",
        description="Export a genotype (path, YAML text or zoo:NAME). onnx/torchscript: write the network "
                    "(dynamic batch axis), run it on random input and check it against PyTorch (max abs "
                    "difference <= 1e-4). timm: print timm EfficientNet-builder code (arch_def + settings) "
                    "for mbconv genotypes, and the 'nas import timm' line that reads it back.")
    p.add_argument("genotype", help="genotype file, YAML text or zoo:NAME")
    p.add_argument("--format", required=True, choices=FORMATS, help="what to write")
    p.add_argument("-o", "--output", help="output file (required for onnx/torchscript; timm: default stdout, "
                                          ".json writes the JSON form)")
    add_scaling_arguments(p)
    p.add_argument("--weights", help="state dict of a trained run (torch.load, weights_only=True); the best.pt of "
                                     "a nas train folder, with its genotype.yaml, also puts the preprocessing "
                                     "(resolution, mean, std, classes) into the ONNX file's metadata")
    p.add_argument("--exporter", choices=("legacy", "dynamo"), default="legacy",
                   help="ONNX exporter: legacy TorchScript-based (default, fast) or torch.export-based")
    p.add_argument("--opset", type=int, help="ONNX opset (default 17 legacy, 18 dynamo)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from nas.commands.show import load_scaled
    from searchspace.errors import NasError
    from searchspace.textio import check_output_file

    if args.output:
        check_output_file(args.output, "-o/--output")
    genotype = load_scaled(args)
    if args.format == "timm":
        if args.weights:
            raise NasError("--weights: only onnx and torchscript exports carry weights")
        return _run_timm(args, genotype)
    if not args.output:
        raise NasError(f"-o/--output: required for --format {args.format}")
    from nas.export.onnx import export_onnx, export_torchscript, prepare_model

    model = prepare_model(genotype, weights=args.weights)
    if args.format == "onnx":
        from nas.training.load import onnx_metadata, trained_here

        trained = trained_here(args.weights, genotype) if args.weights else None
        metadata = onnx_metadata(trained, genotype) if trained is not None else None  # its preprocessing
        result = export_onnx(model, args.output, exporter=args.exporter, opset=args.opset, metadata=metadata)
    else:
        result = export_torchscript(model, args.output)
    if args.json:
        print(json.dumps(result.to_dict()))
    else:
        print(f"wrote {result.path} ({result.format}, {result.method}, input Nx{result.in_channels}x"
              f"{result.resolution}x{result.resolution}, N dynamic): max abs difference {result.max_abs_diff:.3g} "
              f"vs PyTorch (outputs up to {result.max_abs_output:.3g}; tolerance 1e-4), {result.seconds:.1f} s")
    return 0


def _run_timm(args: argparse.Namespace, genotype) -> int:
    from nas.export.onnx import timm_json, timm_snippet
    from nas.export.timm.convert import genotype_to_timm

    arch = genotype_to_timm(genotype)
    as_json = args.json or (args.output or "").lower().endswith(".json")
    text = json.dumps(timm_json(arch, genotype), indent=None if args.json else 2) + "\n" if as_json \
        else timm_snippet(arch, genotype)
    if args.output:
        path = Path(args.output)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        print(f"wrote {path} (timm {timm_json(arch, genotype)['timm_class']} arch_def of {genotype.name})")
    else:
        print(text, end="")
    return 0
