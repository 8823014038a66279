"""A memory budget for the large batched arrays, checked before they are allocated.

Evaluations and searches build arrays of shape ``(batch, n + 1, S, A)`` and larger (rewards,
counterfactual rewards, linear objectives and occupancy measures of every candidate). Their
size is estimated before allocation: :func:`bilevel.evaluate` chunks its batches to the budget
where one profile fits, and anything that cannot fit raises :class:`MemoryLimitError` — one
line with the estimate and the limit — instead of asking the system for hundreds of GiB.

The budget is 4 GiB by default; set the ``BILEVEL_MEMORY_LIMIT`` environment variable (bytes,
or a number with a unit: ``512MiB``, ``8GiB``, ``16GB``) or call :func:`set_memory_limit`, or
pass ``--memory-limit`` to the ``bilevel`` command.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = [
    "DEFAULT_MEMORY_LIMIT",
    "ENV_VAR",
    "MemoryLimitError",
    "check_memory",
    "fit_batch",
    "format_bytes",
    "limited_memory",
    "memory_limit",
    "outcome_bytes_per_profile",
    "parse_bytes",
    "set_memory_limit",
]

DEFAULT_MEMORY_LIMIT = 4 * 2**30
ENV_VAR = "BILEVEL_MEMORY_LIMIT"

_UNITS = {
    "": 1, "b": 1,
    "k": 10**3, "kb": 10**3, "kib": 2**10,
    "m": 10**6, "mb": 10**6, "mib": 2**20,
    "g": 10**9, "gb": 10**9, "gib": 2**30,
    "t": 10**12, "tb": 10**12, "tib": 2**40,
}
_override: int | None = None


class MemoryLimitError(ValueError):
    """An array would exceed the memory budget (see :func:`memory_limit`)."""


def parse_bytes(spec: str | int | float) -> int:
    """Bytes of ``spec``: an int, or a string such as ``"4GiB"``, ``"512 MB"``, ``"1e9"``.

    Raises
    ------
    ValueError
        If ``spec`` is not a positive size.

    Examples
    --------
    >>> parse_bytes("4GiB"), parse_bytes("1.5 kB"), parse_bytes(1000)
    (4294967296, 1500, 1000)
    """
    if isinstance(spec, bool):
        raise ValueError(f"expected a memory size such as 4GiB or 512MB, got {spec!r}")
    if isinstance(spec, (int, float)):
        value = float(spec)
    else:
        m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*([A-Za-z]*)\s*", str(spec))
        if m is None or m.group(2).lower() not in _UNITS:
            raise ValueError(f"expected a memory size such as 4GiB or 512MB, got {spec!r}")
        value = float(m.group(1)) * _UNITS[m.group(2).lower()]
    if not value >= 1 or value != value or value == float("inf"):
        raise ValueError(f"expected a memory size of at least 1 byte, got {spec!r}")
    return int(value)


def format_bytes(n: float) -> str:
    """``n`` bytes in binary units, e.g. ``"935.2 GiB"``."""
    for unit, size in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{int(n)} B"


def memory_limit() -> int:
    """The current budget in bytes: :func:`set_memory_limit`, else ``BILEVEL_MEMORY_LIMIT``,
    else 4 GiB."""
    if _override is not None:
        return _override
    spec = os.environ.get(ENV_VAR, "").strip()
    if not spec:
        return DEFAULT_MEMORY_LIMIT
    try:
        return parse_bytes(spec)
    except ValueError as e:
        raise ValueError(f"{ENV_VAR}: {e}") from None


def set_memory_limit(limit: str | int | None) -> None:
    """Set the budget for this process (``None``: back to the environment variable/default)."""
    global _override
    _override = None if limit is None else parse_bytes(limit)


@contextmanager
def limited_memory(limit: str | int | None) -> Iterator[None]:
    """Temporarily set the budget, also for worker processes started meanwhile (via
    ``BILEVEL_MEMORY_LIMIT``); ``None`` changes nothing."""
    if limit is None:
        yield
        return
    value = str(parse_bytes(limit))
    old = os.environ.get(ENV_VAR)
    os.environ[ENV_VAR] = value
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(ENV_VAR, None)
        else:
            os.environ[ENV_VAR] = old


def outcome_bytes_per_profile(n_agents: int, n_states: int, n_actions: int,
                              n_mechanisms: int = 1, payments: bool = True) -> int:
    """Bytes that scoring ``n_mechanisms`` AMAs on one type profile allocates at its peak.

    Rewards ``(n, S, A)``, counterfactual rewards ``(n, n, S, A)`` (with payments), and per
    mechanism the linear objective, the occupancy measure and the solver's value arrays
    ``(n + 3, S, A)`` (counterfactual objectives included), all float64.
    """
    n, sa, c = int(n_agents), int(n_states) * int(n_actions), int(n_mechanisms)
    per_sa = n + (n * n if payments else 0) + c * ((n if payments else 0) + 3)
    return 8 * sa * per_sa


def check_memory(nbytes: float, what: str, hint: str = "", unit: str = "") -> None:
    """Raise :class:`MemoryLimitError` if ``nbytes`` exceeds the budget.

    The message gives the estimate, the limit and how to raise it; ``hint`` may add what else
    would help (e.g. a smaller batch); ``unit`` follows the estimate (``" per profile"``).
    """
    limit = memory_limit()
    if nbytes > limit:
        extra = f"; {hint}" if hint else ""
        raise MemoryLimitError(
            f"{what} needs about {format_bytes(nbytes)}{unit}, more than the memory limit of "
            f"{format_bytes(limit)}{extra} (raise the limit with {ENV_VAR} or --memory-limit)"
        )


def fit_batch(batch_size: int, bytes_per_profile: int, what: str) -> int:
    """The largest batch up to ``batch_size`` whose arrays fit the budget.

    Raises :class:`MemoryLimitError` if a single profile does not fit.
    """
    check_memory(bytes_per_profile, what, unit=" for a single type profile")
    return int(max(1, min(int(batch_size), memory_limit() // max(1, bytes_per_profile))))
