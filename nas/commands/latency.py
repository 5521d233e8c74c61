"""``nas latency``: measure or predict a genotype's latency; build lookup tables, fit and validate models.

    nas latency GENOTYPE [--backend B] [--threads N] [--batch B] [--resolution R] [--device D] [--json]
    nas latency GENOTYPE --predict [--model FILE | --lut] [--measure]
    nas latency build-lut [--config SEARCH_CONFIG] [--calibrate N] [--dry-run]
    nas latency fit MEASUREMENTS.csv -o MODEL [--kind auto|ridge|gbr] [--lut]
    nas latency validate --n N --seed S [--out FILE] [--lut] [--model FILE]
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time

ACTIONS = ("build-lut", "fit", "validate")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "latency", help="measure or predict latency; build-lut, fit, validate",
        formatter_class=argparse.RawDescriptionHelpFormatter, description=__doc__.split("\n", 1)[1],
        epilog="Measurements are cached (~/.cache/nas/latency or $NAS_CACHE_DIR) by genotype hash, device "
               "fingerprint, resolution and batch.")
    p.add_argument("target", metavar="GENOTYPE|ACTION",
                   help="genotype file, YAML text or zoo:NAME; or one of build-lut, fit, validate")
    p.add_argument("input", nargs="?", metavar="CSV", help="fit: the measurements CSV (genotype, latency_ms)")
    m = p.add_argument_group("measurement")
    m.add_argument("--backend", default=None, help="torch (default), torchscript or onnxruntime")
    m.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    m.add_argument("--threads", type=int, help="intra-op threads (default: torch's, all cores)")
    m.add_argument("--batch", type=int, default=1, help="batch size (default 1)")
    m.add_argument("--resolution", type=int, help="input resolution (default: the genotype's / config's)")
    m.add_argument("--warmup", type=int, help="warm-up runs per candidate")
    m.add_argument("--reps", type=int, help="most timed repetitions per candidate")
    m.add_argument("--no-cache", action="store_true", help="measure again instead of using the cache")
    q = p.add_argument_group("prediction")
    q.add_argument("--predict", action="store_true",
                   help="predict instead of measuring (with --model FILE, else this device's lookup table)")
    q.add_argument("--model", help="learned model file (from `nas latency fit`)")
    q.add_argument("--lut", action="store_true", help="use this device's lookup table (+ correction)")
    q.add_argument("--measure", action="store_true",
                   help="with --predict: also measure, and report measured_ms and the prediction's error")
    q.add_argument("--kind", default="auto", help="fit: regressor auto, ridge or gbr")
    a = p.add_argument_group("build-lut / fit / validate")
    a.add_argument("--config", help="search config YAML whose space: section is the space (default space)")
    a.add_argument("--calibrate", type=int, default=40,
                   help="build-lut: random networks measured whole to fit the correction (39+ fits a factor per "
                        "block family; fewer: one factor)")
    a.add_argument("--dry-run", action="store_true", help="build-lut: only count the parts")
    a.add_argument("-o", "--output", help="fit: where to write the model")
    a.add_argument("--n", type=int, default=50, help="validate: networks to sample")
    a.add_argument("--seed", type=int, default=0, help="seed of the sampled networks")
    a.add_argument("--out", help="validate: write the measurements CSV here (usable by fit)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # noisy measurements are reported by the command
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    from searchspace.errors import NasError

    for name in ("batch", "threads", "warmup", "reps", "n", "calibrate"):
        value = getattr(args, name)
        if value is not None and value < (0 if name == "calibrate" else 1):
            raise NasError(f"--{name}: {value} must be >= {0 if name == 'calibrate' else 1}")
    if args.target == "fit":
        return _fit(args)
    if args.input is not None:
        raise NasError(f"unexpected argument {args.input!r} (only `fit` takes a CSV)")
    if args.target == "build-lut":
        return _build_lut(args)
    if args.target == "validate":
        return _validate(args)
    return _one(args)


def _search_config(args: argparse.Namespace):
    if args.config is None:
        return None
    from nas.config import load_config

    return load_config(args.config)


def _measure_config(args: argparse.Namespace, search=None, base=None):
    from dataclasses import replace

    from predictors.fingerprint import check_backend
    from predictors.latency import MeasureConfig

    backend = args.backend or (search.latency_backend if search else "torch")
    threads = args.threads if args.threads is not None else (search.latency_threads if search else None)
    check_backend(backend, args.device)
    config = replace(base or MeasureConfig(), backend=backend, device=args.device, threads=threads,
                     batch=args.batch, resolution=args.resolution)
    for name in ("warmup", "reps"):
        if getattr(args, name) is not None:
            config = replace(config, **{name: getattr(args, name)})
    if config.reps < config.min_reps:
        config = replace(config, min_reps=config.reps)
    return config


def _space(args: argparse.Namespace, search):
    from dataclasses import replace

    from searchspace.space import Space, default_space, space_from_dict

    space = space_from_dict(search.space) if search is not None and search.space else default_space()
    resolution = args.resolution or (search.latency_resolution if search is not None else None)
    return Space(replace(space.config, resolution=resolution)) if resolution else space


def _table(args: argparse.Namespace, config, must_exist: bool = True):
    from predictors.latency_lut import LatencyTable

    return LatencyTable.for_this_device(config.backend, config.threads, config.device, config.batch,
                                        must_exist=must_exist)


def _cache(args: argparse.Namespace):
    from predictors.latency import default_cache

    return None if args.no_cache else default_cache()


def _one(args: argparse.Namespace) -> int:
    from predictors.latency import measure_latency
    from searchspace import load_genotype, with_scaling
    from searchspace.errors import NasError

    genotype = load_genotype(args.target)
    config = _measure_config(args)
    out: dict = {"genotype": genotype.name, "hash": genotype.hash(), "backend": config.backend,
                 "device": config.device, "batch": config.batch, "resolution": args.resolution or genotype.resolution}
    predicting = args.predict or args.model or args.lut
    if args.measure and not predicting:
        raise NasError("--measure: only with --predict (measuring is the default without it)")
    if predicting:
        target = with_scaling(genotype, resolution=args.resolution) if args.resolution else genotype
        predictor = _predictor(args, config)
        start = time.perf_counter()
        pred = predictor.predict_interval(target)
        out.update(predictor="model" if args.model else "lut", predicted_ms=pred.ms, low_ms=pred.low_ms,
                   high_ms=pred.high_ms, predict_seconds=time.perf_counter() - start)
    if not predicting or args.measure:
        m = measure_latency(genotype, config, cache=_cache(args))
        out.update(measured_ms=m.median_ms, iqr_ms=m.iqr_ms, reps=m.reps, noisy=m.noisy, cached=m.cached,
                   threads=m.threads, memory_format=m.memory_format, fingerprint=m.fingerprint)
        if predicting:
            out["error_pct"] = 100.0 * (out["predicted_ms"] - m.median_ms) / m.median_ms
        if m.noisy:
            print(f"nas latency: warning: noisy measurement (IQR {m.iqr_ms:.3g} ms of median {m.median_ms:.3g} ms); "
                  "close other programs or use --threads", file=sys.stderr)
    if args.json:
        print(json.dumps(out))
        return 0
    if "predicted_ms" in out:
        print(f"{out['genotype']} ({out['hash']}): predicted {out['predicted_ms']:.3f} ms "
              f"[{out['low_ms']:.3f}, {out['high_ms']:.3f}] by {out['predictor']}")
    if "measured_ms" in out:
        note = " (cached)" if out["cached"] else ""
        error = f"; prediction error {out['error_pct']:+.1f}%" if "error_pct" in out else ""
        print(f"{out['genotype']} ({out['hash']}): {out['measured_ms']:.3f} ms median, IQR {out['iqr_ms']:.3f} ms, "
              f"{out['reps']} reps, {config.backend} {out['threads']} thread(s), batch {config.batch}, "
              f"resolution {out['resolution']}{note}{error}")
    return 0


def _predictor(args: argparse.Namespace, config):
    from predictors.latency_model import LatencyModel

    if args.model:
        return LatencyModel.load(args.model)
    return _table(args, config)


def _progress(label: str):
    def report(done: int, total: int) -> None:
        print(f"{label}: {done}/{total}", file=sys.stderr, flush=True)

    return report


def _build_lut(args: argparse.Namespace) -> int:
    from predictors.latency import measure_many
    from predictors.latency_lut import PART_PROFILE, space_parts

    search = _search_config(args)
    space = _space(args, search)
    config = _measure_config(args, search, PART_PROFILE)
    table = _table(args, config, must_exist=False)
    table.config = config
    parts = space_parts(space)
    missing = table.missing(parts)
    summary = {"table": str(table.path), "fingerprint": table.fingerprint.id(), "parts": len(parts),
               "missing": len(missing), "resolution": space.config.resolution}
    if not args.dry_run:
        start = time.perf_counter()
        table.profile(parts, progress=_progress("build-lut parts"))
        summary["profile_seconds"] = time.perf_counter() - start
        if args.calibrate:
            genotypes = [space.random_genotype(args.seed * 100003 + i) for i in range(args.calibrate)]
            whole = _measure_config(args, search)
            measured = measure_many(genotypes, whole, _cache(args), progress=_progress("calibration networks"))
            correction = table.fit_correction(genotypes, [m.median_ms for m in measured])
            summary["calibration_networks"] = correction.n
    if args.json:
        print(json.dumps(summary))
    else:
        done = "would profile" if args.dry_run else "profiled"
        print(f"latency table {summary['table']} (fingerprint {summary['fingerprint']}): {summary['parts']} parts, "
              f"{done} {summary['missing']}" + (f", correction from {summary.get('calibration_networks')} networks"
                                                 if "calibration_networks" in summary else ""))
    return 0


def _fit(args: argparse.Namespace) -> int:
    from predictors.latency_model import LatencyModel, read_measurements
    from searchspace.errors import NasError

    if args.input is None:
        raise NasError("fit needs a measurements CSV: nas latency fit MEASUREMENTS.csv -o MODEL")
    if not args.output:
        raise NasError("fit needs -o MODEL (where to write the model)")
    samples = read_measurements(args.input)
    config = _measure_config(args)
    table = _table(args, config) if args.lut else None
    extras = sorted({k for s in samples for k in (s.extra or {})})
    model = LatencyModel(args.kind, config.batch, table, extras, args.seed).fit(samples)
    path = model.save(args.output)
    info = {"model": str(path), **{k: model.info[k] for k in ("regressor", "n", "cv_log_rmse")}}
    print(json.dumps(info) if args.json else
          f"latency model {path}: {info['regressor']} on {info['n']} networks, "
          f"CV log-RMSE {info['cv_log_rmse'][info['regressor']]:.4f}")
    return 0


def _validate(args: argparse.Namespace) -> int:
    from predictors.latency import measure_many
    from predictors.latency_model import LatencyModel, accuracy_report, time_per_prediction

    search = _search_config(args)
    space = _space(args, search)
    config = _measure_config(args, search)
    genotypes = [space.random_genotype(args.seed * 100003 + i) for i in range(args.n)]
    measured = measure_many(genotypes, config, _cache(args), progress=_progress("validate"))
    ms = [m.median_ms for m in measured]
    report: dict = {"n": len(ms), "noisy": sum(m.noisy for m in measured),
                    "median_spread": sorted(m.iqr_ms / m.median_ms for m in measured)[len(ms) // 2]}
    predictors = {}
    if args.lut:
        predictors["lut"] = _table(args, config)
    if args.model:
        predictors["model"] = LatencyModel.load(args.model)
    for name, predictor in predictors.items():
        predicted = [predictor.predict(g) for g in genotypes]
        report[name] = {**accuracy_report(ms, predicted),
                        "seconds_per_prediction": time_per_prediction(predictor.predict, genotypes)}
    if args.out:
        with open(args.out, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["genotype", "latency_ms", "iqr_ms", "hash", "resolution", "batch"])
            for g, m in zip(genotypes, measured, strict=True):
                writer.writerow([json.dumps(g.to_dict(), separators=(",", ":")), f"{m.median_ms:.6g}", f"{m.iqr_ms:.4g}",
                                 m.genotype_hash, m.resolution, m.batch])
        report["out"] = args.out
    if args.json:
        print(json.dumps(report))
        return 0
    print(f"validate: {report['n']} networks measured, {report['noisy']} noisy, median spread "
          f"{report['median_spread']:.1%}" + (f", written to {args.out}" if args.out else ""))
    for name in predictors:
        r = report[name]
        print(f"  {name}: within 10% {r['within_10']:.1%}, within 20% {r['within_20']:.1%}, Spearman "
              f"{r['spearman']:.3f}, MAPE {r['mape']:.1f}%, {r['seconds_per_prediction'] * 1e3:.2f} ms/prediction")
    return 0
