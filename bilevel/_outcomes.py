"""Batched AMA outcomes: allocations, payments, revenue and welfare for candidates × profiles.

This is the one hot path of the library: for C candidate mechanisms and K type profiles it
solves the C·K factual problems and, when payments are needed, the C·n·K counterfactual
problems in single batched calls of an exact inner solver.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike

from bilevel._mechanism import AMA
from bilevel.models import Environment, TabularMDP
from bilevel.models.typing import FloatArray
from bilevel.solvers import occupancy_of_policy, solve_lp, solve_values

__all__ = ["ExactInner", "Outcomes", "batch_outcomes", "exact_inner", "mechanism_outcomes"]

InnerName = Literal["dp", "lp"]


@dataclass(frozen=True)
class ExactInner:
    """An exact inner solver as used by mechanisms: values + greedy policies of a batch.

    Attributes
    ----------
    name : str
        ``"dp"`` (batched dynamic programming, default) or ``"lp"`` (HiGHS occupancy LP).
    solve : callable ``(mdp, c) -> (value (B,), occupancy (B, S, A))``
        Optimal values and an optimal occupancy measure for rewards ``c`` of shape (B, S, A).
    values : callable ``(mdp, c) -> value (B,)``
        Optimal values only (used for counterfactual solves).
    """

    name: str
    solve: Callable[[TabularMDP, FloatArray], tuple[FloatArray, FloatArray]]
    values: Callable[[TabularMDP, FloatArray], FloatArray]


def _dp(mdp: TabularMDP, c: FloatArray) -> tuple[FloatArray, FloatArray]:
    value, policy = solve_values(mdp, c)
    return value, occupancy_of_policy(mdp, policy)


def _dp_values(mdp: TabularMDP, c: FloatArray) -> FloatArray:
    return solve_values(mdp, c)[0]


def _lp(mdp: TabularMDP, c: FloatArray) -> tuple[FloatArray, FloatArray]:
    sol = solve_lp(mdp, c)
    if sol.occupancy is None:  # pragma: no cover - solve_lp always sets it
        raise RuntimeError("the LP solver returned no occupancy")
    return sol.value, sol.occupancy


def _lp_values(mdp: TabularMDP, c: FloatArray) -> FloatArray:
    return solve_lp(mdp, c, occupancy=False).value


_INNERS = {"dp": ExactInner("dp", _dp, _dp_values), "lp": ExactInner("lp", _lp, _lp_values)}


def exact_inner(spec: str | ExactInner) -> ExactInner:
    """Resolve ``"dp"`` / ``"lp"`` (or pass an :class:`ExactInner` through)."""
    if isinstance(spec, ExactInner):
        return spec
    if spec not in _INNERS:
        raise ValueError(f"expected inner solver in {tuple(_INNERS)}, got {spec!r}")
    return _INNERS[spec]


@dataclass(frozen=True)
class Outcomes:
    """Outcomes of C mechanisms on K type profiles (leading axes ``(C, K)``).

    Attributes
    ----------
    occupancy : ndarray of shape (C, K, S, A)
        Allocation: occupancy measure of the chosen policy.
    agent_rewards : ndarray of shape (C, K, n)
        ``r_i(x)``: each agent's (discounted) total reward under the allocation.
    asw : ndarray of shape (C, K)
        Optimal affine welfare ``sum_i w_i r_i(x) + b(x)``.
    payments : ndarray of shape (C, K, n), or None
        AMA payments (None when not requested).
    """

    occupancy: FloatArray
    agent_rewards: FloatArray
    asw: FloatArray
    payments: FloatArray | None

    @property
    def welfare(self) -> FloatArray:
        """Social welfare ``sum_i r_i(x)``, shape (C, K)."""
        out: FloatArray = self.agent_rewards.sum(axis=-1)
        return out

    @property
    def revenue(self) -> FloatArray:
        """Sum of payments, shape (C, K)."""
        if self.payments is None:
            raise ValueError("expected outcomes computed with payments, got payments=None")
        out: FloatArray = self.payments.sum(axis=-1)
        return out

    @property
    def utility(self) -> FloatArray:
        """Quasi-linear utilities ``r_i(x) - p_i``, shape (C, K, n)."""
        if self.payments is None:
            raise ValueError("expected outcomes computed with payments, got payments=None")
        out: FloatArray = self.agent_rewards - self.payments
        return out


def counterfactual_rewards(env: Environment, types: FloatArray) -> FloatArray:
    """Rewards under each agent's counterfactual report, shape (n, K, n, S, A)."""
    return np.stack([env.rewards(env.counterfactual(types, i)) for i in range(env.n_agents)])


def batch_outcomes(
    mdp: TabularMDP,
    weights: FloatArray,
    boosts: FloatArray,
    rewards: FloatArray,
    cf_rewards: FloatArray | None,
    *,
    inner: ExactInner | str = "dp",
) -> Outcomes:
    """Allocations and payments of C AMAs on K profiles.

    Parameters
    ----------
    mdp : TabularMDP
    weights : ndarray of shape (C, n)
        Candidate weights (> 0).
    boosts : ndarray of shape (C, S, A)
        Candidate boosts.
    rewards : ndarray of shape (K, n, S, A)
        Per-agent rewards of the reported profiles.
    cf_rewards : ndarray of shape (n, K, n, S, A), or None
        Rewards under each agent's counterfactual report; ``None`` skips payments.
    inner : ExactInner or {"dp", "lp"}, default "dp"
        Exact inner solver.

    Returns
    -------
    Outcomes
    """
    solver = exact_inner(inner)
    C, n = weights.shape
    K = rewards.shape[0]
    S, A = mdp.shape
    c = np.einsum("cn,knsa->cksa", weights, rewards) + boosts[:, None]
    asw, x = solver.solve(mdp, c.reshape(C * K, S, A))
    x = x.reshape(C, K, S, A)
    asw = asw.reshape(C, K)
    agent_r = np.einsum("cksa,knsa->ckn", x, rewards)
    payments = None
    if cf_rewards is not None:
        c_cf = np.einsum("cn,iknsa->ciksa", weights, cf_rewards) + boosts[:, None, None]
        asw_cf = solver.values(mdp, c_cf.reshape(C * n * K, S, A))
        asw_cf = asw_cf.reshape(C, n, K).transpose(0, 2, 1)  # (C, K, n)
        w = weights[:, None, :]
        payments = (asw_cf - (asw[..., None] - w * agent_r)) / w
    return Outcomes(x, agent_r, asw, payments)


def mechanism_outcomes(
    env: Environment,
    mechanism: AMA,
    types: ArrayLike,
    *,
    reports: ArrayLike | None = None,
    inner: str | ExactInner = "dp",
) -> Outcomes:
    """Outcomes of one mechanism on K profiles, optionally with misreports.

    Parameters
    ----------
    env : Environment
    mechanism : AMA
    types : array_like of shape (K, *type_shape)
        True types: agent rewards ``r_i(x)`` are measured with these.
    reports : array_like of shape (K, *type_shape), optional
        Reported types: the allocation and payments are computed from these (default: truthful).
    inner : {"dp", "lp"} or ExactInner, default "dp"

    Returns
    -------
    Outcomes
        Arrays with a leading candidate axis of size 1: ``occupancy`` (1, K, S, A),
        ``agent_rewards`` (true rewards, 1, K, n), ``payments`` (1, K, n), ``asw`` (1, K).

    Examples
    --------
    >>> from bilevel import make_env, vcg
    >>> env = make_env("sales", n_agents=3, n_items=2)
    >>> out = mechanism_outcomes(env, vcg(env), np.array([[0.9, 0.5, 0.2]]))
    >>> out.payments.round(6).tolist()  # both winners pay the third-highest value
    [[[0.2, 0.2, 0.0]]]
    """
    mechanism.check_compatible(env)
    true = env._check_types(types)
    rep = true if reports is None else env._check_types(reports)
    if rep.shape != true.shape:
        raise ValueError(f"expected reports of shape {true.shape}, got {rep.shape}")
    R_rep = env.rewards(rep)
    out = batch_outcomes(
        env.mdp,
        mechanism.weights[None],
        mechanism.boosts[None],
        R_rep,
        counterfactual_rewards(env, rep),
        inner=inner,
    )
    if reports is None:
        return out
    true_r = np.einsum("cksa,knsa->ckn", out.occupancy, env.rewards(true))
    return Outcomes(out.occupancy, true_r, out.asw, out.payments)
