"""What a run leaves behind: trials.csv, pareto.csv, pareto.png, best.yaml and report.md.

Every file is written atomically (a unique temporary name, then a rename), so a reader, or another
worker sharing the run folder, never sees half a file. trials.csv is rewritten as each trial finishes.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import optuna
from optuna.trial import TrialState

from nas.common.figures import pyplot, save_figure
from nas.search.progress import describe
from nas.search.storage import NO_HEARTBEAT
from searchspace import Genotype, parse_genotype, save_genotype
from searchspace.textio import atomic_file, write_text_atomic

REFERENCE_NETWORKS = ("mobilenet_v3_small", "mobilenet_v3_large", "shufflenet_v2_x1_0", "ghostnet_100")
TRIAL_COLUMNS = ("number", "state", "accuracy", "cost", "reward", "epochs", "seconds", "train_seconds",
                 "cost_seconds", "params", "hash", "duplicate_of", "start", "reason", "architecture")


def trial_rows(study: optuna.Study) -> list[dict]:
    """One plain row per trial: params, accuracy, cost, reward, state, reason."""
    rows = []
    for t in study.get_trials(deepcopy=False):
        a = t.user_attrs
        genotype = a.get("genotype")
        row = {
            "number": t.number, "state": t.state.name, "accuracy": a.get("accuracy"), "cost": a.get("cost"),
            "reward": a.get("reward"), "epochs": a.get("epochs"), "train_seconds": a.get("train_seconds"),
            "cost_seconds": a.get("cost_seconds"), "params": a.get("params"), "hash": a.get("hash"),
            "seconds": (t.datetime_complete - t.datetime_start).total_seconds()
            if t.datetime_complete and t.datetime_start else None,
            "duplicate_of": a.get("duplicate_of"), "start": a.get("start", ""),
            "reason": a.get("reason", NO_HEARTBEAT if t.state == TrialState.FAIL else ""),
            "architecture": describe(parse_genotype(genotype)) if genotype else "",
        }
        row.update({f"param:{k}": v for k, v in sorted(t.params.items())})
        rows.append(row)
    return rows


def write_csv(path: Path, rows: list[dict]) -> None:
    columns = list(TRIAL_COLUMNS)
    for row in rows:
        columns += [k for k in row if k not in columns]
    with atomic_file(path) as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)


def write_trials(folder: Path, study: optuna.Study) -> None:
    """trials.csv of the study as it is now (called as each trial finishes, and at the end)."""
    write_csv(folder / "trials.csv", trial_rows(study))


def pareto_front(rows: list[dict]) -> list[dict]:
    """Completed trials not dominated in (higher accuracy, lower cost), sorted by cost."""
    done = [r for r in rows if r["state"] == "COMPLETE" and r["accuracy"] is not None and r["cost"] is not None]
    front = [r for r in done if not any(
        o["accuracy"] >= r["accuracy"] and o["cost"] <= r["cost"]
        and (o["accuracy"] > r["accuracy"] or o["cost"] < r["cost"]) for o in done)]
    return sorted(front, key=lambda r: r["cost"])


def plot_pareto(path: Path, rows: list[dict], front: list[dict], target: float, unit: str,
                references: dict[str, float]) -> None:
    """Accuracy vs cost of every completed trial, the front, the target and reference networks."""
    plt = pyplot()
    done = [r for r in rows if r["state"] == "COMPLETE" and r["cost"] is not None]
    scale = 1.0 if unit == "ms" else 1e-6
    fig, ax = plt.subplots(figsize=(7, 4.5))
    ax.scatter([r["cost"] * scale for r in done], [r["accuracy"] for r in done], s=14, alpha=0.5, label="trials")
    if front:
        ax.plot([r["cost"] * scale for r in front], [r["accuracy"] for r in front], "o-", color="C3",
                label="Pareto front")
    ax.axvline(target * scale, color="k", linestyle="--", label="target")
    xs = [r["cost"] * scale for r in done] + [target * scale] + [c * scale for c in references.values()]
    if min(xs) > 0 and max(xs) / min(xs) > 8:  # one slow outlier would squeeze every other point
        ax.set_xscale("log")
    low, high = ax.get_ylim()
    for i, (name, cost) in enumerate(sorted(references.items(), key=lambda kv: kv[1])):
        ax.axvline(cost * scale, color="grey", linestyle=":", linewidth=1)
        y = low + (high - low) * (0.02 + 0.3 * (i % 3))  # staggered so that neighbouring names do not overlap
        ax.text(cost * scale, y, f" {name}", rotation=90, fontsize=7, va="bottom", color="grey")
    ax.set_xlabel("latency (ms)" if unit == "ms" else "MACs (M)")
    ax.set_ylabel("proxy accuracy")
    ax.legend(loc="lower left", bbox_to_anchor=(0.0, 1.0), ncol=3, fontsize=8, frameon=False)  # above the axes
    ax.grid(alpha=0.3)
    fig.tight_layout()
    save_figure(fig, path, dpi=120)


def write_best(path: Path, genotype: Genotype, provenance: dict) -> Path:
    """Save the winner with its provenance (plain YAML types only)."""
    clean = {k: v for k, v in provenance.items() if v is not None and not (isinstance(v, float) and math.isnan(v))}
    genotype.provenance = json.loads(json.dumps(clean, default=str))
    return save_genotype(genotype, path)


def write_report(path: Path, summary: dict, front: list[dict], rows: list[dict], block_table: str,
                 finalists: list[str] | None = None) -> None:
    states: dict[str, int] = {}
    for r in rows:
        states[r["state"]] = states.get(r["state"], 0) + 1
    lines = [f"# Search report: {summary['name']}", ""]
    lines += [f"- {k}: {v}" for k, v in summary.items() if k != "name"]
    lines += [f"- trials by state: {', '.join(f'{k} {v}' for k, v in sorted(states.items()))}"]
    repeats = sum(r["duplicate_of"] is not None for r in rows)
    if repeats:
        lines += [f"- repeats of a network already scored (results reused, not retrained): {repeats}"]
    overhead = engine_overhead(rows)
    if overhead is not None:
        lines += [f"- engine overhead (trial time not spent training or measuring): {100 * overhead:.1f}%"]
    lines += [""]
    lines += ["## Winner", "", "```", block_table.rstrip(), "```", ""]
    if finalists:
        lines += ["## Finalists, trained again with fresh seeds and measured again side by side", "",
                  "The winner is the best reward within the target on these numbers (search figures for comparison).",
                  ""]
        lines += finalists + [""]
    lines += ["## Pareto front", "", "| trial | accuracy | cost | architecture |", "|---|---|---|---|"]
    lines += [f"| {r['number']} | {r['accuracy']:.4f} | {r['cost']:.4g} | {r['architecture']} |" for r in front]
    failed = [r for r in rows if r["state"] == "FAIL"]
    if failed:
        lines += ["", "## Failed trials", ""] + [f"- trial {r['number']}: {r['reason']}" for r in failed]
    write_text_atomic(path, "\n".join(lines) + "\n")


def engine_overhead(rows: list[dict]) -> float | None:
    """Fraction of completed trials' wall time spent outside proxy training and cost measurement."""
    done = [r for r in rows if r["state"] == "COMPLETE" and r["seconds"] and r["train_seconds"] is not None]
    total = sum(r["seconds"] for r in done)
    if not total:
        return None
    inside = sum(r["train_seconds"] + (r["cost_seconds"] or 0.0) for r in done)
    return max(0.0, (total - inside) / total)
