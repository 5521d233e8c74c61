"""The one JSON-lines store (latency caches, the audit's trainings): torn lines, sharing, memory only."""

from __future__ import annotations

import json

from predictors.latency.cache import LatencyCache
from searchspace.jsonl import JsonlStore


def test_a_line_torn_by_a_kill_is_skipped_and_the_next_record_reads_back(tmp_path) -> None:
    path = tmp_path / "store.jsonl"
    store = JsonlStore(path)
    store.put("a", {"v": 1})
    store.put("b", {"v": 2})
    with open(path, "ab") as f:  # a write cut short by a kill: no newline, half an object
        f.write(b'{"key":"c","v":')
    after_kill = JsonlStore(path)
    assert after_kill.get("c") is None and after_kill.get("a") == {"key": "a", "v": 1} and len(after_kill) == 2
    after_kill.put("d", {"v": 4})
    fresh = JsonlStore(path)
    assert fresh.get("d") == {"key": "d", "v": 4}
    assert [json.loads(line)["key"] for line in path.read_text().splitlines()] == ["a", "b", "d"]  # cut off


def test_a_torn_first_and_only_line_is_cut_off(tmp_path) -> None:
    path = tmp_path / "store.jsonl"
    path.write_bytes(b'{"key":"x"')
    JsonlStore(path).put("y", {})
    assert path.read_text() == '{"key":"y"}\n'


def test_two_stores_on_one_file_see_each_others_records(tmp_path) -> None:
    first, second = JsonlStore(tmp_path / "s.jsonl"), JsonlStore(tmp_path / "s.jsonl")
    first.put("a", {"v": 1})
    second.put("b", {"v": 2})
    first.put("a", {"v": 3})  # the last line for a key wins
    assert second.get("a") == {"key": "a", "v": 3} and first.get("b") == {"key": "b", "v": 2}
    assert len(JsonlStore(tmp_path / "s.jsonl")) == 2


def test_without_a_path_records_stay_in_memory(tmp_path) -> None:
    store = JsonlStore(None)
    store.put("a", {"v": 1})
    assert "a" in store and store.values() == [{"key": "a", "v": 1}] and list(tmp_path.iterdir()) == []


def test_the_latency_cache_survives_a_torn_line(tmp_path) -> None:
    path = tmp_path / "m.jsonl"
    LatencyCache(path).store("h1", "fp", 32, 1, {"median_ms": 1.0})
    with open(path, "ab") as f:
        f.write(b'{"key":"h2|fp')
    LatencyCache(path).store("h3", "fp", 32, 1, {"median_ms": 3.0})
    assert LatencyCache(path).lookup("h3", "fp", 32, 1)["median_ms"] == 3.0
