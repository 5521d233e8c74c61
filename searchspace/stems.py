"""Stems (the layers before the first stage) and the head (after the last stage).

Stem types:
  conv  one kxk conv-BN-act (stride 1 or 2), optionally followed by a 3x3 stride-2 max pool
        (MobileNet, EfficientNet, ShuffleNet, GhostNet, ResNet with kernel 7 + pool); ``mid`` adds a
        second 3x3 conv (Xception); ``padding``, ``bias`` and ``norm`` give VGG's and SqueezeNet's.
  deep  three 3x3 conv-BN-act: stride 2 to ``mid``, stride 1 to ``mid``, then to ``out`` with
        stride 1 and a max pool (ResNet-D / ResNeSt) or stride 2 and no pool (VoVNet);
        ``separable`` makes the last two depthwise-separable (VoVNet-dw).
  patch one conv with bias whose kernel and stride are ``patch`` (ViT's patch embedding).
Head: optional BN-act (``norm``: pre-activation networks), optional 1x1 conv-BN-act to ``conv``
channels, global pool (or adaptive to ``pool_size`` and flattened: VGG), optional ``hidden`` fully
connected layers (with bias) + act (MobileNetV3, GhostNet, VGG), dropout, linear classifier; or
SqueezeNet's conv classifier before the pool.
"""

from __future__ import annotations

from torch import nn

from searchspace.blocks.base import conv_output_size
from searchspace.blocks.osa import pool_output_size
from searchspace.errors import GenotypeError
from searchspace.layers import ACTIVATIONS, BNAct, ConvBNAct, SeparableConvBNAct, activation
from searchspace.params import MAX_CHANNELS, MAX_CLASSES, Param

STEM_PARAMS: dict[str, tuple[Param, ...]] = {
    "conv": (
        Param("out", int, 32, "output channels", low=1, high=MAX_CHANNELS),
        Param("kernel", int, 3, "kernel size", choices=(1, 3, 5, 7, 11)),
        Param("stride", int, 2, "conv stride", choices=(1, 2, 4)),
        Param("act", str, "relu", "activation (prelu: a learned slope per channel, ESPNetv2)",
              choices=ACTIVATIONS + ("prelu",)),
        Param("pool", str, "none", "stride-2 max pool after the conv(s): max (3x3, padding 1), max_ceil "
              "(3x3, no padding, ceil mode: SqueezeNet), max2 (2x2: VGG-11) or max3 (3x3, no padding, floor: "
              "AlexNet)", choices=("none", "max", "max_ceil", "max2", "max3")),
        Param("mid", int, 0, "when > 0 the conv goes to mid channels and a second 3x3 stride-1 conv-BN-act "
              "maps them to out (Xception: mid 32, out 64)", low=0, high=MAX_CHANNELS, omit_default=True),
        Param("padding", str, "same", "conv padding: same ((kernel - 1) / 2) or valid (none: SqueezeNet, "
              "Xception)", choices=("same", "valid"), omit_default=True),
        Param("bias", bool, False, "conv bias (VGG, SqueezeNet)", omit_default=True),
        Param("norm", bool, True, "BatchNorm after each conv (false: SqueezeNet)", omit_default=True),
        Param("pad", int, None, "explicit padding of the first conv, overriding padding (AlexNet: 2 around "
              "its 11x11 stride-4 conv)", low=0, high=16, nullable=True, omit_default=True),
    ),
    "deep": (
        Param("out", int, 64, "output channels", low=1, high=MAX_CHANNELS),
        Param("mid", int, 32, "width of the first two convs", low=1, high=MAX_CHANNELS),
        Param("act", str, "relu", "activation", choices=ACTIVATIONS),
        Param("pool", str, "max", "max: third conv stride 1 + 3x3 stride-2 max pool; none: third conv "
              "stride 2", choices=("none", "max")),
        Param("separable", bool, False, "second and third convs depthwise-separable"),
    ),
    "patch": (
        Param("out", int, 192, "embedding width", low=1, high=MAX_CHANNELS),
        Param("patch", int, 16, "patch side: one conv (with bias, no norm or act) whose kernel and stride are "
              "the patch (ViT)", choices=(2, 4, 7, 8, 14, 16, 32)),
    ),
}
STEM_CHANNEL_PARAMS = ("out", "mid")

HEAD_PARAMS: tuple[Param, ...] = (
    Param("conv", int, 0, "1x1 conv-BN-act width before pooling (0 = none)", low=0, high=MAX_CHANNELS),
    Param("hidden", int, 0, "fully connected width after pooling, with bias and act (0 = none)", low=0,
          high=MAX_CHANNELS),
    Param("act", str, "relu", "activation of the head conv and hidden layer", choices=ACTIVATIONS),
    Param("pool", str, "avg", "global pooling", choices=("avg", "max")),
    Param("dropout", float, 0.0, "dropout before the classifier", low=0.0, high=0.99),
    Param("num_classes", int, 1000, "classifier outputs", low=1, high=MAX_CLASSES),
    Param("pool_size", int, 1, "output side of the adaptive pooling, flattened before the fully connected "
          "layers (VGG: 7)", low=1, high=16, omit_default=True),
    Param("hidden_layers", int, 1, "hidden fully connected layers of width hidden, a dropout after each "
          "(VGG: 2)", low=1, high=4, omit_default=True),
    Param("classifier", str, "linear", "linear (after pooling) or conv: dropout, 1x1 conv with bias to the "
          "classes + act, then global pooling (SqueezeNet)", choices=("linear", "conv"), omit_default=True),
    Param("norm", bool, False, "BN-act on the last feature map, before the head conv and pooling "
          "(pre-activation networks: DenseNet's norm5, ResNetV2's final norm)", omit_default=True),
)
HEAD_CHANNEL_PARAMS = ("conv", "hidden")


def _conv_size(size: int, kernel: int, stride: int, padding: str, pad: int | None = None) -> int:
    if pad is None:
        pad = (kernel - 1) // 2 if padding == "same" else 0
    return (size + 2 * pad - kernel) // stride + 1


def stem_output_size(stem_type: str, params: dict, size: int) -> int:
    """Spatial size after the stem (GenotypeError when valid padding leaves nothing to pool)."""
    if stem_type == "patch":
        return _patch_size(size, params["patch"])
    if stem_type != "conv":
        return conv_output_size(conv_output_size(size, 2), 2)
    start = size
    size = _conv_size(size, params["kernel"], params["stride"], params["padding"], params["pad"])
    if params["mid"]:
        size = _conv_size(size, 3, 1, params["padding"])
    if size < {"none": 1, "max3": 3}.get(params["pool"], 2):
        raise GenotypeError("stem", f"leaves a {size}x{size} map at resolution {start}; use a larger "
                            "resolution or padding same")
    if params["pool"] == "max":
        return conv_output_size(size, 2)
    if params["pool"] == "max2":
        return size // 2
    if params["pool"] == "max3":
        return (size - 3) // 2 + 1
    return pool_output_size(size, 2) if params["pool"] == "max_ceil" else size


def _patch_size(size: int, patch: int) -> int:
    if size < patch:
        raise GenotypeError("stem.patch", f"{patch} is larger than the {size}x{size} input; use a smaller patch "
                            "or a larger resolution")
    return size // patch


def _conv_stem(params: dict, in_ch: int) -> nn.Module:
    act, out, mid = params["act"], params["out"], params["mid"]
    style = {"act": "identity" if act == "prelu" else act, "bias": params["bias"], "norm": params["norm"],
             "padding": 0 if params["padding"] == "valid" else None}
    first = style if params["pad"] is None else {**style, "padding": params["pad"]}
    convs = [ConvBNAct(in_ch, mid or out, params["kernel"], params["stride"], **first)]
    if mid:
        convs.append(ConvBNAct(mid, out, 3, 1, **style))
    if act == "prelu":  # ESPNetv2: a learned slope per channel
        for conv in convs:
            conv[2] = nn.PReLU(conv[0].out_channels)
    pool = {"none": [], "max": [nn.MaxPool2d(3, 2, 1)], "max_ceil": [nn.MaxPool2d(3, 2, ceil_mode=True)],
            "max2": [nn.MaxPool2d(2, 2)], "max3": [nn.MaxPool2d(3, 2)]}
    return nn.Sequential(*convs, *pool[params["pool"]])


def build_stem(stem_type: str, params: dict, in_ch: int) -> nn.Module:
    """The stem module for resolved (scaled) parameters."""
    if stem_type == "conv":
        return _conv_stem(params, in_ch)
    if stem_type == "patch":
        return nn.Sequential(nn.Conv2d(in_ch, params["out"], params["patch"], params["patch"]))
    act, out = params["act"], params["out"]
    pool = [nn.MaxPool2d(3, 2, 1)] if params["pool"] == "max" else []
    mid = params["mid"]
    last_stride = 1 if pool else 2
    if params["separable"]:
        second = SeparableConvBNAct(mid, mid, 1, act)
        third = SeparableConvBNAct(mid, out, last_stride, act)
    else:
        second = ConvBNAct(mid, mid, 3, 1, act=act)
        third = ConvBNAct(mid, out, 3, last_stride, act=act)
    return nn.Sequential(ConvBNAct(in_ch, mid, 3, 2, act=act), second, third, *pool)


def check_head(head: dict) -> None:
    """GenotypeError for head fields that do not go together."""
    if head["classifier"] == "conv":
        for key, alone in (("hidden", 0), ("pool_size", 1)):
            if head[key] != alone:
                raise GenotypeError(f"head.{key}", f"{head[key]} needs classifier linear; the conv classifier "
                                    f"(SqueezeNet) comes before a global pool, so use {key} {alone}")
    if head["hidden_layers"] > 1 and not head["hidden"]:
        raise GenotypeError("head.hidden_layers", f"{head['hidden_layers']} needs hidden > 0 (their width)")


class Head(nn.Module):
    def __init__(self, params: dict, in_ch: int, num_classes: int) -> None:
        super().__init__()
        act = params["act"]
        self.norm = BNAct(in_ch, act) if params["norm"] else nn.Identity()
        self.conv = ConvBNAct(in_ch, params["conv"], 1, act=act) if params["conv"] else nn.Identity()
        width = params["conv"] or in_ch
        size = params["pool_size"]
        self.pool = nn.AdaptiveAvgPool2d(size) if params["pool"] == "avg" else nn.AdaptiveMaxPool2d(size)
        self.dropout = nn.Dropout(params["dropout"]) if params["dropout"] > 0 else nn.Identity()
        self.conv_classifier = params["classifier"] == "conv"
        if self.conv_classifier:
            self.hidden: nn.Module = nn.Identity()
            self.classifier: nn.Module = nn.Conv2d(width, num_classes, 1)
            self.act = activation(act)
            self.num_features = width
            return
        width *= size * size
        if params["hidden"]:
            layers: list[nn.Module] = []
            for i in range(params["hidden_layers"]):
                if i and params["dropout"] > 0:
                    layers.append(nn.Dropout(params["dropout"]))
                layers += [nn.Linear(width, params["hidden"]), activation(act)]
                width = params["hidden"]
            self.hidden = nn.Sequential(*layers)
        else:
            self.hidden = nn.Identity()
        self.classifier = nn.Linear(width, num_classes)
        self.num_features = width

    def forward(self, x):
        x = self.conv(self.norm(x))
        if self.conv_classifier:
            return self.pool(self.act(self.classifier(self.dropout(x)))).flatten(1)
        x = self.pool(x).flatten(1)
        return self.classifier(self.dropout(self.hidden(x)))
