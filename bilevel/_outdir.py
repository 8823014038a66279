"""Output directories: one bilevel process at a time, and files that are never half-written.

:func:`locked_outdir` holds an exclusive ``fcntl.flock`` on ``DIR/.lock`` for a command's
lifetime, so a second process writing the same ``--out`` fails fast instead of mixing its
results with the first one's (the kernel drops the lock when the holder exits, even on
``kill -9``, so a stale lock file never blocks anybody).

:func:`atomic_write_text`, :func:`atomic_write_bytes` and :func:`atomic_open` write to a
temporary file in the target's directory and ``os.replace`` it over the target once it is
complete: a reader sees the old file or the new one, never a truncated one, whatever happens
to the writer.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

__all__ = [
    "OutDirInUseError",
    "atomic_open",
    "atomic_write",
    "atomic_write_bytes",
    "atomic_write_text",
    "locked_outdir",
]

LOCK_NAME = ".lock"
_UMASK = os.umask(0)
os.umask(_UMASK)


class OutDirInUseError(OSError):
    """Another process holds the output directory's lock."""


def _holder(lock: Path) -> str:
    try:
        pid = lock.read_text().strip()
    except OSError:
        return "unknown"
    return pid if pid.isdigit() else "unknown"


@contextlib.contextmanager
def locked_outdir(path: str | Path) -> Iterator[Path]:
    """Hold the output directory ``path`` for the duration of the ``with`` block.

    The directory is created if needed; if this call created it and nothing but the lock file
    is in it at the end, it is removed again (a command that failed before writing leaves no
    trace). A directory that cannot be created or locked (a file, read-only) is yielded
    unlocked: the command's own writes then report that error.

    Raises
    ------
    OutDirInUseError
        If another process holds the directory: ``"DIR is in use by another bilevel process
        (pid N); wait for it or choose another --out"``.
    """
    out = Path(path)
    created = not out.exists()
    try:
        out.mkdir(parents=True, exist_ok=True)
        fd = os.open(out / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError:
        yield out
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise OutDirInUseError(
                f"{out} is in use by another bilevel process (pid {_holder(out / LOCK_NAME)}); "
                "wait for it or choose another --out"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        try:
            yield out
        finally:
            if created:
                with contextlib.suppress(OSError):
                    if [p.name for p in out.iterdir()] == [LOCK_NAME]:
                        (out / LOCK_NAME).unlink()
                        out.rmdir()
    finally:
        os.close(fd)  # releases the lock


@contextlib.contextmanager
def atomic_open(path: str | Path, mode: str = "w", **kwargs: Any) -> Iterator[IO[Any]]:
    """Open a temporary file beside ``path``; on a clean exit it replaces ``path`` atomically.

    ``mode`` is ``"w"`` (text; ``kwargs`` such as ``newline`` go to ``open``) or ``"wb"``. If the
    block raises, the temporary file is removed and ``path`` is left as it was.
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"expected mode 'w' or 'wb', got {mode!r}")
    target = Path(path)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode, **kwargs) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        with contextlib.suppress(OSError):
            os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp's 0o600 -> what open() would give
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def atomic_write(path: str | Path, write: Callable[[IO[bytes]], object]) -> Path:
    """Call ``write(f)`` on a binary temporary file, then move it over ``path`` atomically."""
    with atomic_open(path, "wb") as f:
        write(f)
    return Path(path)


def atomic_write_text(path: str | Path, text: str, *, encoding: str = "utf-8") -> Path:
    """Write ``text`` to ``path`` atomically (temporary file in the same directory + rename)."""
    with atomic_open(path, "w", encoding=encoding) as f:
        f.write(text)
    return Path(path)


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (temporary file in the same directory + rename)."""
    with atomic_open(path, "wb") as f:
        f.write(data)
    return Path(path)
