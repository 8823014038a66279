"""An embedded SQLite store of finished work, so long runs can be killed and resumed.

Each finished unit of work (a table cell, a design) is written as one JSON record under a
string key in its own transaction, so a run killed at any moment (even by SIGKILL) leaves every
finished record intact and no partial one; re-running the same command skips what is stored.
Binary records (``put_blob``) hold the periodic checkpoints of searches in progress (evaluated
grid chunks, optimiser states), so even a single long design resumes mid-way.
"""

from __future__ import annotations

import functools
import json
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, TypeVar

from bilevel._jsonsafe import to_json

__all__ = ["ResultStore", "StoreError"]

_P = ParamSpec("_P")
_R = TypeVar("_R")


def _one_line(text: object) -> str:
    return " ".join(str(text).split())[:200]


class StoreError(ValueError):
    """The store file cannot be used (corrupt, not an SQLite store, unreadable); names it."""


def _wrapped(
    fn: Callable[Concatenate[ResultStore, _P], _R],
) -> Callable[Concatenate[ResultStore, _P], _R]:
    """Turn sqlite, JSON and file-system errors into a one-line :class:`StoreError`."""

    def inner(self: ResultStore, /, *args: _P.args, **kwargs: _P.kwargs) -> _R:
        try:
            return fn(self, *args, **kwargs)
        except (sqlite3.Error, json.JSONDecodeError) as e:
            raise StoreError(
                f"cannot use the result store {str(self.path)!r}: {e} (expected an SQLite "
                "store written by bilevel; move or delete it to start over)"
            ) from None
        except OSError as e:
            if isinstance(e, (FileExistsError, NotADirectoryError)):
                reason = f"{str(e.filename or self.path)!r} exists and is not a directory"
            else:
                reason = f"{e.strerror or e} ({e.filename or self.path})"
            raise StoreError(f"cannot open the result store {str(self.path)!r}: {reason}") from None

    functools.update_wrapper(inner, fn)
    return inner


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

    @_wrapped
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

    @_wrapped
    def get(self, key: str) -> Any:
        """The record stored under ``key``, or ``None``."""
        con = self._connect()
        try:
            row = con.execute("SELECT value FROM records WHERE key = ?", (key,)).fetchone()
        finally:
            con.close()
        return None if row is None else self._decode(key, row[0])

    @_wrapped
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

    @_wrapped
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
        return [(k, self._decode(k, v)) for k, v in rows]

    def _decode(self, key: str, raw: object) -> Any:
        """A record's JSON text as data; anything else (a pickle, binary garbage) is refused
        with a :class:`StoreError` naming the file and the key, never unpickled."""
        try:
            if not isinstance(raw, str):
                raise ValueError(f"a {type(raw).__name__} value, not JSON text")
            return json.loads(raw)
        except ValueError as e:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
            reason = _one_line(e)
            raise StoreError(
                f"cannot use the result store {str(self.path)!r}: record {key!r} is not JSON "
                f"({reason}); records are JSON only, never unpickled (expected an SQLite store "
                "written by bilevel; move or delete it to start over)"
            ) from None

    @_wrapped
    def get_blob(self, key: str) -> bytes | None:
        """The binary record (e.g. a search checkpoint) under ``key``, or ``None``."""
        con = self._connect()
        try:
            row = con.execute("SELECT value FROM blobs WHERE key = ?", (key,)).fetchone()
        finally:
            con.close()
        return None if row is None else bytes(row[0])

    @_wrapped
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

    @_wrapped
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
