"""``nas latency``: measure or predict a genotype's latency; build lookup tables, fit and validate models.

    nas latency GENOTYPE [--width W] [--depth D] [--resolution R] [--backend B] [--threads N] [--batch B]
                         [--memory-format F] [--device D] [--json]
    nas latency GENOTYPE --predict [--model FILE | --lut] [--measure]
    nas latency build-lut [--config SEARCH_CONFIG] [--networks N] [--calibrate N] [--dry-run]
    nas latency fit MEASUREMENTS.csv -o MODEL [--kind auto|ridge|gbr] [--lut]
    nas latency validate --n N --seed S [--out FILE] [--lut] [--model FILE]

No set-up step: --predict uses this device's lookup table, which fills as it is used. The parts of a
network the table lacks are timed inside that network when it is first predicted and kept; the very
first prediction on a device also measures a few small reference networks whole (a progress line says
so) to fit the correction from part sums to whole networks. Every network measured with --predict
--measure is added to that correction's data. `build-lut` times the parts of many random networks of
the space up front, for those who want later predictions to time nothing.

A genotype whose provenance records latency_conditions (a search's best.yaml does) is measured under
those conditions (backend, threads, memory format, batch, resolution) unless flags say otherwise.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

ACTIONS = ("build-lut", "fit", "validate")


def register(sub: argparse._SubParsersAction) -> None:
    from nas.commands.show import add_scaling_arguments

    p = sub.add_parser(
        "latency", help="measure or predict latency; build-lut, fit, validate",
        formatter_class=argparse.RawDescriptionHelpFormatter, description=__doc__.split("\n", 1)[1],
        epilog="Measurements, lookup tables and corrections are cached (~/.cache/nas/latency or $NAS_CACHE_DIR) "
               "by device fingerprint; measurements also by genotype hash, resolution, batch and memory format.")
    p.add_argument("target", metavar="GENOTYPE|ACTION",
                   help="genotype file, YAML text or zoo:NAME; or one of build-lut, fit, validate")
    p.add_argument("input", nargs="?", metavar="CSV", help="fit: the measurements CSV (genotype, latency_ms)")
    add_scaling_arguments(p)
    m = p.add_argument_group("measurement (default: the genotype's provenance.latency_conditions, else as below)")
    m.add_argument("--backend", default=None, help="torch (default), torchscript or onnxruntime")
    m.add_argument("--device", default=None, help="cpu (default) or cuda")
    m.add_argument("--threads", type=int, help="intra-op threads (default: torch's, all cores)")
    m.add_argument("--batch", type=int, default=None, help="batch size (default 1)")
    m.add_argument("--memory-format", dest="memory_format", default=None,
                   help="channels_last (default with torch) or contiguous")
    m.add_argument("--warmup", type=int, help="warm-up runs per candidate")
    m.add_argument("--reps", type=int, help="most timed repetitions per candidate")
    m.add_argument("--no-cache", action="store_true", help="measure again instead of using the cache")
    q = p.add_argument_group("prediction")
    q.add_argument("--predict", action="store_true",
                   help="predict instead of measuring (with --model FILE, else this device's lookup table, "
                        "filled and calibrated on first use)")
    q.add_argument("--model", help="learned model file (from `nas latency fit`)")
    q.add_argument("--lut", action="store_true", help="use this device's lookup table (+ correction)")
    q.add_argument("--measure", action="store_true",
                   help="with --predict: also measure, report measured_ms and the prediction's error, and add "
                        "the measurement to the table's correction data")
    q.add_argument("--kind", default="auto", help="fit: regressor auto, ridge or gbr")
    a = p.add_argument_group("build-lut / fit / validate")
    a.add_argument("--config", help="search config YAML whose space: section is the space (default space)")
    a.add_argument("--networks", type=int, default=200,
                   help="build-lut: random networks of the space whose parts are timed inside them")
    a.add_argument("--calibrate", type=int, default=40,
                   help="build-lut: random networks measured whole and added to the correction's data")
    a.add_argument("--dry-run", action="store_true", help="build-lut: only count the parts to time")
    a.add_argument("-o", "--output", help="fit: where to write the model")
    a.add_argument("--n", type=int, default=50, help="validate: networks to sample")
    a.add_argument("--seed", type=int, default=0, help="seed of the sampled networks")
    a.add_argument("--out", help="validate: write the measurements CSV here (usable by fit)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import warnings

    from nas.commands.flags import flag_error
    from searchspace.errors import NasError

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # noisy measurements are reported by the command
        try:
            return _run(args)
        except NasError as err:  # the library names keys; here they are this command's flags
            raise flag_error(err, ("backend", "device", "threads", "model")) from None


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


def _measure_config(args: argparse.Namespace, search=None):
    """The measurement config of the flags over the search config's latency settings."""
    from predictors.latency.request import measure_config

    settings = None if search is None else {"backend": search.latency_backend, "threads": search.latency_threads}
    return measure_config(vars(args), settings)


def _space(args: argparse.Namespace, search):
    from dataclasses import replace

    from searchspace.space import Space, default_space, space_from_dict

    space = space_from_dict(search.space) if search is not None and search.space else default_space()
    resolution = args.resolution or (search.latency_resolution if search is not None else None)
    return Space(replace(space.config, resolution=resolution)) if resolution else space


def _table(config):
    from predictors.latency.table import LatencyTable

    return LatencyTable.for_this_device(config.backend, config.threads, config.device, config.batch,
                                        memory_format=config.memory_format)


def _cache(args: argparse.Namespace):
    from predictors.latency.measure import default_cache

    return None if args.no_cache else default_cache()


def _genotype_and_config(args: argparse.Namespace):
    """The scaled genotype at the resolution to use and the measurement config (see
    :func:`predictors.latency.request.request_for`), saying on stderr when recorded conditions are used."""
    from nas.commands.show import load_scaled
    from predictors.latency.request import CONDITION_FLAGS, request_for

    args.genotype = args.target
    request = request_for(load_scaled(args), vars(args))
    if request.recorded:
        overridden = [f"--{n.replace('_', '-')}" for n in (*CONDITION_FLAGS, "resolution") if getattr(args, n) is not None]
        print(f"nas latency: using the conditions recorded in the genotype's provenance ({request.describe()})"
              + (f"; {', '.join(overridden)} from the command line" if overridden else ""), file=sys.stderr)
        here = request.other_fingerprint()
        if here is not None:
            print(f"nas latency: note: recorded on another device or setting (fingerprint "
                  f"{request.recorded['fingerprint_id']}; here {here}): expect a different number", file=sys.stderr)
    return request.genotype, request.config


def _one(args: argparse.Namespace) -> int:
    from predictors.latency.request import latency_report
    from searchspace.errors import NasError

    genotype, config = _genotype_and_config(args)
    predicting = args.predict or args.model or args.lut
    if args.measure and not predicting:
        raise NasError("--measure: only with --predict (measuring is the default without it)")
    predictor = _predictor(args, config) if predicting else None
    model, table = (predictor, None) if args.model else (None, predictor)
    measuring = not predicting or args.measure
    out = latency_report(genotype, config, model=model, table=table, measure=measuring,
                         cache=_cache(args) if measuring else None)
    if out.get("noisy"):
        print(f"nas latency: warning: noisy measurement (IQR {out['iqr_ms']:.3g} ms of median {out['measured_ms']:.3g} "
              "ms); close other programs or use --threads", file=sys.stderr)
    if args.json:
        print(json.dumps(out))
        return 0
    _print_one(out)
    return 0


def _print_one(out: dict) -> None:
    where = f"batch {out['batch']}, resolution {out['resolution']}, {out['memory_format']}"
    if "predicted_ms" in out:
        print(f"{out['genotype']} ({out['hash']}): predicted {out['predicted_ms']:.3f} ms "
              f"[{out['low_ms']:.3f}, {out['high_ms']:.3f}] by {out['predictor']} ({where})")
        if out.get("prediction_note"):
            print(f"nas latency: warning: {out['prediction_note']}; measure it (--measure) to be sure, and to add it "
                  "to the correction")
    if "measured_ms" in out:
        note = " (cached)" if out["cached"] else ""
        error = f"; prediction error {out['error_pct']:+.1f}%" if "error_pct" in out else ""
        print(f"{out['genotype']} ({out['hash']}): {out['measured_ms']:.3f} ms median, IQR {out['iqr_ms']:.3f} ms, "
              f"{out['reps']} reps, {out['backend']} {out['threads']} thread(s), {where}{note}{error}")
    if "how_to_run" in out:
        print(f"measured in channels_last memory format; {out['how_to_run']}")
    if "allocator_howto" in out:
        print(f"timed with glibc's allocator thresholds fixed; {out['allocator_howto']}")


def _predictor(args: argparse.Namespace, config):
    if args.model:
        from predictors.latency.model import LatencyModel  # scipy, sklearn: only when asked for

        return LatencyModel.load(args.model)
    return _table(config)


def _progress_bar(unit: str):
    """A rich progress bar on stderr (``unit`` done, time left) and its ``(done, total)`` callback."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    bar = Progress(TextColumn("[progress.description]{task.description}"), BarColumn(), MofNCompleteColumn(),
                   TextColumn(unit), TimeRemainingColumn(), console=Console(stderr=True), transient=False)
    task = bar.add_task("build-lut", total=None)

    def report(done: int, total: int) -> None:
        bar.update(task, completed=done, total=total)

    return bar, report


def _progress(label: str):
    def report(done: int, total: int) -> None:
        print(f"{label}: {done}/{total}", file=sys.stderr, flush=True)

    return report


def _build_lut(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from predictors.latency.measure import measure_many
    from predictors.latency.parts import network_parts
    from predictors.latency.space_parts import space_parts
    from predictors.latency.table import PART_PROFILE, LatencyTable
    from searchspace.errors import NasError

    if args.networks < 1:
        raise NasError(f"--networks: {args.networks} is not a positive number of networks")
    search = _search_config(args)
    space = _space(args, search)
    whole = replace(_measure_config(args, search), resolution=None)
    part_config = replace(PART_PROFILE, **{k: getattr(whole, k) for k in ("backend", "device", "threads", "batch",
                                                                           "memory_format")})
    table = LatencyTable(part_config)
    networks = [space.random_genotype(args.seed * 100003 + 50000 + i) for i in range(args.networks)]
    parts = {p.key: p for g in networks for p in network_parts(g)}
    missing = table.missing(list(parts.values()))
    summary = {"table": str(table.path), "fingerprint": table.fingerprint.id(), "memory_format": table.memory_format,
               "networks": len(networks), "parts": len(parts), "missing": len(missing),
               "resolution": space.config.resolution}
    if args.dry_run:
        summary["to_measure"] = len(table.plan(list(parts.values()))[1])  # distinct modules among the missing parts
    else:
        start = time.perf_counter()
        bar, report = _progress_bar("networks")
        with bar:
            counts = table.profile_many(networks, progress=report)
        summary.update(measured=counts["measured"], shared=counts["shared"],
                       profile_seconds=time.perf_counter() - start)
        if args.calibrate:
            genotypes = [space.random_genotype(args.seed * 100003 + i) for i in range(args.calibrate)]
            measured = measure_many(genotypes, whole, _cache(args), progress=_progress("calibration networks"))
            table.observe_many(genotypes, [m.median_ms for m in measured])
            summary["calibration_networks"] = table.correction.n
    every = space_parts(space)
    summary.update(space_parts=len(every), space_parts_in_table=len(every) - len(table.missing(every)))
    if args.json:
        print(json.dumps(summary))
    else:
        done = "would time" if args.dry_run else "timed"
        shared = (f" ({summary['shared']} shared with an equal part)" if "shared" in summary else
                  f" ({summary['to_measure']} distinct modules to time)" if "to_measure" in summary else "")
        print(f"latency table {summary['table']} (fingerprint {summary['fingerprint']}, {summary['memory_format']}): "
              f"{summary['parts']} parts in {summary['networks']} random networks, {done} {summary['missing']} "
              f"inside their networks{shared}; the table holds {summary['space_parts_in_table']} of the space's "
              f"{summary['space_parts']} parts"
              + (f", correction from {summary['calibration_networks']} networks"
                 if "calibration_networks" in summary else ""))
    return 0


def _fit(args: argparse.Namespace) -> int:
    from predictors.latency.model import LatencyModel, read_measurements
    from searchspace.errors import NasError
    from searchspace.textio import check_output_file

    if args.input is None:
        raise NasError("fit needs a measurements CSV: nas latency fit MEASUREMENTS.csv -o MODEL")
    if not args.output:
        raise NasError("fit needs -o MODEL (where to write the model)")
    check_output_file(args.output, "-o/--output")  # before the fit, not after it
    samples = read_measurements(args.input)
    config = _measure_config(args)
    table = _table(config) if args.lut else None
    extras = sorted({k for s in samples for k in (s.extra or {})})
    model = LatencyModel(args.kind, config.batch, table, extras, args.seed).fit(samples)
    path = model.save(args.output)
    info = {"model": str(path), **{k: model.info[k] for k in ("regressor", "n", "cv_log_rmse")}}
    print(json.dumps(info) if args.json else
          f"latency model {path}: {info['regressor']} on {info['n']} networks, "
          f"CV log-RMSE {info['cv_log_rmse'][info['regressor']]:.4f}")
    return 0


def _validate(args: argparse.Namespace) -> int:
    from predictors.latency.measure import measure_many
    from predictors.latency.model import LatencyModel
    from predictors.latency.validation import sample_genotypes, validation_report, write_measurements
    from searchspace.textio import check_output_file

    if args.out:
        check_output_file(args.out, "--out")
    search = _search_config(args)
    space = _space(args, search)
    config = _measure_config(args, search)
    genotypes = sample_genotypes(space, args.n, args.seed)
    measured = measure_many(genotypes, config, _cache(args), progress=_progress("validate"))
    predictors = {}  # loaded after measuring, as a table may measure parts on first use
    if args.lut:
        predictors["lut"] = _table(config)
    if args.model:
        predictors["model"] = LatencyModel.load(args.model)
    report = validation_report(genotypes, measured, predictors)
    if args.out:
        write_measurements(args.out, genotypes, measured)
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
