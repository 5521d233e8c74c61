"""Whether the winner uses the budget it was given: the report's "budget use" line.

A user who asks for T wants the most accurate network within T; a winner far below T is the right answer
only if the search saw nothing better closer to T. The line gives the winner's share of T and, below
:data:`USED_SHARE` of it, what the search saw between that share and T, from its own trials.
"""

from __future__ import annotations

USED_SHARE = 0.8  # a winner at or above this share of T uses the budget


def budget_use(rows: list[dict], winner_trial: int, final_cost: float, target: float, unit: str,
               finalist_trials: list[int] | None = None) -> str:
    """The report line: ``final_cost`` as a share of ``target`` and, below :data:`USED_SHARE`, why.

    ``rows`` are trials.csv's rows (search cost and accuracy per trial); ``finalist_trials`` the trials
    trained again at the finalist fidelity."""
    share = final_cost / target
    text = f"{final_cost:.4g} {unit} = {share:.0%} of the target"
    if share >= USED_SHARE:
        return text
    low = USED_SHARE * target
    band = [r for r in rows if r.get("cost") is not None and low <= float(r["cost"]) <= target]
    done = [r for r in band if r["state"] == "COMPLETE" and r.get("accuracy") is not None]
    where = f"between {low:.4g} and {target:.4g} {unit}"
    if not done:
        pruned = sum(r["state"] == "PRUNED" for r in band)
        return (f"{text}, below {USED_SHARE:.0%}: the search completed no candidate {where} ({len(band)} "
                f"measured there, {pruned} of them pruned or rejected)")
    best = max(done, key=lambda r: float(r["accuracy"]))
    winner = next((r for r in rows if int(r["number"]) == winner_trial), None)
    winner_accuracy = float(winner["accuracy"]) if winner and winner.get("accuracy") is not None else None
    seen = (f"{len(done)} candidate(s) completed {where}, the best trial {best['number']} "
            f"(search accuracy {float(best['accuracy']):.4f} at {float(best['cost']):.4g} {unit})")
    if winner_accuracy is None:
        return f"{text}, below {USED_SHARE:.0%}: {seen}"
    if float(best["accuracy"]) <= winner_accuracy:
        return f"{text}, below {USED_SHARE:.0%}: {seen}, no better than the winner's {winner_accuracy:.4f}"
    if finalist_trials and int(best["number"]) in finalist_trials:
        return f"{text}, below {USED_SHARE:.0%}: {seen}; it lost to the winner at the finalist fidelity"
    return f"{text}, below {USED_SHARE:.0%}: {seen}, above the winner's {winner_accuracy:.4f} but not a finalist"
