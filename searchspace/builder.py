"""Build the PyTorch network of a genotype."""

from __future__ import annotations

from torch import nn

from searchspace.blocks import FAMILIES
from searchspace.genotype import Genotype
from searchspace.resolve import resolve
from searchspace.size import SizeLimit, check_size
from searchspace.stems import Head, build_stem


class Network(nn.Module):
    """stem -> stages (nn.Sequential of blocks) -> head. ``genotype`` is kept for reference."""

    def __init__(self, genotype: Genotype, num_classes: int | None = None, in_channels: int | None = None):
        super().__init__()
        net = resolve(genotype, in_channels)
        self.genotype = genotype
        self.resolution = net.resolution
        self.stem = build_stem(net.stem_type, net.stem, net.in_channels)
        stages: list[list[nn.Module]] = [[] for _ in genotype.stages]
        for block in net.blocks:
            stages[block.stage].append(FAMILIES[block.type].build(block.args))
        self.stages = nn.Sequential(*[nn.Sequential(*blocks) for blocks in stages])
        self.head = Head(net.head, net.final_channels, num_classes or net.head["num_classes"])
        _init_weights(self)

    def forward_features(self, x):
        return self.stages(self.stem(x))

    def forward(self, x):
        return self.head(self.forward_features(x))


def _init_weights(model: nn.Module) -> None:
    """Kaiming-normal convs, unit BN, small normal linear (as torchvision does)."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0, 0.01)
            nn.init.zeros_(m.bias)


def build(genotype: Genotype, num_classes: int | None = None, in_channels: int | None = None,
          limit: SizeLimit | None = None) -> Network:
    """The network for ``genotype`` (its own scaling applied).

    Its size is checked first, without allocating (:func:`searchspace.size.check_size`): GenotypeError
    naming the field when it has more parameters or activation memory than ``limit`` (default: 2e9
    parameters and 64 GiB at batch 1, or ``NAS_MAX_PARAMS`` / ``NAS_MAX_ACTIVATION_GIB``).
    """
    check_size(genotype, num_classes, in_channels, limit)
    return Network(genotype, num_classes, in_channels)
