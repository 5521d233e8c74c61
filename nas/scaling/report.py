"""What ``nas scale`` writes beside each scaled genotype: its provenance, and family.md / ladder.md tables."""

from __future__ import annotations

import math

from nas.scaling.search import PAPER


def base_provenance(base, coeffs, phi: float, grid) -> dict:
    """What every scaled genotype records: its base, phi and coefficients (and the grid that chose them)."""
    prov = {"source": "nas scale", "base": base.name, "base_hash": base.hash(), "phi": phi, **coeffs.to_dict()}
    if grid is not None:
        prov["coefficients_from"] = "grid search at phi 1 (proxy accuracy)"
        prov["grid_proxy_accuracy"] = round(grid[0].accuracy, 6)
        prov["grid_proxy_resolution"] = grid[0].proxy_resolution
    return prov


def _device(probe) -> dict | None:
    """The device fingerprint of a measured probe (a plain Timing, e.g. from a test, has none)."""
    return getattr(probe, "fingerprint", None) or None


def member_provenance(base, coeffs, member, grid) -> dict:
    """Provenance of one family member, with its cost and quick latency."""
    lat = member.latency
    return {**base_provenance(base, coeffs, member.phi, grid), "params": member.params, "macs": member.macs,
            "latency_ms": round(lat.median_ms, 4), "latency_iqr_ms": round(lat.iqr_ms, 4), "latency_reps": lat.reps,
            "latency_resolution": member.genotype.resolution, "device": _device(lat)}


def rung_provenance(base, coeffs, rung, grid, cost: tuple[int, int]) -> dict:
    """Provenance of one ladder rung: the budget, the verifying and search-time measurements, its cost."""
    r = rung
    return {**base_provenance(base, coeffs, r.phi, grid), "budget_ms": r.budget_ms, "status": r.status,
            "latency_ms": round(r.verify.median_ms, 4), "latency_iqr_ms": round(r.verify.iqr_ms, 4),
            "latency_reps": r.verify.reps, "search_latency_ms": round(r.search.median_ms, 4),
            "next_phi": r.next_phi, "next_latency_ms": None if r.next_probe is None else round(r.next_probe.median_ms, 4),
            "latency_resolution": r.genotype.resolution, "device": _device(r.verify),
            "params": cost[0], "macs": cost[1]}


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def _ms(probe) -> str:
    return "-" if probe is None else f"{probe.median_ms:.2f} (IQR {probe.iqr_ms:.2f})"


def grid_lines(grid) -> list[str]:


    rows = []
    for p in sorted(grid, key=lambda r: -r.accuracy if math.isfinite(r.accuracy) else 1.0):
        c = p.coefficients
        mark = ", ".join(m for m, on in (("winner", p is grid[0]), ("paper", c == PAPER)) if on)
        acc = f"{p.accuracy:.4f}" if math.isfinite(p.accuracy) else f"failed: {p.error}"
        rows.append([f"{c.alpha:g}", f"{c.beta:g}", f"{c.gamma:g}", f"{c.cost_factor:.3f}", str(p.proxy_resolution),
                     acc, f"{p.seconds:.0f}", mark])
    return ["## Grid search at phi = 1", ""] + _table(
        ["alpha", "beta", "gamma", "a*b^2*g^2", "proxy res", "proxy acc", "train s", ""], rows) + [""]


def _head(base, coeffs, grid) -> list[str]:
    source = "grid search winner" if grid is not None else "given"
    return [f"# Compound scaling of {base.name} ({base.hash()})", "",
            f"alpha {coeffs.alpha:g} (depth), beta {coeffs.beta:g} (width), gamma {coeffs.gamma:g} (resolution), "
            f"alpha*beta^2*gamma^2 = {coeffs.cost_factor:.3f} ({source}); base resolution {base.resolution}, "
            "scaled resolutions rounded to a multiple of 8.", ""]


def family_report(base, coeffs, members, grid) -> str:
    """Markdown: the family table (and the grid table when the coefficients came from the grid)."""
    rows = []
    for m in members:
        s = m.genotype.scaling
        acc = f"{grid[0].accuracy:.4f}" if grid is not None and m.phi == 1 else "-"
        rows.append([f"{m.phi:g}", m.genotype.name, f"{s['width']:g}", f"{s['depth']:g}", str(m.genotype.resolution),
                     f"{m.params:,}", f"{m.macs / 1e6:,.1f}M", _ms(m.latency), acc])
    lines = _head(base, coeffs, grid) + ["## Family", ""] + _table(
        ["phi", "name", "width", "depth", "resolution", "params", "MACs", "latency ms", "proxy acc (grid winner)"],
        rows) + [""]
    return "\n".join(lines + (grid_lines(grid) if grid is not None else [])) + "\n"


def ladder_report(base, coeffs, rungs, grid, costs: dict) -> str:
    """Markdown: one row per budget with the search-time and verifying measurements."""
    rows = []
    for r in rungs:
        s = r.genotype.scaling if r.genotype is not None else {}
        params, macs = costs.get(id(r), (None, None))
        rows.append([f"{r.budget_ms:g} ms", r.status, "-" if r.phi is None else f"{r.phi:g}",
                     f"{s['width']:g}" if s else "-", f"{s['depth']:g}" if s else "-",
                     str(r.genotype.resolution) if r.genotype is not None else "-",
                     "-" if params is None else f"{params:,}", "-" if macs is None else f"{macs / 1e6:,.1f}M",
                     _ms(r.search), _ms(r.verify),
                     "-" if r.next_phi is None else f"{r.next_phi:g}", _ms(r.next_probe), r.note])
    lines = _head(base, coeffs, grid) + [
        "## Latency ladder", "",
        "phi on a 0.05 grid in [-3, 6]; 'search' is the probe the bisection decided on, 'verified' a fresh "
        "longer measurement (the rung counts only if its median is within the budget); 'next' is the next "
        "larger phi step, which misses the budget.", ""] + _table(
        ["budget", "status", "phi", "width", "depth", "resolution", "params", "MACs", "search ms", "verified ms", "next phi",
         "next ms", "note"], rows) + [""]
    return "\n".join(lines + (grid_lines(grid) if grid is not None else [])) + "\n"
