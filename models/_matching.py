"""Dynamic matching with stochastic arrivals and patience (``MatchingMDP`` of the authors' code)."""

from __future__ import annotations

import numpy as np

from bilevel.models._env import Environment
from bilevel.models._mdp import mdp_from_successors
from bilevel.models._sales import _check_choice, _check_gamma, _check_int
from bilevel.models._single_parameter import SingleParameter, uniform_values
from bilevel.models.typing import FloatArray

__all__ = ["matching"]

_DISTS = ("uniform", "asymmetric")
_MAX_PATIENCE = 5

MatchingState = tuple[int, ...]


def matching(
    *, n_agents: int = 2, rounds: int = 3, dist: str = "uniform", gamma: float = 1.0
) -> Environment:
    """Agents arrive at random over ``T`` rounds and may be matched while still patient.

    This environment exists in the authors' code of Curry et al. (2024) (``matching.jl``) but not
    in the paper.

    * **States**: tuples ``(r, sigma_1, ..., sigma_n)``: ``r`` is the round counter, from -1
      (start) to ``T - 1``; ``sigma_i`` is -2 (not arrived), -1 (already matched) or the round
      ``>= 0`` in which agent ``i`` arrived. Start ``(-1, -2, ..., -2)``. The states reachable
      from the start are **sorted lexicographically** (as in the authors' code), so the start is
      state 0. States with ``r = T - 1`` have no successor (the flow leaves).
    * **Actions**: ``("none", "agent1", ..., "agentn")``: match nobody, or match agent ``i``,
      which sets ``sigma_i = -1`` if ``sigma_i >= 0`` and is a no-op otherwise.
    * **Transitions** (stochastic): with ``U`` agents not yet arrived, each of them arrives with
      probability ``1 / (U + 1)`` (its ``sigma`` becomes ``r + 1``) and nobody arrives with
      probability ``1 / (U + 1)``; then the counter becomes ``r + 1``.
    * **Rewards**: matching agent ``a`` in a state with ``sigma_a >= 0`` and
      ``r - sigma_a <= patience_a`` gives agent ``a`` its value; everything else is 0.
    * **Types**: shape ``(n, 2)``: column 0 the value (``"uniform"``: ``U[0, 1]``;
      ``"asymmetric"``: ``U[0, 1/i]``), column 1 the patience, uniform on ``{1, ..., 5}``
      (stored as float).
    * **Counterfactual** of agent ``i``: its value set to 0 (patience kept).
    * **Single parameter** (Myerson 1981): ``r_i = v_i · q_i`` with ``v_i`` column 0 and
      ``q_i(s, a) = 1`` iff ``a = i`` and agent ``i`` is present and still patient in ``s``.
      ``q`` depends on the patience, private information treated as public by revenue bounds
      (``public_information=True``).

    Parameters
    ----------
    n_agents : int, default 2
        Number of agents n >= 1.
    rounds : int, default 3
        Number of rounds T >= 1.
    dist : {"uniform", "asymmetric"}, default "uniform"
        Value distribution.
    gamma : float, default 1.0
        Discount factor in (0, 1].

    Returns
    -------
    Environment
        ``objective="revenue"``, ``boost_box=None`` (the authors' grid search has none),
        ``optimise_weights = (dist == "asymmetric")``, ``nonnegative_rewards=True``.

    Raises
    ------
    TypeError
        If a size is not an int or gamma is not a number.
    ValueError
        If a size is < 1, ``dist`` is unknown or gamma is outside (0, 1].

    Examples
    --------
    >>> env = matching(n_agents=2, rounds=3)
    >>> env.mdp.shape
    (37, 3)
    >>> env.mdp.states[0]
    (-1, -2, -2)
    >>> env.sample_types(0, 4).shape
    (4, 2, 2)
    """
    n = _check_int(n_agents, "n_agents")
    T = _check_int(rounds, "rounds")
    dist = _check_choice(dist, "dist", _DISTS)
    g = _check_gamma(gamma)

    def successors(s: MatchingState, a: int) -> list[tuple[MatchingState, float]]:
        r = s[0]
        if r + 1 == T:
            return []
        sigma = list(s[1:])
        if a > 0 and sigma[a - 1] >= 0:
            sigma[a - 1] = -1
        waiting = [i for i in range(n) if sigma[i] == -2]
        p = 1.0 / (len(waiting) + 1)
        out: list[tuple[MatchingState, float]] = [((r + 1, *sigma), p)]
        for i in waiting:
            child = list(sigma)
            child[i] = r + 1
            out.append(((r + 1, *child), p))
        return out

    actions = ("none", *(f"agent{i}" for i in range(1, n + 1)))
    start: MatchingState = (-1, *([-2] * n))
    mdp = mdp_from_successors(start, successors, actions, g, sort_states=True)
    S, A = mdp.shape

    labels = np.array(mdp.states, dtype=np.int64)  # (S, 1 + n)
    r = labels[:, :1]
    sigma = labels[:, 1:]  # (S, n)
    present = sigma >= 0
    wait = np.where(present, r - sigma, 0).astype(np.float64)  # (S, n), rounds waited so far
    agent_idx = np.arange(n)

    upper = 1.0 / np.arange(1, n + 1) if dist == "asymmetric" else np.ones(n)

    def sampler(rng: np.random.Generator, k: int) -> FloatArray:
        types = np.empty((k, n, 2))
        types[:, :, 0] = rng.uniform(size=(k, n)) * upper
        types[:, :, 1] = rng.integers(1, _MAX_PATIENCE + 1, size=(k, n))
        return types

    def reward_fn(types: FloatArray) -> FloatArray:
        k = types.shape[0]
        value, patience = types[:, :, 0], types[:, :, 1]  # (k, n)
        ok = present[None] & (wait[None] <= patience[:, None, :])  # (k, S, n)
        R = np.zeros((k, n, S, A))
        # R[:, i, :, i + 1] = value_i * ok[:, :, i]  (advanced indices first: shape (n, k, S))
        R[:, agent_idx, :, agent_idx + 1] = (value[:, None, :] * ok).transpose(2, 0, 1)
        return R

    def values_fn(types: FloatArray) -> FloatArray:
        out: FloatArray = types[:, :, 0]
        return out

    def allocation_fn(types: FloatArray) -> FloatArray:
        k = types.shape[0]
        ok = present[None] & (wait[None] <= types[:, None, :, 1])  # (k, S, n)
        q = np.zeros((k, n, S, A))
        q[:, agent_idx, :, agent_idx + 1] = ok.transpose(2, 0, 1).astype(np.float64)
        return q

    def counterfactual_fn(types: FloatArray, i: int) -> FloatArray:
        types[:, i, 0] = 0.0
        return types

    single = SingleParameter(
        values_fn, allocation_fn, tuple(uniform_values(0.0, float(u)) for u in upper),
        public_information=True, nonvalue_part="the patience",
    )

    return Environment(
        name="matching",
        mdp=mdp,
        n_agents=n,
        dist=dist,
        type_shape=(n, 2),
        sampler=sampler,
        reward_fn=reward_fn,
        counterfactual_fn=counterfactual_fn,
        objective="revenue",
        boost_box=None,
        optimise_weights=dist == "asymmetric",
        nonnegative_rewards=True,
        params={"n_agents": n, "rounds": T, "dist": dist, "gamma": g},
        single_parameter=single,
    )
