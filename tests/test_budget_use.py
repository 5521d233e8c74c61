"""The report's budget-use line: the winner's share of T and, below 80%, what the search saw near T."""

from __future__ import annotations

from nas.search.budget_use import budget_use


def _row(number: int, state: str, cost: float | None, accuracy: float | None = None) -> dict:
    return {"number": number, "state": state, "cost": cost, "accuracy": accuracy}


ROWS = [_row(0, "COMPLETE", 15.0, 0.86), _row(1, "COMPLETE", 17.0, 0.85), _row(2, "PRUNED", 19.0),
        _row(3, "COMPLETE", 19.5, 0.87), _row(4, "PRUNED", 25.0), _row(5, "FAIL", None)]


def test_a_winner_that_uses_the_budget_gets_its_share_only():
    assert budget_use(ROWS, 3, 18.0, 20.0, "ms") == "18 ms = 90% of the target"


def test_below_the_share_and_nothing_better_near_t():
    text = budget_use(ROWS[:3], 0, 15.2, 20.0, "ms")  # trial 1 (0.85) is the best there, below the winner's 0.86
    assert text == ("15.2 ms = 76% of the target, below 80%: 1 candidate(s) completed between 16 and 20 ms, the best "
                    "trial 1 (search accuracy 0.8500 at 17 ms), no better than the winner's 0.8600")


def test_below_the_share_a_better_candidate_near_t_lost_at_the_finalists():
    assert budget_use(ROWS, 0, 15.2, 20.0, "ms", finalist_trials=[0, 3]) == (
        "15.2 ms = 76% of the target, below 80%: 2 candidate(s) completed between 16 and 20 ms, the best trial 3 "
        "(search accuracy 0.8700 at 19.5 ms); it lost to the winner at the finalist fidelity")


def test_below_the_share_with_nothing_completed_near_t():
    rows = [_row(0, "COMPLETE", 12.0, 0.86), _row(1, "PRUNED", 18.0), _row(2, "PRUNED", 30.0)]
    assert budget_use(rows, 0, 12.0, 20.0, "ms") == (
        "12 ms = 60% of the target, below 80%: the search completed no candidate between 16 and 20 ms (1 measured "
        "there, 1 of them pruned or rejected)")
