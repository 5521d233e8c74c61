"""A prediction says what its correction has not seen: a family no calibration network had (its interval
widened by how far this machine's families stray from the common factor) or a size outside the range."""

from __future__ import annotations

import math

import pytest

from predictors.latency.calibration import SHARED_ERROR, Correction
from searchspace import with_scaling
from searchspace.space import default_space
from tests.test_latency_table import make_table, references


def test_a_network_like_the_calibration_ones_gets_no_note(tmp_path) -> None:
    table = make_table(tmp_path)
    pred = table.predict_interval(references(32)[0])
    assert pred.note == ""
    c = table.correction
    assert c.seen and {"mbconv_ms", "stem_ms", "head_ms"} <= set(c.seen) and "ghost_ms" not in c.seen
    assert pred.high_ms == pytest.approx(pred.ms * math.exp(c.high))


def test_an_unseen_family_widens_the_interval_and_says_so(tmp_path) -> None:
    table = make_table(tmp_path)
    table.predict(references(32)[0])  # calibrated on mbconv / basic networks
    ghost = with_scaling(default_space(["ghost"]).random_genotype(0), resolution=32)
    pred = table.predict_interval(ghost)
    c = table.correction
    factors = [k for k in c.names if k in c.seen]
    by_hand = max([abs(math.log(coef / c.common)) for k, coef in zip(c.names, c.coef, strict=True)
                   if k in factors and coef > 0] + [SHARED_ERROR])
    assert c.family_spread() == pytest.approx(by_hand)
    assert pred.high_ms == pytest.approx(pred.ms * math.exp(c.high + by_hand))
    assert pred.low_ms == pytest.approx(pred.ms * math.exp(c.low - by_hand))
    assert "ghost: no network of this family was measured whole here" in pred.note


def test_a_size_outside_the_calibration_range_is_said_to_be_extrapolated() -> None:
    rows = [{"table_ms": t, "stem_ms": 0.1 * t, "mbconv_ms": 0.8 * t, "head_ms": 0.1 * t, "parts": 5.0, "one": 1.0,
             "params_m": 1.0, "mem_mb": 1.0} for t in (2.0, 3.0, 4.0, 5.0)]
    c = Correction.fit(rows, [2.0 * r["table_ms"] for r in rows])
    assert c.table_range == [2.0, 5.0] and c.seen == ["stem_ms", "head_ms", "mbconv_ms"]
    inside, outside = dict(rows[1]), {**rows[3], "table_ms": 9.0, "mbconv_ms": 7.2}
    assert c.interval(inside).note == ""
    assert c.interval(outside).note == ("table sum 9 ms is outside the 2-5 ms of the networks measured whole "
                                        "(extrapolated)")
    assert Correction.identity().interval(outside).note == ""  # an identity correction has nothing to compare
