"""Exact evaluation of a Stackelberg leader against its followers' certified response.

The deterministic leader (mode of every head) plays one evaluation episode whose commitment
cache is the leader's tabular policy; its payoff table over type profiles × follower actions
(:func:`bilevel.solvers.stackelberg.payoff_table`) is answered by multiplicative weights run
against it and the first certified response (B-CCE gap at most the threshold,
:func:`bilevel.solvers.stackelberg.certified_response`); the leader's value against that response
(:func:`bilevel.solvers.stackelberg.leader_value`) is the reported figure
(:func:`evaluate_leader`). For complete-information games, :func:`worst_certified_value` is the
value against the *worst* certified response instead.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from scipy.optimize import linprog

from bilevel.models.stackelberg import MSPMGame, StackelbergGame, make_game
from bilevel.solvers.rl import Action, ActorCritic
from bilevel.solvers.stackelberg import (
    PayoffTable,
    StackelbergPOMDP,
    certified_response,
    core_from_game,
    leader_value,
    payoff_table,
)

__all__ = ["LeaderActor", "LeaderEvaluation", "evaluate_leader", "worst_certified_value"]

FloatArray = npt.NDArray[np.float64]


def worst_certified_value(table: PayoffTable, threshold: float = 0.05) -> FloatArray:
    """Leader value against the worst certified response of a complete-information game.

    The certified responses are the joint action distributions ``x`` whose coarse-correlated gap is
    at most ``threshold`` for every follower ``i`` and fixed deviation ``d``: ``Σ_a x(a) (u_i(d,
    a_-i) − u_i(a)) <= threshold`` — the set the empirical play of any no-regret followers
    approaches, and exactly the responses :func:`bilevel.solvers.stackelberg.bcce_gap` certifies
    (with one type per follower every distribution is a mixture of pure profiles). The value is
    ``min_x Σ_a x(a) L(a)``, a linear program over the ``J`` joint actions. A leader that makes one
    outcome strictly dominant by a margin ``m`` keeps every certified response within ``threshold /
    m`` of that outcome, so this value rewards dominance; when two outcomes are both equilibria it
    is pulled down by the mixtures of their neighbours.

    Parameters
    ----------
    table : PayoffTable
        Batch of ``B`` induced games, one type per follower.
    threshold : float
        Certification threshold (B-CCE gap).

    Returns
    -------
    ndarray of shape (B,)

    Raises
    ------
    ValueError
        If some follower has more than one type, or the threshold is not positive.

    Examples
    --------
    >>> from bilevel.models.stackelberg import make_game
    >>> t = np.zeros((2, 2, 2)); t[0, 1] = 10.0   # (0, 1) dominant by wide margins:
    >>> t[0, 0, 0] = 10.0; t[1, 1, 1] = 10.0
    >>> tab = payoff_table(make_game("matrix_design"), t)
    >>> round(float(worst_certified_value(tab)[0]), 4)
    1.6587
    >>> bool(worst_certified_value(payoff_table(make_game("matrix_design"), 0 * t))[0] < 1.2)
    True
    """
    if any(t != 1 for t in table.n_types):
        raise ValueError(f"expected one type per follower, got n_types {table.n_types}")
    if not (isinstance(threshold, (int, float)) and math.isfinite(threshold) and threshold > 0):
        raise ValueError(f"expected threshold > 0, got {threshold!r}")
    n_act = table.n_actions
    J, n = int(np.prod(n_act)), len(n_act)
    joint = np.stack(np.unravel_index(np.arange(J), n_act), axis=1)  # (J, n)
    rows = []  # (i, d) -> deviation joint index per joint action
    for i in range(n):
        for d in range(n_act[i]):
            dev = joint.copy()
            dev[:, i] = d
            rows.append((i, np.ravel_multi_index(tuple(dev.T), n_act)))
    F = table.follower[:, 0].numpy()  # (B, J, n)
    L = table.leader[:, 0].numpy()  # (B, J)
    out = np.empty(L.shape[0], dtype=np.float64)
    for b in range(L.shape[0]):
        a_ub = np.stack([F[b, dev, i] - F[b, :, i] for i, dev in rows])
        res = linprog(L[b], A_ub=a_ub, b_ub=np.full(len(rows), float(threshold)),
                      A_eq=np.ones((1, J)), b_eq=np.ones(1), bounds=(0.0, 1.0),
                      method="highs")
        if res.status != 0 or res.fun is None:  # the equilibria are always feasible
            raise RuntimeError(f"worst certified response LP failed: {res.message}")
        out[b] = float(res.fun)
    return out


def _to_game(game: Any) -> StackelbergGame:
    if isinstance(game, str):
        return make_game(game)
    if isinstance(game, StackelbergGame):
        return game
    raise TypeError(
        f"expected a game name or a bilevel.models.stackelberg game, got {type(game).__name__}"
    )


@dataclass(frozen=True)
class LeaderEvaluation:
    """Exact evaluation of one deterministic leader.

    Attributes
    ----------
    table : tuple of ndarray
        The committed tabular policy (``game.payoffs`` arguments).
    value : float
        Exact leader value against the selected (certified) follower response.
    gap : float
        B-CCE gap of that response.
    certified : bool
        ``gap <= threshold``.
    kind : str
        Selected response kind.
    episode_value : float
        Objective of the evaluation episode itself (its own MW response).
    """

    table: tuple[Any, ...]
    value: float
    gap: float
    certified: bool
    kind: str
    episode_value: float


LeaderActor = Callable[[torch.Tensor, tuple[torch.Tensor, ...]], Action]


def evaluate_leader(
    game: StackelbergGame | str,
    policy: ActorCritic | LeaderActor,
    *,
    iterations: int,
    flavour: str = "exact",
    response: str = "deterministic",
    threshold: float = 0.05,
    candidates: tuple[str, ...] | None = None,
    max_extra: int = 1000,
    seed: int = 0,
) -> LeaderEvaluation:
    """Evaluate the deterministic leader of ``policy`` exactly (see the module docstring).

    Parameters
    ----------
    game : StackelbergGame or str
    policy : ActorCritic or callable
        A trained leader network (its deterministic actions), or any deterministic leader
        ``policy(obs (E, obs_dim), masks) -> Action`` (e.g. a Stable-Baselines3 policy behind
        :func:`bilevel.solvers.stackelberg.decode_actions`).
    iterations : int
        MW iterations of the response prefix.
    flavour : {"exact", "sampled"}
    response : str
        Response kind of the evaluation episode.
    threshold : float
        B-CCE certification threshold.
    candidates : tuple of str or None
        Response kinds tried in order by the certification; None: for message SPMs the
        training response ``response`` first, then the rest of the order of the authors'
        maintained code for Brero et al. (2022, *Stackelberg POMDP*, §5.2): ``last_mixed``,
        ``deterministic``, ``empirical_average``, so that the leader is scored against the
        response object it was trained against whenever that one is certified; for the other
        games ``(response,)``, which that code scores against the argmax response without
        certification — its gap is still computed and reported.
    max_extra : int
        Extra MW updates allowed for certification.
    seed : int
        Seeds the type sequence of the evaluation.

    Returns
    -------
    LeaderEvaluation
    """
    g = _to_game(game)
    core = core_from_game(g)
    env = StackelbergPOMDP(core, 1, iterations=iterations, flavour=flavour,  # type: ignore[arg-type]
                           reward="exact", response=response, critic="plain")  # type: ignore[arg-type]
    gen = torch.Generator().manual_seed(seed)
    s = env.reset(gen)
    for _ in range(env.horizon):
        act = (policy.act(s.obs, s.masks, deterministic=True) if isinstance(policy, ActorCritic)
               else policy(s.obs, s.masks))
        s = env.step(act, gen)
    c = env.last_commitment
    assert c is not None  # one whole episode was played
    episode_value = float(s.info["objective"][0])
    args = core.tabular(c.filled[0], c.categorical[0], c.continuous[0])
    table = payoff_table(g, *args)
    if candidates is None:
        sp_b = ("last_mixed", "deterministic", "empirical_average")
        candidates = ((response, *[k for k in sp_b if k != response])
                      if isinstance(g, MSPMGame) else (response,))
    cert = certified_response(table, prefix_iterations=iterations,
                              generator=torch.Generator().manual_seed(seed + 1),
                              flavour=flavour, threshold=threshold,  # type: ignore[arg-type]
                              candidates=candidates,  # type: ignore[arg-type]
                              max_extra=max_extra, throw=False)
    value = float(leader_value(table, cert.response)[0])
    return LeaderEvaluation(args, value, float(cert.gap.max_gap[0]), bool(cert.certified[0]),
                            cert.kinds[0], episode_value)
