"""Property tests: every genotype a space can sample validates, builds and runs.

The block families are read from ``searchspace.blocks.FAMILIES`` when the tests are collected, so a
newly registered family is covered without touching this file.
"""

from __future__ import annotations

import math
import random

import optuna
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from searchspace import GenotypeError, build
from searchspace.blocks import FAMILIES
from searchspace.params import fmt_choices
from searchspace.resolve import resolve
from searchspace.space import DEFAULT_TYPES, RandomTrial, Space, SpaceConfig, StageChoice, default_space

FAMILY_NAMES = list(FAMILIES)
RESOLUTION = 32
PROPERTY = settings(max_examples=8, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])




def small_config(types: list[str], strides: list[int], in_channels: int = 3, head: dict | None = None) -> SpaceConfig:
    """A small space at resolution 32: widths 8 or 16, one or two repeats per stage."""
    return SpaceConfig(
        stages=[StageChoice(s, [8, 16], [1, 2], list(types)) for s in strides],
        stem={"type": "conv", "out": 8, "stride": 2, "act": "relu"},
        head=head if head is not None else {"conv": 32, "act": "relu"},
        resolution=RESOLUTION,
        in_channels=in_channels,
    )


strides_st = st.lists(st.sampled_from([1, 2]), min_size=3, max_size=4)
head_st = st.sampled_from([{}, {"conv": 32, "act": "relu"}, {"conv": 24, "hidden": 40, "act": "hswish",
                                                               "dropout": 0.1, "pool": "max"}])


def check_runs(space: Space, seed: int, in_channels: int, num_classes: int | None) -> None:
    try:
        genotype = space.random_genotype(seed)
    except GenotypeError as err:  # Space.sample promises a valid genotype
        pytest.fail(f"the space sampled an invalid genotype (seed {seed}): {err}")
    net = resolve(genotype)
    model = build(genotype, num_classes=num_classes)
    x = torch.randn(2, in_channels, RESOLUTION, RESOLUTION)
    with torch.no_grad():
        features = model.forward_features(x)
        out = model.head(features)
    assert features.shape == (2, net.final_channels, net.final_size, net.final_size)
    assert out.shape == (2, num_classes or genotype.head["num_classes"])
    assert torch.isfinite(out).all()
    assert len(net.blocks) == genotype.num_blocks()


@pytest.mark.parametrize("family", FAMILY_NAMES)
@PROPERTY
@given(seed=st.integers(0, 2**32 - 1), strides=strides_st, in_channels=st.sampled_from([1, 3]),
       head=head_st, num_classes=st.sampled_from([None, 10]))
def test_single_family_genotypes_build_and_run(family, seed, strides, in_channels, head, num_classes):
    check_runs(Space(small_config([family], strides, in_channels, head)), seed, in_channels, num_classes)


@settings(PROPERTY, max_examples=20)
@given(seed=st.integers(0, 2**32 - 1), strides=strides_st,
       types=st.lists(st.sampled_from(FAMILY_NAMES), min_size=2, unique=True))
def test_mixed_family_genotypes_build_and_run(seed, strides, types):
    check_runs(Space(small_config(types, strides)), seed, 3, None)


@settings(PROPERTY, max_examples=12)
@given(seed=st.integers(0, 2**32 - 1))
def test_every_family_mixed_in_one_space(seed):
    check_runs(Space(small_config(FAMILY_NAMES, [1, 2, 2, 2])), seed, 3, 10)


def test_families_registry_is_consistent():
    for name, family in FAMILIES.items():
        assert family.name == name
        assert family.strides and all(s in (1, 2) for s in family.strides)
        names = [p.name for p in family.params]
        assert len(names) == len(set(names)), f"{name} declares a parameter twice"
        assert not set(names) & {"type", "repeat", "out", "stride"}
        for p in family.params:  # defaults and searched values pass the family's own declaration
            assert p.check(p.default, f"{name}.{p.name}") == p.default
            for v in p.search or ():
                p.check(v, f"{name}.{p.name}")
        assert set(family.channel_params) <= set(names)


# ---------------------------------------------------------------------------------------------- Space


def test_default_space_samples_validate():
    space = default_space()
    bad = []
    for seed in range(300):
        try:
            space.random_genotype(seed)
        except GenotypeError as err:
            bad.append(f"seed {seed}: {err}")
    assert not bad, f"{len(bad)} of 300 sampled genotypes are invalid, e.g. {bad[:3]}"


@pytest.mark.parametrize("family", FAMILY_NAMES)
def test_default_space_of_one_family_samples_validate(family):
    space = default_space([family])
    for seed in range(40):
        genotype = space.random_genotype(seed)
        assert {b.type for stage in genotype.stages for b in stage} == {family}


def test_default_space_searches_the_default_families_only():
    space = default_space()
    assert all(stage.types == list(DEFAULT_TYPES) for stage in space.config.stages)
    seen = {b.type for seed in range(200) for stage in space.random_genotype(seed).stages for b in stage}
    assert seen == set(DEFAULT_TYPES)


def test_size_counts_distinct_genotypes_of_a_tiny_space():
    config = SpaceConfig(
        stages=[StageChoice(1, [8], [1], ["mbconv"]), StageChoice(2, [16, 24], [1, 2], ["mbconv"])],
        stem={"type": "conv", "out": 8}, head={}, resolution=32,
        params={"mbconv": {"kernel": [3, 5], "expand": [6.0], "se": [0.0], "act": ["relu"]}},
    )
    space = Space(config)
    assert space.size() == (1 * 1 * 2) * (2 * 2 * 2)
    hashes = {space.random_genotype(seed).hash() for seed in range(400)}
    assert len(hashes) == space.size()


def expected_names(space: Space, genotype) -> set[str]:
    names = set()
    for i, (stage, choice) in enumerate(zip(genotype.stages, space.config.stages, strict=True)):
        t = stage[0].type
        names |= {f"s{i}_type", f"s{i}_repeat"}
        if not FAMILIES[t].keeps_width(choice.stride):
            names.add(f"s{i}_out")
        names |= {f"s{i}_{t}_{p}" for p in space.family_values[t]}
    return names


def test_define_by_run_parameter_names_are_stable():
    space = default_space()
    seen_types = set()
    for seed in range(60):
        trial = RandomTrial(seed)
        try:
            genotype = space.sample(trial)
        except GenotypeError:
            continue  # invalid samples are reported by test_default_space_samples_validate
        assert set(trial.params) == expected_names(space, genotype)
        seen_types |= {stage[0].type for stage in genotype.stages}
        # the same seed asks the same questions and gives the same network
        again = RandomTrial(seed)
        assert space.sample(again).hash() == genotype.hash()
        assert again.params == trial.params
    assert seen_types == set(DEFAULT_TYPES)


def test_optuna_trial_params_replay_the_genotype():
    space = default_space(["mbconv", "basic"])
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(10):
        trial = study.ask()
        genotype = space.sample(trial)
        assert set(trial.params) == expected_names(space, genotype)
        replay = space.sample(optuna.trial.FixedTrial(trial.params))
        assert replay.hash() == genotype.hash()
        study.tell(trial, 0.0)


def test_config_overrides_restrict_values():
    config = small_config(["mbconv"], [1, 2, 2])
    config.params = {"mbconv": {"kernel": [5], "act": "hswish", "se": [0.0, 0.5]}}
    space = Space(config)
    assert space.family_values["mbconv"]["kernel"] == [5]
    assert space.family_values["mbconv"]["act"] == ["hswish"]  # a scalar means one value
    assert space.family_values["mbconv"]["se"] == [0.0, 0.5]  # widened beyond the declared search
    kernels, acts, ses = set(), set(), set()
    for seed in range(40):
        for stage in space.random_genotype(seed).stages:
            kernels.add(stage[0].params["kernel"])
            acts.add(stage[0].params["act"])
            ses.add(stage[0].params["se"])
    assert kernels == {5} and acts == {"hswish"} and ses == {0.0, 0.5}
    unrestricted = Space(small_config(["mbconv"], [1, 2, 2]))
    ratio = unrestricted.size() / space.size()
    declared = {p.name: len(p.search) for p in FAMILIES["mbconv"].params if p.search}
    assert ratio == pytest.approx((declared["kernel"] * declared["act"] * declared["se"] / 2) ** 3)


def test_restricted_types_per_stage():
    config = small_config(FAMILY_NAMES, [1, 2, 2])
    config.stages[0].types = ["mbconv"]
    space = Space(config)
    assert {space.random_genotype(s).stages[0][0].type for s in range(30)} == {"mbconv"}


def one_line_error(make) -> GenotypeError:
    with pytest.raises(GenotypeError) as info:
        make()
    assert "\n" not in str(info.value)
    return info.value


def test_unknown_type_in_space_config():
    config = small_config(["mbconv"], [1, 2])
    config.stages[1].types = ["mbconv", "capsule"]
    err = one_line_error(lambda: Space(config))
    assert str(err) == f"space.stages[1].types: capsule is not one of {fmt_choices(tuple(FAMILIES))}"


def test_unknown_param_in_space_config():
    config = small_config(["mbconv"], [1, 2])
    config.params = {"mbconv": {"colour": ["red"]}}
    err = one_line_error(lambda: Space(config))
    assert err.path == "space.params.mbconv.colour"
    assert str(err) == ("space.params.mbconv.colour: unknown parameter; mbconv has "
                        + ", ".join(p.name for p in FAMILIES["mbconv"].params))


def test_bad_value_in_space_config():
    config = small_config(["mbconv"], [1, 2])
    config.params = {"mbconv": {"kernel": [3, 4]}}
    err = one_line_error(lambda: Space(config))
    assert str(err) == "space.params.mbconv.kernel[1]: 4 is not one of 3, 5, 7"


def test_encode_is_fixed_length():
    space = default_space(["mbconv", "basic"])
    rng = random.Random(0)
    vectors = [space.encode(space.random_genotype(rng)) for _ in range(20)]
    lengths = {len(v) for v in vectors}
    assert len(lengths) == 1
    assert all(math.isfinite(x) for v in vectors for x in v)
