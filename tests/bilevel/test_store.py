"""The SQLite result store: put, get, prefix listing, persistence."""

from __future__ import annotations

from pathlib import Path

from bilevel._store import ResultStore


def test_store_roundtrip(tmp_path: Path) -> None:
    store = ResultStore(tmp_path / "s.sqlite")
    store.put("a/1", {"x": 1.5})
    store.put("a/2", {"x": [1, 2]})
    store.put("b/1", {"x": None})
    assert store.get("a/1") == {"x": 1.5}
    assert store.get("missing") is None
    assert [k for k, _ in store.items("a/")] == ["a/1", "a/2"]
    assert len(ResultStore(tmp_path / "s.sqlite")) == 3  # persisted
