"""Run one mechanism on given type profiles (allocation, payments, utilities)."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from bilevel._mechanism import AMA
from bilevel._outcomes import ExactInner, Outcomes, batch_outcomes, counterfactual_rewards
from models import Environment

__all__ = ["mechanism_outcomes"]


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
    mechanism.check_env(env)
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
