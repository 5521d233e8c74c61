"""The search starts from hand-designed networks width-scaled to T, scores them like any candidate, and
says so when one of them wins."""

from __future__ import annotations

import csv

import pytest

from nas.cli import main
from nas.config import load_config
from nas.search.run import search
from nas.search.starts import scaled_to_target, zoo_for_data
from searchspace.errors import NasError
from tests.search_helpers import FakeTrainer, tiny_overrides


class WidthCost:
    """A cost known by hand: 1M x the width multiplier (the space's own networks have width 1)."""

    unit = "macs"

    def __init__(self) -> None:
        self.asked: list[float] = []

    def cost(self, genotype) -> float:
        self.asked.append(genotype.scaling["width"])
        return 1e6 * genotype.scaling["width"]


def test_the_widest_variant_within_the_target_is_found_by_bisection() -> None:
    base = zoo_for_data("mobilenet_v3_small", 10)
    genotype, cost = scaled_to_target(base, lambda g: 10.0 * g.scaling["width"] ** 2, target=20.0)
    assert 1.39 <= genotype.scaling["width"] <= 2**0.5 and cost <= 20.0  # sqrt(2) within 7 halvings of 1.75
    assert genotype.head["num_classes"] == 10
    narrowest, over = scaled_to_target(base, lambda g: 100.0, target=20.0)
    assert narrowest.scaling["width"] == 0.25 and over == 100.0  # nothing meets T: the narrowest, as measured


def test_an_unknown_starting_network_is_one_line_before_any_work(tmp_path) -> None:
    with pytest.raises(NasError, match=r"^start_from: 'mobilenet_v9' is not a zoo network"):
        load_config(overrides={**tiny_overrides(tmp_path), "start_from": "mobilenet_v3_small, mobilenet_v9"})
    assert main(["search", "--start-from", "bogus", "--runs-dir", str(tmp_path)]) == 2
    assert not (tmp_path / "runs").exists()


def _rows(folder) -> list[dict]:
    with open(folder / "trials.csv") as f:
        return list(csv.DictReader(f))


def test_starting_points_are_scored_first_and_a_winning_one_is_named(tmp_path) -> None:
    trainer = FakeTrainer(accuracy=lambda g: 0.95 if g.name.startswith("ghostnet") else 0.6)
    overrides = tiny_overrides(tmp_path, "starts", trials=4, target_macs="1.5M", finalists=1,
                               start_from="mobilenet_v3_small,ghostnet_100")
    summary = search(load_config(overrides=overrides), quiet=True, cost_model=WidthCost(), trainer=trainer)
    folder = tmp_path / "runs" / "starts"
    rows = _rows(folder)
    assert [r["start"] for r in rows[:2]] == ["mobilenet_v3_small x1.494", "ghostnet_100 x1.494"]
    assert all(r["start"] == "" for r in rows[2:]) and len(rows) == 4 == summary.trials
    # widths tried by hand: 1.125 in, 1.562 over, 1.343 in, 1.452 in, 1.507 over, 1.48 in, 1.494 in
    assert float(rows[1]["cost"]) == 1.494e6 <= 1.5e6  # width-scaled to T, not to the winner
    report = (folder / "report.md").read_text()
    assert "- the winner is a starting point: ghostnet_100 x1.494: no searched network beat" in report
    trained = len(trainer.trained)
    again = tiny_overrides(tmp_path, "starts", trials=5, target_macs="1.5M", finalists=1, resume=True,
                           start_from="mobilenet_v3_small,ghostnet_100")
    search(load_config(overrides=again), quiet=True, cost_model=WidthCost(), trainer=trainer)
    assert len(trainer.trained) == trained + 1  # resumed: one new candidate, the starting points kept
    assert [r["start"] for r in _rows(folder)].count("ghostnet_100 x1.494") == 1
