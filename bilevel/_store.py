"""An embedded SQLite store of finished work, so long runs can be killed and resumed.

Each finished unit of work (a table cell, a design) is written as one JSON record under a
string key in its own transaction, so a run killed at any moment (even by SIGKILL) leaves every
finished record intact and no partial one; re-running the same command skips what is stored.
Binary records (``put_blob``) hold the periodic checkpoints of searches in progress (evaluated
grid chunks, optimiser states), so even a single long design resumes mid-way.
"""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path
from typing import Any

from bilevel._jsonsafe import to_json

__all__ = ["ResultStore"]


class ResultStore:
    """Key → JSON records in an SQLite file.

    Parameters
    ----------
    path : str or pathlib.Path
        Database file (created with its parent directory if missing).

    Examples
    --------
    >>> import tempfile, os
    >>> store = ResultStore(os.path.join(tempfile.mkdtemp(), "store.sqlite"))
    >>> store.put("cell/1", {"mean": 0.5})
    >>> store.get("cell/1")
    {'mean': 0.5}
    >>> "cell/2" in store
    False
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as con:
            con.execute(
                "CREATE TABLE IF NOT EXISTS records ("
                "key TEXT PRIMARY KEY, value TEXT NOT NULL, created REAL NOT NULL)"
            )
            con.execute(
                "CREATE TABLE IF NOT EXISTS blobs ("
                "key TEXT PRIMARY KEY, value BLOB NOT NULL, created REAL NOT NULL)"
            )

    def _connect(self) -> sqlite3.Connection:
        con = sqlite3.connect(self.path, timeout=60.0)
        con.execute("PRAGMA journal_mode=WAL")
        return con

    def __contains__(self, key: str) -> bool:
        return self.get(key) is not None

    def get(self, key: str) -> Any:
        """The record stored under ``key``, or ``None``."""
        con = self._connect()
        try:
            row = con.execute("SELECT value FROM records WHERE key = ?", (key,)).fetchone()
        finally:
            con.close()
        return None if row is None else json.loads(row[0])

    def put(self, key: str, value: Any) -> None:
        """Store ``value`` (JSON-serialisable) under ``key`` atomically (replacing any)."""
        text = to_json(value)
        con = self._connect()
        try:
            with con:
                con.execute(
                    "INSERT OR REPLACE INTO records (key, value, created) VALUES (?, ?, ?)",
                    (key, text, time.time()),
                )
        finally:
            con.close()

    def items(self, prefix: str = "") -> list[tuple[str, Any]]:
        """All ``(key, record)`` pairs whose key starts with ``prefix``, sorted by key."""
        con = self._connect()
        try:
            rows = con.execute(
                "SELECT key, value FROM records WHERE key LIKE ? ORDER BY key",
                (prefix.replace("%", r"\%") + "%",),
            ).fetchall()
        finally:
            con.close()
        return [(k, json.loads(v)) for k, v in rows]

    def get_blob(self, key: str) -> bytes | None:
        """The binary record (e.g. a search checkpoint) under ``key``, or ``None``."""
        con = self._connect()
        try:
            row = con.execute("SELECT value FROM blobs WHERE key = ?", (key,)).fetchone()
        finally:
            con.close()
        return None if row is None else bytes(row[0])

    def put_blob(self, key: str, value: bytes) -> None:
        """Store binary ``value`` under ``key`` atomically (replacing any)."""
        if not isinstance(value, (bytes, bytearray)):
            raise TypeError(f"expected bytes, got {type(value).__name__}")
        con = self._connect()
        try:
            with con:
                con.execute(
                    "INSERT OR REPLACE INTO blobs (key, value, created) VALUES (?, ?, ?)",
                    (key, sqlite3.Binary(bytes(value)), time.time()),
                )
        finally:
            con.close()

    def delete_blob(self, key: str) -> None:
        """Remove the binary record under ``key`` (no error if absent)."""
        con = self._connect()
        try:
            with con:
                con.execute("DELETE FROM blobs WHERE key = ?", (key,))
        finally:
            con.close()

    def __len__(self) -> int:
        return len(self.items())
