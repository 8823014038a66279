"""Sequential sales of identical items to unit-demand agents.

The sequential-sales environment of Curry et al. (2024), §5 (Tables 1 and 2), as ``AuctionMDP``
in the authors' code (state layout, enumeration order, value distributions).

Also holds the small argument checks shared by the four built-in environments.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from bilevel.models._env import Environment
from bilevel.models._mdp import mdp_from_successors
from bilevel.models._single_parameter import SingleParameter, uniform_values
from bilevel.models.typing import FloatArray

__all__ = ["sales"]

_DISTS = ("uniform", "asymmetric")

SalesState = tuple[int, ...]


# ---------------------------------------------------------------------- shared argument checks


def _check_int(value: Any, name: str, minimum: int = 1) -> int:
    """Return ``value`` as an int, raising TypeError / ValueError ("expected ..., got ...")."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"expected {name} as an int, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"expected {name} >= {minimum}, got {value}")
    return int(value)


def _check_gamma(gamma: Any) -> float:
    """Return ``gamma`` as a float in (0, 1]."""
    if isinstance(gamma, bool) or not isinstance(gamma, (int, float, np.integer, np.floating)):
        raise TypeError(f"expected gamma as a float, got {type(gamma).__name__}")
    g = float(gamma)
    if not (0.0 < g <= 1.0):
        raise ValueError(f"expected gamma in (0, 1], got {gamma!r}")
    return g


def _check_choice(value: Any, name: str, choices: Sequence[str]) -> str:
    """Return ``value`` if it is one of ``choices``."""
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"expected {name} in {tuple(choices)!r}, got {value!r}")
    return value


# ---------------------------------------------------------------------- sales


def sales(
    *, n_agents: int = 3, n_items: int = 2, dist: str = "uniform", gamma: float = 1.0
) -> Environment:
    """Sequential sales of ``m`` identical items to ``n`` unit-demand agents (Curry et al., 2024).

    One item is decided per round: the mechanism either keeps it (action ``"skip"``) or gives it
    to agent ``i`` (action ``"agent{i}"``). An agent values the first item it receives at its
    type ``v_i`` and any further item at 0.

    * **States**: tuples ``(k, o_1, ..., o_m)`` with ``k`` the 0-based current round and
      ``o_j`` in ``{-1 (undecided), 0 (not sold), 1..n (agent)}``; start ``(0, -1, ..., -1)``;
      breadth-first order (level by level, actions ascending). The last level ``k = m - 1`` has
      no successor: the flow leaves after its action. ``S = sum_{k<m} (n+1)^k``.
    * **Actions**: ``("skip", "agent1", ..., "agentn")``; ``A = n + 1``.
    * **Rewards**: ``r_a(s, a) = v_a`` iff ``a != 0`` and agent ``a`` appears in no outcome
      slot of ``s``; all other entries 0.
    * **Types**: shape ``(n,)``; ``"uniform"``: ``v_i ~ U[0, 1]``; ``"asymmetric"``:
      ``v_i ~ U[0, 1/i]`` (agent 1 strongest; this is what produced the paper's Table 2).
    * **Counterfactual** of agent ``i``: ``v_i = 0``.
    * **Single parameter** (Myerson 1981): ``r_i = v_i · q_i`` with ``q_i(s, a) = 1`` iff
      ``a = i`` and agent ``i`` is eligible in ``s``, independent of the types; values
      ``U[0, 1]`` (``"uniform"``) or ``U[0, 1/i]`` (``"asymmetric"``).

    Parameters
    ----------
    n_agents : int, default 3
        Number of agents n >= 1.
    n_items : int, default 2
        Number of items (rounds) m >= 1.
    dist : {"uniform", "asymmetric"}, default "uniform"
        Value distribution.
    gamma : float, default 1.0
        Discount factor in (0, 1].

    Returns
    -------
    Environment
        ``objective="revenue"``, ``boost_box=(-n, n)`` (the authors' grid-search box),
        ``optimise_weights = (dist == "asymmetric")``, ``nonnegative_rewards=True``.

    Raises
    ------
    TypeError
        If a size is not an int or gamma is not a number.
    ValueError
        If a size is < 1, ``dist`` is unknown or gamma is outside (0, 1].

    Examples
    --------
    >>> env = sales(n_agents=3, n_items=2)
    >>> env.mdp.shape
    (5, 4)
    >>> env.mdp.states[:3]
    ((0, -1, -1), (1, 0, -1), (1, 1, -1))
    >>> env.rewards(env.sample_types(0, 10)).shape
    (10, 3, 5, 4)
    """
    n = _check_int(n_agents, "n_agents")
    m = _check_int(n_items, "n_items")
    dist = _check_choice(dist, "dist", _DISTS)
    g = _check_gamma(gamma)

    def successors(s: SalesState, a: int) -> list[tuple[SalesState, float]]:
        k = s[0]
        if k + 1 == m:
            return []
        return [((k + 1, *s[1 : k + 1], a, *s[k + 2 :]), 1.0)]

    actions = ("skip", *(f"agent{i}" for i in range(1, n + 1)))
    start: SalesState = (0, *([-1] * m))
    mdp = mdp_from_successors(start, successors, actions, g)
    S, A = mdp.shape

    # eligible[s, a] = 1 iff a >= 1 and agent a holds no item in state s.
    outcomes = np.array([s[1:] for s in mdp.states], dtype=np.int64)  # type: ignore[index]
    agents = np.arange(1, n + 1)
    holds = (outcomes[:, :, None] == agents[None, None, :]).any(axis=1)  # (S, n)
    eligible = (~holds).astype(np.float64)  # (S, n): column i-1 for action i
    agent_idx = np.arange(n)

    upper = 1.0 / np.arange(1, n + 1) if dist == "asymmetric" else np.ones(n)

    def sampler(rng: np.random.Generator, k: int) -> FloatArray:
        return rng.uniform(size=(k, n)) * upper

    def reward_fn(types: FloatArray) -> FloatArray:
        k = types.shape[0]
        R = np.zeros((k, n, S, A))
        # R[:, i, :, i + 1] = v_i * eligible[:, i]
        R[:, agent_idx, :, agent_idx + 1] = (types[:, :, None] * eligible.T[None]).transpose(
            1, 0, 2
        )
        return R

    def counterfactual_fn(types: FloatArray, i: int) -> FloatArray:
        types[:, i] = 0.0
        return types

    q = np.zeros((n, S, A))
    q[agent_idx, :, agent_idx + 1] = eligible.T
    q.setflags(write=False)

    def values_fn(types: FloatArray) -> FloatArray:
        return types

    def allocation_fn(types: FloatArray) -> FloatArray:
        out: FloatArray = np.broadcast_to(q, (types.shape[0], *q.shape))
        return out

    single = SingleParameter(
        values_fn, allocation_fn, tuple(uniform_values(0.0, float(u)) for u in upper)
    )

    return Environment(
        name="sales",
        mdp=mdp,
        n_agents=n,
        dist=dist,
        type_shape=(n,),
        sampler=sampler,
        reward_fn=reward_fn,
        counterfactual_fn=counterfactual_fn,
        objective="revenue",
        boost_box=(-float(n), float(n)),
        optimise_weights=dist == "asymmetric",
        nonnegative_rewards=True,
        params={"n_agents": n, "n_items": m, "dist": dist, "gamma": g},
        single_parameter=single,
    )
