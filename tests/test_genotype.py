"""The genotype format: round trips, the content hash, loading and saving, and validation errors.

Every malformed genotype must be rejected with one line that names the field path and what is
allowed; the CLI prints that line on stderr and exits 2 without a traceback.
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import nas
from nas.cli import main as cli_main
from searchspace import Genotype, GenotypeError, NasError, genotype_text, load_genotype, parse_genotype
from searchspace.blocks import FAMILIES
from searchspace.io import zoo_names
from searchspace.params import fmt_choices

REPO = Path(__file__).resolve().parents[1]

# A tiny valid network: 32x32 input -> 16 after the stem -> 16, 8, 4, 2 after the stages.
TINY = {
    "format": "nas-genotype/1",
    "name": "tiny",
    "input": {"channels": 3, "resolution": 32},
    "stem": {"type": "conv", "out": 8, "kernel": 3, "stride": 2, "act": "relu"},
    "stages": [
        {"blocks": [{"type": "mbconv", "repeat": 1, "out": 8, "stride": 1, "kernel": 3, "expand": 1.0}]},
        {"blocks": [{"type": "mbconv", "repeat": 2, "out": 16, "stride": 2, "kernel": 5, "expand": 4.0,
                     "se": 0.25}]},
        {"blocks": [{"type": "mbconv", "repeat": 1, "out": 24, "stride": 2, "kernel": 3, "act": "hswish"}]},
        {"blocks": [{"type": "mbconv", "repeat": 1, "out": 32, "stride": 2, "kernel": 3}]},
    ],
    "head": {"conv": 64, "num_classes": 10},
    "scaling": {"width": 1.0, "depth": 1.0},
}

TINY_YAML = """\
# a tiny network for tests
format: nas-genotype/1
name: tiny
input:
  channels: 3
  resolution: 32
stem:
  type: conv
  out: 8
  kernel: 3
  stride: 2
  act: relu
stages:
- blocks:
  - type: mbconv
    repeat: 1
    out: 8
    stride: 1
    kernel: 3
    expand: 1.0
- blocks:
  - type: mbconv
    repeat: 2
    out: 16
    stride: 2
    kernel: 5
    expand: 4.0
    se: 0.25
- blocks:
  - type: mbconv
    repeat: 1
    out: 24
    stride: 2
    kernel: 3
    act: hswish
- blocks:
  - type: mbconv
    repeat: 1
    out: 32
    stride: 2
    kernel: 3
head:
  conv: 64
  num_classes: 10
scaling:
  width: 1.0
  depth: 1.0
"""

ALL_FIELDS = "format, name, input, stem, stages, head, scaling, provenance"
MBCONV_FIELDS = ("type, repeat, out, stride, kernel, expand, mid, se, se_from, se_divisor, se_act, gate, "
                 "act, fused, skip, project_act")
FAMILY_CHOICES = fmt_choices(tuple(FAMILIES))


def tiny() -> dict:
    return copy.deepcopy(TINY)


# ---------------------------------------------------------------------------------------- round trips


def test_tiny_is_valid_and_its_yaml_text_is_the_same_genotype():
    a, b = parse_genotype(tiny()), load_genotype(TINY_YAML)
    assert a.to_dict() == b.to_dict()
    assert a.hash() == b.hash()
    assert a.name == "tiny" and a.resolution == 32 and a.num_blocks() == 5


@pytest.mark.parametrize("name", zoo_names())
def test_yaml_round_trip(name, tmp_path):
    g = load_genotype(f"zoo:{name}")
    path = nas.save_genotype(g, tmp_path / f"{name}.yaml")
    again = load_genotype(path)
    assert again.to_dict() == g.to_dict()
    assert again.hash() == g.hash()
    # the canonical text is a fixed point
    assert genotype_text(again) == genotype_text(g)
    assert load_genotype(genotype_text(g)).to_dict() == g.to_dict()


@pytest.mark.parametrize("name", ["mobilenet_v3_large", "efficientnet_b3", "resnet50"])
def test_json_round_trip(name, tmp_path):
    g = load_genotype(f"zoo:{name}")
    text = genotype_text(g, "json")
    assert json.loads(text) == g.to_dict()
    assert load_genotype(text).to_dict() == g.to_dict()
    path = nas.save_genotype(g, tmp_path / "g.json")
    assert json.loads(path.read_text()) == g.to_dict()
    again = load_genotype(str(path))
    assert again.to_dict() == g.to_dict() and again.hash() == g.hash()


def test_round_trip_keeps_provenance_and_name(tmp_path):
    raw = tiny()
    raw["name"] = "found-by-search"
    raw["provenance"] = {"study": "s1", "trial": 17, "latency_ms": 3.25}
    g = parse_genotype(raw)
    again = load_genotype(nas.save_genotype(g, tmp_path / "g.yaml"))
    assert again.name == "found-by-search"
    assert again.provenance == {"study": "s1", "trial": 17, "latency_ms": 3.25}
    assert again.to_dict() == g.to_dict()


def test_to_dict_fills_defaults_and_is_idempotent():
    g = parse_genotype(tiny())
    d = g.to_dict()
    assert d["stages"][3]["blocks"][0]["expand"] == 6.0  # default filled in
    assert d["head"]["pool"] == "avg" and d["scaling"]["divisor"] == 8
    assert parse_genotype(d).to_dict() == d


# ---------------------------------------------------------------------------------------------- hash

HASH_SAME = {
    "flow style": (
        "{format: nas-genotype/1, name: tiny, input: {channels: 3, resolution: 32},\n"
        " stem: {type: conv, out: 8, kernel: 3, stride: 2, act: relu},\n"
        " stages: [{blocks: [{type: mbconv, repeat: 1, out: 8, stride: 1, kernel: 3, expand: 1.0}]},\n"
        "          {blocks: [{type: mbconv, repeat: 2, out: 16, stride: 2, kernel: 5, expand: 4.0, se: 0.25}]},\n"
        "          {blocks: [{type: mbconv, repeat: 1, out: 24, stride: 2, kernel: 3, act: hswish}]},\n"
        "          {blocks: [{type: mbconv, repeat: 1, out: 32, stride: 2, kernel: 3}]}],\n"
        " head: {conv: 64, num_classes: 10}, scaling: {width: 1.0, depth: 1.0}}\n"
    ),
    "reordered keys, comments, ints for floats, explicit defaults": """\
scaling: {depth: 1, width: 1, divisor: 8, resolution: null}   # comment
head: {num_classes: 10, conv: 64, pool: avg}
stages:
  # the first stage
  - blocks:
    - {kernel: 3, expand: 1, out: 8, type: mbconv}
  - blocks:
    - {se: 0.25, expand: 4, kernel: 5, stride: 2, out: 16, repeat: 2, type: mbconv}
  - blocks: [{act: hswish, stride: 2, out: 24, type: mbconv}]
  - blocks: [{stride: 2, out: 32, type: mbconv, expand: 6.0}]
stem: {act: relu, stride: 2, kernel: 3, out: 8, type: conv}
input: {resolution: 32, channels: 3}
format: nas-genotype/1
name: tiny
""",
    "another name and provenance": TINY_YAML.replace("name: tiny", "name: other\nprovenance: {trial: 3}"),
}


@pytest.mark.parametrize("variant", list(HASH_SAME))
def test_hash_ignores_formatting_order_name_and_provenance(variant):
    assert load_genotype(HASH_SAME[variant]).hash() == load_genotype(TINY_YAML).hash()


def test_hash_is_twelve_hex_digits_and_pinned():
    h = load_genotype(TINY_YAML).hash()
    assert len(h) == 12 and set(h) <= set("0123456789abcdef")
    assert parse_genotype(tiny()).hash() == h
    # Pinned: a stored study or a saved genotype names networks by this hash. If this changes, the
    # canonical form changed (a new field or default): that needs a format version bump.
    assert h == "1d84ef45db97"
    assert load_genotype("zoo:mobilenet_v3_large").hash() == "bda4982f2d71"


@pytest.mark.parametrize("change", [
    ("stages[1].kernel", lambda d: d["stages"][1]["blocks"][0].update(kernel=3)),
    ("stages[1].repeat", lambda d: d["stages"][1]["blocks"][0].update(repeat=3)),
    ("head.num_classes", lambda d: d["head"].update(num_classes=100)),
    ("scaling.width", lambda d: d["scaling"].update(width=1.25)),
    ("input.resolution", lambda d: d["input"].update(resolution=64)),
    ("stem.act", lambda d: d["stem"].update(act="hswish")),
], ids=lambda c: c[0])
def test_hash_changes_with_the_network(change):
    raw = tiny()
    change[1](raw)
    assert parse_genotype(raw).hash() != parse_genotype(tiny()).hash()


def test_zoo_hashes_are_distinct():
    hashes = [load_genotype(f"zoo:{n}").hash() for n in zoo_names()]
    assert len(set(hashes)) == len(hashes)


# ------------------------------------------------------------------------------------ load and save


def test_load_genotype_from_every_kind_of_source(tmp_path):
    path = tmp_path / "tiny.yaml"
    path.write_text(TINY_YAML)
    expected = parse_genotype(tiny()).to_dict()
    g_obj = nas.load_genotype(path)
    for source in (path, str(path), TINY_YAML, tiny(), g_obj):
        g = nas.load_genotype(source)
        assert isinstance(g, Genotype)
        assert g.to_dict() == expected
    assert nas.load_genotype(g_obj) is g_obj


def test_load_genotype_from_zoo_name():
    g = nas.load_genotype("zoo:mobilenet_v3_large")
    assert g.name == "mobilenet_v3_large" and g.resolution == 224
    assert g.stem_type == "conv" and g.stages[0][0].type == "mbconv"
    assert "mobilenet_v3_large" in nas.zoo_names()


def test_save_genotype_writes_yaml_or_json(tmp_path):
    g = parse_genotype(tiny())
    y = nas.save_genotype(g, tmp_path / "a" / "b" / "tiny.yaml")
    j = nas.save_genotype(g, tmp_path / "tiny.json")
    assert y == tmp_path / "a" / "b" / "tiny.yaml" and y.is_file()
    assert y.read_text().startswith("format: nas-genotype/1\n")
    assert yaml.safe_load(y.read_text()) == g.to_dict()
    assert json.loads(j.read_text()) == g.to_dict()
    assert not list(tmp_path.rglob("*.tmp"))
    assert nas.load_genotype(y).hash() == nas.load_genotype(j).hash() == g.hash()


# -------------------------------------------------------------------------------- malformed genotypes


def set_block(i: int, **values):
    return lambda d: d["stages"][i]["blocks"][0].update(values)


def pop_block(i: int, key: str):
    return lambda d: d["stages"][i]["blocks"][0].pop(key)


def put(section: str, **values):
    return lambda d: d[section].update(values)


def top(**values):
    return lambda d: d.update(values)


def too_small(d):
    d["input"]["resolution"] = 16  # 8 after the stem, then 4, 2, 1; one more stride 2 is impossible
    d["stages"].append({"blocks": [{"type": "mbconv", "out": 40, "stride": 2}]})


MALFORMED = [
    ("unknown top-level field", top(author="me"),
     f"author: unknown field; allowed fields are {ALL_FIELDS}"),
    ("missing format", lambda d: d.pop("format"), "format: missing; expected nas-genotype/1"),
    ("wrong format", top(format="nas-genotype/2"),
     "format: 'nas-genotype/2' is not supported; expected nas-genotype/1"),
    ("empty name", top(name=""), "name: '' is not a non-empty string"),
    ("unknown block type", set_block(0, type="capsule"),
     f"stages[0].blocks[0].type: capsule is not one of {FAMILY_CHOICES}"),
    ("block type not a string", set_block(0, type=["mbconv"]),
     f"stages[0].blocks[0].type: ['mbconv'] is not one of {FAMILY_CHOICES}"),
    ("missing block type", pop_block(0, "type"),
     f"stages[0].blocks[0].type: missing is not one of {FAMILY_CHOICES}"),
    ("unknown block field", set_block(1, colour="red"),
     f"stages[1].blocks[0].colour: unknown field; allowed fields are {MBCONV_FIELDS}"),
    ("kernel not allowed", set_block(3, kernel=4), "stages[3].blocks[0].kernel: 4 is not one of 3, 5, 7"),
    ("string for int", set_block(1, repeat="two"),
     "stages[1].blocks[0].repeat: two (str) is not an integer from 1 to 64"),
    ("bool for int", set_block(1, repeat=True),
     "stages[1].blocks[0].repeat: true (bool) is not an integer from 1 to 64"),
    ("float for int", set_block(1, out=16.5),
     "stages[1].blocks[0].out: 16.5 (float) is not an integer from 1 to 16384"),
    ("string for choice int", set_block(1, kernel="5"),
     "stages[1].blocks[0].kernel: 5 (str) is not one of 3, 5, 7"),
    ("string for bool", set_block(1, fused="yes"),
     "stages[1].blocks[0].fused: yes (str) is not true or false"),
    ("repeat zero", set_block(1, repeat=0),
     "stages[1].blocks[0].repeat: 0 is out of range; expected an integer from 1 to 64"),
    ("repeat too large", set_block(1, repeat=65),
     "stages[1].blocks[0].repeat: 65 is out of range; expected an integer from 1 to 64"),
    ("se above 1", set_block(1, se=1.5),
     "stages[1].blocks[0].se: 1.5 is out of range; expected a number from 0 to 1"),
    ("expand below 1", set_block(2, expand=0.5),
     "stages[2].blocks[0].expand: 0.5 is out of range; expected a number from 1 to 8"),
    ("nan expand", set_block(1, expand=float("nan")),
     "stages[1].blocks[0].expand: nan (float) is not a number from 1 to 8"),
    ("nan se", set_block(1, se=float("nan")), "stages[1].blocks[0].se: nan (float) is not a number from 0 to 1"),
    ("null kernel", set_block(1, kernel=None),
     "stages[1].blocks[0].kernel: null is not allowed; expected one of 3, 5, 7"),
    ("null out", set_block(1, out=None),
     "stages[1].blocks[0].out: null is not allowed; expected an integer from 1 to 16384"),
    ("block without out", pop_block(1, "out"), "stages[1].blocks[0].out: missing required field"),
    ("stride 3", set_block(1, stride=3), "stages[1].blocks[0].stride: 3 is not one of 1, 2"),
    ("stride below 1x1", too_small,
     "stages[4].blocks[0].stride: 2 reduces the 1x1 feature map below 1x1 at resolution 16; "
     "use stride 1 here or a larger resolution"),
    ("stride below 1x1 by scaling", lambda d: d["scaling"].update(resolution=8),
     "stages[3].blocks[0].stride: 2 reduces the 1x1 feature map below 1x1 at resolution 8; "
     "use stride 1 here or a larger resolution"),
    ("bad stem type", put("stem", type="patchify"), "stem.type: patchify is not one of conv, deep, patch"),
    ("stem field of the other type", put("stem", separable=True),
     "stem.separable: unknown field; allowed fields are type, out, kernel, stride, act, pool, mid, padding, bias, "
     "norm, pad"),
    ("stem type not a string", put("stem", type={"conv": 1}), "stem.type: {'conv': 1} is not one of conv, deep, patch"),
    ("bad stem value", put("stem", pool="avg"), "stem.pool: avg is not one of none, max, max_ceil, max2, max3"),
    ("bad stem act", put("stem", act="gelu"),
     "stem.act: gelu is not one of relu, relu6, hswish, swish, leaky_relu, identity, prelu"),
    ("null stem", top(stem=None), "stem: expected a mapping, got NoneType"),
    ("unknown head field", put("head", classes=10),
     "head.classes: unknown field; allowed fields are conv, hidden, act, pool, dropout, num_classes, pool_size, "
     "hidden_layers, classifier, norm"),
    ("head dropout 1", put("head", dropout=1.0),
     "head.dropout: 1 is out of range; expected a number from 0 to 0.99"),
    ("head zero classes", put("head", num_classes=0),
     "head.num_classes: 0 is out of range; expected an integer from 1 to 1000000"),
    ("missing head", lambda d: d.pop("head"), "head: missing required field"),
    ("scaling width zero", put("scaling", width=0),
     "scaling.width: 0 is out of range; expected a number from 0.05 to 16"),
    ("scaling width string", put("scaling", width="wide"),
     "scaling.width: wide (str) is not a number from 0.05 to 16"),
    ("scaling depth null", put("scaling", depth=None),
     "scaling.depth: null is not allowed; expected a number from 0.05 to 16"),
    ("scaling width infinite", put("scaling", width=float("inf")),
     "scaling.width: inf (float) is not a number from 0.05 to 16"),
    ("scaling divisor", put("scaling", divisor=3), "scaling.divisor: 3 is not one of 1, 2, 4, 8, 16"),
    ("scaling resolution", put("scaling", resolution=4),
     "scaling.resolution: 4 is out of range; expected an integer from 8 to 4096 or null"),
    ("unknown scaling field", put("scaling", height=1.0),
     "scaling.height: unknown field; allowed fields are width, depth, resolution, divisor"),
    ("input channels zero", put("input", channels=0),
     "input.channels: 0 is out of range; expected an integer from 1 to 16384"),
    ("empty stages", top(stages=[]), "stages: expected a non-empty list of stages"),
    ("stages not a list", top(stages={"blocks": []}), "stages: expected a non-empty list of stages"),
    ("stage not a mapping", lambda d: d["stages"].__setitem__(1, "mbconv"),
     "stages[1]: expected a mapping, got str"),
    ("unknown stage field", lambda d: d["stages"][1].update(stride=2),
     "stages[1].stride: unknown field; allowed fields are blocks"),
    ("empty blocks", lambda d: d["stages"][2].update(blocks=[]),
     "stages[2].blocks: expected a non-empty list of blocks"),
    ("block not a mapping", lambda d: d["stages"][2]["blocks"].append([1, 2]),
     "stages[2].blocks[1]: expected a mapping, got list"),
    ("provenance not a mapping", top(provenance=["x"]), "provenance: expected a mapping, got list"),
]


@pytest.mark.parametrize("mutate, message", [c[1:] for c in MALFORMED], ids=[c[0] for c in MALFORMED])
def test_malformed_genotype_message(mutate, message):
    raw = tiny()
    mutate(raw)
    with pytest.raises(GenotypeError) as info:
        parse_genotype(raw)
    assert str(info.value) == message
    assert "\n" not in str(info.value)
    # the same line through YAML text
    with pytest.raises(GenotypeError) as info:
        load_genotype(yaml.safe_dump(raw, sort_keys=False))
    assert str(info.value) == message


def test_error_carries_the_field_path():
    raw = tiny()
    raw["stages"][3]["blocks"][0]["kernel"] = 4
    with pytest.raises(GenotypeError) as info:
        parse_genotype(raw)
    assert info.value.path == "stages[3].blocks[0].kernel"
    assert info.value.message == "4 is not one of 3, 5, 7"
    assert isinstance(info.value, NasError) and isinstance(info.value, ValueError)


def test_top_level_not_a_mapping():
    with pytest.raises(GenotypeError, match=r"^genotype: expected a mapping, got list$"):
        load_genotype("- 1\n- 2\n")


def test_yaml_syntax_error_in_a_file(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("format: nas-genotype/1\nstem: {type: conv\n")
    with pytest.raises(GenotypeError) as info:
        load_genotype(path)
    assert str(info.value) == (f"{path}: not valid YAML/JSON at line 3, column 1: expected ',' or '}}', "
                               f"but got '<stream end>'")


def test_yaml_syntax_error_in_text():
    with pytest.raises(GenotypeError) as info:
        load_genotype("format: nas-genotype/1\nstages: [\n")
    assert str(info.value) == "<text>: not valid YAML/JSON at line 3, column 1: expected the node content, " \
                              "but found '<stream end>'"


def test_unknown_zoo_name():
    with pytest.raises(NasError) as info:
        load_genotype("zoo:mobilenet_v9")
    assert str(info.value) == f"genotype: unknown zoo name 'mobilenet_v9'; available: {', '.join(zoo_names())}"


def test_missing_file(tmp_path):
    path = tmp_path / "nope.yaml"
    with pytest.raises(NasError) as info:
        load_genotype(str(path))
    assert str(info.value) == f"genotype: no such file '{path}' (give a path, YAML text or zoo:NAME)"


def test_binary_file(tmp_path):
    path = tmp_path / "weights.pt"
    path.write_bytes(bytes(range(256)))
    with pytest.raises(NasError) as info:
        load_genotype(path)
    assert str(info.value) == f"genotype: '{path}' is not a UTF-8 text file (expected YAML or JSON)"


# ------------------------------------------------------------------------------------------------ CLI


def write_bad(tmp_path: Path, mutate) -> Path:
    raw = tiny()
    mutate(raw)
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


@pytest.mark.parametrize("case", ["kernel not allowed", "unknown block type", "stride below 1x1",
                                  "scaling width string"])
def test_cli_show_malformed_prints_one_line_and_exits_2(case, tmp_path, capsys):
    _, mutate, message = next(c for c in MALFORMED if c[0] == case)
    path = write_bad(tmp_path, mutate)
    assert cli_main(["show", str(path)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.splitlines() == [f"nas show: error: {message}"]
    assert "Traceback" not in err


@pytest.mark.parametrize("argv, message", [
    (["show", "zoo:nope"], f"genotype: unknown zoo name 'nope'; available: {', '.join(zoo_names())}"),
    (["show", "/nonexistent/dir/g.yaml"],
     "genotype: no such file '/nonexistent/dir/g.yaml' (give a path, YAML text or zoo:NAME)"),
    (["show", "zoo:mobilenet_v3_large", "--resolution", "16"],
     "stages[4].blocks[0].stride: 2 reduces the 1x1 feature map below 1x1 at resolution 16; "
     "use stride 1 here or a larger resolution"),
    (["show", "zoo:mobilenet_v3_large", "--width", "0"],
     "scaling.width: 0 is out of range; expected a number from 0.05 to 16"),
    (["show", "zoo:mobilenet_v3_large", "--num-classes", "0"],
     "head.num_classes: 0 is out of range; expected an integer from 1 to 1000000"),
], ids=["unknown zoo", "missing file", "resolution too small", "width zero", "zero classes"])
def test_cli_show_user_errors(argv, message, capsys):
    assert cli_main(argv) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.splitlines() == [f"nas show: error: {message}"]


def test_cli_show_yaml_syntax_error(tmp_path, capsys):
    path = tmp_path / "broken.yaml"
    path.write_text("format: nas-genotype/1\nstages: [\n")
    assert cli_main(["show", str(path)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.splitlines() == [f"nas show: error: {path}: not valid YAML/JSON at line 3, column 1: "
                                f"expected the node content, but found '<stream end>'"]


def test_nas_show_subprocess_bad_genotype(tmp_path):
    path = write_bad(tmp_path, set_block(3, kernel=4))
    proc = subprocess.run([sys.executable, "-m", "nas", "show", str(path)], capture_output=True, text=True,
                          cwd=REPO, timeout=300)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.splitlines() == ["nas show: error: stages[3].blocks[0].kernel: 4 is not one of 3, 5, 7"]
    assert proc.stdout == ""
