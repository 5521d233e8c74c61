"""Malformed input is refused before any work: one stderr line ``nas COMMAND: error: ...``, exit status 2.

:data:`ROWS` is the table: ``(argv, expected text)``. Each test runs ``nas.cli.main(argv)`` in this
process from a temporary folder holding the files of :data:`FILES` that the row names (written by
:func:`write_inputs`), and checks the exit status, that stderr is exactly one line starting with
``nas <command>: error:`` and containing the expected text (the field or file at fault), and that
nothing was printed on stdout. Add a case by adding a row (and its input file to FILES).
"""

from __future__ import annotations

import pickle
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from nas.cli import main
from searchspace import load_genotype
from searchspace.errors import NasError


def genotype(change: Callable[[dict], None] = lambda g: None, base: str = "mobilenet_v3_small") -> str:
    """YAML text of a zoo genotype with ``change`` applied to its plain data."""
    data = load_genotype(f"zoo:{base}").to_dict()
    change(data)
    return yaml.safe_dump(data, sort_keys=False)


def setter(path: str, value) -> Callable[[dict], None]:
    """``change`` that sets a dotted path such as ``stages.1.blocks.0.mid``."""
    *parents, last = path.split(".")

    def change(data: dict) -> None:
        node = data
        for key in parents:
            node = node[int(key)] if isinstance(node, list) else node[key]
        node[last] = value

    return change


def many(*changes: Callable[[dict], None]) -> Callable[[dict], None]:
    def change(data: dict) -> None:
        for c in changes:
            c(data)

    return change


GOOD = genotype()
FILES: dict[str, str | bytes | Callable[[Path], None]] = {
    "deep_list.yaml": "[" * 5000 + "]" * 5000,
    "deep_map.yaml": "a: " + "{b: " * 100 + "1" + "}" * 100 + "\n",
    "deep.json": '{"format": ' + "[" * 100_000 + "]" * 100_000 + "}",
    "provenance_deep.yaml": GOOD + "provenance: " + "{a: " * 40 + "1" + "}" * 40 + "\n",
    "latin1.yaml": GOOD.encode() + b"# caf\xe9\n",
    "binary.pt": bytes(range(256)) * 4,
    "empty.yaml": "",
    "huge.yaml": "# " + "x" * (17 * 2**20) + "\n",
    "dup_top.yaml": GOOD + "name: again\n",
    "dup_block.yaml": GOOD.replace("- type: mbconv\n", "- type: mbconv\n    type: basic\n", 1),
    "bomb.yaml": "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join([f'*{chr(97 + i)}'] * 10)}]\n" for i in range(6)),
    "cycle.yaml": "format: nas-genotype/1\nstem: &s {type: conv, out: [*s]}\n",
    "tabs.yaml": "format: nas-genotype/1\n\tstem: {}\n",
    "stem_out.yaml": genotype(setter("stem.out", 10**9)),
    "classes.yaml": genotype(setter("head.num_classes", 10**9)),
    "channels.yaml": genotype(setter("input.channels", 10**6)),
    "mid.yaml": genotype(setter("stages.1.blocks.0.mid", 10**9)),
    "head_conv.yaml": genotype(setter("head.conv", 10**7)),
    "resolution.yaml": genotype(setter("input.resolution", 100_000)),
    "wide_block.yaml": genotype(many(setter("stages.3.blocks.0.out", 16384), setter("stages.3.blocks.0.mid", 16384),
                                     setter("stages.3.blocks.0.repeat", 64))),
    "many_classes.yaml": genotype(many(setter("head.hidden", 16384), setter("head.num_classes", 1_000_000))),
    "big_input.yaml": genotype(many(setter("input.channels", 16384), setter("input.resolution", 4096))),
    "b7_4096.yaml": genotype(many(setter("input.resolution", 4096), setter("scaling.resolution", None)),
                             base="efficientnet_b7"),
    "wide_resnet.yaml": genotype(setter("scaling.width", 16.0), base="resnet50"),
    "a_file": "not a folder\n",
    "folder": lambda path: path.mkdir(),
    "good.yaml": GOOD,
    "arch_deep.json": "[" * 100_000 + "]" * 100_000,
    "arch_nested.json": "[" * 40 + "]" * 40,
    "arch_latin1.txt": b"[['ds_r1_k3_s1_c16']] # caf\xe9",
    "arch_no_def.json": '{"name": "x"}',
    "arch_settings.json": '{"arch_def": [["ds_r1_k3_s1_c16"]], "settings": [1, 2]}',
    "pickled.model": pickle.dumps({"kind": "ridge", "regressor": None}),
    "text.model": "ridge 1.0 2.0\n",
    "evil.pt": pickle.dumps({"w": 1}, protocol=4),
    "system.pt": b"\x80\x02cos\nsystem\nX\x04\x00\x00\x00true\x85R.",  # os.system("true")
    "latin1.csv": b"genotype,latency_ms\nzoo:mobilenet_v3_small,3.5\n# caf\xe9\n",
    "no_latency.csv": "genotype,ms\nzoo:mobilenet_v3_small,3.5\n",
    "bad_latency.csv": "genotype,latency_ms\nzoo:mobilenet_v3_small,-1\n",
    "deep_row.csv": 'genotype,latency_ms\n"' + "[" * 5000 + "]" * 5000 + '",3.5\n',
    "dup_config.yaml": "budget: 15m\nbudget: 10m\n",
    "unknown_key.yaml": "epochz: 3\n",
    "bad_proxy.yaml": "proxy:\n  epochs: many\n",
    "list_config.yaml": "- budget: 15m\n",
}

ROWS: list[tuple[list[str], str]] = [
    # nas show: files and text
    (["show", "deep_list.yaml"], "deep_list.yaml: not valid YAML/JSON at line 1, column 33: nested more than 32 levels"),
    (["show", "deep_map.yaml"], "deep_map.yaml: not valid YAML/JSON at line 1, column 125: nested more than 32 levels"),
    (["show", "deep.json"], "deep.json: not valid YAML/JSON at line 1, column 43: nested more than 32 levels"),
    (["show", "provenance_deep.yaml"], "nested more than 32 levels"),
    (["show", "[" * 3000 + "]" * 3000], "<text>: not valid YAML/JSON at line 1, column 33: nested more than 32 levels"),
    (["show", "latin1.yaml"], "genotype: 'latin1.yaml' is not a UTF-8 text file (expected YAML or JSON)"),
    (["show", "binary.pt"], "genotype: 'binary.pt' is not a UTF-8 text file"),
    (["show", "empty.yaml"], "genotype: expected a mapping, got NoneType"),
    (["show", "huge.yaml"], "genotype: 'huge.yaml' is 17.0 MiB, more than a text file may be (16 MiB)"),
    (["show", "folder"], "genotype: no such file 'folder'"),
    (["show", "missing.yaml"], "genotype: no such file 'missing.yaml'"),
    (["show", "dup_top.yaml"], "dup_top.yaml: duplicate key 'name'"),
    (["show", "dup_block.yaml"], "dup_block.yaml: duplicate key 'type'"),
    (["show", "bomb.yaml"], "bomb.yaml: more than 100,000 values once YAML aliases are expanded"),
    (["show", "cycle.yaml"], "cycle.yaml: a value contains itself through an alias"),
    (["show", "tabs.yaml"], "tabs.yaml: not valid YAML/JSON at line 2"),
    (["show", "{format: [}"], "<text>: not valid YAML/JSON"),
    # nas show: fields without a sane upper bound, and networks too big to allocate
    (["show", "stem_out.yaml"], "stem.out: 1000000000 is out of range; expected an integer from 1 to 16384"),
    (["show", "classes.yaml"], "head.num_classes: 1000000000 is out of range; expected an integer from 1 to 1000000"),
    (["show", "channels.yaml"], "input.channels: 1000000 is out of range; expected an integer from 1 to 16384"),
    (["show", "mid.yaml"], "stages[1].blocks[0].mid: 1000000000 is out of range; expected an integer from 1 to 16384"),
    (["show", "head_conv.yaml"], "head.conv: 10000000 is out of range; expected an integer from 0 to 16384"),
    (["show", "resolution.yaml"], "input.resolution: 100000 is out of range; expected an integer from 8 to 4096"),
    (["show", "wide_block.yaml"], "stages[3].blocks[0].out: 16384 gives the network 2.58e+10 parameters "
                                  "(stages[3].blocks[0]: 2.58e+10), over the limit of 2e+09"),
    (["show", "many_classes.yaml"], "head.num_classes: 1000000 gives the network 1.64e+10 parameters (the head: "
                                    "1.64e+10), over the limit of 2e+09; use smaller values or raise the limit with "
                                    "NAS_MAX_PARAMS"),
    (["show", "big_input.yaml"], "input.resolution: 4096 gives the network about 1,031.6 GiB of activations at "
                                 "batch 1 (the input image: 1,024.0 GiB, at resolution 4096)"),
    (["show", "b7_4096.yaml"], "input.resolution: 4096 gives the network about 141.6 GiB of activations at batch 1"),
    (["show", "wide_resnet.yaml"], "stages[3].blocks[0].out: 2048 gives the network 6.04e+09 parameters "
                                   "(stages[3].blocks[0]: 3.83e+09, width 16)"),
    (["show", "zoo:efficientnet_b7", "--resolution", "4096"], "scaling.resolution: 4096 gives the network about 141.6 GiB"),
    (["show", "zoo:resnet50", "--resolution", "100000"], "scaling.resolution: 100000 is out of range"),
    (["show", "zoo:resnet50", "--width", "100"], "scaling.width: 100 is out of range; expected a number from 0.05 to 16"),
    (["show", "zoo:resnet50", "--depth", "0"], "scaling.depth: 0 is out of range"),
    (["show", "zoo:resnet50", "--num-classes", "2000000"], "head.num_classes: 2000000 is out of range"),
    (["show", "zoo:vgg16_bn", "--num-classes", "1000000"], "head.num_classes: 1000000 gives the network 4.23e+09 "
                                                           "parameters (the head: 4.22e+09)"),
    # nas export
    (["export", "good.yaml", "--format", "onnx", "-o", "folder"], "-o/--output: 'folder' is a directory; give a file name"),
    (["export", "good.yaml", "--format", "timm", "-o", "folder"], "-o/--output: 'folder' is a directory"),
    (["export", "good.yaml", "--format", "onnx", "-o", "a_file/model.onnx"],
     "-o/--output: cannot write 'a_file/model.onnx': 'a_file' is not a directory"),
    (["export", "good.yaml", "--format", "torchscript", "-o", ""], "-o/--output: required for --format torchscript"),
    (["export", "deep_list.yaml", "--format", "onnx", "-o", "m.onnx"], "nested more than 32 levels"),
    (["export", "latin1.yaml", "--format", "onnx", "-o", "m.onnx"], "is not a UTF-8 text file"),
    (["export", "many_classes.yaml", "--format", "onnx", "-o", "m.onnx"], "head.num_classes: 1000000 gives the network"),
    (["export", "wide_resnet.yaml", "--format", "torchscript", "-o", "m.pt"], "stages[3].blocks[0].out: 2048 gives"),
    (["export", "good.yaml", "--format", "onnx", "-o", "m.onnx", "--weights", "evil.pt"],
     "weights: cannot read 'evil.pt' as a state dict of tensors: Unsupported operand 149 (only tensors are ever loaded)"),
    (["export", "good.yaml", "--format", "onnx", "-o", "m.onnx", "--weights", "system.pt"],
     "weights: cannot read 'system.pt' as a state dict of tensors: Trying to load unsupported GLOBAL os.system"),
    (["export", "good.yaml", "--format", "onnx", "-o", "m.onnx", "--weights", "missing.pt"],
     "weights: no such file 'missing.pt'"),
    # nas import timm
    (["import", "timm", "arch_deep.json"], "arch_def: nested more than 32 levels deep"),
    (["import", "timm", "arch_nested.json"], "arch_def: nested more than 32 levels deep"),
    (["import", "timm", "[" * 100_000 + "]" * 100_000], "arch_def: nested more than 32 levels deep"),
    (["import", "timm", "(" * 1000 + ")" * 1000], "arch_def: '((((((((("),
    (["import", "timm", "[" + "(" * 1000 + ")" * 1000 + "]"], "arch_def: not a Python/JSON list literal"),
    (["import", "timm", "arch_latin1.txt"], "arch_def: 'arch_latin1.txt' is not a UTF-8 text file"),
    (["import", "timm", "folder"], "arch_def: 'folder' is neither a list literal nor a file"),
    (["import", "timm", "arch_no_def.json"], "arch_def: the JSON object has no arch_def field"),
    (["import", "timm", "arch_settings.json"], "settings: expected a mapping"),
    (["import", "timm", "[['ds_r1_k3_s1_c16']]", "-o", "folder"], "-o/--output: 'folder' is a directory"),
    (["import", "timm", "[['ds_r1_k3_s1_c16']]", "-o", "a_file/g.yaml"], "'a_file' is not a directory"),
    (["import", "timm", "[['ir_r1_k3_s1_e6_c100000']]"], "stages[0].blocks[0].out: 100000 is out of range"),
    (["import", "timm", "[['ds_r1_k3_s1_c16']]", "--stem", "1000000000"], "settings.stem: 1000000000 is out of range"),
    (["import", "timm", "[['ds_r1_k3_s1_c16']]", "--num-classes", "0"], "settings.num_classes: 0 is out of range"),
    (["import", "timm", "[['ir_r64_k3_s1_e6_c16384']]"], "stages[0].blocks[0].out: 16384 gives the network 2.03e+11"),
    # nas latency
    (["latency", "deep_list.yaml"], "deep_list.yaml: not valid YAML/JSON at line 1, column 33: nested more than 32"),
    (["latency", "latin1.yaml"], "genotype: 'latin1.yaml' is not a UTF-8 text file"),
    (["latency", "stem_out.yaml"], "stem.out: 1000000000 is out of range"),
    (["latency", "many_classes.yaml"], "head.num_classes: 1000000 gives the network 1.64e+10 parameters"),
    (["latency", "zoo:mobilenet_v3_small", "--resolution", "100000"], "scaling.resolution: 100000 is out of range"),
    (["latency", "zoo:mobilenet_v3_small", "--predict", "--model", "pickled.model"],
     "--model: pickled.model is not a latency model written by `nas latency fit`"),
    (["latency", "zoo:mobilenet_v3_small", "--predict", "--model", "text.model"],
     "--model: text.model is not a latency model"),
    (["latency", "zoo:mobilenet_v3_small", "--predict", "--model", "folder"], "--model: no such file 'folder'"),
    (["latency", "fit", "latin1.csv", "-o", "m.model"], "measurements: 'latin1.csv' is not a UTF-8 text file"),
    (["latency", "fit", "no_latency.csv", "-o", "m.model"], "no_latency.csv: missing column 'latency_ms'"),
    (["latency", "fit", "bad_latency.csv", "-o", "m.model"], "row 2, column latency_ms: -1 is not a positive latency"),
    (["latency", "fit", "deep_row.csv", "-o", "m.model"], "deep_row.csv row 2, column genotype: <text>: not valid "
                                                          "YAML/JSON at line 1, column 33: nested more than 32 levels"),
    # nas search: every key checked before the run folder is made or a trial starts
    (["search", "--latency-threads", "0"], "latency_threads: 0 is out of range; expected an integer from 1 to 1024"),
    (["search", "--latency", "predictor"], "latency_model: required with latency: predictor"),
    (["search", "--latency", "predictor", "--latency-model", "missing.model"], "latency_model: no such file"),
    (["search", "--latency", "predictor", "--latency-model", "text.model"],
     "latency_model: text.model is not a latency model"),
    (["search", "--latency", "predictor", "--latency-model", "pickled.model"],
     "latency_model: pickled.model is not a latency model"),
    (["search", "--proxy-device", "tpu"], "proxy.device: 'tpu' is not a device"),
    (["search", "--proxy-device", "cuda:9"], "proxy.device: 'cuda:9'"),
    (["search", "--proxy-width", "1e6"], "proxy.width: 1e+06 is out of range; expected a number from 0.05 to 4"),
    (["search", "--proxy-subset", "1"], "proxy.subset: 1 is out of range; expected an integer >= 2 or null"),
    (["search", "--proxy-resolution", "100000"], "proxy.resolution: 100000 is out of range"),
    (["search", "--proxy-epochs", "0"], "proxy.epochs: 0 is out of range"),
    (["search", "--proxy-lr", "-1"], "proxy.lr: -1 is out of range"),
    (["search", "--proxy-dataset", "imagenet"], "proxy.dataset: imagenet is not one of"),
    (["search", "--proxy-data-dir", "folder"], "folder"),
    (["search", "--proxy-channels-last", "maybe"], "proxy.channels_last: 'maybe' is not true or false"),
    (["search", "--latency-resolution", "0"], "latency_resolution: 0 is out of range"),
    (["search", "--latency-resolution=-5"], "latency_resolution: -5 is out of range"),
    (["search", "--latency-backend", "tpu"], "latency_backend: tpu is not one of torch, torchscript, onnxruntime"),
    (["search", "--max-failures", "0"], "max_failures: 0 is out of range; expected an integer >= 1"),
    (["search", "--reject-factor=-1"], "reject_factor: -1 is out of range; expected a number >= 0"),
    (["search", "--budget", "2s"], "budget: 2 s is shorter than one trial can be"),
    (["search", "--budget", "soon"], "budget: 'soon' is not a duration"),
    (["search", "--trials", "0"], "trials: 0 is out of range"),
    (["search", "--finalists", "0"], "finalists: 0 is out of range"),
    (["search", "--finalist-seeds", "-1"], "finalist_seeds: -1 is out of range"),
    (["search", "--tournament", "20"], "tournament: 20 must be at most population (10)"),
    (["search", "--target-latency", "0ms"], "target_latency: '0ms' is not a positive latency"),
    (["search", "--objective", "macs"], "target_macs: required when objective is macs"),
    (["search", "--reward", "foo"], "reward: foo is not one of mnasnet, mnasnet-hard, tunas-abs, pareto"),
    (["search", "--strategy", "anneal"], "strategy: anneal is not one of auto"),
    (["search", "--name", "../../x"], "name: '../../x' is not a plain name"),
    (["search", "--name", "/tmp/abs"], "name: '/tmp/abs' is not a plain name"),
    (["search", "--runs-dir", "a_file"], "runs_dir: 'a_file' is a file, not a folder"),
    (["search", "--runs-dir", "a_file/sub"], "runs_dir: cannot create 'a_file/sub/search-"),
    (["search", "--storage", "foo://x"], "storage: 'foo' is not supported; use sqlite:///PATH or postgresql://"),
    (["search", "--storage", "nonsense"], "storage: 'nonsense' is not a database URL"),
    (["search", "--storage", "sqlite:////nonexistent/dir/s.db"], "storage: cannot open 'sqlite:////nonexistent/dir"),
    (["search", "--config", "dup_config.yaml"], "dup_config.yaml: duplicate key 'budget'"),
    (["search", "--config", "deep_map.yaml"], "nested more than 32 levels"),
    (["search", "--config", "latin1.yaml"], "config: 'latin1.yaml' is not a UTF-8 text file"),
    (["search", "--config", "folder"], "config: 'folder' is a directory, not a file"),
    (["search", "--config", "missing.yaml"], "config: no such file 'missing.yaml'"),
    (["search", "--config", "unknown_key.yaml"], "epochz: unknown key; allowed keys are name"),
    (["search", "--config", "bad_proxy.yaml"], "proxy.epochs: 'many' is not an integer"),
    (["search", "--config", "list_config.yaml"], "config: list_config.yaml must hold a mapping of keys"),
]


def write_inputs(folder: Path, argv: list[str]) -> None:
    """Write the FILES that ``argv`` names (also as the folder of an output path) into ``folder``."""
    named = {part for arg in argv for part in Path(arg).parts}
    for name, content in FILES.items():
        if name not in named:
            continue
        path = folder / name
        if callable(content):
            content(path)
        elif isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)


def row_id(row: tuple[list[str], str]) -> str:
    argv = row[0]
    return " ".join(a if len(a) < 30 else a[:12] + "..." for a in argv)


@pytest.mark.parametrize("argv, expected", ROWS, ids=[row_id(r) for r in ROWS])
def test_bad_input_is_one_line_and_exit_2(argv, expected, tmp_path, monkeypatch, capsys, recwarn) -> None:
    write_inputs(tmp_path, argv)
    monkeypatch.chdir(tmp_path)
    code = main(argv)
    out, err = capsys.readouterr()
    lines = err.splitlines()
    assert code == 2, err
    assert len(lines) == 1, err
    assert lines[0].startswith(f"nas {argv[0]}: error: "), lines[0]
    assert expected in lines[0]
    assert out == "" and "Traceback" not in err
    shown = [w for w in recwarn if not issubclass(w.category, (DeprecationWarning, PendingDeprecationWarning))]
    assert not shown, f"a warning would be a second stderr line: {shown[0].message}"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(n for n in FILES if (tmp_path / n).exists()), \
        "nothing may be written"


def test_no_row_is_repeated() -> None:
    assert len({tuple(argv) for argv, _ in ROWS}) == len(ROWS)


# ------------------------------------------------------------------------------------ nas.load_genotype


def nested(depth: int) -> dict:
    value: dict = {}
    for _ in range(depth):
        value = {"a": value}
    return value


def self_referencing() -> dict:
    data = load_genotype("zoo:mobilenet_v3_small").to_dict()
    data["provenance"] = {"again": data}
    return data


@pytest.mark.parametrize("source, expected", [
    ("[" * 5000 + "]" * 5000, "<text>: not valid YAML/JSON at line 1, column 33: nested more than 32 levels deep"),
    (GOOD + "name: again\n", "duplicate key 'name' (line "),
    ({**load_genotype("zoo:mobilenet_v3_small").to_dict(), "provenance": nested(100)}, "genotype: nested more than 32"),
    (self_referencing(), "genotype: nested more than 32 levels deep"),
    (genotype(setter("stages.1.blocks.0.mid", 10**9)), "stages[1].blocks[0].mid: 1000000000 is out of range"),
    (Path("/nonexistent/g.yaml"), "genotype: no such file '/nonexistent/g.yaml'"),
], ids=["deep text", "duplicate key", "deep dict", "dict containing itself", "mid", "missing path"])
def test_load_genotype_refuses_in_one_line(source, expected) -> None:
    import nas

    with pytest.raises(NasError) as info:
        nas.load_genotype(source)
    assert expected in str(info.value) and "\n" not in str(info.value)
