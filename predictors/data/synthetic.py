"""A small deterministic, learnable uint8 image set (class templates + shift + noise), for tests."""

from __future__ import annotations

import torch

from predictors.data.spec import Split


def make_synthetic(num_train: int = 2000, num_test: int = 500, num_classes: int = 10, channels: int = 3,
                   size: int = 32, seed: int = 0) -> tuple[Split, Split]:
    """A learnable uint8 set: each class a smooth random template, randomly shifted, plus noise."""
    gen = torch.Generator().manual_seed(seed)
    coarse = torch.randn(num_classes, channels, 4, 4, generator=gen)
    templates = torch.nn.functional.interpolate(coarse, size=(size, size), mode="bilinear", align_corners=False)
    templates = templates / templates.flatten(1).std(dim=1).view(-1, 1, 1, 1)

    def draw(n: int) -> Split:
        labels = torch.arange(n) % num_classes
        labels = labels[torch.randperm(n, generator=gen)]
        shifts = torch.randint(-2, 3, (n, 2), generator=gen)
        images = torch.stack([torch.roll(templates[c], (dy, dx), dims=(1, 2))
                              for c, (dy, dx) in zip(labels.tolist(), shifts.tolist(), strict=True)])
        images = 128 + 40 * images + 25 * torch.randn(images.shape, generator=gen)
        return images.round().clamp(0, 255).to(torch.uint8), labels

    return draw(num_train), draw(num_test)
