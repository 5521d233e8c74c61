"""nas audit: candidates spread over the cost range, rank statistics against hand-computed values,
resume after an interrupted audit, bad settings refused in one line (fake trainers, no training)."""

from __future__ import annotations

import json

import pytest

import nas
from nas.auditing.candidates import spread_pick
from nas.auditing.config import parse_setting
from nas.auditing.run import STORE
from nas.auditing.stats import agreement, seed_noise, top_overlap
from nas.cli import main
from nas.config import load_config
from searchspace.errors import NasError
from tests.search_helpers import tiny_overrides

# Five candidates in cost order (index 0 = cheapest); accuracies chosen so that every statistic
# below can be worked out by hand.
REFERENCE = [0.80, 0.82, 0.84, 0.86, 0.88]
REFERENCE2 = [0.81, 0.80, 0.85, 0.84, 0.89]  # the reference's second seed: pairs (0,1), (2,3) swapped -> tau 0.6
SEED0 = [0.70, 0.74, 0.72, 0.78, 0.76]  # ranks 1 3 2 5 4: pairs (1,2) and (3,4) swapped -> C 8, D 2
SEED1 = [0.71, 0.70, 0.75, 0.73, 0.77]  # ranks 2 1 4 3 5: pairs (0,1) and (2,3) swapped -> C 8, D 2
TRAIN_SECONDS = {0: 1.5, 1: 1.5, 100: 12.0, 101: 11.0}  # per proxy seed (100, 101: the reference's)


class HashCost:
    """A cost known in advance and spread over 0..1000: from the genotype's hash."""

    unit = "macs"

    def cost(self, genotype) -> float:
        return (int(genotype.hash(), 16) % 10007) / 10


def free_scores(genotype) -> dict[str, float]:
    """MACs follow the cost, params run against it; the vote's three: two with the cost, one against."""
    c = HashCost().cost(genotype)
    return {"macs": c, "params": 1000 - c, "synflow": c, "jacob_cov": c, "snip": -c}


class Epoch:
    def __init__(self, train_loss: float) -> None:
        self.train_loss = train_loss


class Result:
    """A training result; its last epoch's loss falls with the accuracy except for candidate 0's (a fast start)."""

    def __init__(self, accuracy: float, seconds: float, loss: float | None = None) -> None:
        self.accuracy, self.epochs_run, self.train_seconds, self.params = accuracy, 1, seconds, 10
        self.history = [Epoch(1.0 - accuracy if loss is None else loss)]


class Trainers:
    """``trainer_for``: accuracies looked up by candidate (``index``: hash -> index) and proxy seed;
    remembers every training; raises KeyboardInterrupt (as Ctrl-C would) after ``stop_after`` trainings."""

    def __init__(self, index: dict[str, int] | None = None, stop_after: int | None = None) -> None:
        self.index, self.stop_after = index or {}, stop_after
        self.trained: list[tuple[str, int]] = []

    def __call__(self, config):
        def train(genotype, report=None):
            if self.stop_after is not None and len(self.trained) >= self.stop_after:
                raise KeyboardInterrupt
            self.trained.append((genotype.hash(), config.seed))
            i = self.index[genotype.hash()]
            accuracy = {0: SEED0, 1: SEED1, 100: REFERENCE, 101: REFERENCE2}[config.seed][i]
            if report is not None and config.seed < 100:  # checks at half and all of the epoch; the
                report(0.5, accuracy - 0.1 * (i % 2))       # odd candidates learn slower: curve = acc - 0.05
                report(1.0, accuracy)
            return Result(accuracy, TRAIN_SECONDS[config.seed], 0.1 if i == 0 else None)

        return train


def tiny_config(tmp_path):
    return load_config(None, tiny_overrides(tmp_path, target_macs="500"))


def run_audit(tmp_path, folder, trainers, **keys):
    keys = {"candidates": 5, "pool": 200, "top": 2, "reference_seeds": 1, **keys}
    return nas.audit(tiny_config(tmp_path), folder=folder, trainer_for=trainers, cost_model=HashCost(),
                     free_scores=free_scores, command="nas audit (test)", **keys)


def candidate_index(folder) -> dict[str, int]:
    saved = json.loads((folder / "candidates.json").read_text())
    return {c["hash"]: c["index"] for c in saved["candidates"]}


def picked(tmp_path, folder) -> dict[str, int]:
    """Pick the candidates (an audit stopped before its first training) and return hash -> index."""
    with pytest.raises(KeyboardInterrupt):
        run_audit(tmp_path, folder, Trainers(stop_after=0))
    return candidate_index(folder)


# ---- statistics on hand-computed lists ----


def test_agreement_by_hand():
    assert agreement(SEED0, REFERENCE)[:2] == pytest.approx((0.6, 0.8))  # tau (8-2)/10; rho 1 - 6*4/120
    assert agreement(SEED0, SEED1)[0] == pytest.approx(0.2)  # C 6, D 4 of 10 pairs
    assert agreement([1, 2, float("nan"), 4], [1, 2, 3, 0])[2] == 3  # pairs with a NaN are left out
    tau, rho, n = agreement([1, 1, 1], [1, 2, 3])
    assert n == 3 and tau != tau and rho != rho  # a constant score has no rank correlation: NaN


def test_top_overlap_and_seed_noise_by_hand():
    assert top_overlap(SEED0, REFERENCE, 2) == 2  # best two are candidates 3 and 4 for both
    assert top_overlap(SEED1, REFERENCE, 2) == 1  # seed 1's best two: 4 and 2
    noise = seed_noise([SEED0, SEED1])
    assert noise.ceiling == pytest.approx(0.2)
    assert noise.mean_points == pytest.approx(2.8)  # |diffs| 1, 4, 3, 5, 1 points
    assert noise.max_points == pytest.approx(5.0)
    assert seed_noise([SEED0]) is None


def test_spread_pick_nearest_to_even_points():
    costs = [10, 52, 30, 75, 49, 100, 26, 74]
    assert spread_pick(costs, 3, 25, 75) == [6, 4, 3]  # points 25, 50, 75 -> 26, 49, 75
    with pytest.raises(NasError, match="only 6 of 8 sampled networks cost between 25 and 75"):
        spread_pick(costs, 7, 25, 75)


# ---- the audit end to end, with fakes ----


def test_candidates_spread_over_cost_range(tmp_path):
    index = picked(tmp_path, tmp_path / "a")
    again = picked(tmp_path, tmp_path / "b")
    assert index == again  # seeded: the same candidates
    saved = json.loads((tmp_path / "a" / "candidates.json").read_text())["candidates"]
    costs = [c["cost"] for c in saved]
    assert len(set(index)) == 5 and costs == sorted(costs)
    assert all(250 <= c <= 750 for c in costs)  # 0.5 T .. 1.5 T with T = 500
    for cost, point in zip(costs, [250, 375, 500, 625, 750], strict=True):
        assert abs(cost - point) < 25  # near each evenly spaced point


def test_audit_table_matches_hand_computed_values(tmp_path):
    folder = tmp_path / "run"
    trainers = Trainers(picked(tmp_path, folder))
    result = run_audit(tmp_path, folder, trainers)
    rows = {r.score: r for r in result.rows}
    assert len(trainers.trained) == 15  # 5 candidates x (2 seeds + reference)
    assert (rows["default, seed 0"].tau, rows["default, seed 0"].spearman) == pytest.approx((0.6, 0.8))
    assert (rows["default, seed 1"].tau, rows["default, seed 1"].spearman) == pytest.approx((0.6, 0.8))
    assert rows["default, mean of 2 seeds"].tau == pytest.approx(1.0)
    assert rows["default, seed vs seed (noise ceiling)"].tau == pytest.approx(0.2)
    assert [rows[k].top for k in ("default, seed 0", "default, seed 1", "default, mean of 2 seeds")] == [2, 1, 2]
    assert rows["default, seed 0"].seconds == 1.5 and rows["default, mean of 2 seeds"].seconds == 3.0
    assert rows["reference"].seconds == 12.0 and rows["reference"].tau == pytest.approx(1.0)
    # the curve areas SEED0 - [0, .05, 0, .05, 0] = .70 .69 .72 .73 .76: one pair swapped against the reference
    assert rows["default curve area, seed 0"].tau == pytest.approx(0.8)
    assert result.accuracies("default", 0, "curve") == pytest.approx([0.70, 0.69, 0.72, 0.73, 0.76])
    # training speed = -(1 - accuracy), but candidate 0's loss is 0.1: it ranks first where it is last
    assert result.accuracies("default", 0, "speed") == pytest.approx([-0.1, -0.26, -0.28, -0.22, -0.24])
    assert rows["default training speed, seed 0"].tau == pytest.approx(-0.2)  # C 4, D 6
    assert rows["macs"].tau == pytest.approx(1.0) and rows["params"].tau == pytest.approx(-1.0)
    assert rows["snip"].tau == pytest.approx(-1.0) and rows["zero-cost vote"].tau == pytest.approx(1.0)
    text = (folder / "audit.md").read_text()
    assert "nas audit (test)" in text and "| default, seed 0 | 0.600 | 0.800 | 2/2 | 1.5 |" in text
    assert "| default | 0.200 | 2.80 | 5.00 |" in text  # seed noise: ceiling, mean and largest change
    lines = (folder / "audit.csv").read_text().splitlines()
    assert len(lines) == 1 + 15 and lines[0].startswith("candidate,hash,cost,training,seed_index,seed,state")
    assert (folder / "audit.png").stat().st_size > 0


def test_a_reference_under_two_seeds_is_ranked_against_by_its_mean(tmp_path):
    """Two reference seeds: every score is ranked against their mean, and their own tau is the ceiling."""
    folder = tmp_path / "run"
    trainers = Trainers(picked(tmp_path, folder))
    result = run_audit(tmp_path, folder, trainers, reference_seeds=2)
    rows = {r.score: r for r in result.rows}
    assert len(trainers.trained) == 20  # 5 candidates x (2 seeds + 2 reference seeds)
    assert result.reference_accuracies() == pytest.approx([0.805, 0.81, 0.845, 0.85, 0.885])
    assert rows["reference, seed vs seed (the ceiling)"].tau == pytest.approx(0.6)
    assert rows["reference, seed 1 vs the other seeds"].tau == pytest.approx(0.6)
    assert rows["reference, seed 1 vs the other seeds"].seconds == 11.0
    assert rows["default, seed 0"].tau == pytest.approx(0.6)  # the mean ranks as REFERENCE does
    text = (folder / "audit.md").read_text()
    assert "| reference | 0.600 | 1.40 | 2.00 |" in text  # its own seed noise: |diffs| 1, 2, 1, 2, 1 points
    assert "| reference | `epochs=" in text and " | 100..101 |" in text
    header = (folder / "audit.csv").read_text().splitlines()[0]
    assert header.startswith("candidate,hash,cost,training,seed_index,seed,state")


def test_resume_after_interrupt_repeats_no_training(tmp_path):
    index = picked(tmp_path, tmp_path / "once")
    whole = run_audit(tmp_path, tmp_path / "once", Trainers(index))
    folder = tmp_path / "twice"
    first = Trainers(index, stop_after=7)
    with pytest.raises(KeyboardInterrupt):
        run_audit(tmp_path, folder, first)
    assert len((folder / STORE).read_text().splitlines()) == 7
    with open(folder / STORE, "a") as f:  # a line torn by a kill while it was written
        f.write('{"key": "torn')
    second = Trainers(index)
    resumed = run_audit(tmp_path, folder, second)
    assert len(first.trained) == 7 and len(second.trained) == 8
    assert not set(first.trained) & set(second.trained)  # nothing trained twice
    strip = lambda r: {k: v for k, v in r.items() if k != "wall_seconds"}  # noqa: E731
    assert [strip(r) for r in resumed.records] == [strip(r) for r in whole.records]
    assert [(r.score, r.tau, r.top) for r in resumed.rows] == [(r.score, r.tau, r.top) for r in whole.rows]
    third = Trainers(index)
    run_audit(tmp_path, folder, third)  # all done: a rerun trains nothing
    assert third.trained == []


def test_settings_side_by_side_share_identical_trainings(tmp_path):
    folder = tmp_path / "run"
    trainers = Trainers(picked(tmp_path, folder))
    settings = {"default": {}, "same": {"epochs": "2"}, "longer": {"epochs": 3}}  # the tiny proxy has 2 epochs
    result = run_audit(tmp_path, folder, trainers, settings=settings)
    assert len(trainers.trained) == 25  # 5 x (2 seeds default = same, 2 seeds longer, reference)
    assert {r.setting for r in result.rows} >= {"default", "same", "longer"}
    assert result.accuracies("same", 1) == result.accuracies("default", 1) == SEED1
    trainers = Trainers(candidate_index(folder))
    run_audit(tmp_path, folder, trainers, settings={"again": {"epochs": 2}})  # same proxy under another name
    assert trainers.trained == []


def test_folder_of_another_audit_refused(tmp_path):
    folder = tmp_path / "run"
    picked(tmp_path, folder)
    with pytest.raises(NasError, match="holds an audit of another search config"):
        run_audit(tmp_path, folder, Trainers(), candidates=6)


# ---- bad input: one line, exit 2, nothing done ----


@pytest.mark.parametrize("flags, message", [
    (["--setting", "x:val_subset=-3"], "settings.x.val_subset: -3"),
    (["--setting", "x:nokey=1"], "settings.x.nokey: unknown key; allowed keys are dataset"),
    (["--setting", "x:epochs"], "--setting x: 'epochs' is not key=value"),
    (["--setting", "a b:epochs=1"], "--setting: 'a b:epochs=1' must start with a plain NAME"),
    (["--setting", "reference"], "settings: 'reference' is not a usable name"),
    (["--setting", "d", "--setting", "d:epochs=2"], "--setting: 'd' is named twice"),
    (["--reference", "epochs=0"], "reference.epochs: 0"),
    (["--candidates", "2"], "candidates: 2"),
    (["--cost-low", "2"], "cost_low: 2 must be below cost_high (1.5)"),
])
def test_bad_settings_refused_in_one_line(tmp_path, capsys, flags, message):
    runs = tmp_path / "runs"
    code = main(["audit", "--runs-dir", str(runs), "--name", "x", "--proxy-dataset", "synthetic", *flags])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and err.startswith("nas audit: error: ")
    assert message in err
    assert not runs.exists()  # nothing done


def test_parse_setting():
    assert parse_setting("all_1ep:subset=null, epochs=1") == ("all_1ep", {"subset": "null", "epochs": "1"})
    assert parse_setting("default") == ("default", {})
