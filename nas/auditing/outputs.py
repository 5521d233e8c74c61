"""An audit's files: ``audit.md`` (the table and the command), ``audit.csv`` (one row per candidate x
training), ``audit.png`` (each setting's proxy accuracy against the reference). Written atomically, so
they can be read while the audit runs (the tables after each candidate, the plot at the end)."""

from __future__ import annotations

import csv
import math
from typing import Any

from nas.auditing.config import REFERENCE, REFERENCE_NAME, overrides_text
from nas.auditing.result import AuditResult
from nas.common.figures import pyplot, save_figure
from nas.common.text import cost_text
from searchspace.textio import atomic_file, write_text_atomic

CSV_FIRST = ("candidate", "hash", "cost", "training", "seed_index", "seed", "state", "accuracy", "epochs",
             "train_seconds", "wall_seconds")


def write_outputs(result: AuditResult, plot: bool = True) -> None:
    """audit.md and audit.csv; audit.png too when ``plot``."""
    write_csv(result)
    write_text_atomic(result.folder / "audit.md", markdown(result))
    if plot:
        plot_scatter(result)


def write_csv(result: AuditResult) -> None:
    if not result.records:
        return
    columns = list(CSV_FIRST) + [k for k in result.records[0] if k not in CSV_FIRST]
    with atomic_file(result.folder / "audit.csv") as f:
        writer = csv.DictWriter(f, columns)
        writer.writeheader()
        writer.writerows({k: "" if v is None else v for k, v in r.items()} for r in result.records)


def _f(value: float | None, digits: int = 3) -> str:
    return "-" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"


def markdown(result: AuditResult) -> str:
    """The audit's report: what was compared, the agreement table, seed noise, the candidates."""
    options = result.plan.options
    costs = [c.cost for c in result.candidates]
    total = len(result.records)
    lines = [f"# Proxy audit: {result.folder.name}", ""]
    if result.command:
        lines += ["```", result.command, "```", ""]
    lines += [f"{len(result.candidates)} candidates from the search config's space, costing "
              f"{cost_text(min(costs), result.unit)} to {cost_text(max(costs), result.unit)} (target T = "
              f"{cost_text(result.target, result.unit)}; picked from {options.pool} random networks, evenly spread "
              f"over {options.cost_low:g} T .. {options.cost_high:g} T). Each is trained with every setting "
              f"under {options.seeds} seed(s) and with the reference under {options.reference_seeds} seed(s); every "
              f"score is ranked against the reference's seed mean. Trainings done: {result.done} of {total}.",
              ""]
    lines += settings_table(result) + [""] + agreement_table(result) + [""] + noise_table(result)
    lines += [""] + candidates_table(result) + failures(result)
    return "\n".join(lines) + "\n"


def settings_table(result: AuditResult) -> list[str]:
    lines = ["## Trainings", "", "| training | overrides of the search's proxy | epochs | training images | "
             "validation images | width | resolution | seeds |", "|---|---|---|---|---|---|---|---|"]
    options = result.plan.options
    named = [(name, options.settings[name], cfg, options.seeds) for name, cfg in result.plan.settings.items()]
    named.append((REFERENCE_NAME, {**REFERENCE, **options.reference}, result.plan.reference, options.reference_seeds))
    for name, overrides, cfg, seeds in named:
        first = cfg.seed
        seed_text = str(first) if seeds == 1 else f"{first}..{first + seeds - 1}"
        lines.append(f"| {name} | `{overrides_text(overrides)}` | {cfg.epochs} | {cfg.subset or 'all'} | "
                     f"{cfg.val_subset or 'all'} | {cfg.width:g} | {cfg.resolution} | {seed_text} |")
    return lines


def agreement_table(result: AuditResult) -> list[str]:
    top = result.plan.options.top
    lines = ["## Agreement with the reference", "",
             f"Kendall tau-b and Spearman rho over the candidates both have; top-{top}: how many of the "
             f"reference's best {top} the score also ranks in its best {top}. Seconds are training seconds per "
             "candidate (zero-cost: MACs, params and the five zero-cost scores of one network together). Zero-cost "
             "scores and the vote (majority of synflow, jacob_cov, snip) are computed on the untrained proxy "
             "network; MACs and params on the searched network at the search's resolution.", "",
             f"| score | Kendall tau | Spearman | top-{top} | seconds / candidate | candidates |",
             "|---|---|---|---|---|---|"]
    for row in result.rows:
        top_text = "-" if row.top is None else f"{row.top}/{top}"
        lines.append(f"| {row.score} | {_f(row.tau)} | {_f(row.spearman)} | {top_text} | {_f(row.seconds, 1)} | "
                     f"{row.n} |")
    return lines


def noise_table(result: AuditResult) -> list[str]:
    reference = [a for a in result.reference_accuracies() if math.isfinite(a)]
    span = f"{min(reference):.4f}-{max(reference):.4f}" if reference else "-"
    lines = ["## Seed noise", "", f"Reference accuracies span {span} "
             f"({_f((max(reference) - min(reference)) * 100 if reference else None, 2)} points).", "",
             "| setting | seed-to-seed tau (noise ceiling) | mean change by a seed (points) | largest (points) |",
             "|---|---|---|---|"]
    for name, noise in result.noise.items():
        if noise is None:
            lines.append(f"| {name} | - (one seed) | - | - |")
        else:
            lines.append(f"| {name} | {_f(noise.ceiling)} | {_f(noise.mean_points, 2)} | {_f(noise.max_points, 2)} |")
    return lines


def candidates_table(result: AuditResult) -> list[str]:
    jobs = result.plan.jobs
    head = "| # | cost | MACs | params | " + " | ".join(j.label for j in jobs) + " |"
    lines = ["## Candidates", "", head, "|" + "---|" * (4 + len(jobs))]
    for c in result.candidates:
        accs = [result.accuracies(j.training, j.seed_index)[c.index] for j in jobs]
        macs, params = c.free.get("macs"), c.free.get("params")
        lines.append(f"| {c.index} | {cost_text(c.cost, result.unit)} | "
                     f"{'-' if macs is None else f'{macs / 1e6:.3g}M'} | "
                     f"{'-' if params is None else f'{params / 1e6:.3g}M'} | "
                     + " | ".join(_f(a, 4) for a in accs) + " |")
    return lines


def failures(result: AuditResult) -> list[str]:
    failed = [r for r in result.records if r["state"] == "failed"]
    if not failed:
        return []
    lines = ["", "## Failed trainings", ""]
    lines += [f"- candidate {r['candidate']}, {r['training']} seed {r['seed']}: {r['reason']}" for r in failed]
    return lines


def plot_scatter(result: AuditResult) -> None:
    """One panel per setting: seed-mean proxy accuracy (each seed faint) against the reference."""
    plt = pyplot()
    names = list(result.plan.settings)
    reference = result.reference_accuracies()
    seeds = result.plan.options.seeds
    cols = min(3, len(names))
    rows = math.ceil(len(names) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.8 * rows), squeeze=False)
    for ax, name in zip(axes.flat, names, strict=False):
        per_seed = [result.accuracies(name, i) for i in range(seeds)]
        for i, acc in enumerate(per_seed):
            ax.scatter(reference, acc, s=12, alpha=0.35, label=f"seed {i}")
        mean = [sum(v) / len(v) for v in zip(*per_seed, strict=True)]
        ax.scatter(reference, mean, s=24, color="black", label="mean")
        tau = _row_tau(result, name)
        ax.set_title(f"{name}: Kendall tau of the mean {_f(tau)}", fontsize=10)
        ax.set_xlabel("reference accuracy")
        ax.set_ylabel("proxy accuracy")
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(names):]:
        ax.axis("off")
    fig.tight_layout()
    save_figure(fig, result.folder / "audit.png", dpi=110)


def _row_tau(result: AuditResult, name: str) -> float:
    """Tau of the setting's seed mean (or its only seed) against the reference."""
    rows: list[Any] = [r for r in result.rows if r.setting == name and "noise" not in r.score]
    return rows[-1].tau if rows else math.nan
