"""Stems (the layers before the first stage) and the head (after the last stage).

Stem types:
  conv  one kxk conv-BN-act (stride 1 or 2), optionally followed by a 3x3 stride-2 max pool
        (MobileNet, EfficientNet, ShuffleNet, GhostNet, ResNet with kernel 7 + pool).
  deep  three 3x3 conv-BN-act: stride 2 to ``mid``, stride 1 to ``mid``, then to ``out`` with
        stride 1 and a max pool (ResNet-D / ResNeSt) or stride 2 and no pool (VoVNet);
        ``separable`` makes the last two depthwise-separable (VoVNet-dw).
Head: optional 1x1 conv-BN-act to ``conv`` channels, global pool, optional ``hidden`` fully
connected layer (with bias) + act (MobileNetV3, GhostNet), dropout, linear classifier.
"""

from __future__ import annotations

from torch import nn

from searchspace.blocks.base import conv_output_size
from searchspace.layers import ACTIVATIONS, ConvBNAct, SeparableConvBNAct, activation
from searchspace.params import Param

STEM_PARAMS: dict[str, tuple[Param, ...]] = {
    "conv": (
        Param("out", int, 32, "output channels", low=1),
        Param("kernel", int, 3, "kernel size", choices=(1, 3, 5, 7)),
        Param("stride", int, 2, "conv stride", choices=(1, 2)),
        Param("act", str, "relu", "activation", choices=ACTIVATIONS),
        Param("pool", str, "none", "3x3 stride-2 max pool after the conv", choices=("none", "max")),
    ),
    "deep": (
        Param("out", int, 64, "output channels", low=1),
        Param("mid", int, 32, "width of the first two convs", low=1),
        Param("act", str, "relu", "activation", choices=ACTIVATIONS),
        Param("pool", str, "max", "max: third conv stride 1 + 3x3 stride-2 max pool; none: third conv "
              "stride 2", choices=("none", "max")),
        Param("separable", bool, False, "second and third convs depthwise-separable"),
    ),
}
STEM_CHANNEL_PARAMS = ("out", "mid")

HEAD_PARAMS: tuple[Param, ...] = (
    Param("conv", int, 0, "1x1 conv-BN-act width before pooling (0 = none)", low=0),
    Param("hidden", int, 0, "fully connected width after pooling, with bias and act (0 = none)", low=0),
    Param("act", str, "relu", "activation of the head conv and hidden layer", choices=ACTIVATIONS),
    Param("pool", str, "avg", "global pooling", choices=("avg", "max")),
    Param("dropout", float, 0.0, "dropout before the classifier", low=0.0, high=0.99),
    Param("num_classes", int, 1000, "classifier outputs", low=1),
)
HEAD_CHANNEL_PARAMS = ("conv", "hidden")


def stem_output_size(stem_type: str, params: dict, size: int) -> int:
    """Spatial size after the stem."""
    if stem_type == "conv":
        size = conv_output_size(size, params["stride"])
        return conv_output_size(size, 2) if params["pool"] == "max" else size
    return conv_output_size(conv_output_size(size, 2), 2)


def build_stem(stem_type: str, params: dict, in_ch: int) -> nn.Module:
    """The stem module for resolved (scaled) parameters."""
    act, out = params["act"], params["out"]
    pool = [nn.MaxPool2d(3, 2, 1)] if params["pool"] == "max" else []
    if stem_type == "conv":
        return nn.Sequential(ConvBNAct(in_ch, out, params["kernel"], params["stride"], act=act), *pool)
    mid = params["mid"]
    last_stride = 1 if pool else 2
    if params["separable"]:
        second = SeparableConvBNAct(mid, mid, 1, act)
        third = SeparableConvBNAct(mid, out, last_stride, act)
    else:
        second = ConvBNAct(mid, mid, 3, 1, act=act)
        third = ConvBNAct(mid, out, 3, last_stride, act=act)
    return nn.Sequential(ConvBNAct(in_ch, mid, 3, 2, act=act), second, third, *pool)


class Head(nn.Module):
    def __init__(self, params: dict, in_ch: int, num_classes: int) -> None:
        super().__init__()
        act = params["act"]
        self.conv = ConvBNAct(in_ch, params["conv"], 1, act=act) if params["conv"] else nn.Identity()
        width = params["conv"] or in_ch
        self.pool = nn.AdaptiveAvgPool2d(1) if params["pool"] == "avg" else nn.AdaptiveMaxPool2d(1)
        if params["hidden"]:
            self.hidden = nn.Sequential(nn.Linear(width, params["hidden"]), activation(act))
            width = params["hidden"]
        else:
            self.hidden = nn.Identity()
        self.dropout = nn.Dropout(params["dropout"]) if params["dropout"] > 0 else nn.Identity()
        self.classifier = nn.Linear(width, num_classes)
        self.num_features = width

    def forward(self, x):
        x = self.pool(self.conv(x)).flatten(1)
        return self.classifier(self.dropout(self.hidden(x)))
