"""``nas import timm ARCH_DEF``: a genotype from timm EfficientNet-builder block strings."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    from nas.commands.flags import add_flags
    from nas.export.timm.grammar import TimmSettings

    p = sub.add_parser("import", help="import a network definition as a genotype",
                       description="Turn another library's network definition into a genotype.")
    sources = p.add_subparsers(dest="source", required=True, metavar="SOURCE")
    t = sources.add_parser(
        "timm", help="timm EfficientNet-builder arch_def (ir/ds/er/cn block strings)",
        description="Parse a timm arch_def such as \"[['ds_r1_k3_s1_c16'], ['ir_r2_k3_s2_e6_c24_se0.25']]\" "
                    "into an mbconv genotype. ARCH_DEF is that literal, a file holding it, or the JSON "
                    "written by 'nas export --format timm -o FILE.json' (its settings are used; flags "
                    "override them). The result is checked block by block against timm's builder rules.")
    t.add_argument("arch_def", metavar="ARCH_DEF", help="arch_def literal, or a file (literal or export JSON)")
    t.add_argument("-o", "--output", help="write the genotype here (.yaml or .json); default: print YAML")
    t.add_argument("--name", help="genotype name (default: the JSON's name, else timm_import)")
    add_flags(t, TimmSettings)
    p.set_defaults(func=run)


def _read(source: str) -> tuple[list[list[str]], dict, str | None]:
    """(arch_def, settings, name) from a literal, a file with a literal, or an export JSON file."""
    from nas.export.timm.grammar import TimmArchError, check_arch_def, parse_arch_def
    from searchspace.textio import is_file, load_json, read_text, shorten

    text = source
    if not source.lstrip().startswith("["):
        path = Path(source)
        if not is_file(path):
            raise TimmArchError(f"arch_def: {shorten(source)!r} is neither a list literal nor a file")
        text = read_text(path, "arch_def", expected="an arch_def literal or the JSON of nas export --format timm")
    try:
        data = load_json(text, "arch_def")
    except ValueError:
        return parse_arch_def(text), {}, None
    if isinstance(data, dict):
        if "arch_def" not in data:
            raise TimmArchError("arch_def: the JSON object has no arch_def field (expected nas export's JSON)")
        settings = data.get("settings", {})
        if not isinstance(settings, dict):
            raise TimmArchError("settings: expected a mapping in the JSON file")
        return check_arch_def(data["arch_def"]), settings, data.get("name")
    return check_arch_def(data), {}, None


def run(args: argparse.Namespace) -> int:
    from nas.commands.flags import flag_values
    from nas.export.timm.convert import timm_to_genotype
    from nas.export.timm.grammar import SETTING_KEYS, TimmSettings
    from searchspace import check_size, genotype_text, save_genotype
    from searchspace.settings import from_text
    from searchspace.textio import check_output_file

    if args.output:
        check_output_file(args.output, "-o/--output")
    arch_def, settings, name = _read(args.arch_def)
    for key, text in flag_values(args, TimmSettings).items():
        settings[key] = from_text(SETTING_KEYS[key], text, f"settings.{key}")
    genotype = timm_to_genotype(arch_def, settings, name=args.name or name or "timm_import")
    check_size(genotype)  # a genotype too big to build is refused here, not at its first use
    if args.output:
        path = save_genotype(genotype, args.output)
        print(f"wrote {path} ({genotype.name}, hash {genotype.hash()}, {genotype.num_blocks()} blocks)")
    else:
        print(genotype_text(genotype), end="")
    return 0
