"""What an audit trains, declared once: its own keys, the proxy settings side by side, the reference.

An audit takes a search config and audits its proxy. Its own keys (:class:`AuditConfig`) are declared
like every config key (:mod:`searchspace.settings`), so ``nas audit`` gets a flag for each. A *setting*
is a named set of overrides of the search's proxy config (``{"more_val": {"val_subset": 10000}}``; on the
command line ``--setting more_val:val_subset=10000``), checked against :class:`ProxyConfig`'s declaration
before any work; the reference training is one more such set of overrides (:data:`REFERENCE`).
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from predictors.training.config import ProxyConfig
from searchspace.errors import NasError
from searchspace.settings import apply_settings, hashed_dict, section, setting

# The reference training: 4x the default proxy's work (8 epochs x 15,000 images against 1 x 30,000;
# 8x the proxy of 3 x 5,000 it was set for, and the reference of experiments/results/proxy_audit.md)
# and 5x its validation images, so its accuracy is a steadier ranking to check against;
# its own seed, so that no audited seed shares its initialisation or its images.
REFERENCE: dict[str, Any] = {"epochs": 8, "subset": 15000, "val_subset": 5000, "seed": 100}
REFERENCE_NAME = "reference"
DEFAULT_SETTINGS: dict[str, dict[str, Any]] = {"default": {}}
PLACEMENT_KEYS = ("threads", "data_dir", "download")  # where a training runs, not what it finds
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


@dataclass
class AuditConfig:
    """The audit's own keys (the search config it audits holds the proxy, the space and the target)."""

    candidates: int = setting(20, "networks audited, spread over the cost range the search visits", low=3,
                              high=100000)
    seeds: int = setting(2, "trainings of each candidate per proxy setting, seeds proxy.seed, +1, ... (their "
                            "seed-to-seed tau is the noise ceiling)", low=1, high=100)
    reference_seeds: int = setting(2, "trainings of each candidate with the reference, seeds reference.seed, +1, "
                                      "...: the scores are ranked against their mean, and their own seed-to-seed "
                                      "tau is the ceiling any score can reach", low=1, high=100)
    cost_low: float = setting(0.5, "the cheapest candidates cost about COST_LOW x T", low=0.0, high=1000.0)
    cost_high: float = setting(1.5, "the dearest candidates cost about COST_HIGH x T", low=0.0, high=1000.0)
    pool: int = setting(200, "random networks drawn from the space and costed; the candidates are picked "
                             "from them, evenly spread over the cost range", low=1, high=1000000)
    top: int = setting(5, "report how many of the reference's best K each score also ranks in its best K",
                       low=1, high=100000)
    zero_cost_batch: int = setting(64, "images the zero-cost scores see (one batch of the proxy data)", low=2,
                                   high=4096)
    settings: dict[str, Any] = section(lambda: copy.deepcopy(DEFAULT_SETTINGS),
                                       "proxy settings audited side by side: NAME -> overrides of the "
                                       "search's proxy (default: the proxy as configured)")
    reference: dict[str, Any] = section(lambda: dict(REFERENCE), "overrides of the search's proxy for the "
                                                                 "reference training (merged onto the default)")


def parse_setting(text: str, flag: str = "--setting") -> tuple[str, dict[str, str]]:
    """``NAME:key=value,key=value`` (or a bare ``NAME``) as ``(NAME, {key: value})``; values stay text."""
    name, _, rest = text.partition(":")
    name = name.strip()
    if not _NAME.fullmatch(name):
        raise NasError(f"{flag}: {text!r} must start with a plain NAME (letters, digits, '.', '_', '-'), "
                       f"e.g. more_val:val_subset=10000")
    return name, parse_overrides(rest, f"{flag} {name}")


def parse_overrides(text: str, flag: str) -> dict[str, str]:
    """``key=value,key=value`` as ``{key: value}`` (empty text: no overrides)."""
    out: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, eq, value = item.partition("=")
        if not eq or not key.strip() or not value.strip():
            raise NasError(f"{flag}: {item!r} is not key=value (e.g. epochs=1,subset=null)")
        if key.strip() in out:
            raise NasError(f"{flag}: {key.strip()!r} is given twice")
        out[key.strip()] = value.strip()
    return out


def settings_from_flags(texts: list[str] | None) -> dict[str, dict[str, str]]:
    """Repeated ``--setting`` texts as ``{NAME: overrides}``; none given: the proxy as configured."""
    if not texts:
        return copy.deepcopy(DEFAULT_SETTINGS)
    out: dict[str, dict[str, str]] = {}
    for text in texts:
        name, overrides = parse_setting(text)
        if name in out:
            raise NasError(f"--setting: {name!r} is named twice")
        out[name] = overrides
    return out


def resolve_proxy(proxy: ProxyConfig, overrides: Mapping[str, Any], where: str) -> ProxyConfig:
    """A copy of ``proxy`` with ``overrides`` applied, each checked by ProxyConfig's declaration (and the
    device); a one-line error names ``where`` and the key."""
    from predictors.training.proxy import check_proxy_config

    if not isinstance(overrides, Mapping):
        raise NasError(f"{where}: expected a mapping of proxy keys (e.g. {{epochs: 1}}), got {overrides!r}")
    config = copy.deepcopy(proxy)
    apply_settings(config, dict(overrides), f"{where}.")
    check_proxy_config(config, f"{where}.")
    return config


def resolve_settings(proxy: ProxyConfig, settings: Mapping[str, Mapping[str, Any]]) -> dict[str, ProxyConfig]:
    """Each named setting as a full proxy config, checked before any work."""
    if not isinstance(settings, Mapping) or not settings:
        raise NasError("settings: give at least one proxy setting, e.g. {default: {}}")
    out = {}
    for name, overrides in settings.items():
        if not isinstance(name, str) or not _NAME.fullmatch(name) or name == REFERENCE_NAME:
            raise NasError(f"settings: {name!r} is not a usable name (letters, digits, '.', '_', '-'; "
                           f"not {REFERENCE_NAME!r})")
        out[name] = resolve_proxy(proxy, overrides or {}, f"settings.{name}")
    return out


def check_audit_config(options: AuditConfig) -> None:
    """Rules that tie the audit's keys together."""
    if options.cost_low >= options.cost_high:
        raise NasError(f"cost_low: {options.cost_low:g} must be below cost_high ({options.cost_high:g})")
    if options.pool < options.candidates:
        raise NasError(f"pool: {options.pool} must be at least candidates ({options.candidates})")


def training_key(genotype_hash: str, config: ProxyConfig) -> str:
    """What identifies one finished training: the network and everything in the proxy config that
    decides its accuracy (seed included; threads and data folder left out)."""
    decided = {k: v for k, v in hashed_dict(config).items() if k not in PLACEMENT_KEYS}
    digest = hashlib.sha256(json.dumps(decided, sort_keys=True).encode()).hexdigest()[:12]
    return f"{genotype_hash}:{digest}"


def overrides_text(overrides: Mapping[str, Any]) -> str:
    """``key=value,...`` (the form ``--setting`` takes), ``-`` for none."""
    if not overrides:
        return "-"
    return ",".join(f"{k}={'null' if v is None else v}" for k, v in overrides.items())
