"""``nas show`` and ``nas zoo``: the JSON summaries and the scaling flags."""

from __future__ import annotations

import json

import pytest

from nas.cli import main as cli_main
from predictors.cost import count_macs, count_params
from searchspace import build_model, genotype_text, load_genotype, save_genotype, zoo_names


def show_json(capsys, *argv: str) -> dict:
    assert cli_main(["show", *argv, "--json"]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    lines = out.splitlines()
    assert len(lines) == 1
    return json.loads(lines[0])


@pytest.fixture(scope="module")
def base_summary():
    """``nas show zoo:mobilenet_v3_large --json`` (computed once)."""
    import io
    from contextlib import redirect_stdout

    buf = io.StringIO()
    with redirect_stdout(buf):
        assert cli_main(["show", "zoo:mobilenet_v3_large", "--json"]) == 0
    return json.loads(buf.getvalue())


def test_show_json_summary(base_summary):
    s = base_summary
    assert s["name"] == "mobilenet_v3_large"
    assert isinstance(s["params"], int) and s["params"] == 5483032
    assert isinstance(s["macs"], int) and s["macs"] == pytest.approx(216589760, rel=0.02)
    assert s["resolution"] == 224
    assert s["hash"] == load_genotype("zoo:mobilenet_v3_large").hash()
    assert s["width"] == 1.0 and s["depth"] == 1.0 and s["num_classes"] == 1000


def test_show_json_parts_add_up(base_summary):
    s = base_summary
    parts = [s["stem"], *s["stages"], s["head"]]
    assert sum(p["params"] for p in parts) == s["params"]
    assert sum(p["macs"] for p in parts) == s["macs"]
    assert s["stem"] == {**s["stem"], "type": "conv", "out": 16, "out_size": 112}
    assert [st["out_size"] for st in s["stages"]] == [112, 56, 28, 14, 7]
    assert [st["out"] for st in s["stages"]] == [16, 24, 40, 112, 160]
    assert sum(st["repeats"] for st in s["stages"]) == load_genotype("zoo:mobilenet_v3_large").num_blocks()
    for prev, cur in zip(s["stages"], s["stages"][1:], strict=False):
        assert cur["in"] == prev["out"]


def test_show_width(base_summary, capsys):
    s = show_json(capsys, "zoo:mobilenet_v3_large", "--width", "0.5")
    assert s["width"] == 0.5
    assert s["params"] == count_params(build_model("zoo:mobilenet_v3_large", width=0.5))
    assert s["params"] < base_summary["params"] and s["macs"] < base_summary["macs"]
    assert s["stem"]["out"] == 8
    assert s["hash"] != base_summary["hash"] and s["resolution"] == 224


def test_show_depth(base_summary, capsys):
    s = show_json(capsys, "zoo:mobilenet_v3_large", "--depth", "2")
    assert s["depth"] == 2.0
    assert sum(st["repeats"] for st in s["stages"]) == 2 * sum(st["repeats"] for st in base_summary["stages"])
    assert s["params"] == count_params(build_model("zoo:mobilenet_v3_large", depth=2.0))
    assert s["params"] > base_summary["params"] and s["hash"] != base_summary["hash"]


def test_show_resolution(base_summary, capsys):
    s = show_json(capsys, "zoo:mobilenet_v3_large", "--resolution", "160")
    assert s["resolution"] == 160
    assert s["params"] == base_summary["params"]
    model = build_model("zoo:mobilenet_v3_large", resolution=160)
    assert s["macs"] == count_macs(model, 160)
    assert s["macs"] == pytest.approx(base_summary["macs"] * (160 / 224) ** 2, rel=0.05)
    assert s["stem"]["out_size"] == 80 and s["stages"][-1]["out_size"] == 5
    assert s["hash"] != base_summary["hash"]


def test_show_num_classes(base_summary, capsys):
    s = show_json(capsys, "zoo:mobilenet_v3_large", "--num-classes", "10")
    assert s["num_classes"] == 10
    assert base_summary["params"] - s["params"] == (1280 + 1) * (1000 - 10)
    assert s["head"]["params"] == base_summary["head"]["params"] - (1280 + 1) * 990
    assert s["hash"] != base_summary["hash"]


def test_show_all_flags_match_build_model(capsys):
    s = show_json(capsys, "zoo:mnasnet0_5", "--width", "1.5", "--depth", "1.2", "--resolution", "96",
                  "--num-classes", "7")
    model = build_model("zoo:mnasnet0_5", width=1.5, depth=1.2, resolution=96, num_classes=7)
    assert (s["width"], s["depth"], s["resolution"], s["num_classes"]) == (1.5, 1.2, 96, 7)
    assert s["params"] == count_params(model)
    assert s["macs"] == count_macs(model, 96)


def test_show_a_saved_file_and_yaml_text(tmp_path, capsys):
    genotype = load_genotype("zoo:mobilenet_v3_small")
    path = save_genotype(genotype, tmp_path / "g.yaml")
    from_file = show_json(capsys, str(path))
    assert from_file["hash"] == genotype.hash() and from_file["name"] == "mobilenet_v3_small"
    assert from_file["params"] == 2542856
    from_text = show_json(capsys, genotype_text(genotype))
    assert from_text == from_file


def test_show_table(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "250")  # rich would truncate cells at the default 80 columns
    assert cli_main(["show", "zoo:mobilenet_v3_small"]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    genotype = load_genotype("zoo:mobilenet_v3_small")
    assert genotype.hash() in out
    assert "mobilenet_v3_small" in out
    assert "total" in out and "2,542,856" in out


def test_zoo_json_lists_every_name(capsys):
    assert cli_main(["zoo", "--json", "--no-macs"]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    rows = [json.loads(line) for line in out.splitlines()]
    assert [r["name"] for r in rows] == zoo_names()
    for r in rows:
        assert r["macs"] is None
        assert isinstance(r["params"], int) and r["params"] > 0
        genotype = load_genotype(f"zoo:{r['name']}")
        assert r["hash"] == genotype.hash() and r["resolution"] == genotype.resolution
    by_name = {r["name"]: r for r in rows}
    assert by_name["mobilenet_v3_large"]["params"] == 5483032
    assert by_name["efficientnet_b7"]["resolution"] == 600
