"""timm's EfficientNet-builder block strings (``ir_r2_k3_s2_e6_c24_se0.25``) and model settings.

The grammar is timm's ``_decode_block_str``: a block type, then ``_``-separated options in any
order. Supported here (the subset that the ``mbconv`` family can express):

  ir  inverted residual (1x1 expand, kxk depthwise, SE, 1x1 project)      needs r k s e c
  ds  depthwise-separable (kxk depthwise, SE, 1x1 project; expansion 1)  needs r k s c
  dsa ds with an act after the 1x1 project and no residual (MobileNetV1)  needs r k s c
  er  edge residual / Fused-MBConv (kxk expand, SE, 1x1 project)         needs r k s e c
  cn  conv-BN-act (a fused block with expansion 1); ``_skip`` adds the residual

  r repeats, k kernel, s stride, e expansion ratio, c output channels, se SE ratio,
  n activation override (``nre`` relu, ``nr6`` relu6, ``nhs`` hard-swish, ``nsw`` swish),
  ``noskip`` / ``skip`` residual overrides.

:class:`TimmSettings` holds what an arch_def does not carry (stem, head, activation, SE layer,
multipliers); :func:`timm_layers` replays timm's builder arithmetic (channel rounding, depth
distribution, SE widths) without importing timm, so conversions can be checked block by block.
"""

from __future__ import annotations

import ast
import math
import re
from dataclasses import dataclass, field, fields

from searchspace.errors import NasError
from searchspace.layers import ACTIVATIONS, GATES, make_divisible
from searchspace.params import MAX_CHANNELS, MAX_CLASSES, Param, check_params
from searchspace.settings import declared, setting

KINDS = ("ir", "ds", "dsa", "er", "cn")
OTHER_TIMM_KINDS = {"uir": "universal inverted residual", "mha": "multi-head attention",
                    "mqa": "multi-query attention"}
ACT_CODES = {"relu": "re", "relu6": "r6", "hswish": "hs", "swish": "sw"}
CODE_ACTS = {code: act for act, code in ACT_CODES.items()}
TIMM_ACT_NAMES = {"relu": "relu", "relu6": "relu6", "hswish": "hard_swish", "swish": "swish",
                  "leaky_relu": "leaky_relu", "identity": "identity", "sigmoid": "sigmoid", "hsigmoid": "hard_sigmoid"}
ALIASES = {"hard_swish": "hswish", "silu": "swish", "hard_sigmoid": "hsigmoid"}
OPTION_NAMES = {"r": "repeats", "k": "kernel", "s": "stride", "e": "expansion", "c": "channels", "se": "se ratio"}
REQUIRED = {"ir": "rksec", "ds": "rksc", "dsa": "rksc", "er": "rksec", "cn": "rksc"}


class TimmArchError(NasError):
    """A block string or arch_def that cannot be read, or a genotype timm cannot express."""


@dataclass
class TimmBlock:
    """One block string: ``repeat`` blocks of one kind (the first with ``stride``)."""

    kind: str
    repeat: int
    kernel: int
    stride: int
    out: int
    expand: float | None = None
    se: float = 0.0
    act: str | None = None  # our activation name; None: the model's act_layer
    skip: bool | None = None  # True: _skip, False: _noskip, None: timm's default for the kind


def _number(text: str, kind: type, block: str, key: str) -> int | float:
    try:
        return kind(text)
    except ValueError:
        what = "an integer" if kind is int else "a number"
        raise TimmArchError(f"{block!r}: option {key}{text} is not {what}") from None


def decode_block(text: str) -> TimmBlock:
    """Parse one block string (timm's grammar; options timm ignores for a kind are ignored)."""
    if not isinstance(text, str) or not text:
        raise TimmArchError(f"{text!r}: a block string must be a non-empty string")
    kind, *ops = text.split("_")
    if kind in OTHER_TIMM_KINDS:
        raise TimmArchError(f"{text!r}: {kind} ({OTHER_TIMM_KINDS[kind]}) has no mbconv equivalent; "
                            f"supported: {', '.join(KINDS)}")
    if kind not in KINDS:
        raise TimmArchError(f"{text!r}: unknown block type {kind!r}; supported: {', '.join(KINDS)}")
    options: dict[str, str] = {}
    act, skip = None, None
    for op in ops:
        if op in ("skip", "noskip"):
            skip = op == "skip"
        elif op.startswith("n"):
            if op[1:] not in CODE_ACTS:
                raise TimmArchError(f"{text!r}: unknown activation {op!r}; use one of "
                                    f"{', '.join('n' + c for c in CODE_ACTS)}")
            act = CODE_ACTS[op[1:]]
        else:
            match = re.fullmatch(r"(\D*)(\d.*)", op)  # timm: the key is everything before the first digit
            key, value = match.groups() if match else (op, "")
            if key not in OPTION_NAMES or not value:
                raise TimmArchError(f"{text!r}: option {op!r} is not supported; mbconv maps only "
                                    f"{', '.join(OPTION_NAMES)}, n<act>, skip and noskip")
            options[key] = value
    for key in REQUIRED[kind]:
        if key not in options:
            raise TimmArchError(f"{text!r}: missing option {key} ({OPTION_NAMES[key]}); {kind} needs "
                                f"{', '.join(REQUIRED[kind])}")
    block = TimmBlock(
        kind=kind,
        repeat=int(_number(options["r"], int, text, "r")),
        kernel=int(_number(options["k"], int, text, "k")),
        stride=int(_number(options["s"], int, text, "s")),
        out=int(_number(options["c"], int, text, "c")),
        expand=float(_number(options["e"], float, text, "e")) if kind in ("ir", "er") else None,
        se=float(_number(options.get("se", "0"), float, text, "se")),
        act=act,
        skip=skip,
    )
    if kind == "cn" and block.se > 0:
        raise TimmArchError(f"{text!r}: timm's cn block has no SE (it ignores se); drop the option")
    if block.repeat < 1 or block.out < 1 or block.stride not in (1, 2):
        raise TimmArchError(f"{text!r}: needs r >= 1, c >= 1 and s 1 or 2 (timm's builder asserts s in 1, 2)")
    return block


def _num(value: float) -> str:
    """Shortest text that reads back as exactly ``value`` (no exponent)."""
    if float(value).is_integer():
        return str(int(value))
    text = repr(float(value))
    return text if "e" not in text else f"{value:.17f}".rstrip("0")


def encode_block(block: TimmBlock) -> str:
    """The block string of ``block`` in timm's usual option order."""
    parts = [block.kind, f"r{block.repeat}", f"k{block.kernel}", f"s{block.stride}"]
    if block.expand is not None:
        parts.append(f"e{_num(block.expand)}")
    parts.append(f"c{block.out}")
    if block.se > 0:
        parts.append(f"se{_num(block.se)}")
    if block.act is not None:
        parts.append("n" + ACT_CODES[block.act])
    if block.skip is not None:
        parts.append("skip" if block.skip else "noskip")
    return "_".join(parts)


def parse_arch_def(text: str) -> list[list[str]]:
    """An arch_def from Python/JSON literal text: a list of stages, each a list of block strings."""
    try:
        value = ast.literal_eval(text.strip())
    except (ValueError, SyntaxError, RecursionError, MemoryError):  # also: nested too deeply
        raise TimmArchError("arch_def: not a Python/JSON list literal such as "
                            "\"[['ds_r1_k3_s1_c16'], ['ir_r2_k3_s2_e6_c24']]\"") from None
    return check_arch_def(value)


def check_arch_def(value: object) -> list[list[str]]:
    """Raise TimmArchError unless ``value`` is a non-empty list of non-empty lists of strings."""
    if not isinstance(value, (list, tuple)) or not value:
        raise TimmArchError("arch_def: expected a non-empty list of stages (lists of block strings)")
    for i, stage in enumerate(value):
        if not isinstance(stage, (list, tuple)) or not stage or not all(isinstance(b, str) for b in stage):
            raise TimmArchError(f"arch_def[{i}]: expected a non-empty list of block strings, got {stage!r}")
    return [list(stage) for stage in value]


@dataclass
class TimmSettings:
    """What a timm model takes besides the arch_def (channel counts before width scaling); each field
    is declared once here, and the validator and ``nas import timm``'s flags read it."""

    model: str = setting("efficientnet", "timm class: efficientnet (1x1 conv-BN-act head before pooling) or "
                         "mobilenetv3 (pool, then 1x1 conv with bias + act: our head.hidden)",
                         choices=("efficientnet", "mobilenetv3"))
    stem: int = setting(32, "stem_size: stem conv width (before width scaling)", low=1, high=MAX_CHANNELS)
    stem_kernel: int = setting(3, "stem conv kernel (EfficientNet's stem_kernel_size)", choices=(1, 3, 5, 7))
    num_features: int = setting(1280, "efficientnet: head conv width (0 = none); mobilenetv3: width of the "
                                "conv after pooling (our head.hidden); before width scaling", low=0, high=MAX_CHANNELS)
    act: str = setting("relu", "act_layer: stem, head and every block without an n<act> option",
                       choices=ACTIVATIONS)
    se_gate: str = setting("sigmoid", "SE gate_layer", choices=GATES)
    se_act: str | None = setting(None, "SE force_act_layer (null: the block's own activation)",
                                 choices=ACTIVATIONS)
    se_from: str | None = setting(None, "SE width from the block input (EfficientNet) or the expanded width "
                                  "(MobileNetV3 se_from_exp); null: the class default", choices=("input", "expanded"))
    se_divisor: int = setting(1, "SE rd_round_fn: 1 = round(), 4 or 8 = round_channels(divisor)", choices=(1, 4, 8))
    explicit_mid: bool = setting(False, "record expansion as explicit mid widths (MobileNetV3-style genotypes) "
                                 "instead of expand ratios")
    width: float = setting(1.0, "channel_multiplier (round_channels)", low=0.05, high=16.0)
    depth: float = setting(1.0, "depth_multiplier (decode_arch_def, ceil)", low=0.05, high=16.0)
    divisor: int = setting(8, "channel divisor of round_channels", choices=(1, 2, 4, 8, 16))
    resolution: int = setting(224, "input resolution (input.resolution)", low=8, high=4096)
    scaled_resolution: int | None = setting(None, "resolution of this variant (scaling.resolution)",
                                            low=8, high=4096)
    in_chans: int = setting(3, "input channels", low=1, high=MAX_CHANNELS)
    num_classes: int = setting(1000, "classifier outputs", low=1, high=MAX_CLASSES)
    dropout: float = setting(0.0, "drop_rate before the classifier", low=0.0, high=0.99)
    pool: str = setting("avg", "global_pool", choices=("avg", "max"))

    @property
    def se_from_exp(self) -> bool:
        return (self.se_from or ("expanded" if self.model == "mobilenetv3" else "input")) == "expanded"

    def round_channels(self, channels: int) -> int:
        """timm's ``round_channels(c, multiplier=width, divisor=divisor)`` (rounds even at 1.0)."""
        return make_divisible(channels * self.width, self.divisor)


SETTING_KEYS = declared(TimmSettings)
SETTING_PARAMS: tuple[Param, ...] = tuple(key.param for key in SETTING_KEYS.values())


def settings_from_dict(raw: dict) -> TimmSettings:
    """Validated settings from plain data (timm activation names such as hard_swish accepted)."""
    raw = {k: ALIASES.get(v, v) if isinstance(v, str) else v for k, v in raw.items()}
    settings = TimmSettings(**check_params(raw, SETTING_PARAMS, "settings"))
    if settings.model == "efficientnet" and settings.se_from == "expanded":
        raise TimmArchError("settings.se_from: expanded needs model mobilenetv3 (timm's EfficientNet "
                            "always measures the SE width from the block input)")
    if settings.model == "mobilenetv3" and (settings.stem_kernel != 3 or settings.num_features == 0):
        raise TimmArchError("settings: timm's MobileNetV3 has a 3x3 stem and needs num_features > 0")
    return settings


def settings_to_dict(settings: TimmSettings) -> dict:
    return {f.name: getattr(settings, f.name) for f in fields(settings)}


@dataclass(frozen=True)
class Layer:
    """One block instance as built: what both sides must agree on (``where`` names it)."""

    kind: str
    in_ch: int
    out: int
    mid: int
    se: int
    se_act: str | None
    gate: str | None
    kernel: int
    stride: int
    dilation: int
    act: str
    residual: bool
    pw_act: bool = False  # an act after the 1x1 project (timm's dsa)
    where: str = field(default="", compare=False)


def timm_stage_repeats(repeats: list[int], depth: float) -> list[int]:
    """timm's ``_scale_stage_depth`` (ceil): scale the stage total, share it out from the end."""
    total = sum(repeats)
    total_scaled = int(math.ceil(total * depth))
    scaled = []
    for r in repeats[::-1]:
        rs = max(1, round(r / total * total_scaled))
        scaled.append(rs)
        total -= r
        total_scaled -= rs
    return scaled[::-1]


def _se_width(mid: int, ratio: float, settings: TimmSettings) -> int:
    value = mid * ratio
    return round(value) if settings.se_divisor == 1 else make_divisible(value, settings.se_divisor)


def timm_skip(block: TimmBlock) -> bool:
    """Whether timm gives the block a residual where shapes allow (cn only with _skip; dsa never)."""
    if block.kind == "cn":
        return block.skip is True
    return block.skip is not False and block.kind != "dsa"


def timm_layers(stages: list[list[TimmBlock]], settings: TimmSettings,
                names: list[list[str]] | None = None) -> list[list[Layer]]:
    """The block instances timm's builder makes from decoded block strings (per stage)."""
    in_ch = settings.round_channels(settings.stem)
    current_stride = 2  # after the stem; timm dilates instead of striding past output_stride 32
    out_stages = []
    for i, blocks in enumerate(stages):
        repeats = timm_stage_repeats([b.repeat for b in blocks], settings.depth)
        layers: list[Layer] = []
        for j, (b, count) in enumerate(zip(blocks, repeats, strict=True)):
            for _ in range(count):
                stride = b.stride if not layers else 1  # timm strides only a stage's first block
                dilation = 1
                if stride > 1 and current_stride * stride > 32:
                    stride, dilation = 1, stride
                current_stride *= stride
                out = settings.round_channels(b.out)
                mid = in_ch if b.kind in ("ds", "dsa") else out if b.kind == "cn" else make_divisible(in_ch * b.expand)
                se = 0
                if b.se > 0:
                    ratio = b.se if settings.se_from_exp else b.se / (b.expand or 1.0)
                    se = _se_width(mid, ratio, settings)
                act = b.act or settings.act
                residual = in_ch == out and stride == 1 and dilation == 1 and timm_skip(b)
                where = names[i][j] if names else f"arch_def[{i}][{j}]"
                layers.append(Layer(b.kind, in_ch, out, mid, se, (settings.se_act or act) if se else None,
                                    settings.se_gate if se else None, b.kernel, stride, dilation, act,
                                    residual, b.kind == "dsa", where))
                in_ch = out
        out_stages.append(layers)
    return out_stages


HINTS = {
    "kind": " (mbconv has no 1x1 expand conv when the expanded width equals the input, timm's ir keeps "
            "it: use ds for expansion 1)",
    "residual": " (mbconv adds the residual whenever stride is 1 and channels match, unless skip: false)",
    "out": " (timm rounds every width with round_channels(c * width, divisor), also at width 1)",
    "mid": " (timm derives it from the scaled input, make_divisible(in * e, 8); an explicit mid scales alone)",
    "se": " (timm's SE width is round(mid * se / e), or round_channels with se_divisor > 1)",
    "stride": " (timm strides only the first block of a stage, and dilates past output stride 32)",
    "dilation": " (timm dilates instead of striding past output stride 32)",
}


def compare_layers(ours: list[list[Layer]], theirs: list[list[Layer]], depth: float) -> None:
    """Raise TimmArchError at the first block instance that timm would build differently."""
    for i, (a, b) in enumerate(zip(ours, theirs, strict=True)):
        if len(a) != len(b):
            raise TimmArchError(f"scaling.depth: {depth:g} gives stages[{i}] {len(a)} blocks here but {len(b)} "
                                f"in timm, which takes the ceil of the stage total and shares it out")
        for n, (x, y) in enumerate(zip(a, b, strict=True)):
            if x != y:
                name = next(f.name for f in fields(Layer) if getattr(x, f.name) != getattr(y, f.name))
                raise TimmArchError(f"{x.where or y.where} (block {n} of stage {i}): {name} is "
                                    f"{getattr(x, name)} here but timm's builder gives {getattr(y, name)}"
                                    f"{HINTS.get(name, '')}")
