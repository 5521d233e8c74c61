"""Shared tiny search settings for the search tests: a small space and synthetic proxy data."""

from __future__ import annotations

TINY_SPACE = {
    "resolution": 32,
    "stem": {"type": "conv", "out": 8, "stride": 2, "act": "relu"},
    "head": {"conv": 0, "hidden": 0, "dropout": 0.0},
    "stages": [
        {"stride": 1, "out": [8], "repeat": [1], "types": ["mbconv", "basic", "ghost"]},
        {"stride": 2, "out": [16, 24], "repeat": [1, 2], "types": ["mbconv", "shuffle", "bottleneck"]},
    ],
}


def tiny_overrides(tmp_path, name: str = "t", **extra) -> dict:
    """Config overrides for a fast search (seconds per trial) in ``tmp_path``."""
    values = {
        "name": name, "runs_dir": str(tmp_path / "runs"), "objective": "macs", "target_macs": "2M",
        "reward": "mnasnet",  # soft: fake costs far from T still train (the default hard reward rejects them)
        "start_from": "",  # no hand-designed starting points unless a test asks for them
        "latency_resolution": 32, "strategy": "random", "budget": "120s", "pruner": "none",
        "proxy.dataset": "synthetic", "proxy.resolution": 16, "proxy.subset": 96, "proxy.val_subset": 32,
        "proxy.batch_size": 32, "proxy.epochs": 2, "proxy.threads": 1, "proxy.bn_images": 32,
        "space": TINY_SPACE,
    }
    values.update(extra)
    return values


def tiny_yaml(tmp_path, name: str = "t", **extra) -> str:
    """The same as a YAML config file (for subprocess tests); returns its path."""
    import yaml

    values = tiny_overrides(tmp_path, name, **extra)
    raw: dict = {"proxy": {}}
    for key, value in values.items():
        if key.startswith("proxy."):
            raw["proxy"][key[6:]] = value
        else:
            raw[key] = value
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(raw))
    return str(path)


class FakeResult:
    """What a trainer returns (the fields the search reads)."""

    def __init__(self, accuracy: float, epochs: int, params: int = 1000) -> None:
        self.accuracy, self.epochs_run, self.train_seconds, self.params = accuracy, epochs, 0.01, params


class FakeTrainer:
    """A trainer with accuracies known in advance: ``accuracy(genotype)``; remembers what it trained."""

    def __init__(self, accuracy=None, epochs: int = 2, error: Exception | None = None, checks: int = 1) -> None:
        self.accuracy = accuracy or (lambda g: 0.5 + (int(g.hash(), 16) % 400) / 1000)
        self.epochs, self.error, self.checks = epochs, error, checks
        self.trained: list[str] = []
        self.reported: list[float] = []  # epochs done at each report, all trainings

    def __call__(self, genotype, report=None):
        self.trained.append(genotype.hash())
        if self.error is not None:
            raise self.error
        accuracy = self.accuracy(genotype)
        for step in range(1, self.epochs * self.checks + 1):  # ``checks`` reports per epoch, as the proxy's
            done = step / self.checks
            if report is not None:
                self.reported.append(done)
                report(done, accuracy * done / self.epochs)
        return FakeResult(accuracy, self.epochs)


class FakeCost:
    """A cost known in advance: the sum of ``out * repeat`` over the blocks (by hand from trials.csv)."""

    unit = "macs"

    def cost(self, genotype) -> float:
        return float(sum(b.out * b.repeat for stage in genotype.stages for b in stage))


class FakeMeasuredCost(FakeCost):
    """A latency model whose careful side-by-side measurement returns ``careful(genotype)`` ms."""

    unit = "ms"

    def __init__(self, careful=None) -> None:
        self.careful = careful or self.cost
        self.measured: list[list[str]] = []

    def measure(self, genotypes, careful: bool = False):
        from types import SimpleNamespace

        self.measured.append([g.hash() for g in genotypes])
        return [SimpleNamespace(median_ms=self.careful(g), fingerprint={"id": "fake"})
                for g in genotypes]
