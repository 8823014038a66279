r"""Batched exact dynamic programming for tabular MDPs.

Solves, for a batch of reward arrays :math:`c_k \in \mathbb{R}^{S \times A}`, the control problem

.. math:: V_k(s) = \max_a \Big[c_k(s, a) + \gamma \sum_{s'} P(s' \mid s, a) V_k(s')\Big],

whose optimal value :math:`\mu_0 \cdot V_k` equals the optimum of the occupancy-measure LP of the
AMA paper (Curry et al., AAAI 2024, eq. 2). Two algorithms:

* **layered (acyclic) MDPs** — backward induction over the topological layers of the
  transition graph, one vectorised step per layer (exact, any ``gamma`` in (0, 1]);
* **discounted MDPs with cycles** (``gamma < 1``) — policy iteration with exact policy
  evaluation (:mod:`bilevel.solvers._dp_discounted`): by pointer doubling over the successor table
  for deterministic MDPs (the gridworld), by batched linear solves otherwise; it terminates in
  finitely many rounds with the exact optimal values (to rounding). For deterministic MDPs a
  certified fast path (modified policy iteration plus a uniqueness certificate) returns the same
  policy as plain policy iteration with fewer evaluations, and hands ties to the plain loop.

Tie-breaking is deterministic and documented: the layered pass takes the **lowest action index**
among equal Q-values (``argmax`` semantics). Policy iteration starts from the lowest-index
``argmax`` of the rewards and keeps the current action unless another one is better by more
than ``tol * max(1, |Q|)`` (which rules out cycling); an improving state moves to the lowest
index among the improving actions within that tolerance of the best one, so rounding noise never
chooses between exactly tied actions.

The occupancy measure of the greedy policy (:math:`x(s, a)`, discounted, unnormalised) is
obtained by a forward pass (layered), a walk along each start state's path and cycle
(deterministic discounted) or one linear solve (stochastic discounted). Everything is vectorised
over the batch dimension K (type profiles × counterfactuals × candidate mechanisms), in numpy
(default) or torch (any device, float64).
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import scipy.sparse as sp
from numpy.typing import ArrayLike

from bilevel.models._mdp import TabularMDP
from bilevel.models.typing import FloatArray, IntArray
from bilevel.solvers._dp_discounted import deterministic_occupancy, policy_iteration
from bilevel.solvers._result import InnerSolution, InnerSolveError, Status, worst_status

__all__ = [
    "occupancy_of_policy",
    "policy_values",
    "solve_dp",
    "solve_values",
]

Backend = Literal["numpy", "torch"]


# ---------------------------------------------------------------------- public API


def solve_dp(
    mdp: TabularMDP,
    reward: ArrayLike,
    *,
    backend: Backend = "numpy",
    occupancy: bool = True,
    throw: bool = True,
    tol: float = 1e-12,
    max_iter: int = 1000,
    device: str | None = None,
) -> InnerSolution:
    """Solve a batch of MDPs exactly by dynamic programming.

    Parameters
    ----------
    mdp : TabularMDP
        The MDP structure.
    reward : array_like of shape (S, A) or (K, S, A)
        Reward arrays (for an AMA: the affine welfare ``sum_i w_i r_i + b``).
    backend : {"numpy", "torch"}, default "numpy"
        Array library. ``"torch"`` runs in float64 on ``device``.
    occupancy : bool, default True
        Whether to compute the occupancy measure of the greedy policy.
    throw : bool, default True
        Raise :class:`InnerSolveError` when a problem is not solved to optimality (policy
        iteration hitting ``max_iter``); with ``False`` the result carries the status.
    tol : float, default 1e-12
        Policy-iteration improvement threshold, relative to ``max(1, |Q|)`` (discounted MDPs
        only).
    max_iter : int, default 1000
        Policy-iteration round limit (discounted MDPs only). Below 100 the numpy backend runs
        plain policy iteration only, so that ``max_iter`` bounds exactly its rounds.
    device : str, optional
        Torch device for ``backend="torch"`` (default CPU).

    Returns
    -------
    InnerSolution
        ``value``/``fun`` of shape (K,), ``policy`` (K, S), ``state_values`` (K, S) and, if
        requested, ``occupancy`` (K, S, A). A 2-d ``reward`` gives K = 1.

    Raises
    ------
    ValueError
        If ``reward`` has the wrong shape or non-finite entries, or K = 0.
    InnerSolveError
        If ``throw`` and policy iteration did not converge.

    Examples
    --------
    >>> import numpy as np
    >>> from bilevel.models import make_env
    >>> env = make_env("sales", n_agents=3, n_items=2)
    >>> R = env.rewards(np.array([[0.9, 0.5, 0.2]]))       # (1, n, S, A)
    >>> sol = solve_dp(env.mdp, R.sum(axis=1))              # VCG: maximise welfare
    >>> round(float(sol.value[0]), 6)                       # sell to the two highest
    1.4
    """
    start = time.perf_counter()
    c = check_reward(mdp, reward)
    if backend == "torch":
        from bilevel.solvers._dp_torch import solve_torch

        V, pol, x, nit, ok = solve_torch(mdp, c, occupancy, tol, max_iter, device)
    elif backend == "numpy":
        V, pol, nit, ok = _solve(mdp, c, tol, max_iter)
        x = occupancy_of_policy(mdp, pol) if occupancy else None
    else:
        raise ValueError(f"expected backend in ('numpy', 'torch'), got {backend!r}")
    value = V @ mdp.mu0
    statuses = tuple(Status.OPTIMAL if o else Status.MAX_STEPS_REACHED for o in ok)
    if not np.all(np.isfinite(value)):
        statuses = tuple(
            s if np.isfinite(v) else Status.NONFINITE for s, v in zip(statuses, value, strict=True)
        )
    status = worst_status(statuses)
    result = InnerSolution(
        status=status,
        fun=value,
        value=value,
        policy=pol,
        occupancy=x,
        state_values=V,
        statuses=statuses,
        nit=nit,
        stats={"wall_time": time.perf_counter() - start},
    )
    if throw and not result.success:
        raise InnerSolveError(result)
    return result


def solve_values(
    mdp: TabularMDP, reward: FloatArray, *, tol: float = 1e-12, max_iter: int = 1000
) -> tuple[FloatArray, IntArray]:
    """Fast path: optimal start values and greedy policies, without validation or occupancy.

    Parameters
    ----------
    mdp : TabularMDP
    reward : ndarray of shape (K, S, A), float64, finite (not checked)

    Returns
    -------
    value : ndarray of shape (K,)
        ``mu0 @ V``.
    policy : ndarray of shape (K, S)
        Greedy policy with lowest-index tie-breaking.

    Raises
    ------
    InnerSolveError
        If policy iteration does not converge within ``max_iter`` rounds.
    """
    V, pol, nit, ok = _solve(mdp, reward, tol, max_iter)
    if not ok.all():
        statuses = tuple(Status.OPTIMAL if o else Status.MAX_STEPS_REACHED for o in ok)
        value = V @ mdp.mu0
        raise InnerSolveError(
            InnerSolution(worst_status(statuses), value, value, pol, None, V, statuses, nit)
        )
    return V @ mdp.mu0, pol


def policy_values(mdp: TabularMDP, policy: IntArray, reward: FloatArray) -> FloatArray:
    """Expected (discounted) reward ``mu0 @ V_pi`` of deterministic policies.

    Parameters
    ----------
    mdp : TabularMDP
    policy : ndarray of shape (K, S) of int
    reward : ndarray of shape (K, S, A) or (K, m, S, A)
        One or several reward arrays per policy.

    Returns
    -------
    ndarray of shape (K,) or (K, m)
    """
    x = occupancy_of_policy(mdp, policy)
    if reward.ndim == 4:
        out: FloatArray = np.einsum("ksa,kmsa->km", x, reward)
    else:
        out = np.einsum("ksa,ksa->k", x, reward)
    return out


def occupancy_of_policy(mdp: TabularMDP, policy: IntArray) -> FloatArray:
    """Discounted state–action occupancy measure of deterministic policies.

    ``x(s, a) = sum_t gamma^t Pr(s_t = s, a_t = a)`` from ``mu0``; it satisfies the flow
    constraints ``M x = mu0`` of the occupancy LP.

    Parameters
    ----------
    mdp : TabularMDP
    policy : ndarray of shape (K, S) of int

    Returns
    -------
    ndarray of shape (K, S, A)
    """
    plan = _plan(mdp)
    K = policy.shape[0]
    S, A = mdp.shape
    x = np.zeros((K, S, A))
    if plan.layers is None:
        d = _discounted_state_occupancy(plan, policy)
    else:
        d = np.zeros((K, S + 1))
        d[:, :S] = mdp.mu0
        for layer in plan.layers:
            pol = policy[:, layer]
            dl = d[:, layer]
            if plan.succ is not None:
                tgt = plan.succ[layer[None, :], pol]  # (K, L), S = flow leaves
                flat = (np.arange(K)[:, None] * (S + 1) + tgt).ravel()
                d += plan.gamma * np.bincount(
                    flat, weights=dl.ravel(), minlength=K * (S + 1)
                ).reshape(K, S + 1)
            else:
                rows = (layer[None, :] * A + pol).ravel()  # (K*L,)
                W = sp.csr_array(
                    (dl.ravel(), (np.repeat(np.arange(K), layer.size), np.arange(rows.size))),
                    shape=(K, rows.size),
                )
                d[:, :S] += plan.gamma * (W @ plan.P[rows]).toarray()
        d = d[:, :S]
    flat = np.arange(K * S, dtype=np.intp) * A + policy.ravel()  # (k, s, policy[k, s])
    x.ravel()[flat] = d.ravel()
    return x


def check_reward(mdp: TabularMDP, reward: ArrayLike) -> FloatArray:
    """Validate and return rewards as a float64 array of shape (K, S, A)."""
    c = np.asarray(reward, dtype=np.float64)
    S, A = mdp.shape
    if c.ndim == 2:
        c = c[None]
    if c.ndim != 3 or c.shape[1:] != (S, A):
        raise ValueError(
            f"expected reward of shape (S, A) = ({S}, {A}) or (K, S, A), got {c.shape}"
        )
    if c.shape[0] == 0:
        raise ValueError("expected at least one reward array (K >= 1), got K = 0")
    if not np.all(np.isfinite(c)):
        raise ValueError("expected finite rewards, got NaN or inf")
    return c


# ---------------------------------------------------------------------- internals


@dataclass(frozen=True, eq=False)
class _Plan:
    """Per-MDP precomputed structure (cached)."""

    S: int
    A: int
    gamma: float
    layers: tuple[IntArray, ...] | None
    succ: IntArray | None  # (S, A), S = exit
    P: sp.csr_array  # (S*A, S)
    layer_p: tuple[sp.csr_array, ...] | None  # rows of P for each layer's (s, a) pairs
    P_dense: FloatArray | None  # (S, A, S) for discounted MDPs
    mu0: FloatArray


@functools.lru_cache(maxsize=128)
def _plan(mdp: TabularMDP) -> _Plan:
    S, A = mdp.shape
    layers = mdp.layers
    layer_p = None
    if layers is not None and mdp.successor is None:
        layer_p = tuple(
            sp.csr_array(mdp.P[(layer[:, None] * A + np.arange(A)).ravel()]) for layer in layers
        )
    P_dense = mdp.dense_P() if layers is None else None
    return _Plan(S, A, mdp.gamma, layers, mdp.successor, mdp.P, layer_p, P_dense, mdp.mu0)


def _solve(
    mdp: TabularMDP, c: FloatArray, tol: float, max_iter: int
) -> tuple[FloatArray, IntArray, int, np.ndarray[Any, np.dtype[np.bool_]]]:
    plan = _plan(mdp)
    if plan.layers is not None:
        V, pol = _backward_induction(plan, c)
        return V, pol, len(plan.layers), np.ones(c.shape[0], dtype=bool)
    return _policy_iteration(plan, c, tol, max_iter)


def _backward_induction(plan: _Plan, c: FloatArray) -> tuple[FloatArray, IntArray]:
    K = c.shape[0]
    S, A = plan.S, plan.A
    assert plan.layers is not None  # internal invariant, checked by the caller
    V = np.zeros((K, S + 1))
    pol = np.zeros((K, S), dtype=np.int64)
    for li in range(len(plan.layers) - 1, -1, -1):
        layer = plan.layers[li]
        if plan.succ is not None:
            future = V[:, plan.succ[layer]]  # (K, L, A)
        else:
            assert plan.layer_p is not None
            future = (plan.layer_p[li] @ V[:, :S].T).T.reshape(K, layer.size, A)
        Q = c[:, layer, :] + plan.gamma * future
        best = Q.argmax(axis=2)
        pol[:, layer] = best
        V[:, layer] = np.take_along_axis(Q, best[..., None], axis=2)[..., 0]
    return V[:, :S], pol


def _policy_iteration(
    plan: _Plan, c: FloatArray, tol: float, max_iter: int
) -> tuple[FloatArray, IntArray, int, np.ndarray[Any, np.dtype[np.bool_]]]:
    # Deterministic MDPs (gridworld) are evaluated by pointer doubling over the successor
    # table, stochastic ones by batched linear solves; see solvers/_dp_discounted.py.
    if plan.succ is not None:
        return policy_iteration(c, plan.gamma, tol, max_iter, succ=plan.succ)
    return policy_iteration(c, plan.gamma, tol, max_iter, P=plan.P_dense)


def _discounted_state_occupancy(plan: _Plan, policy: IntArray) -> FloatArray:
    if plan.succ is not None:
        return deterministic_occupancy(plan.succ, plan.gamma, plan.mu0, policy)
    assert plan.P_dense is not None
    S = plan.S
    P_pi = plan.P_dense[np.arange(S)[None, :], policy]  # (K, S, S)
    lhs = np.eye(S) - plan.gamma * np.swapaxes(P_pi, 1, 2)
    mu0 = np.broadcast_to(plan.mu0, (policy.shape[0], S))
    d = np.asarray(np.linalg.solve(lhs, mu0[..., None])[..., 0], dtype=np.float64)
    return d
