"""Config keys are declared once (searchspace.settings): YAML, validation, flags and --help follow."""

from __future__ import annotations

import argparse
from dataclasses import dataclass

import pytest

from nas.commands.flags import add_flags, flag_values
from nas.config import SearchConfig, load_config
from predictors.training.config import ProxyConfig
from searchspace.errors import NasError
from searchspace.settings import declared, setting


@dataclass
class WithNewKey(SearchConfig):
    """A copy of the declaration with one key added, in one place."""

    warmup_trials: int = setting(4, "trials sampled at random before the strategy starts", low=0, high=100)


def _parser(cls: type) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nas search")
    add_flags(parser, cls)
    return parser


def test_a_key_added_in_one_place_shows_in_yaml_flags_and_help(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("warmup_trials: 7\n")
    assert load_config(path, cls=WithNewKey).warmup_trials == 7
    args = _parser(WithNewKey).parse_args(["--warmup-trials", "9"])
    assert load_config(path, flag_values(args, WithNewKey), cls=WithNewKey).warmup_trials == 9  # flag wins
    help_text = " ".join(_parser(WithNewKey).format_help().split())
    assert "--warmup-trials WARMUP-TRIALS trials sampled at random before the strategy starts (default: 4)" \
        in help_text
    with pytest.raises(NasError, match="warmup_trials: 101 is out of range; expected an integer from 0 to 100"):
        load_config(overrides={"warmup_trials": "101"}, cls=WithNewKey)
    assert "--warmup-trials" not in _parser(SearchConfig).format_help()


def test_every_field_is_declared_with_help():
    for cls in (SearchConfig, ProxyConfig):
        keys = declared(cls)
        assert list(keys) == list(cls.__dataclass_fields__)
        assert all(k.param.doc for k in keys.values())


def test_flags_are_typed_by_the_declaration_not_guessed():
    config = load_config(overrides={"trials": "12", "proxy.width": "0.25", "proxy.channels_last": "false",
                                    "proxy.subset": "null", "budget": "2m", "target_latency": "0.015s"})
    assert (config.trials, config.proxy.width, config.proxy.channels_last) == (12, 0.25, False)
    assert config.proxy.subset is None and config.budget == 120.0 and config.target_latency == 15.0


@pytest.mark.parametrize("overrides, message", [
    ({"proxy.channels_last": "maybe"}, "proxy.channels_last: 'maybe' is not true or false"),
    ({"trials": "2.5"}, "trials: 2.5 (float) is not an integer >= 1 or null"),
    ({"proxy.optimizer": "adam"}, "proxy.optimizer: adam is not one of sgd, adamw"),
    ({"tournament": "20"}, "tournament: 20 must be at most population (10)"),
    ({"color": "red"}, "color: unknown key; allowed keys are name, runs_dir"),
])
def test_bad_values_name_the_key(overrides, message):
    with pytest.raises(NasError) as info:
        load_config(overrides=overrides)
    assert message in str(info.value)


def test_the_hash_ignores_where_and_how_long_a_run_goes():
    base = load_config().hash()
    assert load_config(overrides={"name": "x", "budget": "1h", "trials": "3", "workers": "8"}).hash() == base
    assert load_config(overrides={"proxy.epochs": "4"}).hash() != base


def test_importing_the_proxy_settings_does_not_import_torch():
    import subprocess
    import sys

    code = "import sys, predictors.training.config; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
