"""The revenue-optimal mechanism of the one-period bandit auction (Myerson, 1981, discrete).

With one period the bandit auction is a single-good auction with independent discrete values
(support ``v_1 < … < v_K``, probabilities ``f_k``, CDF ``F_k``). Its optimal mechanism gives the
good to a buyer with the highest *ironed* discrete virtual value, if it is positive, where

    φ_k = v_k − (v_{k+1} − v_k) (1 − F_k) / f_k   (φ_K = v_K),

ironed (made non-decreasing) by the ``f``-weighted isotonic regression, i.e. the slopes of the
concave hull of the revenue curve; ties are split uniformly, so the allocation is constant on
ironed intervals. Each buyer pays the discrete envelope payment

    p_i(v_j, v_−i) = v_j x_i(v_j, v_−i) − Σ_{l<j} (v_{l+1} − v_l) x_i(v_l, v_−i),

which makes the mechanism dominant-strategy incentive compatible and ex-post individually
rational (its allocation is monotone in the own report), and its expected revenue
``E[max_i φ̄(v_i)^+]``. For two buyers with values uniform on {1, 2, 3} that is 2 (VCG earns
14/9); for one buyer it is the posted price 2 (4/3). Over several periods it is the static
baseline run once per period, not the dynamic optimum.
"""

from __future__ import annotations

import numpy as np

from bilevel.models.typing import FloatArray
from bilevel.solvers.dynamic._exact import (
    TabularMechanism,
    _positive_int,
    _report_profiles,
    _support,
)

__all__ = ["ironed_virtual_values", "one_period_optimum"]


def ironed_virtual_values(support: FloatArray, prior: FloatArray | None = None) -> FloatArray:
    """Discrete virtual values, ironed by the ``prior``-weighted isotonic regression.

    Parameters
    ----------
    support : ndarray of shape (V,)
        Strictly increasing values.
    prior : ndarray of shape (V,), optional
        Their probabilities (default uniform; zero-probability values get the ironed value of
        their neighbours).

    Returns
    -------
    ndarray of shape (V,)
        Non-decreasing ironed virtual values.

    Examples
    --------
    >>> ironed_virtual_values(np.array([1.0, 2.0, 3.0])).round(12).tolist()
    [-1.0, 1.0, 3.0]
    >>> s, f = np.array([1.0, 2.0, 3.0]), np.array([0.5, 0.1, 0.4])
    >>> ironed_virtual_values(s, f).round(4).tolist()
    [-0.3333, -0.3333, 3.0]
    """
    s = _support(support)
    V = s.shape[0]
    f = np.full(V, 1.0 / V) if prior is None else np.asarray(prior, dtype=np.float64)
    if f.shape != (V,) or not np.all(np.isfinite(f)) or np.any(f < 0) or abs(f.sum() - 1) > 1e-9:
        raise ValueError(f"expected prior as a probability vector of shape ({V},), got {f}")
    tail = 1.0 - np.cumsum(f)
    gaps = np.append(np.diff(s), 0.0)
    w = np.maximum(f, 1e-300)
    phi = s - gaps * np.maximum(tail, 0.0) / w
    # Pool adjacent violators (weights f): isotonic non-decreasing fit.
    blocks: list[list[float]] = []  # [value, weight, length]
    for k in range(V):
        blocks.append([float(phi[k]), float(f[k]), 1.0])
        while len(blocks) > 1 and blocks[-2][0] > blocks[-1][0]:
            b2, b1 = blocks.pop(), blocks.pop()
            wt = b1[1] + b2[1]
            val = (b1[0] * b1[1] + b2[0] * b2[1]) / wt if wt > 0 else min(b1[0], b2[0])
            blocks.append([val, wt, b1[2] + b2[2]])
    out = np.concatenate([np.full(int(b[2]), b[0]) for b in blocks])
    return out


def one_period_optimum(
    *, n: int, support: FloatArray, prior: FloatArray | None = None, horizon: int = 1
) -> TabularMechanism:
    """Myerson's optimal auction for one good and discrete independent values, per period.

    Parameters
    ----------
    n : int
        Number of buyers.
    support : ndarray of shape (V,)
    prior : ndarray of shape (V,), optional
        Law of each buyer's value (default uniform).
    horizon : int, default 1
        Periods: the same one-period mechanism is repeated (T = 1 is the optimum; T > 1 a
        myopic baseline that ignores learning).

    Returns
    -------
    TabularMechanism
        Tables of shape (T, 1, V**n, ·).

    Examples
    --------
    >>> from bilevel.solvers.dynamic import truthful_value
    >>> s = np.array([1.0, 2.0, 3.0])
    >>> round(truthful_value(one_period_optimum(n=2, support=s), support=s).revenue, 12)
    2.0
    """
    nn, h, s = _positive_int(n, "n"), _positive_int(horizon, "horizon"), _support(support)
    V = s.shape[0]
    phi = ironed_virtual_values(s, prior)
    r = _report_profiles(s, nn)  # (V**n, n) values
    idx = np.searchsorted(s, r)  # (V**n, n) value indices
    vv = phi[idx]
    top = vv.max(axis=1, keepdims=True)
    win = (vv >= top - 1e-12) & (top > 1e-12)
    alloc = np.zeros((r.shape[0], nn + 1))
    alloc[:, 1:] = win / np.maximum(win.sum(axis=1, keepdims=True), 1)
    alloc[:, 0] = 1.0 - alloc[:, 1:].sum(axis=1)
    pay = np.zeros((r.shape[0], nn))
    weights = V ** np.arange(nn - 1, -1, -1)
    gaps = np.diff(s)
    for i in range(nn):
        base = (idx * weights).sum(axis=1) - idx[:, i] * weights[i]  # profile with v_i = v_1
        xs = np.stack([alloc[base + k * weights[i], i + 1] for k in range(V)], axis=1)
        below = np.concatenate([np.zeros((r.shape[0], 1)),
                                np.cumsum(gaps[None, :] * xs[:, :-1], axis=1)], axis=1)
        j = idx[:, i]
        rows = np.arange(r.shape[0])
        pay[:, i] = s[j] * xs[rows, j] - below[rows, j]
    a = np.broadcast_to(alloc, (h, 1, *alloc.shape)).copy()
    q = np.broadcast_to(pay, (h, 1, *pay.shape)).copy()
    return TabularMechanism(a, q, name="one-period optimum")
