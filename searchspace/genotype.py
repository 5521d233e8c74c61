"""The genotype: a versioned, human-editable description of a whole network.

``format: nas-genotype/1``. Parsing validates every field and reports the first error with its
path (``stages[3].blocks[0].kernel: 4 is not one of 3, 5, 7``); :func:`Genotype.to_dict` writes the
canonical form back (defaults filled in), and :func:`Genotype.hash` is a content hash of the network
(independent of key order, formatting, ``name`` and ``provenance``).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from searchspace.blocks import FAMILIES
from searchspace.errors import GenotypeError
from searchspace.params import MAX_CHANNELS, Param, canonical_params, check_mapping, check_params, fmt_choices
from searchspace.stems import HEAD_PARAMS, STEM_PARAMS, check_head

FORMAT = "nas-genotype/1"
TOP_FIELDS = ("format", "name", "input", "stem", "stages", "head", "scaling", "provenance")
BLOCK_COMMON = ("type", "repeat", "out", "stride")

INPUT_PARAMS = (
    Param("channels", int, 3, "input image channels", low=1, high=MAX_CHANNELS),
    Param("resolution", int, 224, "input resolution the network is designed for", low=8, high=4096),
)
SCALING_PARAMS = (
    Param("width", float, 1.0, "channel multiplier (applied through make_divisible)", low=0.05, high=16.0),
    Param("depth", float, 1.0, "repeat multiplier (ceil per block entry)", low=0.05, high=16.0),
    Param("resolution", int, None, "input resolution of this variant (null: input.resolution)",
          low=8, high=4096, nullable=True),
    Param("divisor", int, 8, "channel divisor for width scaling", choices=(1, 2, 4, 8, 16)),
)
REPEAT = Param("repeat", int, 1, "how many times the block is stacked", low=1, high=64)
OUT = Param("out", int, None, "output channels", low=1, high=MAX_CHANNELS)


@dataclass
class BlockSpec:
    """One entry of a stage: ``repeat`` blocks of one type; the first has ``stride``."""

    type: str
    out: int
    stride: int = 1
    repeat: int = 1
    params: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        params = canonical_params(self.params, FAMILIES[self.type].entry_params(self.params, self.type))
        return {"type": self.type, "repeat": self.repeat, "out": self.out, "stride": self.stride, **params}


@dataclass
class Genotype:
    """A whole network: input, stem, stages of block specs, head, scaling, provenance."""

    stages: list[list[BlockSpec]]
    stem_type: str = "conv"
    stem: dict[str, Any] = field(default_factory=dict)
    head: dict[str, Any] = field(default_factory=dict)
    input: dict[str, Any] = field(default_factory=dict)
    scaling: dict[str, Any] = field(default_factory=dict)
    name: str = "unnamed"
    provenance: dict[str, Any] = field(default_factory=dict)

    @property
    def resolution(self) -> int:
        """The input resolution this variant runs at."""
        return self.scaling.get("resolution") or self.input["resolution"]

    def to_dict(self, with_provenance: bool = True) -> dict[str, Any]:
        """The canonical plain-data form (every field, defaults filled in; see ``Param.omit_default``)."""
        out: dict[str, Any] = {
            "format": FORMAT,
            "name": self.name,
            "input": dict(self.input),
            "stem": {"type": self.stem_type, **canonical_params(self.stem, STEM_PARAMS[self.stem_type])},
            "stages": [{"blocks": [b.to_dict() for b in stage]} for stage in self.stages],
            "head": canonical_params(self.head, HEAD_PARAMS),
            "scaling": dict(self.scaling),
        }
        if with_provenance and self.provenance:
            out["provenance"] = self.provenance
        return out

    def hash(self) -> str:
        """Content hash of the network (12 hex digits); ignores name and provenance."""
        body = self.to_dict(with_provenance=False)
        del body["name"]
        text = json.dumps(body, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:12]

    def num_blocks(self) -> int:
        return sum(b.repeat for stage in self.stages for b in stage)


def parse_fields(raw: Any) -> Genotype:
    """Validate every field of plain data (from YAML or JSON) and return a :class:`Genotype`.

    Raises GenotypeError naming the first bad field. Shapes (channels and strides across blocks) are
    not checked here: :func:`searchspace.resolve.parse_genotype` adds that and is what callers use.
    """
    raw = check_mapping(raw, "genotype")
    for key in raw:
        if key not in TOP_FIELDS:
            raise GenotypeError(str(key), f"unknown field; allowed fields are {', '.join(TOP_FIELDS)}")
    fmt = raw.get("format")
    if fmt != FORMAT:
        shown = "missing" if fmt is None else f"{fmt!r} is not supported"
        raise GenotypeError("format", f"{shown}; expected {FORMAT}")
    name = raw.get("name", "unnamed")
    if not isinstance(name, str) or not name:
        raise GenotypeError("name", f"{name!r} is not a non-empty string")
    for key in ("stem", "stages", "head"):
        if key not in raw:
            raise GenotypeError(key, "missing required field")
    inp = check_params(check_mapping(raw.get("input", {}), "input"), INPUT_PARAMS, "input")
    scaling = check_params(check_mapping(raw.get("scaling", {}), "scaling"), SCALING_PARAMS, "scaling")
    stem_type, stem = _parse_stem(raw["stem"])
    stages = _parse_stages(raw["stages"])
    head = check_params(check_mapping(raw["head"], "head"), HEAD_PARAMS, "head")
    check_head(head)
    provenance = raw.get("provenance", {}) or {}
    check_mapping(provenance, "provenance")
    return Genotype(stages=stages, stem_type=stem_type, stem=stem, head=head, input=inp,
                    scaling=scaling, name=name, provenance=provenance)


def _parse_stem(raw: Any) -> tuple[str, dict]:
    raw = check_mapping(raw, "stem")
    stem_type = raw.get("type")
    if not isinstance(stem_type, str) or stem_type not in STEM_PARAMS:
        raise GenotypeError("stem.type", f"{_show(stem_type)} is not one of {fmt_choices(tuple(STEM_PARAMS))}")
    return stem_type, check_params(raw, STEM_PARAMS[stem_type], "stem", reserved=("type",))


def _parse_stages(raw: Any) -> list[list[BlockSpec]]:
    if not isinstance(raw, list) or not raw:
        raise GenotypeError("stages", "expected a non-empty list of stages")
    stages = []
    for i, stage in enumerate(raw):
        path = f"stages[{i}]"
        stage = check_mapping(stage, path)
        for key in stage:
            if key != "blocks":
                raise GenotypeError(f"{path}.{key}", "unknown field; allowed fields are blocks")
        blocks = stage.get("blocks")
        if not isinstance(blocks, list) or not blocks:
            raise GenotypeError(f"{path}.blocks", "expected a non-empty list of blocks")
        stages.append([parse_block(b, f"{path}.blocks[{j}]") for j, b in enumerate(blocks)])
    return stages


def parse_block(raw: Any, path: str) -> BlockSpec:
    """Validate one block spec (``type``, ``repeat``, ``out``, ``stride`` + the family's params)."""
    raw = check_mapping(raw, path)
    block_type = raw.get("type")
    if not isinstance(block_type, str) or block_type not in FAMILIES:
        raise GenotypeError(f"{path}.type", f"{_show(block_type)} is not one of {fmt_choices(tuple(FAMILIES))}")
    family = FAMILIES[block_type]
    if "out" not in raw:
        raise GenotypeError(f"{path}.out", "missing required field")
    stride_param = Param("stride", int, 1, "stride of the first block", choices=family.strides)
    repeat = REPEAT.check(raw.get("repeat", 1), f"{path}.repeat")
    out = OUT.check(raw["out"], f"{path}.out")
    stride = stride_param.check(raw.get("stride", 1), f"{path}.stride")
    params = check_params(raw, family.entry_params(raw, path), path, reserved=BLOCK_COMMON)
    return BlockSpec(type=block_type, out=out, stride=stride, repeat=repeat, params=params)


def _show(value: Any) -> str:
    return "missing" if value is None else repr(value) if not isinstance(value, str) else value
