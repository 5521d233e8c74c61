"""ViT encoder stage (Dosovitskiy et al. 2021; as timm VisionTransformer): pre-norm attention + MLP blocks.

One entry is a whole encoder stage on the map it receives, so a network can mix convolutional stages
with attention stages. When the stride is 2 or the width changes, a conv with bias maps the input to
``out`` first (3x3, stride 2, padding 1; 1x1 at stride 1). The map becomes ``H * W`` tokens; a learned
position embedding is added (its ``grid x grid`` table resampled bicubically when the map differs, as
timm's ``resample_abs_pos_embed``); an optional class token (with its own position embedding) is
prepended; ``layers`` blocks follow, each ``x + proj(attn(LN(x)))`` then ``x + fc2(GELU(fc1(LN(x))))``
(multi-head self-attention with ``heads`` heads, a qkv projection with bias, LayerNorm eps 1e-6);
then an optional final LayerNorm. The stage outputs the patch tokens as an ``out x H x W`` map
(``readout: map``: the head's average pool is timm's ``global_pool='avg'``) or the class token,
broadcast over the map (``readout: cls``: the head's pool reads it, timm's ``global_pool='token'``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from searchspace.blocks.base import BlockArgs, BlockFamily, require
from searchspace.params import Param

PARAMS = (
    Param("layers", int, 4, "encoder blocks in the stage (follows the depth multiplier)", low=1, high=48,
          search=(1, 2, 4)),
    Param("heads", int, 4, "attention heads; must divide out", low=1, high=64, search=(2, 4)),
    Param("mlp_ratio", float, 4.0, "MLP hidden width: int(out * mlp_ratio)", low=0.25, high=8.0,
          search=(2.0, 4.0)),
    Param("qkv_bias", bool, True, "bias on the qkv projection"),
    Param("pos_embed", bool, True, "learned absolute position embedding added to the tokens"),
    Param("grid", int, 14, "side of the learned position-embedding table; resampled (bicubic) to the map's "
          "size when it differs", low=1, high=64),
    Param("cls_token", bool, False, "prepend a learned class token (with its own position embedding)"),
    Param("readout", str, "map", "stage output: map (the patch tokens as a map) or cls (the class token "
          "broadcast over the map; needs cls_token)", choices=("map", "cls")),
    Param("norm", bool, True, "LayerNorm on the stage output (timm's final norm)"),
)

EPS = 1e-6  # timm's ViT LayerNorm


class Attention(nn.Module):
    """Multi-head self-attention: qkv linear, scaled dot-product attention per head, output projection."""

    def __init__(self, dim: int, heads: int, qkv_bias: bool) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, length, dim = x.shape
        qkv = self.qkv(x).reshape(n, length, 3, self.heads, dim // self.heads).permute(2, 0, 3, 1, 4)
        x = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2])
        return self.proj(x.transpose(1, 2).reshape(n, length, dim))


class EncoderBlock(nn.Module):
    """Pre-norm transformer block: ``x + attn(norm1(x))``, then ``x + mlp(norm2(x))`` (GELU MLP)."""

    def __init__(self, dim: int, heads: int, hidden: int, qkv_bias: bool) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=EPS)
        self.attn = Attention(dim, heads, qkv_bias)
        self.norm2 = nn.LayerNorm(dim, eps=EPS)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


def _embed(in_ch: int, out: int, stride: int) -> nn.Module:
    """Identity when the map keeps its width and size, else a conv with bias to ``out``."""
    if stride == 1 and in_ch == out:
        return nn.Identity()
    kernel = 1 if stride == 1 else 3
    return nn.Conv2d(in_ch, out, kernel, stride, (kernel - 1) // 2)


class TransformerStage(nn.Module):
    """Map -> tokens (+ position embedding, + class token) -> encoder blocks -> norm -> map."""

    def __init__(self, args: BlockArgs) -> None:
        super().__init__()
        dim, grid = args.out, args["grid"]
        self.grid = grid
        self.embed = _embed(args.in_ch, dim, args.stride)
        self.pos_embed = nn.Parameter(torch.zeros(1, grid * grid, dim)) if args["pos_embed"] else None
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim)) if args["cls_token"] else None
        with_cls_pos = args["cls_token"] and args["pos_embed"]
        self.cls_pos = nn.Parameter(torch.zeros(1, 1, dim)) if with_cls_pos else None
        hidden = int(dim * args["mlp_ratio"])
        self.blocks = nn.Sequential(*[EncoderBlock(dim, args["heads"], hidden, args["qkv_bias"])
                                      for _ in range(args["layers"])])
        self.norm = nn.LayerNorm(dim, eps=EPS) if args["norm"] else nn.Identity()
        self.readout = args["readout"]
        for table in (self.pos_embed, self.cls_pos):
            if table is not None:
                nn.init.trunc_normal_(table, std=0.02)
        if self.cls_token is not None:
            nn.init.normal_(self.cls_token, std=1e-6)

    def positions(self, h: int, w: int) -> torch.Tensor:
        """The position embedding for an ``h x w`` map: the table itself, or resampled bicubically."""
        assert self.pos_embed is not None
        if h == self.grid and w == self.grid:
            return self.pos_embed
        dim = self.pos_embed.shape[-1]
        table = self.pos_embed.reshape(1, self.grid, self.grid, dim).permute(0, 3, 1, 2)
        table = F.interpolate(table, size=(h, w), mode="bicubic", align_corners=False)
        return table.flatten(2).transpose(1, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.embed(x)
        n, dim, h, w = x.shape
        tokens = x.flatten(2).transpose(1, 2)
        if self.pos_embed is not None:
            tokens = tokens + self.positions(h, w)
        if self.cls_token is not None:
            cls = self.cls_token if self.cls_pos is None else self.cls_token + self.cls_pos
            tokens = torch.cat([cls.expand(n, -1, -1), tokens], dim=1)
        tokens = self.norm(self.blocks(tokens))
        if self.readout == "cls":
            return tokens[:, 0, :, None, None].expand(n, dim, h, w)
        patches = tokens[:, 0 if self.cls_token is None else 1:]
        return patches.transpose(1, 2).reshape(n, dim, h, w)


def check(args: BlockArgs, path: str) -> None:
    heads = args["heads"]
    require(args.out % heads == 0, f"{path}.heads",
            f"{heads} does not divide out {args.out}; use a number of heads that divides the width")
    require(int(args.out * args["mlp_ratio"]) >= 1, f"{path}.mlp_ratio",
            f"{args['mlp_ratio']:g} gives int({args.out} * {args['mlp_ratio']:g}) = 0 MLP channels; "
            "use a larger mlp_ratio or out")
    require(args["readout"] != "cls" or args["cls_token"], f"{path}.readout",
            "cls needs cls_token: true (there is no class token to read out)")


FAMILY = BlockFamily(
    name="transformer",
    doc=__doc__.strip().splitlines()[0],
    params=PARAMS,
    build=TransformerStage,
    check=check,
    depth_params=("layers",),
)
