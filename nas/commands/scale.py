"""``nas scale``: EfficientNet compound scaling of a genotype, by phi or along a latency ladder.

    nas scale GENOTYPE --phi 1..7 [--alpha A --beta B --gamma G] [-o OUTDIR] [--config FILE] [--proxy-...]
    nas scale GENOTYPE --latency-ladder 10ms,20ms,40ms [--alpha A --beta B --gamma G | --grid] [-o OUTDIR]

--phi: without coefficients, a grid search at phi = 1 picks (alpha, beta, gamma) with
alpha * beta^2 * gamma^2 within --grid-tolerance of 2 by proxy accuracy (the search's proxy settings,
from --config and the --proxy-* flags); then one genotype per phi (<name>_b<phi>.yaml) and family.md.
--latency-ladder: per budget the largest variant (phi on a 0.05 grid in [-3, 6]) whose measured latency
meets it, verified by a fresh longer measurement (<name>_<budget>ms.yaml, ladder.md); coefficients
default to EfficientNet's (1.2, 1.1, 1.15), or --grid runs the grid search first. A budget that even
phi = -3 misses is a row marked 'impossible'; the files are written, then the command exits 2.
"""

from __future__ import annotations

import argparse
import math
import re
import sys
import warnings
from pathlib import Path

from nas.commands.flags import add_flags, flag_values
from nas.config import SearchConfig
from searchspace.errors import NasError

MAX_PHI = 12
SCALE_KEYS = ("latency_backend", "latency_threads", "proxy")  # the search config keys `nas scale` reads


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("scale", help="compound-scale a genotype (EfficientNet B1..Bn, or a latency ladder)",
                       formatter_class=argparse.RawDescriptionHelpFormatter, description=__doc__.split("\n", 1)[1])
    p.add_argument("genotype", help="genotype file, YAML text or zoo:NAME")
    p.add_argument("--phi", help="compound coefficients: N, A..B or a comma list of integers >= 1")
    p.add_argument("--latency-ladder", metavar="BUDGETS", help="comma list of latency budgets, e.g. 10ms,20ms,40ms")
    for name, what in (("alpha", "depth"), ("beta", "width"), ("gamma", "resolution")):
        p.add_argument(f"--{name}", help=f"{what} multiplier per unit of phi (>= 1; give all three or none)")
    p.add_argument("--grid", action="store_true", help="ladder: grid-search the coefficients first")
    p.add_argument("--grid-step", default="0.05", help="grid spacing of alpha, beta, gamma (default 0.05)")
    p.add_argument("--grid-tolerance", default="0.05", help="allowed relative deviation of alpha*beta^2*gamma^2 "
                                                             "from 2 (default 0.05)")
    p.add_argument("--grid-max", default="8", help="grid points proxy-trained, spread over the grid (default 8)")
    p.add_argument("-o", "--out", help="output folder (default RUNS_DIR/scale-NAME)")
    p.add_argument("--config", help="search config YAML: proxy settings, latency backend and threads, runs_dir")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    add_flags(p, SearchConfig, only=SCALE_KEYS)
    p.add_argument("--data", dest="proxy.data_dir", default=None, metavar="DIR", help="same as --proxy-data-dir")
    p.set_defaults(func=run)


def parse_phis(text: str) -> list[int]:
    """``3`` -> [3]; ``1..4`` -> [1, 2, 3, 4]; ``1,3,5`` -> [1, 3, 5]; each an integer in 1..12."""
    text = text.strip()
    range_match = re.fullmatch(r"(-?\d+)\s*\.\.\s*(-?\d+)", text)
    if range_match:
        first, last = int(range_match.group(1)), int(range_match.group(2))
        if last < first:
            raise NasError(f"--phi: {text!r} is an empty range; use e.g. 1..7")
        values = list(range(first, last + 1))
    elif re.fullmatch(r"-?\d+(\s*,\s*-?\d+)*", text):
        values = sorted({int(v) for v in text.split(",")})
    else:
        raise NasError(f"--phi: {text!r} is not an integer, a range A..B or a comma list; use e.g. 1..7")
    bad = [v for v in values if not 1 <= v <= MAX_PHI]
    if bad:
        raise NasError(f"--phi: {bad[0]} is out of range; phi must be an integer from 1 to {MAX_PHI} "
                       "(phi 0 is the genotype itself)")
    return values


def parse_ladder(text: str) -> list[float]:
    """``10ms,20ms,40ms`` -> [10.0, 20.0, 40.0] (ascending, duplicates dropped); units are required."""
    from nas.config import parse_latency_ms

    budgets = set()
    for item in text.split(","):
        if not re.fullmatch(r"\s*[0-9]*\.?[0-9]+\s*(ms|s|us)\s*", item):
            raise NasError(f"--latency-ladder: {item.strip()!r} is not a latency with a unit; "
                           "use e.g. 10ms,20ms,40ms")
        budgets.add(parse_latency_ms(item, "--latency-ladder"))
    return sorted(budgets)


def _number(text: str, flag: str, kind: type = float) -> float:
    try:
        value = kind(text)
    except (TypeError, ValueError):
        raise NasError(f"{flag}: {text!r} is not {'an integer' if kind is int else 'a number'}") from None
    if not math.isfinite(value):
        raise NasError(f"{flag}: {text!r} is not a finite number")
    return value


def parse_coefficients(args: argparse.Namespace):
    """The --alpha/--beta/--gamma coefficients, or None when none is given."""
    from nas.scaling.search import COST_TARGET, Coefficients

    given = [getattr(args, n) for n in ("alpha", "beta", "gamma")]
    if all(v is None for v in given):
        return None
    if any(v is None for v in given):
        raise NasError("--alpha, --beta and --gamma go together: give all three, or none for the grid search")
    coeffs = Coefficients(*(_number(v, f"--{n}") for v, n in zip(given, ("alpha", "beta", "gamma"), strict=True)))
    try:
        coeffs.check()
    except NasError as err:  # the library names the key; on the command line it is a flag
        raise NasError(f"--{err}") from None
    if abs(coeffs.cost_factor / COST_TARGET - 1) > 0.1:
        print(f"nas scale: warning: alpha * beta^2 * gamma^2 = {coeffs.cost_factor:.3g}, not ~2: each unit of phi "
              "will not double the MACs", file=sys.stderr)
    return coeffs


def run(args: argparse.Namespace) -> int:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # noisy measurements show in the tables' IQR
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    from nas.config import load_config
    from predictors.latency.fingerprint import check_backend
    from searchspace import load_genotype

    if (args.phi is None) == (args.latency_ladder is None):
        raise NasError("give exactly one of --phi (e.g. 1..7) and --latency-ladder (e.g. 10ms,20ms,40ms)")
    phis = parse_phis(args.phi) if args.phi is not None else None
    budgets = parse_ladder(args.latency_ladder) if args.latency_ladder is not None else None
    coeffs = parse_coefficients(args)
    if coeffs is not None and args.grid:
        raise NasError("--grid searches the coefficients: leave out --alpha, --beta and --gamma with it")
    grid_args = (_number(args.grid_step, "--grid-step"), _number(args.grid_tolerance, "--grid-tolerance"),
                 int(_number(args.grid_max, "--grid-max", int)))
    if grid_args[2] < 1:
        raise NasError(f"--grid-max: {grid_args[2]} must be >= 1")
    config = load_config(args.config, flag_values(args, SearchConfig))
    check_backend(config.latency_backend)
    genotype = load_genotype(args.genotype)
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", genotype.name)
    out = Path(args.out) if args.out else Path(config.runs_dir) / f"scale-{name}"
    grid = None
    if coeffs is None and (phis is not None or args.grid):
        grid = _grid(genotype, config, grid_args, args.quiet)
        coeffs = grid[0].coefficients
    from nas.scaling.search import PAPER, latency_measure

    coeffs = coeffs or PAPER
    measure = latency_measure(config.latency_backend, config.latency_threads)
    if phis is not None:
        return _family(genotype, name, coeffs, phis, grid, measure, out, args.quiet)
    return _ladder(genotype, name, coeffs, budgets, grid, measure, out, args.quiet)


def _grid(genotype, config, grid_args, quiet: bool) -> list:
    """Grid results, the winner first."""
    from nas.scaling.search import best_point, coefficient_grid, grid_search, spread_subset

    step, tolerance, most = grid_args
    candidates = coefficient_grid(step, tolerance)
    if not candidates:
        raise NasError(f"grid: no (alpha, beta, gamma) on a {step:g} grid has alpha*beta^2*gamma^2 within "
                       f"{tolerance:.0%} of 2; use a finer --grid-step or a larger --grid-tolerance")
    points = spread_subset(candidates, most)
    if not quiet:
        print(f"grid: {len(points)} of {len(candidates)} points (step {step:g}, +-{tolerance:.0%}), proxy "
              f"{config.proxy.dataset} {config.proxy.epochs} epoch(s)", file=sys.stderr, flush=True)

    def progress(i: int, n: int, p) -> None:
        if not quiet:
            c = p.coefficients
            print(f"grid {i}/{n}: alpha {c.alpha:g} beta {c.beta:g} gamma {c.gamma:g} (proxy res "
                  f"{p.proxy_resolution}): acc {p.accuracy:.4f} in {p.seconds:.0f}s{'  ' + p.error if p.error else ''}",
                  file=sys.stderr, flush=True)

    results = grid_search(genotype, config.proxy, points, progress=progress)
    winner = best_point(results)
    return [winner] + [r for r in results if r is not winner]


def _family(base, name, coeffs, phis, grid, measure, out: Path, quiet: bool) -> int:
    from nas.scaling.report import family_report, member_provenance
    from nas.scaling.search import scale_family
    from nas.search.outputs import write_best

    if not quiet:
        print(f"scaling {base.name} with alpha {coeffs.alpha:g}, beta {coeffs.beta:g}, gamma {coeffs.gamma:g} "
              f"to phi {', '.join(map(str, phis))}", file=sys.stderr, flush=True)
    members = scale_family(base, coeffs, phis, name, measure)
    for m in members:
        write_best(out / f"{m.genotype.name}.yaml", m.genotype, member_provenance(base, coeffs, m, grid))
    text = family_report(base, coeffs, members, grid)
    (out / "family.md").write_text(text)
    print(text, end="")
    if not quiet:
        print(f"wrote {len(members)} genotypes and family.md to {out}", file=sys.stderr)
    return 0


def _ladder(base, name, coeffs, budgets, grid, measure, out: Path, quiet: bool) -> int:
    from nas.scaling.report import ladder_report, rung_provenance
    from nas.scaling.search import latency_ladder
    from nas.search.outputs import write_best
    from predictors.cost import params_and_macs

    if not quiet:
        print(f"latency ladder for {base.name} along alpha {coeffs.alpha:g}, beta {coeffs.beta:g}, gamma "
              f"{coeffs.gamma:g}: {', '.join(f'{b:g} ms' for b in budgets)}", file=sys.stderr, flush=True)
    rungs = latency_ladder(base, coeffs, budgets, measure)
    costs = {}
    for r in rungs:
        if r.genotype is None:
            continue
        costs[id(r)] = params_and_macs(r.genotype)
        r.genotype.name = f"{name}_{r.budget_ms:g}ms"
        write_best(out / f"{r.genotype.name}.yaml", r.genotype, rung_provenance(base, coeffs, r, grid, costs[id(r)]))
    text = ladder_report(base, coeffs, rungs, grid, costs)
    out.mkdir(parents=True, exist_ok=True)
    (out / "ladder.md").write_text(text)
    print(text, end="")
    impossible = [r for r in rungs if r.status == "impossible"]
    if impossible:
        raise NasError(f"latency-ladder: {', '.join(f'{r.budget_ms:g} ms' for r in impossible)} cannot be met: "
                       f"{impossible[0].note} (see {out / 'ladder.md'})")
    return 0
