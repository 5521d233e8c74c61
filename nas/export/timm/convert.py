"""Inverted-residual genotypes to timm arch_defs and back, checked block by block.

:func:`genotype_to_timm` refuses (one line naming the field) anything timm's EfficientNet /
MobileNetV3 builders cannot build identically, and anything that would not come back unchanged:
the result of :func:`timm_to_genotype` on its output has the same :meth:`Genotype.hash`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from nas.export.timm.grammar import (
    ACT_CODES,
    Layer,
    TimmArchError,
    TimmBlock,
    TimmSettings,
    check_arch_def,
    compare_layers,
    decode_block,
    encode_block,
    settings_from_dict,
    settings_to_dict,
    timm_layers,
    timm_skip,
)
from searchspace.blocks.base import BlockArgs
from searchspace.blocks.mbconv import PARAMS as MBCONV_PARAMS
from searchspace.blocks.mbconv import expanded_width
from searchspace.errors import GenotypeError
from searchspace.genotype import FORMAT, Genotype
from searchspace.layers import make_divisible, se_channels
from searchspace.resolve import parse_genotype, resolve

SE_FIELDS = ("se_from", "se_divisor", "se_act", "gate")
SE_DEFAULTS = {p.name: p.default for p in MBCONV_PARAMS if p.name in SE_FIELDS}


@dataclass
class TimmArch:
    """A timm arch_def (list of stages of block strings) and the model settings it needs."""

    arch_def: list[list[str]]
    settings: TimmSettings


def _kind(fused: bool, mid: int, in_ch: int, project_act: bool = False) -> str:
    if fused:
        return "cn" if mid == in_ch else "er"
    if mid == in_ch:
        return "dsa" if project_act else "ds"
    return "ir"


def genotype_layers(genotype: Genotype) -> list[list[Layer]]:
    """Our block instances (scaling applied) in the terms of :class:`Layer`."""
    stages: list[list[Layer]] = [[] for _ in genotype.stages]
    for b in resolve(genotype).blocks:
        a = b.args
        mid = expanded_width(a)
        kind = _kind(a["fused"], mid, a.in_ch, a["project_act"])
        hidden = a.out if kind == "cn" else mid
        se = 0
        if a["se"] > 0:
            se = se_channels(a.in_ch if a["se_from"] == "input" else hidden, a["se"], a["se_divisor"])
        stages[b.stage].append(Layer(kind, a.in_ch, a.out, hidden, se, a["se_act"] if se else None,
                                     a["gate"] if se else None, a["kernel"], a.stride, 1, a["act"],
                                     a.stride == 1 and a.in_ch == a.out and a["skip"],
                                     a["project_act"] and kind != "cn", where=b.path))
    return stages


def _ratio(mids: list[int], ins: list[int], path: str) -> float:
    """The shortest e with ``make_divisible(in * e, 8) == mid`` for every repeat of an entry."""
    for decimals in range(4):
        e = round(mids[0] / ins[0], decimals)
        if e > 0 and all(make_divisible(c * e) == m for c, m in zip(ins, mids, strict=True)):
            return e
    raise TimmArchError(f"{path}.mid: {mids[0]} is make_divisible(in * e, 8) for no expansion e over its "
                        f"repeats (inputs {', '.join(map(str, ins))}); split the entry or use expand")


def _settings_of(g: Genotype) -> TimmSettings:
    """The model-level settings of a genotype, or TimmArchError naming what timm cannot take."""
    for i, stage in enumerate(g.stages):
        for j, spec in enumerate(stage):
            if spec.type != "mbconv":
                raise TimmArchError(f"stages[{i}].blocks[{j}].type: {spec.type} cannot be expressed as a timm "
                                    "arch_def; only mbconv")
    stem, head = g.stem, g.head
    if g.stem_type != "conv" or stem["stride"] != 2 or stem["pool"] != "none":
        raise TimmArchError("stem: timm's EfficientNet/MobileNetV3 stem is one stride-2 conv (stem type conv, "
                            "stride 2, pool none)")
    if head["act"] != stem["act"]:
        raise TimmArchError(f"head.act: {head['act']} differs from stem.act {stem['act']}; a timm model has one "
                            "act_layer for stem and head")
    model = "mobilenetv3" if head["hidden"] else "efficientnet"
    if model == "mobilenetv3" and stem["kernel"] != 3:
        raise TimmArchError(f"stem.kernel: {stem['kernel']} cannot be expressed; timm's MobileNetV3 stem is 3x3")
    specs = [(f"stages[{i}].blocks[{j}]", s.params) for i, st in enumerate(g.stages) for j, s in enumerate(st)]
    with_se = [(path, p) for path, p in specs if p["se"] > 0]
    se = {"se_gate": "sigmoid", "se_act": None, "se_from": None, "se_divisor": 1}
    if with_se:
        first = with_se[0][1]
        se_from = first["se_from"]
        if model == "efficientnet" and any(p["se_from"] == "expanded" for _, p in with_se):
            where = next(q for q, p in with_se if p["se_from"] == "expanded")
            raise TimmArchError(f"{where}.se_from: expanded needs timm's MobileNetV3 (a head with hidden > 0); "
                                "EfficientNet measures the SE width from the block input")
        se = {"se_gate": first["gate"], "se_divisor": first["se_divisor"],
              "se_act": None if all(p["se_act"] == p["act"] for _, p in with_se) else first["se_act"],
              "se_from": None if model == "efficientnet" or se_from == "expanded" else se_from}
    with_mid = [path for path, p in specs if p["mid"] is not None]
    if with_mid and len(with_mid) != len(specs):
        where = next(path for path, p in specs if p["mid"] is None)
        raise TimmArchError(f"{where}.mid: null while {with_mid[0]} has a mid; a timm import records either "
                            "every expansion as mid or none (give every block a mid, or none)")
    raw = {"model": model, "stem": stem["out"], "stem_kernel": stem["kernel"], "act": stem["act"],
           "num_features": head["hidden"] or head["conv"], "explicit_mid": bool(with_mid), **se,
           "width": g.scaling["width"], "depth": g.scaling["depth"], "divisor": g.scaling["divisor"],
           "resolution": g.input["resolution"], "scaled_resolution": g.scaling["resolution"],
           "in_chans": g.input["channels"], "num_classes": head["num_classes"], "dropout": head["dropout"],
           "pool": head["pool"]}
    return settings_from_dict(raw)


def genotype_to_timm(genotype: Genotype) -> TimmArch:
    """The timm arch_def and settings of an mbconv genotype (lossless, or TimmArchError)."""
    settings = _settings_of(genotype)
    arch_def: list[list[str]] = []
    in_ch = genotype.stem["out"]
    for i, stage in enumerate(genotype.stages):
        strings = []
        for j, spec in enumerate(stage):
            path, p = f"stages[{i}].blocks[{j}]", spec.params
            if j > 0 and spec.stride != 1:
                raise TimmArchError(f"{path}.stride: {spec.stride} on a block that does not open its stage; "
                                    "timm strides only the first block of a stage (start a new stage here)")
            ins = [in_ch] + [spec.out] * (spec.repeat - 1)
            mids = [expanded_width(BlockArgs(c, spec.out, 1, p)) for c in ins]
            kinds = {_kind(p["fused"], m, c, p["project_act"]) for m, c in zip(mids, ins, strict=True)}
            if len(kinds) > 1:
                raise TimmArchError(f"{path}: its repeats are partly expanded and partly not (inputs "
                                    f"{', '.join(map(str, ins))}); one timm block string cannot say that")
            kind = kinds.pop()
            if p["project_act"] and kind not in ("dsa", "cn"):
                raise TimmArchError(f"{path}.project_act: true has a timm equivalent only on a depthwise-"
                                    f"separable block (dsa: expand 1, not fused); this one is timm's {kind}")
            if kind == "cn" and p["se"] > 0:
                raise TimmArchError(f"{path}.se: a fused block with expansion 1 is timm's cn, which has no SE")
            if p["act"] != settings.act and p["act"] not in ACT_CODES:
                raise TimmArchError(f"{path}.act: {p['act']} has no timm n<act> code (re, r6, hs, sw)")
            expand = None
            if kind in ("ir", "er"):
                expand = p["expand"] if p["mid"] is None else _ratio(mids, ins, path)
            skip = (True if p["skip"] else None) if kind == "cn" else (None if p["skip"] or kind == "dsa" else False)
            block = TimmBlock(kind, spec.repeat, p["kernel"], spec.stride, spec.out, expand, p["se"],
                              None if p["act"] == settings.act else p["act"], skip)
            strings.append(encode_block(block))
            in_ch = spec.out
        arch_def.append(strings)
    if settings.model == "mobilenetv3" and genotype.head["conv"]:
        arch_def.append([f"cn_r1_k1_s1_c{genotype.head['conv']}"])
    arch = TimmArch(arch_def, settings)
    back = timm_to_genotype(arch.arch_def, settings, name=genotype.name, check=False)
    _check_same(genotype, back, arch)
    return arch


def _check_same(genotype: Genotype, back: Genotype, arch: TimmArch) -> None:
    """TimmArchError unless timm builds ``genotype`` and the arch_def reads back to the same hash."""
    stages = _decoded(arch.arch_def)[0][: len(genotype.stages)]
    compare_layers(genotype_layers(genotype), timm_layers(stages, arch.settings), arch.settings.depth)
    _compare_stem_head(genotype, arch.settings)
    if back.hash() != genotype.hash():
        where, ours, theirs = _first_difference(genotype.to_dict(False), back.to_dict(False))
        raise TimmArchError(f"{where}: {ours} would come back as {theirs} from a timm arch_def, which cannot "
                            "carry it")


def _compare_stem_head(genotype: Genotype, settings: TimmSettings) -> None:
    net = resolve(genotype)
    stem = settings.round_channels(settings.stem)
    if stem != net.stem["out"]:
        raise TimmArchError(f"stem.out: {net.stem['out']} here but timm's round_channels gives {stem}")
    if settings.model == "mobilenetv3" and genotype.head["conv"]:
        conv = settings.round_channels(genotype.head["conv"])
        if conv != net.head["conv"]:
            raise TimmArchError(f"head.conv: {net.head['conv']} here but timm's round_channels gives {conv}")


def _first_difference(a: Any, b: Any, path: str = "") -> tuple[str, Any, Any]:
    if isinstance(a, dict) and isinstance(b, dict):
        for key in list(a) + [k for k in b if k not in a]:
            if a.get(key) != b.get(key):
                return _first_difference(a.get(key), b.get(key), f"{path}.{key}" if path else key)
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            if x != y:
                return _first_difference(x, y, f"{path}[{i}]")
    if isinstance(a, list) and isinstance(b, list) and path.endswith("blocks"):
        return path, f"{len(a)} entries", f"{len(b)} entries"
    return path, a, b


def _decoded(arch_def: list[list[str]]) -> tuple[list[list[TimmBlock]], list[list[str]]]:
    """Decoded block strings and their names (``arch_def[i][j] 'text'``) for messages."""
    blocks, names = [], []
    for i, stage in enumerate(check_arch_def(arch_def)):
        row, row_names = [], []
        for j, text in enumerate(stage):
            try:
                row.append(decode_block(text))
            except TimmArchError as err:
                raise TimmArchError(f"arch_def[{i}][{j}] {err}") from None
            row_names.append(f"arch_def[{i}][{j}] {text!r}")
        blocks.append(row)
        names.append(row_names)
    return blocks, names


def _is_head_conv(stage: list[TimmBlock], settings: TimmSettings) -> bool:
    b = stage[0]
    return (len(stage) == 1 and b.kind == "cn" and b.skip is not True and b.kernel == 1 and b.stride == 1
            and b.repeat == 1 and (b.act or settings.act) == settings.act)


def _entries(b: TimmBlock, in_ch: int, settings: TimmSettings) -> list[dict]:
    """Block spec dicts for one block string (split where explicit mid widths differ by repeat)."""
    params: dict[str, Any] = {"kernel": b.kernel, "act": b.act or settings.act, "fused": b.kind in ("er", "cn"),
                              "se": b.se, **SE_DEFAULTS}
    if b.kind == "dsa":
        params["project_act"] = True
    if b.se > 0:
        params.update(se_from="expanded" if settings.se_from_exp else "input", se_divisor=settings.se_divisor,
                      se_act=settings.se_act or params["act"], gate=settings.se_gate)
    ins = [in_ch] + [b.out] * (b.repeat - 1)
    if not timm_skip(b) and any(c == b.out and (r > 0 or b.stride == 1) for r, c in enumerate(ins)):
        params["skip"] = False  # timm gives no residual where mbconv would (noskip, dsa, cn without _skip)
    if not settings.explicit_mid:
        expand = 1.0 if b.kind in ("ds", "dsa", "cn") else b.expand
        return [{"type": "mbconv", "repeat": b.repeat, "out": b.out, "stride": b.stride, **params,
                 "expand": expand}]
    mids = [c if b.kind in ("ds", "dsa", "cn") else make_divisible(c * b.expand) for c in ins]
    entries: list[dict] = []
    for mid in mids:
        if entries and entries[-1]["mid"] == mid:
            entries[-1]["repeat"] += 1
        else:
            entries.append({"type": "mbconv", "repeat": 1, "out": b.out, "stride": 1 if entries else b.stride,
                            **params, "mid": mid})
    return entries


def timm_to_genotype(arch_def: list[list[str]], settings: TimmSettings | dict, name: str = "timm_import",
                     check: bool = True) -> Genotype:
    """The mbconv genotype of a timm arch_def; TimmArchError where it would build a different network."""
    if isinstance(settings, dict):
        settings = settings_from_dict(settings)
    blocks, names = _decoded(arch_def)
    head_conv = 0
    if settings.model == "mobilenetv3" and _is_head_conv(blocks[-1], settings):
        head_conv = blocks[-1][0].out
        blocks, names = blocks[:-1], names[:-1]
    if not blocks:
        raise TimmArchError("arch_def: no stages left besides the head conv")
    stages, in_ch = [], settings.stem
    for stage in blocks:
        entries = []
        for b in stage:
            entries.extend(_entries(b, in_ch, settings))
            in_ch = b.out
        stages.append({"blocks": entries})
    mobile = settings.model == "mobilenetv3"
    raw = {
        "format": FORMAT, "name": name,
        "input": {"channels": settings.in_chans, "resolution": settings.resolution},
        "stem": {"type": "conv", "out": settings.stem, "kernel": settings.stem_kernel, "stride": 2,
                 "act": settings.act, "pool": "none"},
        "stages": stages,
        "head": {"conv": head_conv if mobile else settings.num_features, "hidden": settings.num_features if mobile
                 else 0, "act": settings.act, "pool": settings.pool, "dropout": settings.dropout,
                 "num_classes": settings.num_classes},
        "scaling": {"width": settings.width, "depth": settings.depth, "resolution": settings.scaled_resolution,
                    "divisor": settings.divisor},
        "provenance": {"imported_from": "timm arch_def", "arch_def": check_arch_def(arch_def),
                       "settings": settings_to_dict(settings)},
    }
    try:
        genotype = parse_genotype(raw)
    except GenotypeError as err:
        raise TimmArchError(f"imported genotype: {err}") from None
    if check:
        ours = [[replace(layer, where="") for layer in stage] for stage in genotype_layers(genotype)]
        compare_layers(ours, timm_layers(blocks, settings, names), settings.depth)
        _compare_stem_head(genotype, settings)
    return genotype
