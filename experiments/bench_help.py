"""The learned latency predictor on real device data: HELP's OFA MobileNetV3 and FBNet tables.

Each HELP architecture is expressed as a genotype (see ``experiments/help_spaces.py``); for every
device column the learned predictor (``predictors.latency.model.LatencyModel``, cost features at the
column's batch size, regressor picked by 5-fold CV) is fitted on 100 random architectures and
predicts the other 4,900. Repeated over several random splits; the report gives the mean (and the
spread over splits) of the fraction within +-10%, Spearman, and, as a baseline, the same split with a
log-log fit on MACs alone. No timing is involved (under 10 minutes on 2 cores).

    python experiments/bench_help.py --splits 5 --out experiments/results/bench_help.md
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    sys.path.insert(0, str(Path(__file__).resolve().parent))

from help_spaces import fbnet_genotype, ofa_genotype  # noqa: E402

from predictors.latency.model import LatencyModel, Sample, accuracy_report  # noqa: E402
from predictors.latency.parts import cost_features  # noqa: E402

DATA = Path("/work/shared/data")
OFA_CSV = DATA / "help_ofa_mbv3_imagenet_latency_ms.csv"
FBNET_CSV = DATA / "help_fbnet_cifar100_latency_ms.csv"
PHONES = ("pixel2", "samsung_a50", "samsung_s7", "essential_ph_1", "pixel3", "raspi4")
NOT_DEVICES = ("arch_id", "ks", "e", "d", "r", "op_idx_list", "arch_str")


def log(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


def batch_of(column: str) -> int:
    tail = column.rsplit("_", 1)[-1]
    return int(tail) if tail in ("1", "32", "64", "256") else 1


def load_ofa() -> tuple[pd.DataFrame, list, list]:
    df = pd.read_csv(OFA_CSV)
    genotypes = [ofa_genotype(*(list(map(int, row[k].split())) for k in ("ks", "e", "d")), int(row["r"]))
                 for _, row in df.iterrows()]
    return df, genotypes, [None] * len(genotypes)


def load_fbnet() -> tuple[pd.DataFrame, list, list]:
    df = pd.read_csv(FBNET_CSV)
    pairs = [fbnet_genotype(s.split()) for s in df["arch_str"]]
    return df, [g for g, _ in pairs], [e for _, e in pairs]


def evaluate_column(y: np.ndarray, genotypes: list, extras: list, batch: int, splits: int, n_train: int) -> dict:
    """Mean and spread over random splits of the learned predictor and the MACs-only baseline."""
    extra_names = sorted(extras[0]) if extras[0] else []
    log_macs = np.array([cost_features(g, batch)["log_macs"] for g in genotypes])
    rows, base_rows, kinds = [], [], []
    for seed in range(splits):
        idx = np.random.RandomState(seed).permutation(len(y))
        train, test = idx[:n_train], idx[n_train:]
        model = LatencyModel("auto", batch, None, extra_names, seed=seed)
        model.fit([Sample(genotypes[i], float(y[i]), extras[i]) for i in train])
        kinds.append(model.info["regressor"])
        pred = model.predict_many([genotypes[i] for i in test], [extras[i] for i in test])
        rows.append(accuracy_report(y[test], pred))
        slope, intercept = np.polyfit(log_macs[train], np.log(y[train]), 1)
        base_rows.append(accuracy_report(y[test], np.exp(intercept + slope * log_macs[test])))
    out = {}
    for key in ("within_10", "within_20", "spearman", "mape"):
        values = np.array([r[key] for r in rows])
        out[key], out[key + "_std"] = float(values.mean()), float(values.std())
        out["macs_" + key] = float(np.mean([r[key] for r in base_rows]))
    out["regressor"] = max(set(kinds), key=kinds.count)
    out["n_test"] = rows[0]["n"]
    return out


def table(results: dict[str, dict], columns: list[str]) -> list[str]:
    lines = ["| device column | batch | within 10% | Spearman | within 20% | MAPE | regressor | MACs-only: within 10% / Spearman |",
             "|---|---|---|---|---|---|---|---|"]
    for c in columns:
        r = results[c]
        lines.append(f"| {c} | {batch_of(c)} | {r['within_10']:.1%} (+-{r['within_10_std']:.1%}) | {r['spearman']:.3f} "
                     f"(+-{r['spearman_std']:.3f}) | {r['within_20']:.1%} | {r['mape']:.1f}% | {r['regressor']} | "
                     f"{r['macs_within_10']:.1%} / {r['macs_spearman']:.3f} |")
    return lines


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--splits", type=int, default=5, help="random 100 / 4,900 splits per column")
    p.add_argument("--train", type=int, default=100)
    p.add_argument("--out", default="experiments/results/bench_help.md")
    args = p.parse_args(argv)
    command = "python " + " ".join(shlex.quote(a) for a in [sys.argv[0], *(argv or sys.argv[1:])])
    start = time.perf_counter()
    sections = []
    for name, loader in (("OFA MobileNetV3 (ImageNet, GPUs)", load_ofa), ("FBNet (CIFAR-100)", load_fbnet)):
        df, genotypes, extras = loader()
        columns = [c for c in df.columns if c not in NOT_DEVICES]
        log(f"{name}: {len(genotypes)} genotypes, {len(columns)} device columns")
        results = {}
        for c in columns:
            results[c] = evaluate_column(df[c].to_numpy(float), genotypes, extras, batch_of(c), args.splits,
                                         args.train)
            log(f"  {c}: within 10% {results[c]['within_10']:.1%}, Spearman {results[c]['spearman']:.3f}")
        sections.append((name, columns, results))
    minutes = (time.perf_counter() - start) / 60
    lines = [
        "# Learned latency predictor on HELP device data (bench_help.py)",
        "",
        f"Command: `{command}`",
        "",
        f"Per device column: fit on {args.train} random architectures, predict the other "
        f"{5000 - args.train}; mean over {args.splits} random splits (+- the standard deviation over splits). "
        "Features: cost features at the column's batch (log MACs, params, memory access, element-wise work; kernels, "
        "blocks, resolution), blocks per family, and for FBNet the extra features n_g2 / n_skip_reduce. Target log "
        f"latency; regressor ridge or ridge + gradient boosting chosen by 5-fold CV. Runtime {minutes:.1f} min.",
        "Encodings (OFA as described in REFERENCE.md; FBNet with HW-NAS-Bench's CIFAR-100 plan: stem 16 s1, stages "
        "[1,4,4,4,4,4,1] x [16,24,32,64,112,184,352], strides [1,1,2,2,1,2,1], head 1504) are documented in "
        "`experiments/help_spaces.py`. The phone columns hold whole milliseconds.",
        "",
    ]
    for name, columns, results in sections:
        phones = [c for c in columns if c in PHONES]
        others = [c for c in columns if c not in PHONES]
        if phones:
            lines += [f"## {name}: phones and Raspberry Pi", "", *table(results, phones), ""]
            lines += [f"## {name}: other devices", "", *table(results, others), ""]
        else:
            lines += [f"## {name}", "", *table(results, others), ""]
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text("\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
