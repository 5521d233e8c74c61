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
