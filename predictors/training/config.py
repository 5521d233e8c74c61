"""Settings of one proxy training run, declared once (importing this module does not import torch).

Every field is a configuration key: ``proxy: {epochs: 3}`` in a search config, ``--proxy-epochs 3`` on
the command line, validated and documented from the declaration below (:mod:`searchspace.settings`).
"""

from __future__ import annotations

from dataclasses import dataclass

from predictors.data.spec import DATASET_NAMES, DatasetSpec
from searchspace.settings import setting

OPTIMIZERS = ("sgd", "adamw")


@dataclass
class ProxyConfig:
    """Settings of one proxy training run (the same for every candidate of a search)."""

    dataset: str = setting("fashion-mnist", "proxy dataset", choices=DATASET_NAMES)
    data_dir: str | None = setting(None, "dataset folder (default for fashion-mnist: "
                                         "/usr/share/datasets/fashion-mnist)", example="DIR")
    resolution: int = setting(32, "input size the candidate is built and trained at", low=8, high=512)
    width: float = setting(0.5, "multiplies the genotype's own width", low=0.05, high=4.0)
    epochs: int = setting(1, "proxy training epochs per candidate", low=1, high=1000)
    checks_per_epoch: int = setting(4, "validation checks per epoch that a pruner can stop a weak candidate at "
                                       "(1: at the end of each epoch only); the final score does not change",
                                    low=1, high=64, in_hash=False)
    subset: int | None = setting(30000, "training images per candidate (seeded, stratified; null: all)", low=2)
    val_subset: int | None = setting(1000, "validation images (null: all)", low=1)
    val_fraction: float = setting(0.1, "hold-out fraction of the training split for validation "
                                       "(0: validate on the test split)", low=0.0, high=0.9)
    batch_size: int = setting(128, "batch size", low=2, high=65536)
    optimizer: str = setting("sgd", "sgd (Nesterov momentum 0.9) or adamw", choices=OPTIMIZERS)
    lr: float = setting(0.1, "peak learning rate (after warm-up, before cosine decay)", low=1e-8, high=1e9)
    warmup: float = setting(0.25, "share of the steps with a linear learning-rate warm-up before the cosine decay",
                            low=0.0, high=0.9)
    weight_decay: float = setting(5e-5, "weight decay (not on norms and biases)", low=0.0, high=1.0)
    label_smoothing: float = setting(0.0, "label smoothing", low=0.0, high=0.99)
    seed: int = setting(0, "seed of data order and initialisation", low=0)
    threads: int | None = setting(None, "torch CPU threads during proxy training (null: leave as is)", low=1,
                                  high=1024)
    device: str = setting("cpu", "cpu, cuda or cuda:N")
    channels_last: bool = setting(True, "NHWC memory format (faster depthwise convs on CPU and GPU)")
    bn_images: int = setting(1024, "training images that re-estimate BatchNorm statistics before each "
                                   "evaluation (0: keep the running averages)", low=0)
    download: bool = setting(False, "download the dataset if missing (fashion-mnist, cifar10/100)")
    skip_bad_images: bool = setting(False, "skip the images of an ImageFolder tree that cannot be read, listed in "
                                           "bad_images.txt of the run folder (default: an unreadable image stops "
                                           "the run, named)", in_hash=False)

    def dataset_spec(self) -> DatasetSpec:
        """The data this proxy trains on (a :class:`predictors.data.spec.DatasetSpec`)."""
        return DatasetSpec(self.dataset, self.data_dir, self.seed, self.subset, self.val_subset,
                           self.val_fraction, self.resolution, self.download, self.skip_bad_images)
