r"""Exact policy iteration for discounted MDPs with cycles (numpy, batched).

Two evaluators share one policy-iteration driver (:func:`policy_iteration`):

* **deterministic MDPs** (a successor table, e.g. the gridworld) — the value of a deterministic
  policy satisfies ``V = c_pi + gamma * V[next_pi]``, a functional graph. It is summed by
  *pointer doubling*: after ``m`` rounds of ``acc += g * acc[nxt]; nxt = nxt[nxt]; g = g * g``
  the accumulator holds the first ``2**m`` discounted terms of every state's trajectory, and
  ``m`` is chosen so that ``gamma ** (2**m) <= 2**-60``: the omitted tail is below double
  rounding of the values (``m = 9`` for ``gamma = 0.9``). It costs ``2 m`` gathers of ``S``
  entries per problem instead of an ``S x S`` LU factorisation, and the Q-values are gathers
  ``V[succ]`` of whole rows.
* **stochastic MDPs** — batched ``np.linalg.solve`` of ``(I - gamma P_pi) V = c_pi`` and
  ``Q = c + gamma P V`` as one matrix product.

Arrays are kept *batch-last* — ``(S, k)`` and ``(S, A, k)`` with the problems on the fast axis —
so that every per-state or per-action operation is one contiguous vector operation; the batch is
processed in blocks of ``CHUNK`` problems that stay in cache, and only the problems that have not
converged are carried into the next round.

For deterministic MDPs a **certified fast path** (:func:`_fast_block`) runs first: modified
policy iteration (float32 Bellman sweeps choose the policies, float64 pointer doubling evaluates
them exactly) that accepts a policy only with a certificate — the stopping test of plain policy
iteration plus a margin showing that the optimal action is unique in every state — under which
plain policy iteration provably stops at the same policy. Problems with ties or near-ties are
handed to plain policy iteration (:func:`_pi_block`), which then decides them by the tie rule
below. The fast path is skipped when ``max_iter < FAST_MIN_ITER`` so that a small round limit
keeps its exact meaning; with the default limit it assumes, like any result of the plain loop,
that plain policy iteration converges within ``max_iter`` rounds (it takes about ten on the
gridworld).

Tie rule (the same as the previous implementation, made independent of rounding): policy
iteration starts from ``argmax_a c(s, a)`` (lowest index on ties) and, in every round, keeps the
current action of a state unless some action is better by more than
``tol * max(1, |Q(s, current)|)``; it then moves to the **lowest-index** action among those
improving actions whose Q-value is within ``tol * max(1, |max_a Q|)`` of the maximum. (A plain
``argmax`` there would let rounding noise of order 1e-16 choose between exactly tied actions.)
It stops when no state improves: the returned policy passed that policy-improvement check on its
own exactly evaluated values.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from bilevel.models.typing import FloatArray, IntArray

__all__ = [
    "deterministic_occupancy",
    "doubling_steps",
    "policy_iteration",
]

BoolArray = np.ndarray[Any, np.dtype[np.bool_]]
Floats = np.ndarray[Any, np.dtype[np.floating[Any]]]  # float64, or float32 in the sweeps


def doubling_steps(gamma: float) -> int:
    """Number ``m`` of pointer-doubling rounds with ``gamma ** (2 ** m) <= 2 ** -60``.

    Parameters
    ----------
    gamma : float
        Discount factor in (0, 1).

    Returns
    -------
    int
        ``m >= 1``; 9 for ``gamma = 0.9``, 13 for 0.99.
    """
    if not 0.0 < gamma < 1.0:
        raise ValueError(f"expected gamma in (0, 1) for pointer doubling, got {gamma!r}")
    need = 60.0 * math.log(2.0) / -math.log(gamma)  # horizon N with gamma**N = 2**-60
    return max(1, math.ceil(math.log2(max(need, 1.0))))


def _max_over_actions(Q: Floats) -> Floats:
    """``max_a Q``: ``Q`` (S, A, k) -> (S, k)."""
    out = Q[:, 0].copy()
    for a in range(1, Q.shape[1]):
        np.maximum(out, Q[:, a], out=out)
    return out


def _greedy_init(c: Floats) -> IntArray:
    """``argmax`` over actions with lowest-index ties; ``c`` (S, A, k) -> (S, k)."""
    A = c.shape[1]
    best = np.zeros((c.shape[0], c.shape[2]), dtype=np.intp)
    qb = c[:, 0].copy()
    for a in range(1, A):
        better = c[:, a] > qb
        np.putmask(best, better, a)
        np.maximum(qb, c[:, a], out=qb)
    return best


def _improve(
    Q: Floats, pol: IntArray, q_cur: Floats, tol: float
) -> tuple[IntArray, BoolArray]:
    """One policy-improvement step with the documented tie rule.

    Parameters
    ----------
    Q : ndarray of shape (S, A, k)
    pol : ndarray of shape (S, k) of int
        Current actions.
    q_cur : ndarray of shape (S, k)
        ``Q`` at the current actions.
    tol : float

    Returns
    -------
    new : ndarray of shape (S, k) of int
        Improved policy (equal to ``pol`` where no action is better by more than the tolerance).
    changed : ndarray of shape (k,) of bool
        Whether problem ``k`` changed any action.
    """
    A = Q.shape[1]
    qmax = Q[:, 0].copy()
    for a in range(1, A):
        np.maximum(qmax, Q[:, a], out=qmax)
    # hi = q_cur + tol * max(1, |q_cur|): an action must exceed it to replace the current one.
    hi = np.abs(q_cur)
    np.maximum(hi, 1.0, out=hi)
    hi *= tol
    hi += q_cur
    changed = np.asarray((qmax > hi).any(axis=0), dtype=np.bool_)
    if not changed.any():
        return pol, changed
    # Candidates: Q > hi (improving) and Q >= qmax - tol * max(1, |qmax|) (tied with the best);
    # the lowest index among them wins. Q > hi  <=>  Q >= nextafter(hi, +inf).
    near = np.abs(qmax)
    np.maximum(near, 1.0, out=near)
    near *= -tol
    near += qmax
    np.nextafter(hi, np.inf, out=hi)
    np.maximum(hi, near, out=hi)
    new = pol.copy()
    for a in range(A - 1, -1, -1):
        np.putmask(new, Q[:, a] >= hi, a)
    return new, changed


class _Deterministic:
    """Evaluator for a successor table ``succ`` of shape (S, A) (``S`` = the flow leaves)."""

    def __init__(self, succ: IntArray, gamma: float) -> None:
        S, A = succ.shape
        self.S, self.A = S, A
        self.exits = bool((succ == S).any())
        self.S1 = S + 1 if self.exits else S  # an absorbing zero-reward exit row if needed
        self.succ = np.ascontiguousarray(succ, dtype=np.intp)
        self.succ_flat = self.succ.ravel()
        self.gamma = gamma
        self.m = doubling_steps(gamma)

    def evaluate(
        self, pol: IntArray, c_pi: FloatArray, sa: IntArray
    ) -> tuple[FloatArray, FloatArray]:
        """Values of deterministic policies and the Q-value of their own actions.

        Parameters
        ----------
        pol : ndarray of shape (S, k) of int
        c_pi : ndarray of shape (S, k)
            Rewards of the policy's actions.
        sa : ndarray of shape (S, k) of int
            Flat (state, action) row ``s * A + pol[s]``.

        Returns
        -------
        V : ndarray of shape (S1, k)
            Values (the exit row, if any, is 0).
        q_cur : ndarray of shape (S, k)
            ``c_pi + gamma * V[next]``, bitwise equal to the matching entries of
            :meth:`q_values`.
        """
        S, S1 = self.S, self.S1
        k = pol.shape[1]
        ar = np.arange(k, dtype=np.intp)
        nxt = np.take(self.succ_flat, sa)
        nxt *= k
        nxt += ar  # flat index of each state's successor in an (S1, k) array
        idx = nxt.ravel().copy()  # nxt itself is needed again for q_cur
        if self.exits:
            idx = np.concatenate([idx, S * k + ar])
        acc = np.zeros(S1 * k)
        acc[: S * k] = c_pi.ravel()
        tmp = np.empty_like(acc)
        idx2 = np.empty_like(idx)
        g = self.gamma
        # mode="clip" (the indices are valid anyway) lets np.take write into ``out`` directly.
        for i in range(self.m):
            np.take(acc, idx, out=tmp, mode="clip")
            tmp *= g
            acc += tmp
            if i + 1 < self.m:
                np.take(idx, idx, out=idx2, mode="clip")
                idx, idx2 = idx2, idx
                g *= g
        V = acc.reshape(S1, k)
        q_cur = np.take(acc, nxt)
        q_cur *= self.gamma
        q_cur += c_pi
        return V, q_cur

    def pad(self, W: Floats) -> Floats:
        """Append the zero exit row to state values ``W`` (S, k) when the flow can leave."""
        if not self.exits:
            return W
        return np.concatenate([W, np.zeros((1, W.shape[1]), dtype=W.dtype)])

    def q_values(self, c: Floats, V: Floats) -> Floats:
        """``Q = c + gamma V[succ]``: ``c`` (S, A, k), ``V`` (S1, k) -> (S, A, k)."""
        Q = np.take(V * self.gamma, self.succ, axis=0)  # bitwise c + gamma * V[succ]
        Q += c
        return Q


class _Stochastic:
    """Evaluator for dense transitions ``P`` of shape (S, A, S)."""

    def __init__(self, P: FloatArray, gamma: float) -> None:
        S, A, _ = P.shape
        self.S, self.A = S, A
        self.P = P
        self.P_flat = P.reshape(S * A, S)
        self.gamma = gamma
        self.eye = np.eye(S)

    def values(self, pol: IntArray, c_pi: FloatArray) -> FloatArray:
        """Values (S, k) of policies ``pol`` (S, k) with rewards ``c_pi`` (S, k)."""
        P_pi = self.P[np.arange(self.S)[None, :], pol.T]  # (k, S, S)
        V = np.linalg.solve(self.eye - self.gamma * P_pi, c_pi.T[..., None])[..., 0]
        return np.ascontiguousarray(V.T)

    def q_values(self, c: FloatArray, V: FloatArray) -> FloatArray:
        """``Q = c + gamma P V``: ``c`` (S, A, k), ``V`` (S, k) -> (S, A, k)."""
        Q = (self.P_flat @ V).reshape(c.shape)
        Q *= self.gamma
        Q += c
        return Q


CHUNK = 2048  # problems per block: the working set of a block stays in cache
OCC_CHUNK = 16384  # problems per block of the occupancy walk (its steps act on (k,) vectors)
SWEEPS = 3  # Bellman sweeps after each exact evaluation on the certified fast path
INIT_SWEEPS = 10  # value-iteration sweeps that choose the fast path's first policy
FAST_MIN_ITER = 100  # below this round limit only the plain loop runs (exact MAX_STEPS semantics)
FAST_MAX_ROUNDS = 50  # fast-path evaluations before a problem is handed to the plain loop


def policy_iteration(
    c: FloatArray,
    gamma: float,
    tol: float,
    max_iter: int,
    *,
    succ: IntArray | None = None,
    P: FloatArray | None = None,
    chunk: int = CHUNK,
    sweeps: int = SWEEPS,
) -> tuple[FloatArray, IntArray, int, BoolArray]:
    """Batched exact policy iteration for a discounted MDP.

    Parameters
    ----------
    c : ndarray of shape (K, S, A)
        Rewards.
    gamma : float
        Discount factor in (0, 1).
    tol : float
        Improvement threshold (relative to ``max(1, |Q|)``); see the module docstring.
    max_iter : int
        Round limit.
    succ : ndarray of shape (S, A) of int, optional
        Successor table of a deterministic MDP (``S`` = the flow leaves).
    P : ndarray of shape (S, A, S), optional
        Dense transitions, used when ``succ`` is None.
    chunk : int, default 2048
        Problems solved together (results do not depend on it).
    sweeps : int, default 3
        Bellman sweeps between evaluations of the certified fast path for deterministic MDPs;
        a negative value disables the fast path (plain policy iteration only). Results do not
        depend on it.

    Returns
    -------
    V : ndarray of shape (K, S)
        Values of the returned policies.
    policy : ndarray of shape (K, S) of int64
    nit : int
        Rounds run by the slowest problem.
    converged : ndarray of shape (K,) of bool
    """
    ev: _Deterministic | _Stochastic
    if succ is not None:
        ev = _Deterministic(succ, gamma)
    elif P is not None:
        ev = _Stochastic(P, gamma)
    else:
        raise ValueError("expected a successor table or dense transitions, got neither")
    K, S, _ = c.shape
    V_out = np.empty((K, S))
    pol_out = np.empty((K, S), dtype=np.int64)
    converged = np.ones(K, dtype=bool)
    nit = 0
    for lo in range(0, K, chunk):
        hi = min(K, lo + chunk)
        if isinstance(ev, _Deterministic) and max_iter >= FAST_MIN_ITER and sweeps >= 0:
            V, pol, n, ok = _fast_block(ev, c[lo:hi], tol, max_iter, sweeps, INIT_SWEEPS)
        else:
            V, pol, n, ok = _pi_block(ev, c[lo:hi], tol, max_iter)
        V_out[lo:hi] = V.T
        pol_out[lo:hi] = pol.T
        converged[lo:hi] = ok
        nit = max(nit, n)
    return V_out, pol_out, nit, converged


def _fast_block(
    ev: _Deterministic, c: FloatArray, tol: float, max_iter: int, sweeps: int,
    init_sweeps: int = 0,
) -> tuple[FloatArray, IntArray, int, BoolArray]:
    """Certified fast path: modified policy iteration, then a uniqueness certificate.

    Each round evaluates the current policy exactly, and accepts it when (1) no action improves
    on it by more than ``tol * max(1, |Q|)`` (the stopping test of :func:`_pi_block`) and (2)
    every other action is worse by more than ``delta = (4 tol + 1e-13) * scale / (1 - gamma)``
    in every state, ``scale = max(1, 2 max |c|, max |V|)`` per problem. (1) gives
    ``V* - V_pi <= tol * scale / (1 - gamma)``, the same holds for the policy at which plain
    policy iteration stops, and (2) then leaves no other action within reach: both policies are
    the unique optimal one, so the result is the one :func:`_pi_block` returns. Problems that
    pass (1) but not (2) (ties or near-ties) are re-solved by :func:`_pi_block` from its own
    start, so its tie rule decides them. Problems failing (1) take ``sweeps`` Bellman sweeps
    from their ``max_a Q`` (cheap row gathers) before the greedy policy is evaluated again,
    which needs fewer evaluations than plain policy iteration.
    """
    K, S, A = c.shape
    cw = np.ascontiguousarray(c.transpose(1, 2, 0))  # (S, A, k)
    gamma = ev.gamma
    # The sweeps only choose which policy to evaluate next, so they run in float32 (half the
    # memory traffic); evaluations, Q-values and the certificate are float64.
    c32 = cw.astype(np.float32)
    # Per-problem certificate scale from the rewards (the values are folded in below); float32
    # rounding of max |c| (relative 6e-8) is covered by the factor 2.
    c_abs = 2.0 * np.maximum(c32.max(axis=(0, 1)), -c32.min(axis=(0, 1))).astype(np.float64)
    W32 = _max_over_actions(c32)
    Q32 = c32
    for _ in range(init_sweeps):  # start from the greedy policy of a few value-iteration sweeps
        Q32 = ev.q_values(c32, ev.pad(W32))
        W32 = _max_over_actions(Q32)
    pol = _greedy_init(Q32)
    V_out = np.zeros((S, K))
    pol_out = pol.copy()
    done = np.zeros(K, dtype=bool)
    active = np.arange(K)
    rows = (np.arange(S, dtype=np.intp) * A)[:, None]
    coef = (4.0 * tol + 1e-13) / (1.0 - gamma)
    nit = 0
    for _ in range(min(max_iter, FAST_MAX_ROUNDS)):
        if active.size == 0:
            break
        nit += 1
        k = active.size
        sa = rows + pol
        c_pi = np.take(cw, (sa * k + np.arange(k)).ravel()).reshape(S, k)
        V, q_cur = ev.evaluate(pol, c_pi, sa)
        Q = ev.q_values(cw, V)
        qmax = _max_over_actions(Q)
        hi = np.abs(q_cur)
        scale = np.maximum(hi.max(axis=0), c_abs[active])
        np.maximum(hi, 1.0, out=hi)
        hi *= tol
        hi += q_cur
        stop = (qmax <= hi).all(axis=0)  # (1): plain policy iteration would stop here
        W = qmax
        if stop.any():
            np.maximum(scale, 1.0, out=scale)
            lo = q_cur - coef * scale  # (2): only the current action may exceed lo
            n_close = (Q[:, 0] > lo).view(np.int8)
            for a in range(1, A):
                n_close += Q[:, a] > lo
            unique = (n_close == 1).all(axis=0)
            accept = stop & unique
            acc_idx = active[accept]
            if k == K:  # first round: plain copies (the others are overwritten later)
                V_out[:] = V[:S]
                pol_out[:] = pol
            else:
                V_out[:, acc_idx] = V[:S, accept]
                pol_out[:, acc_idx] = pol[:, accept]
            done[acc_idx] = True  # the others that stopped are ties: left for the plain loop
            keep = np.flatnonzero(~stop)
            active = active[keep]
            if active.size == 0:
                break
            if sweeps == 0:
                pol = _greedy_init(Q)[:, keep]
                cw = np.take(cw, keep, axis=2)
                c32 = np.take(c32, keep, axis=2)
                continue
            cw = np.take(cw, keep, axis=2)
            c32 = np.take(c32, keep, axis=2)
            W = np.take(qmax, keep, axis=1)
        elif sweeps == 0:
            pol = _greedy_init(Q)
            continue
        W32 = W.astype(np.float32)
        for _ in range(sweeps):
            Q32 = ev.q_values(c32, ev.pad(W32))
            W32 = _max_over_actions(Q32)
        pol = _greedy_init(Q32)
    rest = np.flatnonzero(~done)
    converged = np.ones(K, dtype=bool)
    if rest.size:
        V_r, pol_r, n_r, ok_r = _pi_block(ev, c[rest], tol, max_iter)
        V_out[:, rest] = V_r
        pol_out[:, rest] = pol_r
        converged[rest] = ok_r
        nit += n_r
    return V_out, pol_out, nit, converged


def _pi_block(
    ev: _Deterministic | _Stochastic, c: FloatArray, tol: float, max_iter: int
) -> tuple[FloatArray, IntArray, int, BoolArray]:
    """Policy iteration on one block; returns batch-last ``V`` (S, k), ``pol`` (S, k)."""
    K, S, A = c.shape
    cw = np.ascontiguousarray(c.transpose(1, 2, 0))  # (S, A, k), problems on the fast axis
    pol = _greedy_init(cw)
    V_out = np.zeros((S, K))
    pol_out = pol.copy()
    active = np.arange(K)
    rows = (np.arange(S, dtype=np.intp) * A)[:, None]
    nit = 0
    for _ in range(max_iter):
        if active.size == 0:
            break
        nit += 1
        k = active.size
        sa = rows + pol  # (S, k) flat (state, action) rows
        c_pi = np.take(cw, (sa * k + np.arange(k)).ravel()).reshape(S, k)
        if isinstance(ev, _Deterministic):
            V, q_cur = ev.evaluate(pol, c_pi, sa)
            Q = ev.q_values(cw, V)
        else:
            V = ev.values(pol, c_pi)
            Q = ev.q_values(cw, V)
            q_cur = np.take_along_axis(Q, pol[:, None, :], axis=1)[:, 0]
        new, changed = _improve(Q, pol, q_cur, tol)
        if k == K:
            V_out[:] = V[:S]
            pol_out[:] = new
        else:
            V_out[:, active] = V[:S]
            pol_out[:, active] = new
        if changed.all():
            pol = new
            continue
        keep = np.flatnonzero(changed)
        active = active[keep]
        pol = new[:, keep]
        cw = np.take(cw, keep, axis=2)
    converged = np.ones(K, dtype=bool)
    converged[active] = False
    return V_out, pol_out, nit, converged


def deterministic_occupancy(
    succ: IntArray, gamma: float, mu0: FloatArray, policy: IntArray
) -> FloatArray:
    """Discounted state occupancy ``d = (I - gamma P_pi^T)^{-1} mu0`` of deterministic policies.

    Every start state's trajectory under a deterministic policy is a path that ends in a cycle
    (or leaves the system): walking it for at most ``S + 1`` steps gives each state's first
    visit time ``t`` and, for states on the cycle of length ``L``, the repeats, so
    ``d(s) = sum_starts mu0(start) * gamma**t / (1 - gamma**L)`` (no ``1 - gamma**L`` factor
    for states on the path before the cycle).

    Parameters
    ----------
    succ : ndarray of shape (S, A) of int
        Successor table (``S`` = the flow leaves).
    gamma : float
        Discount factor in (0, 1).
    mu0 : ndarray of shape (S,)
        Initial distribution.
    policy : ndarray of shape (K, S) of int

    Returns
    -------
    ndarray of shape (K, S)
    """
    S = succ.shape[0]
    K = policy.shape[0]
    out = np.empty((K, S))
    for lo in range(0, K, OCC_CHUNK):
        hi = min(K, lo + OCC_CHUNK)
        out[lo:hi] = _occupancy_block(succ, gamma, mu0, policy[lo:hi]).T
    return out


def _occupancy_block(
    succ: IntArray, gamma: float, mu0: FloatArray, policy: IntArray
) -> FloatArray:
    """:func:`deterministic_occupancy` of one block, batch-last: (S, k)."""
    S, A = succ.shape
    K = policy.shape[0]
    S1 = S + 1
    ar = np.arange(K, dtype=np.intp)
    nxt = np.empty((S1, K), dtype=np.intp)
    nxt[:S] = np.asarray(succ, dtype=np.intp).ravel()[np.arange(S)[:, None] * A + policy.T]
    nxt[S] = S  # the exit row is absorbing
    nxt_flat = (nxt * K + ar).ravel()
    gpow = gamma ** np.arange(S1 + 1, dtype=np.float64)  # gamma**t for t = 0..S1
    cycle = np.ones(S1 + 1)
    cycle[1:] = 1.0 / (1.0 - gpow[1:])  # 1 / (1 - gamma**L) for cycle lengths L >= 1
    d = np.zeros((S1, K))
    for s0 in np.flatnonzero(mu0):
        first = np.full(S1 * K, -1, dtype=np.intp)  # first visit time of (state, problem)
        cyc_from = np.full(K, -1, dtype=np.intp)  # first visit time of the cycle's entry
        cyc_len = np.zeros(K, dtype=np.intp)
        cur = s0 * K + ar  # flat positions
        for t in range(S1 + 1):
            f = first[cur]
            closes = (f >= 0) & (cyc_len == 0)
            np.putmask(cyc_from, closes, f)
            np.putmask(cyc_len, closes, t - f)
            first[cur] = np.where(f < 0, t, f)
            cur = nxt_flat[cur]
        fk = first.reshape(S1, K)
        w = np.take(gpow, fk, mode="clip")  # -1 (never visited) is masked below
        w *= np.where(fk >= cyc_from, np.take(cycle, cyc_len), 1.0)
        w[fk < 0] = 0.0
        d += mu0[s0] * w
    return d[:S]
