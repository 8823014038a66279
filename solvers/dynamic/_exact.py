"""Exact dynamic programming for tabular mechanisms in the discrete bandit auction.

Buyers learn their values by consuming (the bandit auction of the dynamic mechanism-design paper
with evolving types): every period each buyer reports its current value, the mechanism allocates
the single good (m = 1) to at most one buyer and charges payments, and the winner's value moves by
a transition kernel that depends on how often it has been served, while the others' values stay
put. Allocations are *realised* (drawn from the mechanism's probabilities and made public), so
the experience counts are integers and the state space is finite.

Everything here is computed exactly in float64 by backward induction over
(period τ, experience profile or history, value profile):

* :class:`TabularMechanism` describes a mechanism whose allocation probabilities and payments
  depend on the period, the current report profile and (optionally) the public experience
  profile; :class:`HistoryMechanism` one that conditions on the whole public history of reports
  and winners; the baselines are :func:`posted_price`, :func:`myopic_second_price` and
  :func:`dynamic_pivot` (the dynamic pivot mechanism of Bergemann and Välimäki (2010));
* :func:`truthful_value` gives revenue, welfare and each buyer's utility under truthful reports;
* :func:`best_response_value` gives one buyer's best-response value and its exploitability:
  exact for one buyer (an MDP), exact for several by a Bayesian recursion over the buyer's
  belief about the others' values, and an upper bound from the clairvoyant buyer that also sees
  the others' values (an MDP over the joint state);
* :func:`best_posted_price` finds the revenue-maximising posted price exactly.

Conventions (these reproduce the benchmark values used in the tests):

* the kernel applied at a buyer's k-th allocation (k = 1, 2, …) is K_disc(α) with
  α = k/2, i.e. the experience count *includes* the current allocation
  (``experience_includes_current=True``): the first allocation uses α = 0.5;
* the mechanism's "experience profile" is the number of realised allocations each buyer has had
  *before* the current period;
* revenue is the discounted sum of payments (costs are zero), welfare the discounted sum of the
  winner's true value.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Literal

import numpy as np

from bilevel.models.typing import FloatArray, IntArray

__all__ = [
    "BestResponse",
    "HistoryMechanism",
    "PostedPriceChoice",
    "TabularMechanism",
    "TruthfulValue",
    "best_posted_price",
    "best_response_value",
    "discrete_kernel",
    "dynamic_pivot",
    "experience_kernels",
    "myopic_second_price",
    "posted_price",
    "truthful_value",
]

_TOL = 1e-12


# --------------------------------------------------------------------------------------------
# The environment as arrays
# --------------------------------------------------------------------------------------------


def discrete_kernel(support: FloatArray, alpha: float) -> FloatArray:
    """The value kernel K_disc(α) of the discrete bandit auction.

    Row v is the law of the next value: K(v' | v) ∝ exp(−α |v' − v|), normalised over the support.

    Parameters
    ----------
    support : ndarray of shape (V,)
        The finite value support, strictly increasing.
    alpha : float
        The stickiness coefficient, ≥ 0 (α = 0 gives uniform rows).

    Returns
    -------
    ndarray of shape (V, V)
        Row-stochastic transition matrix.

    Examples
    --------
    >>> import numpy as np
    >>> np.round(discrete_kernel(np.array([1.0, 2.0, 3.0]), 0.5)[0], 4)
    array([0.5065, 0.3072, 0.1863])
    """
    s = _support(support)
    if not np.isfinite(alpha) or alpha < 0:
        raise ValueError(f"expected a finite alpha >= 0, got {alpha}")
    w = np.exp(-float(alpha) * np.abs(s[None, :] - s[:, None]))
    out: FloatArray = w / w.sum(axis=1, keepdims=True)
    return out


def experience_kernels(
    support: FloatArray, horizon: int, *, experience_includes_current: bool = True
) -> FloatArray:
    """The kernels K_disc(α_k) applied at a buyer's allocation number k + 1, for k < horizon.

    Parameters
    ----------
    support : ndarray of shape (V,)
        The value support.
    horizon : int
        The number of periods T (a buyer is served at most T times).
    experience_includes_current : bool, default True
        True: α = (k + 1)/2 (the first allocation uses α = 0.5, the discrete setting of the
        paper); False: α = k/2 (the first allocation uses α = 0, a uniform redraw).

    Returns
    -------
    ndarray of shape (horizon, V, V)
        ``out[k]`` is the kernel used when the buyer has been served k times before.
    """
    h = _positive_int(horizon, "horizon")
    shift = 1.0 if experience_includes_current else 0.0
    return np.stack([discrete_kernel(support, 0.5 * (k + shift)) for k in range(h)])


@dataclass(frozen=True, eq=False)
class _Setting:
    """Validated arrays of a discrete bandit auction (one good)."""

    n: int
    horizon: int
    gamma: float
    support: FloatArray  # (V,)
    prior: FloatArray  # (V,)
    kernels: FloatArray  # (T, V, V)

    @property
    def n_values(self) -> int:
        return int(self.support.shape[0])


def _setting(
    n: int,
    horizon: int,
    gamma: float,
    support: FloatArray,
    prior: FloatArray | None,
    kernel: FloatArray | None,
) -> _Setting:
    nn = _positive_int(n, "n")
    h = _positive_int(horizon, "horizon")
    g = float(gamma)
    if not np.isfinite(g) or not 0.0 <= g <= 1.0:
        raise ValueError(f"expected gamma in [0, 1], got {gamma}")
    s = _support(support)
    nv = s.shape[0]
    if prior is None:
        pr = np.full(nv, 1.0 / nv)
    else:
        pr = np.asarray(prior, dtype=np.float64)
        if pr.shape != (nv,):
            raise ValueError(f"expected prior of shape ({nv},), got {pr.shape}")
        if not np.all(np.isfinite(pr)) or np.any(pr < 0) or abs(pr.sum() - 1.0) > 1e-9:
            raise ValueError(f"expected a probability vector as prior, got {pr.tolist()}")
    if kernel is None:
        ks = experience_kernels(s, h)
    else:
        k = np.asarray(kernel, dtype=np.float64)
        if k.shape == (nv, nv):
            ks = np.broadcast_to(k, (h, nv, nv)).copy()
        elif k.ndim == 3 and k.shape[0] >= h and k.shape[1:] == (nv, nv):
            ks = k[:h].copy()
        else:
            raise ValueError(
                f"expected kernel of shape ({nv}, {nv}) or (K >= {h}, {nv}, {nv}), got {k.shape}"
            )
        if not np.all(np.isfinite(ks)) or np.any(ks < 0):
            raise ValueError("expected a kernel with finite non-negative entries, got others")
        bad = np.abs(ks.sum(axis=-1) - 1.0).max()
        if bad > 1e-9:
            raise ValueError(f"expected kernel rows summing to 1, got a deviation of {bad:.3g}")
    return _Setting(nn, h, g, s, pr, ks)


# --------------------------------------------------------------------------------------------
# Index bookkeeping: flattened experience profiles (T^n) and value/report profiles (V^n)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class _Index:
    n: int
    horizon: int
    n_values: int
    e_comp: IntArray  # (n, NE): buyer j's experience count in profile e
    e_next: IntArray  # (n, NE): profile after serving j (count clipped at T - 1)
    v_comp: IntArray  # (n, NV): buyer j's value index in profile v
    v_replace: IntArray  # (n, NV, V): profile v with buyer j's value replaced by w

    @property
    def n_exp(self) -> int:
        return int(self.e_comp.shape[1])

    @property
    def n_prof(self) -> int:
        return int(self.v_comp.shape[1])


def _index(n: int, horizon: int, n_values: int) -> _Index:
    e = np.array(list(itertools.product(range(horizon), repeat=n)), dtype=np.int64)
    v = np.array(list(itertools.product(range(n_values), repeat=n)), dtype=np.int64)
    e, v = e.reshape(horizon**n, n), v.reshape(n_values**n, n)  # n = 0: one empty profile
    ew = horizon ** np.arange(n - 1, -1, -1)
    vw = n_values ** np.arange(n - 1, -1, -1)
    e_next = np.empty((n, e.shape[0]), dtype=np.int64)
    v_rep = np.empty((n, v.shape[0], n_values), dtype=np.int64)
    for j in range(n):
        ej = e.copy()
        ej[:, j] = np.minimum(ej[:, j] + 1, horizon - 1)
        e_next[j] = ej @ ew
        for w in range(n_values):
            vj = v.copy()
            vj[:, j] = w
            v_rep[j, :, w] = vj @ vw
    return _Index(n, horizon, n_values, e.T.copy(), e_next, v.T.copy(), v_rep)


# --------------------------------------------------------------------------------------------
# Tabular mechanisms
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class TabularMechanism:
    """A direct dynamic mechanism for one good, as tables over (τ, experience, reports).

    In period τ the mechanism sees the current report profile and, if it conditions on it, the
    public experience profile (the number of realised allocations each buyer had before τ). It
    outputs the probabilities of giving the good to the null buyer or to buyer i, and each
    buyer's (expected) payment. The realised winner is drawn from these probabilities.

    Profiles are flattened in row-major order: the report profile (r_1, …, r_n), with r_i the
    index of buyer i's report in the support, has index Σ_i r_i V^{n−1−i}; the experience
    profile (e_1, …, e_n), e_i ∈ {0, …, T−1}, has index Σ_i e_i T^{n−1−i}.

    Attributes
    ----------
    allocation : ndarray of shape (T, NE, V**n, n + 1)
        Probabilities; column 0 is the null buyer (the good is kept), column i the buyer i.
        NE = T**n if the mechanism conditions on experience, else 1.
    payments : ndarray of shape (T, NE, V**n, n)
        The payment of each buyer to the seller.
    name : str
        A label for reports.
    """

    allocation: FloatArray
    payments: FloatArray
    name: str = "tabular"

    def __post_init__(self) -> None:
        a = np.asarray(self.allocation, dtype=np.float64)
        p = np.asarray(self.payments, dtype=np.float64)
        if a.ndim != 4 or a.shape[-1] < 2:
            raise ValueError(f"expected allocation of shape (T, NE, V**n, n + 1), got {a.shape}")
        t, ne, nr, n1 = a.shape
        if p.shape != (t, ne, nr, n1 - 1):
            raise ValueError(f"expected payments of shape {(t, ne, nr, n1 - 1)}, got {p.shape}")
        if not (np.all(np.isfinite(a)) and np.all(np.isfinite(p))):
            raise ValueError("expected finite allocation and payments, got NaN or inf")
        if np.any(a < -_TOL) or np.abs(a.sum(axis=-1) - 1.0).max() > 1e-9:
            raise ValueError(
                "expected allocation probabilities summing to 1 over null + buyers, got others"
            )
        if ne != 1 and ne != t ** (n1 - 1):
            raise ValueError(f"expected NE = 1 or T**n = {t ** (n1 - 1)}, got {ne}")
        object.__setattr__(self, "allocation", a)
        object.__setattr__(self, "payments", p)

    @property
    def horizon(self) -> int:
        """Number of periods T."""
        return int(self.allocation.shape[0])

    @property
    def n(self) -> int:
        """Number of buyers."""
        return int(self.allocation.shape[-1] - 1)

    @property
    def uses_experience(self) -> bool:
        """Whether the tables depend on the experience profile."""
        return bool(self.allocation.shape[1] != 1)


@dataclass(frozen=True, eq=False)
class HistoryMechanism:
    """A direct dynamic mechanism for one good that conditions on the whole public history.

    In period τ the history is the sequence of (report profile, realised winner) of periods
    0..τ−1; with B = V**n · (n + 1) it has the index h = Σ_k (r_k (n + 1) + a_k) B^{τ−1−k}
    (report profile index r_k as in :class:`TabularMechanism`, winner a_k ∈ {0 = kept, 1..n}),
    so a child of h is h B + r (n + 1) + a. Experience is a function of the history.

    Attributes
    ----------
    allocation : tuple of T ndarrays, the τ-th of shape (B**τ, V**n, n + 1)
        Probabilities of keeping the good (column 0) or giving it to buyer i.
    payments : tuple of T ndarrays, the τ-th of shape (B**τ, V**n, n)
        Payments to the seller.
    name : str
        A label for reports.
    """

    allocation: tuple[FloatArray, ...]
    payments: tuple[FloatArray, ...]
    name: str = "history"

    def __post_init__(self) -> None:
        if not isinstance(self.allocation, (tuple, list)) or not isinstance(
            self.payments, (tuple, list)
        ):
            raise TypeError(
                "expected allocation and payments as tuples of arrays, got "
                f"{type(self.allocation).__name__} and {type(self.payments).__name__}"
            )
        allocs = tuple(np.asarray(a, dtype=np.float64) for a in self.allocation)
        pays = tuple(np.asarray(q, dtype=np.float64) for q in self.payments)
        if not allocs or len(pays) != len(allocs):
            raise ValueError(
                f"expected T >= 1 allocation and payment tables, got {len(allocs)} and {len(pays)}"
            )
        if allocs[0].ndim != 3 or allocs[0].shape[-1] < 2:
            raise ValueError(
                f"expected allocation[0] of shape (1, V**n, n + 1), got {allocs[0].shape}"
            )
        nr, n1 = allocs[0].shape[1:]
        branch = nr * n1
        for tau, (a, q) in enumerate(zip(allocs, pays, strict=True)):
            want = (branch**tau, nr, n1)
            if a.shape != want or q.shape != (*want[:2], n1 - 1):
                raise ValueError(
                    f"expected allocation[{tau}] of shape {want} and payments[{tau}] of shape "
                    f"{(*want[:2], n1 - 1)}, got {a.shape} and {q.shape}"
                )
            if not (np.all(np.isfinite(a)) and np.all(np.isfinite(q))):
                raise ValueError("expected finite allocation and payments, got NaN or inf")
            if np.any(a < -_TOL) or np.abs(a.sum(axis=-1) - 1.0).max() > 1e-9:
                raise ValueError(
                    "expected allocation probabilities summing to 1 over null + buyers, got others"
                )
        object.__setattr__(self, "allocation", allocs)
        object.__setattr__(self, "payments", pays)

    @property
    def horizon(self) -> int:
        """Number of periods T."""
        return len(self.allocation)

    @property
    def n(self) -> int:
        """Number of buyers."""
        return int(self.allocation[0].shape[-1] - 1)

    @classmethod
    def from_tabular(cls, mechanism: TabularMechanism) -> HistoryMechanism:
        """The same mechanism written over histories (its experience read off each history)."""
        if not isinstance(mechanism, TabularMechanism):
            raise TypeError(f"expected a TabularMechanism, got {type(mechanism).__name__}")
        n, h = mechanism.n, mechanism.horizon
        nr = mechanism.allocation.shape[2]
        exp = _history_experience(n, h, nr)
        allocs, pays = [], []
        for tau in range(h):
            e = exp[tau] if mechanism.uses_experience else np.zeros_like(exp[tau])
            allocs.append(mechanism.allocation[tau][e])
            pays.append(mechanism.payments[tau][e])
        return cls(tuple(allocs), tuple(pays), name=mechanism.name)


def _history_experience(n: int, horizon: int, n_reports: int) -> list[IntArray]:
    """Experience-profile index (counts clipped at T − 1) of every history, per period."""
    ix = _index(n, horizon, 1)
    out = [np.zeros(1, dtype=np.int64)]
    for _ in range(horizon - 1):
        prev = out[-1]
        nxt = np.empty((prev.shape[0], n_reports, n + 1), dtype=np.int64)
        nxt[:, :, 0] = prev[:, None]
        for j in range(n):
            nxt[:, :, j + 1] = ix.e_next[j][prev][:, None]
        out.append(nxt.reshape(-1))
    return out


def _highest_winner(
    reports: FloatArray, eligible: FloatArray, ties: str = "split"
) -> tuple[FloatArray, FloatArray]:
    """The eligible buyer with the highest report wins; ties split uniformly ("split") or go to
    the lowest index ("lowest").

    reports, eligible: (NR, n). Returns the allocation (NR, n + 1) and the second-highest report
    among the others for each buyer (NR, n), −inf if none.
    """
    nr, n = reports.shape
    masked = np.where(eligible > 0, reports, -np.inf)
    top = masked.max(axis=1, keepdims=True)
    win = (masked == top) & (eligible > 0)
    if ties == "lowest":
        first = np.argmax(win, axis=1)
        win = win & (np.arange(n)[None, :] == first[:, None])
    cnt = win.sum(axis=1, keepdims=True)
    alloc = np.zeros((nr, n + 1))
    alloc[:, 1:] = np.where(cnt > 0, win / np.maximum(cnt, 1), 0.0)
    alloc[:, 0] = 1.0 - alloc[:, 1:].sum(axis=1)
    others = np.empty((nr, n))
    for i in range(n):
        rest = np.delete(reports, i, axis=1)
        others[:, i] = rest.max(axis=1) if n > 1 else -np.inf
    return alloc, others


def _report_profiles(support: FloatArray, n: int) -> FloatArray:
    idx = _index(n, 1, support.shape[0])
    out: FloatArray = support[idx.v_comp.T]
    return out


def posted_price(
    price: float,
    *,
    n: int,
    horizon: int,
    support: FloatArray,
    among: Literal["takers", "highest"] = "takers",
    ties: Literal["split", "lowest"] = "split",
) -> TabularMechanism:
    """The per-period posted price: sell at ``price`` to a buyer whose report is ≥ ``price``.

    Tie rule: a report equal to the price buys. If several buyers report at least the price,
    by default (``among="takers"``, ``ties="split"``) the good goes to one of them uniformly at
    random whatever their reports, so that at T = 1 a report matters only through whether it
    reaches the price. ``among="highest"`` gives it to the highest report instead, and
    ``ties="lowest"`` breaks the remaining ties by the lowest buyer index. Only the winner pays,
    so each buyer's expected payment is price × its winning probability.

    Parameters
    ----------
    price : float
        The posted price.
    n : int
        Number of buyers.
    horizon : int
        Number of periods T.
    support : ndarray of shape (V,)
        The value (and report) support.
    among : {"takers", "highest"}, default "takers"
        Whether every buyer at or above the price is a candidate, or only the highest reports.
    ties : {"split", "lowest"}, default "split"
        How the remaining candidates are separated: uniformly at random, or the lowest index.

    Returns
    -------
    TabularMechanism
        Tables of shape (T, 1, V**n, ·): the mechanism ignores experience and history.
    """
    p = float(price)
    if not np.isfinite(p):
        raise ValueError(f"expected a finite price, got {price}")
    nn, h, s = _positive_int(n, "n"), _positive_int(horizon, "horizon"), _support(support)
    r = _report_profiles(s, nn)
    if among not in ("takers", "highest"):
        raise ValueError(f"expected among 'takers' or 'highest', got {among!r}")
    _check_ties(ties)
    takers = (r >= p - _TOL).astype(np.float64)
    ranked = r if among == "highest" else np.where(takers > 0, 1.0, 0.0)
    alloc, _ = _highest_winner(ranked, takers, ties)
    pay = alloc[:, 1:] * p
    a = np.broadcast_to(alloc, (h, 1, *alloc.shape)).copy()
    q = np.broadcast_to(pay, (h, 1, *pay.shape)).copy()
    return TabularMechanism(a, q, name=f"posted {p:g}")


def myopic_second_price(
    *,
    n: int,
    horizon: int,
    support: FloatArray,
    reserve: float = 0.0,
    ties: Literal["split", "lowest"] = "split",
) -> TabularMechanism:
    """The per-period second-price auction, run afresh every period (ignores the future).

    The highest report at or above ``reserve`` wins (ties split uniformly at random, or
    ``ties="lowest"``: the lowest buyer index) and pays the larger of the reserve and the highest
    other report (in a tie: the tied value).

    Parameters
    ----------
    n : int
        Number of buyers.
    horizon : int
        Number of periods T.
    support : ndarray of shape (V,)
        The value support.
    reserve : float, default 0.0
        The reserve price.
    ties : {"split", "lowest"}, default "split"
        Tie rule among the highest reports.

    Returns
    -------
    TabularMechanism
        Tables of shape (T, 1, V**n, ·).
    """
    res = float(reserve)
    if not np.isfinite(res):
        raise ValueError(f"expected a finite reserve, got {reserve}")
    nn, h, s = _positive_int(n, "n"), _positive_int(horizon, "horizon"), _support(support)
    r = _report_profiles(s, nn)
    _check_ties(ties)
    alloc, others = _highest_winner(r, (r >= res - _TOL).astype(np.float64), ties)
    pay = alloc[:, 1:] * np.maximum(others, res)
    a = np.broadcast_to(alloc, (h, 1, *alloc.shape)).copy()
    q = np.broadcast_to(pay, (h, 1, *pay.shape)).copy()
    return TabularMechanism(a, q, name="myopic second price")


def _efficient_values(st: _Setting, ix: _Index, active: IntArray) -> tuple[FloatArray, IntArray]:
    """Efficient welfare W_τ(e, v) of the buyers in ``active`` and its argmax (0 = keep).

    Returns W of shape (T + 1, NE, NV) and the efficient outcome of shape (T, NE, NV). Ties go
    to the lowest outcome index (keeping before buyer 1 before buyer 2 …).
    """
    ne, nv = ix.n_exp, ix.n_prof
    w = np.zeros((st.horizon + 1, ne, nv))
    best = np.zeros((st.horizon, ne, nv), dtype=np.int64)
    for t in range(st.horizon - 1, -1, -1):
        nxt = w[t + 1]
        q = np.full((ne, nv, st.n + 1), -np.inf)
        q[:, :, 0] = st.gamma * nxt
        for j in active:
            cont = _serve(st, ix, int(j), nxt[:, :, None])[:, :, 0]
            q[:, :, j + 1] = st.support[ix.v_comp[j]][None, :] + st.gamma * cont
        top = q.max(axis=2, keepdims=True)
        best[t] = np.argmax(q >= top - 1e-12, axis=2)
        w[t] = top[:, :, 0]
    return w, best


def dynamic_pivot(
    *,
    n: int,
    horizon: int,
    support: FloatArray,
    gamma: float = 1.0,
    prior: FloatArray | None = None,
    kernel: FloatArray | None = None,
) -> TabularMechanism:
    """The dynamic pivot mechanism of Bergemann and Välimäki (2010) on the reported state.

    The state s = (experience profile, reported value profile). The efficient policy solves
    W(s) = max_a [Σ_i v_i 1{a = i} + γ E W(s′)] (a = keep or a buyer), W_{−i} solves the same
    problem without buyer i (i's state frozen). With the efficient outcome a*, buyer i pays its
    externality on the others this period, net of the change in their future:
    p_i = W_{−i}(s) − Σ_{j≠i} v_j 1{a* = j} − γ E[W_{−i}(s′) | s, a*].
    Truthful reporting is then a best response in every state even to an agent who sees the
    others' values (periodic ex-post incentive compatibility), and the continuation utility
    W(s) − W_{−i}(s) is ≥ 0 (ex-post participation).

    Ties in the efficient policy go to the lowest outcome index (keep, then buyer 1, 2, …).

    Parameters
    ----------
    n : int
        Number of buyers.
    horizon : int
        Number of periods T.
    support : ndarray of shape (V,)
        The value support.
    gamma : float, default 1.0
        Discount factor.
    prior : ndarray of shape (V,), optional
        Unused by the mechanism (validated only); default uniform.
    kernel : ndarray of shape (V, V) or (K >= T, V, V), optional
        The kernels per experience count; default :func:`experience_kernels`.

    Returns
    -------
    TabularMechanism
        Tables of shape (T, T**n, V**n, ·), conditioning on experience.
    """
    st = _setting(n, horizon, gamma, support, prior, kernel)
    ix = _index(st.n, st.horizon, st.n_values)
    everyone = np.arange(st.n)
    _, best = _efficient_values(st, ix, everyone)
    vals = st.support[ix.v_comp]  # (n, NV)
    t_, ne, nv = best.shape
    alloc = np.zeros((t_, ne, nv, st.n + 1))
    np.put_along_axis(alloc, best[..., None], 1.0, axis=3)
    pay = np.zeros((t_, ne, nv, st.n))
    for i in range(st.n):
        w_mi, _ = _efficient_values(st, ix, np.delete(everyone, i))
        for t in range(t_):
            nxt = w_mi[t + 1]
            # E[W_{-i}(s') | s, a] for every outcome a.
            cont = np.empty((ne, nv, st.n + 1))
            cont[:, :, 0] = nxt
            for j in range(st.n):
                cont[:, :, j + 1] = _serve(st, ix, j, nxt[:, :, None])[:, :, 0]
            others = np.zeros((ne, nv, st.n + 1))
            for j in range(st.n):
                if j != i:
                    others[:, :, j + 1] = vals[j][None, :]
            a = alloc[t]
            pay[t, :, :, i] = w_mi[t] - (a * (others + st.gamma * cont)).sum(axis=2)
    return TabularMechanism(alloc, pay, name="dynamic pivot")


# --------------------------------------------------------------------------------------------
# Dynamic programming
# --------------------------------------------------------------------------------------------


def _serve(st: _Setting, ix: _Index, j: int, u_next: FloatArray) -> FloatArray:
    """E[u_next(e + 1_j, v with v_j ~ K[e_j](v_j, ·))] for every (e, v); u_next (NE, NV, Q)."""
    shifted = u_next[ix.e_next[j]]  # (NE, NV, Q)
    gathered = shifted[:, ix.v_replace[j], :]  # (NE, NV, V, Q)
    weights = st.kernels[ix.e_comp[j]][:, ix.v_comp[j], :]  # (NE, NV, V)
    out: FloatArray = np.einsum("evw,evwq->evq", weights, gathered)
    return out


def _check_mechanism(mech: TabularMechanism | HistoryMechanism, st: _Setting) -> None:
    want = (st.horizon, st.n_values**st.n, st.n + 1)
    if isinstance(mech, HistoryMechanism):
        got = (mech.horizon, *mech.allocation[0].shape[1:])
    else:
        got = (mech.horizon, mech.allocation.shape[2], mech.allocation.shape[3])
    if got != want:
        raise ValueError(
            f"expected a mechanism with (T, V**n, n + 1) = {want} to fit the setting, got {got}"
        )


def _flow_value(
    a_t: FloatArray,
    p_t: FloatArray,
    cont: FloatArray,
    vals: FloatArray,
    gamma: float,
    reports: IntArray,
) -> FloatArray:
    """Flow + discounted continuation of [utilities, revenue, welfare] for a report index per
    value profile: a_t (NE, NR, n + 1), p_t (NE, NR, n), cont (NE, NV, n + 1, Q), vals (n, NV),
    reports (NV,). Returns (NE, NV, Q)."""
    n = p_t.shape[-1]
    a = a_t[:, reports]  # (NE, NV, n + 1)
    p = p_t[:, reports]  # (NE, NV, n)
    won = a[:, :, 1:] * vals.T[None]
    flow = np.empty((*cont.shape[:2], n + 2))
    flow[:, :, :n] = won - p
    flow[:, :, n] = p.sum(axis=2)
    flow[:, :, n + 1] = won.sum(axis=2)
    out: FloatArray = flow + gamma * np.einsum("evo,evoq->evq", a, cont)
    return out


def _evaluate(
    st: _Setting,
    ix: _Index,
    mech: TabularMechanism,
    agent: int | None,
) -> tuple[FloatArray, IntArray]:
    """Backward induction; agent None = everyone truthful, else ``agent`` best-responds seeing
    the whole state (others truthful).

    Returns the value table (T, NE, NV, n + 2) with columns [utility of each buyer, revenue,
    welfare] and the agent's chosen report index (T, NE, NV) (truthful if agent is None).
    Ties in the agent's choice go to the truthful report, then to the lowest report.
    """
    n, ne, nv, nvals = st.n, ix.n_exp, ix.n_prof, st.n_values
    q_dim = n + 2
    vals = st.support[ix.v_comp]  # (n, NV)
    table = np.zeros((st.horizon + 1, ne, nv, q_dim))
    choice = np.zeros((st.horizon, ne, nv), dtype=np.int64)
    truthful = np.arange(nv)
    for t in range(st.horizon - 1, -1, -1):
        nxt = table[t + 1]
        # Continuation of every quantity for each realised outcome: (NE, NV, n + 1, Q).
        cont = np.empty((ne, nv, n + 1, q_dim))
        cont[:, :, 0] = nxt
        for j in range(n):
            cont[:, :, j + 1] = _serve(st, ix, j, nxt)
        a_t = np.broadcast_to(mech.allocation[t], (ne, nv, n + 1))
        p_t = np.broadcast_to(mech.payments[t], (ne, nv, n))

        truth = _flow_value(a_t, p_t, cont, vals, st.gamma, truthful)
        if agent is None:
            table[t] = truth
            continue
        cand = np.stack(
            [
                _flow_value(a_t, p_t, cont, vals, st.gamma, ix.v_replace[agent][:, w])
                for w in range(nvals)
            ]
        )
        util = cand[..., agent]  # (V, NE, NV)
        top = util.max(axis=0)
        own = ix.v_comp[agent]
        take_truth = truth[..., agent] >= top - 1e-12
        pick = np.argmax(util >= top[None] - 1e-12, axis=0)
        pick = np.where(take_truth, own[None, :], pick)
        table[t] = np.take_along_axis(cand, pick[None, :, :, None], axis=0)[0]
        choice[t] = pick
    return table[: st.horizon], choice


def _history_step(
    st: _Setting,
    ix: _Index,
    a_t: FloatArray,
    p_t: FloatArray,
    u5: FloatArray,
    e: IntArray,
    reports: IntArray,
) -> FloatArray:
    """Flow + discounted continuation at one period of a history mechanism: a_t (H, NR, n + 1),
    p_t (H, NR, n), u5 (H, NR, n + 1, NV, Q) the next values by (history, report, winner),
    e (H,) experience index, reports (NV,) the report profile played in each value profile.
    Returns (H, NV, Q)."""
    n, nv = st.n, ix.n_prof
    hs, q_dim = a_t.shape[0], u5.shape[-1]
    ar = np.arange(nv)
    vals = st.support[ix.v_comp]  # (n, NV)
    a = a_t[:, reports]  # (H, NV, n + 1)
    p = p_t[:, reports]  # (H, NV, n)
    won = a[:, :, 1:] * vals.T[None]
    out = np.empty((hs, nv, q_dim))
    out[:, :, :n] = won - p
    out[:, :, n] = p.sum(axis=2)
    out[:, :, n + 1] = won.sum(axis=2)
    cont = a[:, :, 0, None] * u5[:, reports, 0, ar]
    for j in range(n):
        moved = u5[:, reports[:, None], j + 1, ix.v_replace[j]]  # (H, NV, V, Q)
        w = st.kernels[ix.e_comp[j][e]][:, ix.v_comp[j], :]  # (H, NV, V)
        cont += a[:, :, j + 1, None] * np.einsum("hvw,hvwq->hvq", w, moved)
    res: FloatArray = out + st.gamma * cont
    return res


def _evaluate_history(
    st: _Setting, ix: _Index, mech: HistoryMechanism, agent: int | None
) -> FloatArray:
    """Backward induction over (τ, history, value profile); agent None = everyone truthful, else
    ``agent`` best-responds seeing the whole state. Returns the prior expectation of
    [utility of each buyer, revenue, welfare] (n + 2,)."""
    n, nv, nvals = st.n, ix.n_prof, st.n_values
    q_dim = n + 2
    exp = _history_experience(n, st.horizon, nv)
    ar = np.arange(nv)
    nxt = np.zeros((nv * (n + 1), nv, q_dim))  # placeholder for τ = T
    for t in range(st.horizon - 1, -1, -1):
        a_t, p_t = mech.allocation[t], mech.payments[t]
        hs = a_t.shape[0]
        last = t == st.horizon - 1
        u5 = np.zeros((hs, nv, n + 1, nv, q_dim)) if last else nxt.reshape(hs, nv, n + 1, nv, q_dim)
        e = exp[t]

        truth = _history_step(st, ix, a_t, p_t, u5, e, ar)
        if agent is None:
            cur = truth
        else:
            cand = np.stack(
                [
                    _history_step(st, ix, a_t, p_t, u5, e, ix.v_replace[agent][:, w])
                    for w in range(nvals)
                ]
            )
            util = cand[..., agent]
            top = util.max(axis=0)
            pick = np.argmax(util >= top[None] - 1e-12, axis=0)
            pick = np.where(truth[..., agent] >= top - 1e-12, ix.v_comp[agent][None, :], pick)
            cur = np.take_along_axis(cand, pick[None, :, :, None], axis=0)[0]
        nxt = cur
    w0 = np.prod(st.prior[ix.v_comp], axis=0)
    init: FloatArray = w0 @ nxt[0]
    return init


def _initial(st: _Setting, ix: _Index, table: FloatArray) -> FloatArray:
    """Prior expectation at τ = 0 with zero experience: (Q,)."""
    w = np.prod(st.prior[ix.v_comp], axis=0)  # (NV,)
    out: FloatArray = w @ table[0, 0]
    return out


@dataclass(frozen=True, eq=False)
class TruthfulValue:
    """Expected values of a mechanism when every buyer reports truthfully.

    Attributes
    ----------
    revenue : float
        Expected discounted sum of payments.
    welfare : float
        Expected discounted sum of the winners' true values.
    utilities : ndarray of shape (n,)
        Each buyer's expected discounted utility (value won minus payments).
    utility_by_state : ndarray of shape (T, NE, NV, n) or None
        Each buyer's continuation utility from period τ in state (experience profile, value
        profile), flattened as in :class:`TabularMechanism` (NE = T**n; profiles with an
        experience count above τ are unreachable; counts are clipped at T − 1). None for a
        :class:`HistoryMechanism`.
    """

    revenue: float
    welfare: float
    utilities: FloatArray
    utility_by_state: FloatArray | None


def truthful_value(
    mechanism: TabularMechanism | HistoryMechanism,
    *,
    support: FloatArray,
    gamma: float = 1.0,
    prior: FloatArray | None = None,
    kernel: FloatArray | None = None,
) -> TruthfulValue:
    """Revenue, welfare and utilities of ``mechanism`` under truthful reports, exactly.

    Parameters
    ----------
    mechanism : TabularMechanism or HistoryMechanism
        The mechanism; its tables fix n and T.
    support : ndarray of shape (V,)
        The value support.
    gamma : float, default 1.0
        Discount factor.
    prior : ndarray of shape (V,), optional
        Law of each buyer's initial value (independent across buyers); default uniform.
    kernel : ndarray of shape (V, V) or (K >= T, V, V), optional
        Kernel per experience count (see :func:`experience_kernels`, the default).

    Returns
    -------
    TruthfulValue

    Examples
    --------
    >>> import numpy as np
    >>> s = np.array([1.0, 2.0, 3.0])
    >>> v = truthful_value(posted_price(2.0, n=1, horizon=1, support=s), support=s)
    >>> round(v.revenue, 6), round(float(v.utilities[0]), 6)
    (1.333333, 0.333333)
    """
    _check_type(mechanism)
    st = _setting(mechanism.n, mechanism.horizon, gamma, support, prior, kernel)
    _check_mechanism(mechanism, st)
    ix = _index(st.n, st.horizon, st.n_values)
    if isinstance(mechanism, HistoryMechanism):
        q = _evaluate_history(st, ix, mechanism, None)
        return TruthfulValue(
            revenue=float(q[st.n]),
            welfare=float(q[st.n + 1]),
            utilities=q[: st.n].copy(),
            utility_by_state=None,
        )
    table, _ = _evaluate(st, ix, mechanism, None)
    init = _initial(st, ix, table)
    return TruthfulValue(
        revenue=float(init[st.n]),
        welfare=float(init[st.n + 1]),
        utilities=init[: st.n].copy(),
        utility_by_state=table[..., : st.n].copy(),
    )


class _BayesBestResponse:
    """Best response of one buyer over its belief about the others' value profile (n ≥ 2)."""

    def __init__(
        self, st: _Setting, ix: _Index, mech: TabularMechanism, agent: int, sees_payments: bool
    ) -> None:
        self.st, self.ix, self.mech, self.i = st, ix, mech, agent
        self.sees_payments = sees_payments
        others = [j for j in range(st.n) if j != agent]
        self.others = others
        nv = st.n_values
        # Profiles of the others (K = V**(n-1)), row-major over `others`.
        sub = _index(len(others), 1, nv)
        self.k = sub.n_prof
        vw = nv ** np.arange(st.n - 1, -1, -1)
        full = np.empty((nv, self.k), dtype=np.int64)  # full report index of (r_i, v_-i)
        for r in range(nv):
            prof = np.zeros((self.k, st.n), dtype=np.int64)
            prof[:, agent] = r
            prof[:, others] = sub.v_comp.T
            full[r] = prof @ vw
        self.full = full
        self.sub = sub
        self.memo: dict[tuple[int, int, int, bytes], tuple[float, float]] = {}

    def _move(self, belief: FloatArray, pos: int, count: int) -> FloatArray:
        """The belief after the other buyer at position ``pos`` (with ``count`` allocations
        before) is served: its value moves by the kernel."""
        ker = self.st.kernels[count]  # (V, V)
        comp = self.sub.v_comp[pos]  # (K,)
        out = np.zeros(self.k)
        for w in range(self.st.n_values):
            np.add.at(out, self.sub.v_replace[pos][:, w], belief * ker[comp, w])
        return out

    def value(self, t: int, e: int, vi: int, belief: FloatArray) -> tuple[float, float]:
        """(own utility, revenue) of the best response from (τ, experience, own value, belief)."""
        st = self.st
        if t == st.horizon:
            return 0.0, 0.0
        key = (t, e, vi, np.round(belief, 12).tobytes())
        hit = self.memo.get(key)
        if hit is not None:
            return hit
        ex = e if self.mech.uses_experience else 0
        own_val = float(st.support[vi])
        best: tuple[float, float] | None = None
        truth: tuple[float, float] | None = None
        for r in range(st.n_values):
            rep = self.full[r]
            alloc = self.mech.allocation[t, ex, rep]  # (K, n + 1)
            pay = self.mech.payments[t, ex, rep]  # (K, n)
            util = float(belief @ (alloc[:, self.i + 1] * own_val - pay[:, self.i]))
            rev = float(belief @ pay.sum(axis=1))
            seen = np.round(pay[:, self.i], 9) if self.sees_payments else np.zeros(self.k)
            for a in range(st.n + 1):
                like = belief * alloc[:, a]
                if like.sum() <= 1e-300:
                    continue
                for g in np.unique(seen[like > 0]):
                    lk = np.where(seen == g, like, 0.0)
                    prob = float(lk.sum())
                    if prob <= 1e-300:
                        continue
                    post = lk / prob
                    cu, cr = self._continue(t, e, vi, a, post)
                    util += st.gamma * prob * cu
                    rev += st.gamma * prob * cr
            cand = (util, rev)
            if r == vi:
                truth = cand
            if best is None or util > best[0] + 1e-12:
                best = cand
        assert best is not None and truth is not None
        out = truth if truth[0] >= best[0] - 1e-12 else best
        self.memo[key] = out
        return out

    def _continue(self, t: int, e: int, vi: int, a: int, post: FloatArray) -> tuple[float, float]:
        """Expected continuation after outcome a (0 = kept, j + 1 = buyer j) with posterior post."""
        st, ix = self.st, self.ix
        if a == 0:
            return self.value(t + 1, e, vi, post)
        j = a - 1
        e2 = int(ix.e_next[j][e])
        count = int(ix.e_comp[j][e])
        if j == self.i:
            row = st.kernels[count][vi]
            u = r = 0.0
            for w in range(st.n_values):
                if row[w] > 0:
                    cu, cr = self.value(t + 1, e2, w, post)
                    u += row[w] * cu
                    r += row[w] * cr
            return u, r
        return self.value(t + 1, e2, vi, self._move(post, self.others.index(j), count))

    def __call__(self) -> tuple[float, float]:
        st = self.st
        b0 = np.prod(st.prior[self.sub.v_comp], axis=0)  # (K,)
        u = r = 0.0
        for vi in range(st.n_values):
            cu, cr = self.value(0, 0, vi, b0)
            u += st.prior[vi] * cu
            r += st.prior[vi] * cr
        return u, r


@dataclass(frozen=True, eq=False)
class BestResponse:
    """One buyer's exact best response against truthful others.

    Attributes
    ----------
    agent : int
        The deviating buyer.
    value : float
        Its best-response expected utility.
    truthful : float
        Its expected utility when truthful.
    gain : float
        φ_i = value − truthful (≥ 0 up to rounding: truth is one of the strategies).
    kind : {"exact", "upper_bound"}
        "exact" for one buyer or the Bayesian best response ("own" with n ≥ 2);
        "upper_bound" for the clairvoyant buyer with n ≥ 2.
    policy : ndarray of shape (T, NE, NV) or None
        The report index chosen in each (τ, experience profile, true value profile); ties go to
        the truthful report. None for the Bayesian best response (its states are beliefs) and
        for a :class:`HistoryMechanism` (its states hold the history).
    revenue : float
        The seller's revenue when the buyer plays this best response.
    """

    agent: int
    value: float
    truthful: float
    gain: float
    kind: Literal["exact", "upper_bound"]
    policy: IntArray | None
    revenue: float


def best_response_value(
    mechanism: TabularMechanism | HistoryMechanism,
    *,
    agent: int = 0,
    observe: Literal["own", "clairvoyant"] = "own",
    sees_payments: bool = True,
    support: FloatArray,
    gamma: float = 1.0,
    prior: FloatArray | None = None,
    kernel: FloatArray | None = None,
) -> BestResponse:
    """Exact best response of ``agent`` over all report strategies, the others truthful.

    With one buyer, or with a clairvoyant buyer that also sees the others' current values, the
    decision problem is an MDP over (τ, experience profile, value profile): the mechanism
    conditions only on the current reports and the public experience, so this state is
    sufficient, and backward induction solves it. With one buyer this is exact; with several,
    "clairvoyant" is an upper bound on the Bayesian best response (0 proves that no deviation
    pays).

    With several buyers, "own" is the exact Bayesian best response: the buyer sees its own
    values and reports, the realised winners and (``sees_payments``) its own payment each
    period. Its belief over the others' value profile is then a sufficient statistic (the others
    are truthful, and their values move only when they are served, by a known kernel), so the
    recursion runs over (τ, experience profile, own value, belief), Bayes-updated on each
    observation; beliefs are merged when equal to 12 decimals.

    A :class:`HistoryMechanism` adds the public history to the MDP state; the Bayesian case is
    not available for it with n ≥ 2 (the buyer would also have to infer the others' reports in
    the history), only the clairvoyant bound.

    Parameters
    ----------
    mechanism : TabularMechanism or HistoryMechanism
        The mechanism.
    agent : int, default 0
        The deviating buyer, in [0, n).
    observe : {"own", "clairvoyant"}, default "own"
        What the buyer observes besides its own values: "own" = the public winners and its own
        payments; "clairvoyant" = also the others' current values.
    sees_payments : bool, default True
        Whether the "own" buyer with n ≥ 2 observes its own payment (which may reveal the others'
        reports); False: only the realised winners.
    support, gamma, prior, kernel
        As in :func:`truthful_value`.

    Returns
    -------
    BestResponse
    """
    _check_type(mechanism)
    st = _setting(mechanism.n, mechanism.horizon, gamma, support, prior, kernel)
    _check_mechanism(mechanism, st)
    if observe not in ("own", "clairvoyant"):
        raise ValueError(f"expected observe 'own' or 'clairvoyant', got {observe!r}")
    if (
        isinstance(agent, bool)
        or not isinstance(agent, (int, np.integer))
        or not (0 <= agent < st.n)
    ):
        raise ValueError(f"expected agent in [0, {st.n}), got {agent!r}")
    ix = _index(st.n, st.horizon, st.n_values)
    if isinstance(mechanism, HistoryMechanism):
        if observe == "own" and st.n > 1:
            raise ValueError(
                "expected observe='clairvoyant' (or n = 1) for a HistoryMechanism, got "
                f"observe='own' with n = {st.n}"
            )
        base_q = _evaluate_history(st, ix, mechanism, None)
        br_q = _evaluate_history(st, ix, mechanism, int(agent))
        return BestResponse(
            agent=int(agent),
            value=float(br_q[agent]),
            truthful=float(base_q[agent]),
            gain=float(br_q[agent] - base_q[agent]),
            kind="exact" if st.n == 1 else "upper_bound",
            policy=None,
            revenue=float(br_q[st.n]),
        )
    truth = _initial(st, ix, _evaluate(st, ix, mechanism, None)[0])
    if observe == "own" and st.n > 1:
        value, revenue = _BayesBestResponse(st, ix, mechanism, int(agent), bool(sees_payments))()
        return BestResponse(
            agent=int(agent),
            value=value,
            truthful=float(truth[agent]),
            gain=value - float(truth[agent]),
            kind="exact",
            policy=None,
            revenue=revenue,
        )
    table, policy = _evaluate(st, ix, mechanism, int(agent))
    br = _initial(st, ix, table)
    value, base = float(br[agent]), float(truth[agent])
    return BestResponse(
        agent=int(agent),
        value=value,
        truthful=base,
        gain=value - base,
        kind="exact" if st.n == 1 else "upper_bound",
        policy=policy,
        revenue=float(br[st.n]),
    )


@dataclass(frozen=True, eq=False)
class PostedPriceChoice:
    """The revenue-maximising posted price over a finite candidate set.

    Attributes
    ----------
    price : float
        The best candidate (ties go to the lowest price).
    revenue : float
        Its truthful revenue.
    exploitability : float
        Σ_i φ_i at that price, exact (the Bayesian best response of each buyer for n ≥ 2).
    kind : {"exact"}
    candidates : ndarray of shape (C,)
        The candidate prices: the support values and the midpoints between neighbours.
    revenues : ndarray of shape (C,)
        Truthful revenue of each candidate.
    exploitabilities : ndarray of shape (C,)
        Exploitability of each candidate.
    """

    price: float
    revenue: float
    exploitability: float
    kind: Literal["exact", "upper_bound"]
    candidates: FloatArray
    revenues: FloatArray
    exploitabilities: FloatArray


def best_posted_price(
    *,
    n: int,
    horizon: int,
    support: FloatArray,
    gamma: float = 1.0,
    prior: FloatArray | None = None,
    kernel: FloatArray | None = None,
) -> PostedPriceChoice:
    """Find the posted price of maximal truthful revenue, with its exact exploitability.

    Every posted price is equivalent, under truthful reports, to the smallest support value at or
    above it, but the midpoints are kept because they differ under deviations. Candidates are the
    support values and the midpoints between neighbours.

    Parameters
    ----------
    n : int
        Number of buyers.
    horizon : int
        Number of periods T.
    support, gamma, prior, kernel
        As in :func:`truthful_value`.

    Returns
    -------
    PostedPriceChoice
    """
    st = _setting(n, horizon, gamma, support, prior, kernel)
    s = st.support
    cands = np.sort(np.concatenate([s, 0.5 * (s[1:] + s[:-1])]))
    revs = np.empty(cands.shape[0])
    phis = np.empty(cands.shape[0])
    for c, p in enumerate(cands):
        mech = posted_price(float(p), n=st.n, horizon=st.horizon, support=s)
        revs[c] = truthful_value(
            mech, support=s, gamma=st.gamma, prior=st.prior, kernel=st.kernels
        ).revenue
        phis[c] = sum(
            best_response_value(
                mech,
                agent=i,
                observe="own",
                support=s,
                gamma=st.gamma,
                prior=st.prior,
                kernel=st.kernels,
            ).gain
            for i in range(st.n)
        )
    best = int(np.argmax(revs >= revs.max() - 1e-12))
    return PostedPriceChoice(
        price=float(cands[best]),
        revenue=float(revs[best]),
        exploitability=float(phis[best]),
        kind="exact",
        candidates=cands,
        revenues=revs,
        exploitabilities=phis,
    )


# --------------------------------------------------------------------------------------------
# Validation helpers
# --------------------------------------------------------------------------------------------


def _check_type(mechanism: object) -> None:
    if not isinstance(mechanism, (TabularMechanism, HistoryMechanism)):
        raise TypeError(
            f"expected a TabularMechanism or HistoryMechanism, got {type(mechanism).__name__}"
        )


def _check_ties(ties: object) -> None:
    if ties not in ("split", "lowest"):
        raise ValueError(f"expected ties 'split' or 'lowest', got {ties!r}")


def _positive_int(x: object, name: str) -> int:
    if isinstance(x, bool) or not isinstance(x, (int, np.integer)) or int(x) < 1:
        raise ValueError(f"expected {name} to be a positive integer, got {x!r}")
    return int(x)


def _support(support: object) -> FloatArray:
    s = np.asarray(support, dtype=np.float64)
    if s.ndim != 1 or s.shape[0] < 1:
        raise ValueError(f"expected support of shape (V,) with V >= 1, got shape {s.shape}")
    if not np.all(np.isfinite(s)) or np.any(np.diff(s) <= 0):
        raise ValueError(f"expected a finite, strictly increasing support, got {s.tolist()}")
    return s
