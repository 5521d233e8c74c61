"""``nas audit``: how well the search's proxy score ranks networks, against a longer reference training."""

from __future__ import annotations

import argparse
import shlex

from nas.auditing.config import AuditConfig
from nas.commands.flags import add_flags, flag_name, flag_values
from nas.config import SearchConfig

AUDIT_KEYS = ("candidates", "seeds", "reference_seeds", "cost_low", "cost_high", "pool", "top", "zero_cost_batch")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "audit", help="measure how well the proxy score ranks networks (Kendall tau vs a longer training)",
        description="Sample candidates from a search config's space, evenly spread over COST_LOW x T .. "
                    "COST_HIGH x T, train each with every proxy setting (--setting) under --seeds seeds and "
                    "with a longer reference training (--reference) under --reference-seeds seeds, and rank every "
                    "score against the reference's mean: "
                    "Kendall tau, Spearman, the seed-to-seed tau (noise ceiling), the top-K overlap and seconds "
                    "per candidate; MACs, params and zero-cost scores as free baselines. Writes runs/NAME/: "
                    "audit.md, audit.csv, audit.png. Rerun with the same --name to continue (finished trainings "
                    "are kept). See docs/audit.md.")
    p.add_argument("--config", help="search config YAML whose proxy, space and target are audited")
    p.add_argument("--setting", action="append", metavar="NAME[:KEY=VALUE,...]",
                   help="a proxy setting to audit: overrides of the search's proxy keys, e.g. default, "
                        "more_val:val_subset=10000 or all_1ep:subset=null,epochs=1 (repeat for several; "
                        "default: the proxy as configured, named default)")
    p.add_argument("--reference", metavar="KEY=VALUE,...", default=None,
                   help="overrides of the search's proxy for the reference training, merged onto "
                        "epochs=8,subset=15000,val_subset=5000,seed=100")
    p.add_argument("--out", default=None, metavar="DIR", help="audit folder (default: RUNS_DIR/NAME)")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    add_flags(p, AuditConfig, only=AUDIT_KEYS)
    add_flags(p, SearchConfig)
    p.add_argument("--data", dest="proxy.data_dir", default=None, metavar="DIR",
                   help="dataset folder (same as --proxy-data-dir)")
    p.set_defaults(func=run, on_interrupt="run the same command again to continue (finished trainings are kept)")


def command_line(args: argparse.Namespace) -> str:
    """The command as given (the flags that were set), for audit.md."""
    words = ["nas", "audit"]
    if args.config:
        words += ["--config", args.config]
    for text in args.setting or []:
        words += ["--setting", text]
    if args.reference:
        words += ["--reference", args.reference]
    if args.out:
        words += ["--out", args.out]
    for key, value in {**flag_values(args, AuditConfig), **flag_values(args, SearchConfig)}.items():
        words += [flag_name(key), value]
    return shlex.join(words)


def run(args: argparse.Namespace) -> int:
    from nas.auditing.config import parse_overrides, settings_from_flags
    from nas.auditing.progress import AuditProgress
    from nas.auditing.run import audit
    from nas.config import load_config

    settings = settings_from_flags(args.setting)
    reference = parse_overrides(args.reference or "", "--reference")
    config = load_config(args.config, flag_values(args, SearchConfig))
    result = audit(config, settings, folder=args.out, progress=AuditProgress(quiet=args.quiet),
                   command=command_line(args), reference=reference, **flag_values(args, AuditConfig))
    print(f"audit: {result.done} of {len(result.records)} trainings done; table in {result.folder}/audit.md")
    return 0
