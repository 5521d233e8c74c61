"""Proxy training on the synthetic set with a tiny network (a few seconds on one core)."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest
import torch

import predictors.training.loop as loop
from predictors.data.synthetic import make_synthetic
from predictors.training.loop import NonFiniteLoss, ProxyError, ProxyOutOfMemory, check_steps
from predictors.training.proxy import ProxyConfig, proxy_genotype, train_proxy
from searchspace import NasError, build, load_genotype

TINY = {
    "format": "nas-genotype/1", "name": "tiny", "input": {"channels": 3, "resolution": 16},
    "stem": {"type": "conv", "out": 8, "stride": 1},
    "stages": [{"blocks": [{"type": "mbconv", "out": 16, "stride": 2, "expand": 2.0}]},
               {"blocks": [{"type": "mbconv", "out": 24, "stride": 2, "expand": 2.0}]}],
    "head": {"num_classes": 10},
}


def small_config(**overrides) -> ProxyConfig:
    settings = dict(dataset="synthetic", resolution=16, width=1.0, epochs=3, subset=600, val_subset=200,
                    batch_size=64, threads=1, bn_images=256)
    settings.update(overrides)
    return ProxyConfig(**settings)


@pytest.fixture(scope="module")
def first_run():
    calls: list[tuple[float, float]] = []
    result = train_proxy(TINY, small_config(), report=lambda done, acc: calls.append((done, acc)))
    return result, calls


def test_beats_chance_and_reports_at_every_check(first_run):
    result, calls = first_run
    assert result.epochs_run == 3 and len(result.history) == 3
    assert result.accuracy > 0.25  # chance is 0.1
    assert 0 <= result.accuracy <= result.best_accuracy <= 1
    # 600 images in batches of 64: 9 steps an epoch; checks after steps 2, 4 (round(4.5)), 7, and the epoch's end
    assert check_steps(9, 4) == {2: 1, 4: 2, 7: 3}
    assert [done for done, _ in calls] == [e + k / 4 for e in range(3) for k in range(1, 5)]
    assert [(done, acc) for done, acc in calls if done == int(done)] == [(h.epoch, h.val_accuracy)
                                                                         for h in result.history]
    assert result.params == sum(p.numel() for p in build(load_genotype(TINY), num_classes=10).parameters())
    assert result.train_seconds > 0 and result.to_dict()["history"][0]["epoch"] == 1


def test_check_steps_by_hand():
    assert check_steps(10, 4) == {2: 1, 5: 2, 8: 3}  # round(2.5) = 2, round(7.5) = 8
    assert check_steps(2, 4) == {1: 2}  # a short epoch: the checks that fall on its start or end are left out
    assert check_steps(3, 1) == {} and check_steps(1, 8) == {}


def test_same_seed_same_result(first_run):
    again = train_proxy(TINY, small_config())
    assert again.accuracy == first_run[0].accuracy
    assert [h.train_loss for h in again.history] == [h.train_loss for h in first_run[0].history]


def test_checks_inside_epochs_do_not_change_the_training():
    # dropout draws random numbers: a check that evaluated in between must not move them
    genotype = {**TINY, "head": {"num_classes": 10, "dropout": 0.3}}
    runs = {}
    for checks in (1, 4):
        calls: list[float] = []
        runs[checks] = (train_proxy(genotype, small_config(epochs=2, subset=256, checks_per_epoch=checks),
                                    report=lambda done, acc, calls=calls: calls.append(done)), calls)
    (plain, plain_calls), (checked, checked_calls) = runs[1], runs[4]
    assert plain_calls == [1.0, 2.0] and checked_calls == [0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0]
    assert [h.train_loss for h in checked.history] == [h.train_loss for h in plain.history]
    assert [h.val_accuracy for h in checked.history] == [h.val_accuracy for h in plain.history]


def test_report_exception_propagates_from_a_check_inside_the_epoch():
    class Pruned(Exception):
        pass

    calls = []

    def report(epochs_done: float, accuracy: float) -> None:
        calls.append(epochs_done)
        raise Pruned

    with pytest.raises(Pruned):  # 128 images in batches of 64: one check inside epoch 1, after its first step
        train_proxy(TINY, small_config(epochs=2, subset=128), report=report)
    assert calls == [0.5]


def test_report_can_raise_optuna_pruned():
    optuna = pytest.importorskip("optuna")

    def report(epochs_done: float, accuracy: float) -> None:
        raise optuna.TrialPruned(f"pruned at {epochs_done:g} epochs")

    with pytest.raises(optuna.TrialPruned, match="at 1 epochs"):
        train_proxy(TINY, small_config(epochs=2, subset=128, checks_per_epoch=1), report=report)


def test_divergence_raises_non_finite_loss():
    with pytest.raises(NonFiniteLoss, match="loss became nan"):
        train_proxy(TINY, small_config(lr=1e9, epochs=2, subset=256))


def test_patched_nan_input_raises_non_finite_loss(monkeypatch):
    real = loop._normalize
    monkeypatch.setattr(loop, "_normalize", lambda *args: real(*args) * float("nan"))
    with pytest.raises(NonFiniteLoss) as info:
        train_proxy(TINY, small_config(subset=128))
    assert isinstance(info.value, NasError) and "epoch 1, step 1" in str(info.value)


def test_out_of_memory_is_its_own_error(monkeypatch):
    def oom(*args, **kwargs):
        raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(loop, "evaluate", oom)
    with pytest.raises(ProxyOutOfMemory, match="out of memory on cpu"):
        train_proxy(TINY, small_config(epochs=1, subset=128))


def test_other_runtime_errors_pass_through(monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("shape mismatch")

    monkeypatch.setattr(loop, "evaluate", broken)
    with pytest.raises(RuntimeError, match="shape mismatch"):
        train_proxy(TINY, small_config(epochs=1, subset=128))


def write_grey_idx(root: Path) -> None:
    """A learnable grey set in Fashion-MNIST's file format."""
    (train_x, train_y), (test_x, test_y) = make_synthetic(300, 50, channels=1, size=28, seed=0)
    for prefix, x, y in (("train", train_x, train_y), ("t10k", test_x, test_y)):
        for kind, array in (("images-idx3", x[:, 0].numpy()), ("labels-idx1", y.numpy().astype(np.uint8))):
            header = bytes([0, 0, 8, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
            (root / f"{prefix}-{kind}-ubyte.gz").write_bytes(gzip.compress(header + array.tobytes()))


def test_grey_data_trains_the_rgb_genotype(tmp_path):
    write_grey_idx(tmp_path)
    config = small_config(dataset="fashion-mnist", data_dir=str(tmp_path), subset=None, epochs=2)
    result = train_proxy(TINY, config)
    rgb = build(proxy_genotype(load_genotype(TINY), config), num_classes=10)
    assert rgb.stem[0][0].in_channels == 3
    assert result.params == sum(p.numel() for p in rgb.parameters())  # the stem was built for 3 channels
    assert result.accuracy > 0.2


def test_rgb_data_on_grey_genotype_is_an_error():
    grey = {**TINY, "input": {"channels": 1, "resolution": 16}}
    with pytest.raises(ProxyError, match="3 channels but the genotype's input.channels is 1"):
        train_proxy(grey, small_config(epochs=1, subset=64))


def test_proxy_genotype_scales_width_and_resolution():
    g = load_genotype({**TINY, "scaling": {"width": 2.0}})
    shrunk = proxy_genotype(g, ProxyConfig(width=0.5, resolution=24))
    assert shrunk.scaling["width"] == 1.0 and shrunk.resolution == 24
    with pytest.raises(NasError, match="stride"):
        proxy_genotype(load_genotype("zoo:mobilenet_v3_small"), ProxyConfig(resolution=8))


def test_bad_settings():
    with pytest.raises(ProxyError, match="proxy.epochs: 0"):
        train_proxy(TINY, small_config(epochs=0))
    with pytest.raises(ProxyError, match="proxy.optimizer"):
        train_proxy(TINY, small_config(optimizer="lion"))
    with pytest.raises(ProxyError, match="not a device"):
        train_proxy(TINY, small_config(device="gpu0"))
    if not torch.cuda.is_available():
        with pytest.raises(ProxyError, match="CUDA is not available"):
            train_proxy(TINY, small_config(device="cuda"))


def test_threads_are_restored():
    before = torch.get_num_threads()
    train_proxy(TINY, small_config(epochs=1, subset=64, threads=before + 1))
    assert torch.get_num_threads() == before
