"""Checkpoints of searches in progress, so a killed design resumes where it stopped.

The driver (:func:`bilevel.search.run_search`) periodically saves the searcher's whole state
(parameters, optimiser moments, random generator state, evaluated grid chunks, the checkpoint
selection's bookkeeping) into a :class:`Checkpoint`. Re-running the same search with the same
checkpoint restores it and continues; because every source of randomness lives in the state,
the final result is exactly that of an uninterrupted run.

Checkpoints are never pickles: they are written in the data-only format of
:mod:`bilevel.search._serialize` (an ``.npz`` archive of arrays and one JSON tree, read with
``allow_pickle=False``; only the library's own registered state classes are rebuilt), so a
planted or corrupted checkpoint is refused with a ``ValueError`` and never executes anything.
Checkpoints of older versions (pickles) are refused too: delete them to start over.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Protocol

from bilevel._store import ResultStore

__all__ = ["Checkpoint", "FileCheckpoint", "StoreCheckpoint"]


class Checkpoint(Protocol):
    """Where a search keeps its latest state."""

    def load(self) -> bytes | None:
        """The latest saved state, or ``None`` if there is none."""
        ...

    def save(self, data: bytes) -> None:
        """Replace the saved state atomically."""
        ...

    def clear(self) -> None:
        """Forget the saved state."""
        ...


class StoreCheckpoint:
    """A checkpoint kept as a binary record of a :class:`~bilevel.ResultStore`.

    Parameters
    ----------
    store : ResultStore or str or pathlib.Path
        The store (or its SQLite file).
    key : str
        Record key; it should identify the search completely (environment, method,
        hyperparameters, seed), so that a different search never resumes from it.

    Examples
    --------
    >>> import tempfile, os
    >>> ck = StoreCheckpoint(os.path.join(tempfile.mkdtemp(), "s.sqlite"), "design/1")
    >>> ck.load() is None
    True
    >>> ck.save(b"state"); ck.load()
    b'state'
    """

    def __init__(self, store: ResultStore | str | Path, key: str) -> None:
        if not isinstance(key, str) or not key:
            raise ValueError(f"expected a non-empty string key, got {key!r}")
        self.store = store if isinstance(store, ResultStore) else ResultStore(store)
        self.key = key

    def load(self) -> bytes | None:
        """The latest saved state, or ``None``."""
        return self.store.get_blob(self.key)

    def save(self, data: bytes) -> None:
        """Replace the saved state (one SQLite transaction)."""
        self.store.put_blob(self.key, data)

    def clear(self) -> None:
        """Delete the saved state."""
        self.store.delete_blob(self.key)

    def __repr__(self) -> str:
        return f"StoreCheckpoint({str(self.store.path)!r}, {self.key!r})"


class FileCheckpoint:
    """A checkpoint kept in one file, replaced atomically (write to a temporary file, rename).

    Parameters
    ----------
    path : str or pathlib.Path
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def load(self) -> bytes | None:
        """The latest saved state, or ``None``."""
        try:
            return self.path.read_bytes()
        except FileNotFoundError:
            return None

    def save(self, data: bytes) -> None:
        """Replace the saved state atomically."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=self.path.name + ".")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def clear(self) -> None:
        """Delete the saved state."""
        self.path.unlink(missing_ok=True)

    def __repr__(self) -> str:
        return f"FileCheckpoint({str(self.path)!r})"
