"""The stage table of a genotype: per stage its blocks, channels, strides, output size, params and MACs.

Library code (the search report uses it); ``nas show`` prints it.
"""

from __future__ import annotations


def genotype_summary(genotype) -> dict:
    """Per-stage table rows and totals (params, MACs, sizes) of a genotype, as plain data."""
    from predictors.cost import part_costs
    from searchspace import build
    from searchspace.blocks import FAMILIES
    from searchspace.resolve import resolve

    net = resolve(genotype)
    model = build(genotype)
    parts = part_costs(model, genotype.resolution, net.in_channels)
    stages = []
    for s, _ in enumerate(genotype.stages):
        blocks = [b for b in net.blocks if b.stage == s]
        types = []
        for b in blocks:
            inner = FAMILIES[b.type].inner(b.args.params)  # a csp stage names the family it wraps
            label = f"{b.type}({inner.name})" if inner else b.type
            if not types or types[-1][0] != label:
                types.append([label, 0])
            types[-1][1] += 1
        stages.append({
            "stage": s,
            "blocks": ", ".join(f"{t} x{n}" for t, n in types),
            "repeats": len(blocks),
            "in": blocks[0].args.in_ch,
            "out": blocks[-1].args.out,
            "stride": max(b.args.stride for b in blocks),
            "out_size": blocks[-1].out_size,
            "params": parts[s + 1].params,
            "macs": parts[s + 1].macs,
            **_access(parts[s + 1]),
        })
    return {
        "name": genotype.name, "hash": genotype.hash(), "params": sum(p.params for p in parts),
        "macs": sum(p.macs for p in parts), "mem_bytes": sum(p.mem_bytes for p in parts),
        "kernels": sum(p.kernels for p in parts), "elementwise": sum(p.elementwise for p in parts),
        "resolution": genotype.resolution, "width": genotype.scaling["width"],
        "depth": genotype.scaling["depth"], "num_classes": genotype.head["num_classes"],
        "stem": {"type": genotype.stem_type, "out": net.stem["out"], "out_size": net.stem_size,
                 "params": parts[0].params, "macs": parts[0].macs, **_access(parts[0])},
        "stages": stages,
        "head": {"params": parts[-1].params, "macs": parts[-1].macs, **_access(parts[-1])},
    }


def print_genotype_table(genotype, console=None) -> None:
    """Print the stage table of ``genotype`` to a rich console (stdout by default)."""
    print_summary(genotype_summary(genotype), console)


def _access(part) -> dict:
    """Memory access (bytes), kernels launched and element-wise elements of one part."""
    return {"mem_bytes": part.mem_bytes, "kernels": part.kernels, "elementwise": part.elementwise}


def _access_cells(row: dict) -> tuple[str, str, str]:
    return f"{row['mem_bytes'] / 1e6:,.1f}MB", str(row["kernels"]), f"{row['elementwise'] / 1e6:,.2f}M"


def print_summary(summary: dict, console=None) -> None:
    """Print a :func:`genotype_summary` as a rich table (stdout by default)."""
    from rich.console import Console
    from rich.table import Table

    title = (f"{summary['name']}  ({summary['hash']})  resolution {summary['resolution']}  "
             f"width {summary['width']:g}  depth {summary['depth']:g}")
    table = Table("stage", "blocks", "in", "out", "stride", "output", "params", "MACs", "mem access", "kernels",
                  "elem-wise", title=title)
    stem = summary["stem"]
    table.add_row("stem", stem["type"], "", str(stem["out"]), "", f"{stem['out_size']}x{stem['out_size']}",
                  f"{stem['params']:,}", f"{stem['macs'] / 1e6:,.1f}M", *_access_cells(stem))
    for s in summary["stages"]:
        table.add_row(str(s["stage"]), s["blocks"], str(s["in"]), str(s["out"]), str(s["stride"]),
                      f"{s['out_size']}x{s['out_size']}", f"{s['params']:,}", f"{s['macs'] / 1e6:,.1f}M",
                      *_access_cells(s))
    head = summary["head"]
    table.add_row("head", "", "", str(summary["num_classes"]), "", "", f"{head['params']:,}",
                  f"{head['macs'] / 1e6:,.1f}M", *_access_cells(head))
    table.add_row("total", "", "", "", "", "", f"{summary['params']:,}", f"{summary['macs'] / 1e6:,.1f}M",
                  *_access_cells(summary), style="bold")
    (console or Console()).print(table)
