"""The searchable space: per stage a block family and its parameters, sampled define-by-run.

A MobileNetV3 / MnasNet style factorized hierarchical space: a fixed stem and head, stages with
fixed strides, and per stage a choice of block family (any registered family), output width,
repeats and the family's own parameters (the values each family declares in ``Param.search``,
restricted or widened by the config). A stage wrapper (``csp``) also takes its inner family's
values (``s<i>_csp_<inner>_<param>``; the config's ``params.<inner>`` applies). ``Space.sample(trial)``
asks an Optuna trial (or anything with ``suggest_categorical``) and always returns a valid
:class:`Genotype`.
"""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass, field
from typing import Any, Protocol

from searchspace.blocks import FAMILIES
from searchspace.errors import GenotypeError
from searchspace.genotype import FORMAT, Genotype
from searchspace.params import fmt_choices
from searchspace.resolve import parse_genotype


class TrialLike(Protocol):
    def suggest_categorical(self, name: str, choices: Any) -> Any: ...


@dataclass
class StageChoice:
    """What one stage may be: stride fixed, the rest chosen."""

    stride: int
    out: list[int]
    repeat: list[int]
    types: list[str]


@dataclass
class SpaceConfig:
    """Plain-data description of a space (the ``space:`` section of a search config)."""

    stages: list[StageChoice]
    stem: dict[str, Any] = field(default_factory=lambda: {"type": "conv", "out": 16, "stride": 2, "act": "hswish"})
    head: dict[str, Any] = field(default_factory=lambda: {"conv": 960, "hidden": 1280, "act": "hswish",
                                                          "dropout": 0.2})
    params: dict[str, dict[str, list]] = field(default_factory=dict)
    resolution: int = 224
    in_channels: int = 3


DEFAULT_STAGES = (
    (1, [16], [1]),
    (2, [24, 32], [1, 2, 3]),
    (2, [40, 48], [1, 2, 3]),
    (2, [80, 96], [1, 2, 3, 4]),
    (1, [112, 128], [1, 2, 3]),
    (2, [160, 192], [1, 2, 3]),
)


# The families a search uses unless its config names others (``space: {types: [...]}``); any
# registered family may be named. A family joins this list only when a measured search shows it helps.
DEFAULT_TYPES = ("mbconv", "basic", "bottleneck", "split_attention", "shuffle", "ghost", "osa")


def default_space_config(types: list[str] | None = None) -> SpaceConfig:
    """The default space: six stages, the :data:`DEFAULT_TYPES` families (or ``types``) in every stage."""
    types = list(types or DEFAULT_TYPES)
    return SpaceConfig(stages=[StageChoice(s, list(o), list(r), list(types)) for s, o, r in DEFAULT_STAGES])


class RandomTrial:
    """A stand-in for an Optuna trial that samples uniformly with a seeded ``random.Random``."""

    def __init__(self, rng: random.Random | int | None = None) -> None:
        self.rng = rng if isinstance(rng, random.Random) else random.Random(rng)
        self.params: dict[str, Any] = {}

    def suggest_categorical(self, name: str, choices: Any) -> Any:
        self.params[name] = self.rng.choice(list(choices))
        return self.params[name]


class Space:
    """A searchable space built from a :class:`SpaceConfig`."""

    def __init__(self, config: SpaceConfig) -> None:
        self.config = config
        self.family_values = {name: self._values(name) for name in self._used_types()}

    def _used_types(self) -> list[str]:
        """The stages' families, then the families they wrap (a csp entry's inner blocks)."""
        seen: list[str] = []
        for i, stage in enumerate(self.config.stages):
            for t in stage.types:
                if t not in FAMILIES:
                    raise GenotypeError(f"space.stages[{i}].types", f"{t} is not one of {fmt_choices(tuple(FAMILIES))}")
                if t not in seen:
                    seen.append(t)
        inner = [f.name for t in seen for f in FAMILIES[t].wraps]
        return seen + [t for t in dict.fromkeys(inner) if t not in seen]

    def _values(self, family_name: str) -> dict[str, list]:
        """Searchable values per parameter of a family: declared ``search`` values, config overrides."""
        family = FAMILIES[family_name]
        overrides = self.config.params.get(family_name, {})
        values = {p.name: list(p.search) for p in family.params if p.search is not None}
        for name, choices in overrides.items():
            path = f"space.params.{family_name}.{name}"
            if name not in family.param_index:
                raise GenotypeError(path, f"unknown parameter; {family_name} has {', '.join(family.param_index)}")
            if not isinstance(choices, list) or not choices:
                choices = [choices]
            values[name] = [family.param(name).check(v, f"{path}[{k}]") for k, v in enumerate(choices)]
        return values

    def sample(self, trial: TrialLike) -> Genotype:
        """Sample one genotype, asking ``trial`` define-by-run (parameter names are stable)."""
        stages = []
        channels = self.config.stem["out"]
        for i, stage in enumerate(self.config.stages):
            block_type = trial.suggest_categorical(f"s{i}_type", stage.types)
            if FAMILIES[block_type].keeps_width(stage.stride):
                out = channels
            else:
                out = trial.suggest_categorical(f"s{i}_out", stage.out)
            repeat = trial.suggest_categorical(f"s{i}_repeat", stage.repeat)
            block: dict[str, Any] = {"type": block_type, "repeat": repeat, "out": out, "stride": stage.stride}
            for name, choices in self.family_values[block_type].items():
                block[name] = trial.suggest_categorical(f"s{i}_{block_type}_{name}", choices)
            family = FAMILIES[block_type]
            inner = family.inner({"inner": family.param("inner").default, **block}) if family.wraps else None
            if inner is not None:  # a wrapper: its inner family's values too, named after both
                for name, choices in self.inner_values(block_type, inner.name).items():
                    block[name] = trial.suggest_categorical(f"s{i}_{block_type}_{inner.name}_{name}", choices)
            stages.append({"blocks": [block]})
            channels = out
        raw = {
            "format": FORMAT,
            "name": "candidate",
            "input": {"channels": self.config.in_channels, "resolution": self.config.resolution},
            "stem": dict(self.config.stem),
            "stages": stages,
            "head": dict(self.config.head),
        }
        return parse_genotype(raw)

    def inner_values(self, wrapper: str, inner: str) -> dict[str, list]:
        """Searched values of a wrapper's inner family, less the parameters the wrapper sets itself."""
        family = FAMILIES[wrapper]
        return {k: v for k, v in self.family_values[inner].items() if k not in family.param_index}

    def value_combos(self, block_type: str) -> list[dict[str, Any]]:
        """Every combination of searched values of one block type (a wrapper's with each inner's)."""
        family = FAMILIES[block_type]
        own = self.family_values[block_type]
        combos = [dict(zip(own, values, strict=True)) for values in itertools.product(*own.values())]
        if not family.wraps:
            return combos
        out = []
        for combo in combos:
            inner = family.inner({"inner": family.param("inner").default, **combo})
            values = self.inner_values(block_type, inner.name)
            out += [{**combo, **dict(zip(values, v, strict=True))} for v in itertools.product(*values.values())]
        return out

    def random_genotype(self, rng: random.Random | int | None = None) -> Genotype:
        """A uniformly sampled genotype (seeded)."""
        return self.sample(RandomTrial(rng))

    def size(self) -> int:
        """Number of distinct genotypes in the space."""
        total = 1
        for stage in self.config.stages:
            per_stage = 0
            for t in stage.types:
                outs = 1 if FAMILIES[t].keeps_width(stage.stride) else len(stage.out)
                per_stage += outs * len(stage.repeat) * len(self.value_combos(t))
            total *= per_stage
        return total

    def encode(self, genotype: Genotype) -> list[float]:
        """A fixed-length feature vector of a single-entry-per-stage genotype (for predictors)."""
        types = list(FAMILIES)
        features: list[float] = []
        for stage in genotype.stages:
            block = stage[0]
            features += [1.0 if block.type == t else 0.0 for t in types]
            features += [float(block.out), float(sum(b.repeat for b in stage)), float(block.stride)]
            for key in ("kernel", "expand", "se"):
                value = block.params.get(key)
                features.append(float(value) if isinstance(value, (int, float)) and value is not None else 0.0)
        return features


def default_space(types: list[str] | None = None) -> Space:
    """The default search space (all registered families unless ``types`` restricts them)."""
    return Space(default_space_config(types))


SPACE_KEYS = ("types", "stages", "stem", "head", "params", "resolution", "in_channels")


def _int_list(value: Any, path: str) -> list[int]:
    values = value if isinstance(value, list) else [value]
    if not values or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in values):
        raise GenotypeError(path, f"{value!r} is not a positive integer or a non-empty list of them")
    return values


def space_from_dict(raw: dict[str, Any]) -> Space:
    """A Space from the ``space:`` section of a search config (every key optional).

    ``types`` restricts the families of every stage; ``stages`` replaces the stage list (each with
    ``stride``, ``out``, ``repeat``, optional ``types``); ``params`` restricts or widens a family's
    searched values (``params: {mbconv: {kernel: [3, 5]}}``); ``stem``/``head`` replace the fixed parts.
    """
    if not isinstance(raw, dict):
        raise GenotypeError("space", "expected a mapping")
    for key in raw:
        if key not in SPACE_KEYS:
            raise GenotypeError(f"space.{key}", f"unknown key; allowed keys are {', '.join(SPACE_KEYS)}")
    types = raw.get("types")
    if types is not None:
        if not isinstance(types, list) or not types:
            raise GenotypeError("space.types", "expected a non-empty list of block types")
        for t in types:
            if t not in FAMILIES:
                raise GenotypeError("space.types", f"{t} is not one of {fmt_choices(tuple(FAMILIES))}")
    config = default_space_config(types)
    if "stages" in raw:
        if not isinstance(raw["stages"], list) or not raw["stages"]:
            raise GenotypeError("space.stages", "expected a non-empty list of stages")
        config.stages = []
        for i, stage in enumerate(raw["stages"]):
            path = f"space.stages[{i}]"
            if not isinstance(stage, dict):
                raise GenotypeError(path, "expected a mapping with stride, out, repeat and optional types")
            for key in stage:
                if key not in ("stride", "out", "repeat", "types"):
                    raise GenotypeError(f"{path}.{key}", "unknown key; allowed keys are stride, out, repeat, types")
            stride = stage.get("stride", 1)
            if stride not in (1, 2):
                raise GenotypeError(f"{path}.stride", f"{stride!r} is not one of 1, 2")
            stage_types = stage.get("types", types or list(DEFAULT_TYPES))
            if not isinstance(stage_types, list) or not stage_types:
                raise GenotypeError(f"{path}.types", "expected a non-empty list of block types")
            config.stages.append(StageChoice(stride, _int_list(stage.get("out", 32), f"{path}.out"),
                                             _int_list(stage.get("repeat", 1), f"{path}.repeat"), list(stage_types)))
    for key in ("stem", "head", "params"):
        if key in raw:
            if not isinstance(raw[key], dict):
                raise GenotypeError(f"space.{key}", "expected a mapping")
            setattr(config, key, raw[key])
    for key in ("resolution", "in_channels"):
        if key in raw:
            setattr(config, key, _int_list(raw[key], f"space.{key}")[0])
    space = Space(config)
    space.random_genotype(0)  # validates stem/head/params by sampling once
    return space
