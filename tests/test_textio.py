"""Safe reading and writing helpers: YAML limits, UTF-8 files, output checks and atomic writes."""

from __future__ import annotations

import os

import pytest

from searchspace.errors import GenotypeError, NasError
from searchspace.textio import (
    MAX_DEPTH,
    atomic_file,
    check_depth,
    check_output_file,
    load_json,
    load_yaml,
    read_text,
    write_text_atomic,
)


def nested_yaml(depth: int) -> str:
    return "[" * depth + "]" * depth


def test_nesting_up_to_the_limit_loads() -> None:
    value = load_yaml(nested_yaml(MAX_DEPTH), "t")
    for _ in range(MAX_DEPTH - 1):
        (value,) = value
    assert value == []
    with pytest.raises(GenotypeError, match=rf"^t: not valid YAML/JSON at line 1, column {MAX_DEPTH + 1}: nested more "):
        load_yaml(nested_yaml(MAX_DEPTH + 1), "t")
    check_depth(load_json(nested_yaml(MAX_DEPTH), "j"), "j")
    with pytest.raises(NasError, match=r"^j: nested more than 32 levels deep$"):
        load_json(nested_yaml(MAX_DEPTH + 1), "j")
    with pytest.raises(ValueError):  # not JSON at all: the caller may try another syntax
        load_json("[['a']", "j")


def test_duplicate_keys_are_refused_but_merge_keys_work() -> None:
    with pytest.raises(GenotypeError, match=r"^t: duplicate key 'kernel' \(line 2, column 15\)$"):
        load_yaml("block:\n  {kernel: 3, kernel: 5}\n", "t")
    merged = load_yaml("base: &b {kernel: 3, act: relu}\nblock:\n  <<: *b\n  kernel: 5\n", "t")
    assert merged["block"] == {"kernel": 5, "act": "relu"}


def test_alias_expansion_is_bounded() -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 4)]
    assert len(load_yaml("\n".join(lines), "t")["a3"]) == 10  # 12,345 values in all: fine ...
    lines.append(f"a4: [{', '.join(['*a3'] * 10)}]")
    with pytest.raises(GenotypeError, match=r"^t: more than 100,000 values once YAML aliases are expanded"):
        load_yaml("\n".join(lines), "t")  # ... but 10x more is a "billion laughs" file
    with pytest.raises(GenotypeError, match=r"a value contains itself through an alias \(line 1, column 4\)"):
        load_yaml("a: &a [1, *a]", "t")


def test_read_text(tmp_path) -> None:
    path = tmp_path / "g.yaml"
    path.write_bytes("name: café\n".encode())
    assert read_text(path, "genotype") == "name: café\n"
    path.write_bytes(b"name: caf\xe9\n")
    with pytest.raises(NasError, match=r"^genotype: '.*g.yaml' is not a UTF-8 text file \(expected YAML\)$"):
        read_text(path, "genotype", expected="YAML")
    with pytest.raises(NasError, match=r"is 0.0 MiB, more than a text file may be \(0 MiB\)"):
        read_text(path, "genotype", max_bytes=4)
    with pytest.raises(NasError, match=r"^genotype: '.*' is a directory, not a file$"):
        read_text(tmp_path, "genotype")
    with pytest.raises(NasError, match=r"^genotype: no such file"):
        read_text(tmp_path / "nope", "genotype")


def test_check_output_file(tmp_path) -> None:
    assert check_output_file(tmp_path / "new" / "deeper" / "m.onnx", "-o") == tmp_path / "new" / "deeper" / "m.onnx"
    with pytest.raises(NasError, match=r"^-o: '.*' is a directory; give a file name$"):
        check_output_file(tmp_path, "-o")
    (tmp_path / "file").write_text("x")
    with pytest.raises(NasError, match=r"^-o: cannot write '.*file/m.onnx': '.*file' is not a directory$"):
        check_output_file(tmp_path / "file" / "m.onnx", "-o")


def test_atomic_file_replaces_only_on_success(tmp_path) -> None:
    path = tmp_path / "best.yaml"
    write_text_atomic(path, "one\n")
    with pytest.raises(RuntimeError):
        with atomic_file(path) as f:
            f.write("half of two")
            raise RuntimeError("interrupted")
    assert path.read_text() == "one\n" and sorted(os.listdir(tmp_path)) == ["best.yaml"]
    with atomic_file(path) as first, atomic_file(path) as second:  # two writers: separate temporary files
        assert first.name != second.name
        first.write("first\n")
        second.write("second\n")
    assert path.read_text() == "first\n" and sorted(os.listdir(tmp_path)) == ["best.yaml"]
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask
