"""Seeded, stratified indices: the validation hold-out of a training split and the ``subset`` /
``val_subset`` shares kept of each split.
"""

from __future__ import annotations

import torch

from predictors.data.spec import DatasetError, DatasetSpec


def split_indices(train_labels: torch.Tensor, test_labels: torch.Tensor | None,
                  spec: DatasetSpec) -> tuple[torch.Tensor, torch.Tensor, bool]:
    """(training indices, validation indices, whether the latter index the test split).

    Validation is a seeded, stratified hold-out of ``val_fraction`` of the training labels (or the
    test split when it is 0); then ``subset`` and ``val_subset`` keep seeded, stratified shares.
    """
    if spec.val_fraction > 0:
        n_val = max(1, round(spec.val_fraction * len(train_labels)))
        val_idx = stratified_indices(train_labels, n_val, spec.seed)
        keep = torch.ones(len(train_labels), dtype=torch.bool)
        keep[val_idx] = False
        train_idx, val_labels = keep.nonzero().flatten(), train_labels[val_idx]
    elif test_labels is None:
        raise DatasetError(f"dataset {spec.name}: no test/val split in {spec.data_dir}; "
                           "use val_fraction > 0 to hold out part of the training images")
    else:
        train_idx, val_idx, val_labels = torch.arange(len(train_labels)), torch.arange(len(test_labels)), test_labels
    if spec.subset is not None and spec.subset < len(train_idx):
        train_idx = train_idx[stratified_indices(train_labels[train_idx], spec.subset, spec.seed + 1)]
    if spec.val_subset is not None and spec.val_subset < len(val_idx):
        val_idx = val_idx[stratified_indices(val_labels, spec.val_subset, spec.seed + 2)]
    return train_idx, val_idx, spec.val_fraction == 0


def stratified_indices(labels: torch.Tensor, n: int, seed: int) -> torch.Tensor:
    """``n`` seeded indices with every class in proportion to its share of ``labels`` (sorted)."""
    gen = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(labels), generator=gen)
    shuffled = labels[order]
    rank = torch.empty(len(labels))
    for c in torch.unique(labels):
        where = (shuffled == c).nonzero().flatten()
        rank[where] = (torch.arange(len(where)) + torch.rand(len(where), generator=gen)) / len(where)
    chosen = order[torch.argsort(rank, stable=True)[:n]]
    return torch.sort(chosen).values
