"""What a latency is valid for: how it is measured (:class:`MeasureConfig`) and the result that carries it.

Every number carries its conditions (backend, device, threads, memory format, batch, resolution, device
fingerprint), as one plain dict shape (:func:`conditions_of`), because a latency read without them is
not comparable; :func:`config_from_conditions` turns such a dict (e.g. a genotype's recorded
``provenance.latency_conditions``) back into a config, so the number can be reproduced.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace

from predictors.latency.cache import TORCH_FORMAT
from predictors.latency.fingerprint import BACKENDS, DEVICES
from searchspace.errors import NasError

MEMORY_FORMATS = ("channels_last", "contiguous")
CHANNELS_LAST_HOWTO = ("to run it the same way: model = model.to(memory_format=torch.channels_last) and "
                       "x = x.to(memory_format=torch.channels_last)")


@dataclass(frozen=True)
class MeasureConfig:
    """How to measure: backend, device, threads, input shape and the repetition policy."""

    backend: str = "torch"
    device: str = "cpu"
    threads: int | None = None
    batch: int = 1
    resolution: int | None = None  # None: the genotype's own resolution
    warmup: int = 5
    reps: int = 60  # most timed repetitions per candidate
    min_reps: int = 10  # fewest before stopping early
    rounds: int = 5
    min_rounds: int = 2  # rounds before a candidate may stop early
    round_seconds: float = 0.3  # time per candidate per round (decides reps per round)
    target_spread: float = 0.02  # stop early when IQR / median is below this
    noise_threshold: float = 0.10  # IQR / median above this: flagged noisy
    memory_format: str | None = None  # channels_last or contiguous; None: the backend's (see memory_format_of)


# Careful measurements: about 6 s per network (1 s per round), 30 to 180 repetitions, no early stop.
# For the few measurements that decide something (a search's finalists, a latency ladder's rungs).
CAREFUL = MeasureConfig(reps=180, min_reps=30, rounds=6, round_seconds=1.0, target_spread=0.0)


@dataclass
class Measurement:
    """One network's latency on one device setting."""

    genotype_hash: str
    median_ms: float
    iqr_ms: float
    q25_ms: float
    q75_ms: float
    min_ms: float
    reps: int
    noisy: bool
    backend: str
    device: str
    threads: int
    batch: int
    resolution: int
    memory_format: str
    fingerprint: dict
    cached: bool = False

    @property
    def conditions(self) -> dict:
        """What this number is valid for: backend, device, threads, memory format, batch, resolution,
        device fingerprint id (plain data, e.g. for a genotype's ``provenance.latency_conditions``)."""
        return conditions_of(self.backend, self.device, self.threads, self.memory_format, self.batch,
                             self.resolution, self.fingerprint.get("id"))

    def to_dict(self) -> dict:
        out = asdict(self)
        out.pop("cached")
        return out

    @classmethod
    def from_dict(cls, raw: dict, cached: bool = True) -> Measurement:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in raw.items() if k in names and k != "cached"}, cached=cached)


def conditions_of(backend: str, device: str, threads: int, memory_format: str, batch: int, resolution: int,
                  fingerprint_id: str | None) -> dict:
    """The plain conditions dict of a latency (measured or predicted); one shape everywhere."""
    return {"backend": backend, "device": device, "threads": threads, "memory_format": memory_format,
            "batch": batch, "resolution": resolution, "fingerprint_id": fingerprint_id}


def memory_format_of(config: MeasureConfig) -> str:
    """The memory format a whole network (and each lookup-table part) runs in under ``config``.

    The torch backend runs channels_last unless ``config.memory_format`` says otherwise (oneDNN's
    preferred layout for convolutions; one fixed format, so that a user can reproduce the number and
    the lookup table profiles its parts in the same one); torchscript and onnxruntime run contiguous.
    """
    if config.memory_format is not None and config.memory_format not in MEMORY_FORMATS:
        raise NasError(f"memory_format: {config.memory_format!r} is not one of {', '.join(MEMORY_FORMATS)}")
    if config.backend != "torch":
        return "contiguous"
    return config.memory_format or TORCH_FORMAT


def config_from_conditions(conditions: dict, base: MeasureConfig | None = None,
                           where: str = "latency_conditions") -> MeasureConfig:
    """``base`` with the backend, device, threads, memory format, batch and resolution of a conditions dict
    (keys missing from it keep ``base``'s values); NasError naming the field for a bad value."""
    if not isinstance(conditions, dict):
        raise NasError(f"{where}: expected a mapping of backend, threads, memory_format, batch, resolution")
    config = base or MeasureConfig()
    allowed = {"backend": BACKENDS, "device": DEVICES, "memory_format": MEMORY_FORMATS}
    changes: dict = {}
    for key, choices in allowed.items():
        if conditions.get(key) is not None:
            if conditions[key] not in choices:
                raise NasError(f"{where}.{key}: {conditions[key]!r} is not one of {', '.join(choices)}")
            changes[key] = conditions[key]
    for key in ("threads", "batch", "resolution"):
        value = conditions.get(key)
        if value is not None:
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise NasError(f"{where}.{key}: {value!r} is not a positive integer")
            changes[key] = value
    return replace(config, **changes)
