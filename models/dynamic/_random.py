"""Counter-based random streams: every draw depends on (seed, row index, slot, counter) only.

A torch generator draws numbers in sequence, so ``E = 8`` rows drawn from it would not equal the
first 8 of ``E = 64``. Here each call draws one *salt* (two 31-bit integers, independent of the
batch size) from the caller's generator, and row ``r``'s numbers are a hash of
``(salt, slot, r, counter)``; a row's numbers therefore never depend on how many rows there are.
The hash is Wellons' ``lowbias32`` integer mixer, computed in int64 without overflow.
"""

from __future__ import annotations

import torch

__all__ = ["Salt", "draw_salt", "normals", "uniforms"]

Tensor = torch.Tensor
Salt = tuple[int, int]

_M32 = 0xFFFFFFFF


def _mul32(x: Tensor | int, c: int) -> Tensor | int:
    """``(x * c) mod 2**32`` for ``0 <= x, c < 2**32``, with every intermediate below 2**49."""
    lo, hi = c & 0xFFFF, c >> 16
    return (x * lo + (((x * hi) & 0xFFFF) << 16)) & _M32


def _mix32(x: Tensor | int) -> Tensor | int:
    x = x ^ (x >> 16)
    x = _mul32(x, 0x7FEB352D)
    x = x ^ (x >> 15)
    x = _mul32(x, 0x846CA68B)
    return x ^ (x >> 16)


def draw_salt(generator: torch.Generator) -> Salt:
    """Draw one salt (two 31-bit integers) from ``generator``, whatever the batch size.

    Parameters
    ----------
    generator : torch.Generator

    Returns
    -------
    tuple of two int
    """
    if not isinstance(generator, torch.Generator):
        raise TypeError(f"expected a torch.Generator, got {type(generator).__name__}")
    a, b = torch.randint(0, 2**31, (2,), generator=generator, device=generator.device).tolist()
    return int(a), int(b)


def _bits(salt: Salt, slot: int, rows: Tensor, count: int) -> Tensor:
    h0 = _mix32(_mix32(_mix32(0x243F6A88 ^ salt[0]) ^ salt[1]) ^ (slot & _M32))
    r = _mix32((rows.to(torch.int64) & _M32) ^ h0)  # (E,)
    assert isinstance(r, Tensor)
    c = torch.arange(count, dtype=torch.int64, device=rows.device)
    h = _mix32(((r.unsqueeze(1) + c.unsqueeze(0) * 0x9E3779B9) & _M32) ^ 0x85EBCA6B)
    out = _mix32(h ^ (r.unsqueeze(1) >> 7))
    assert isinstance(out, Tensor)
    return out


def uniforms(
    salt: Salt, slot: int, rows: Tensor, count: int, *, dtype: torch.dtype = torch.float64
) -> Tensor:
    """Uniform numbers in the open interval (0, 1), ``count`` per row.

    Parameters
    ----------
    salt : tuple of two int
        From :func:`draw_salt`.
    slot : int
        Distinguishes the independent draws of one call (one slot per purpose).
    rows : Tensor, shape (E,), int64
        Row indices (the streams' identities).
    count : int
        Numbers per row.
    dtype : torch.dtype, optional

    Returns
    -------
    Tensor, shape (E, count), on ``rows``' device
    """
    bits = _bits(salt, slot, rows, count)
    return ((bits.to(torch.float64) + 0.5) / 4294967296.0).to(dtype)


def normals(
    salt: Salt, slot: int, rows: Tensor, count: int, *, dtype: torch.dtype = torch.float64
) -> Tensor:
    """Standard normal numbers (Box–Muller on two uniforms each), ``count`` per row.

    Parameters
    ----------
    salt, slot, rows, count, dtype
        As for :func:`uniforms`.

    Returns
    -------
    Tensor, shape (E, count)
    """
    u = uniforms(salt, slot, rows, 2 * count)
    z = torch.sqrt(-2.0 * torch.log(u[:, :count])) * torch.cos(2.0 * torch.pi * u[:, count:])
    return z.to(dtype)
