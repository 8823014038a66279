"""Task scheduling on n machines with a makespan objective.

The dynamic truthful task scheduling of Curry et al. (2024), §5 (Tables 3 and 4), as
``ScheduleMDP`` in the authors' code (state layout, cost distributions, makespan rule).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from bilevel.models._env import Environment
from bilevel.models._mdp import mdp_from_successors
from bilevel.models._sales import _check_choice, _check_gamma, _check_int
from bilevel.models.typing import FloatArray, IntArray

__all__ = ["SCHEDULER_SENTINEL", "makespan_of_assignment", "scheduling"]

SCHEDULER_SENTINEL = 5.0
"""Counterfactual cost reported for every task by an "absent" agent.

5, as in the authors' code; the paper does not say how an absent machine is modelled.
"""

_DISTS = ("uniform", "asymmetric")
_MAKESPANS = ("clamped", "reference")

ScheduleState = tuple[int, ...]


def _makespans(costs: FloatArray, assignments: IntArray, variant: str) -> FloatArray:
    """Remaining-work makespans of many assignments, vectorised over profiles and assignments.

    Parameters
    ----------
    costs : ndarray of shape (k, n, T)
    assignments : ndarray of int of shape (L, T)
        0-based agent of every task, one row per assignment.
    variant : {"clamped", "reference"}

    Returns
    -------
    ndarray of shape (k, L)
    """
    k, n, _ = costs.shape
    L, T = assignments.shape
    rem = np.zeros((k, L, n))
    rows = np.arange(L)
    for j in range(T):
        if variant == "reference":
            rem = np.where(rem > 0, rem - 1.0, rem)
        else:
            rem = np.maximum(rem - 1.0, 0.0)
        who = assignments[:, j]
        rem[:, rows, who] += costs[:, who, j]
    out: FloatArray = np.maximum(rem.max(axis=2), 0.0)
    return out


def makespan_of_assignment(
    costs: FloatArray, assignment: Sequence[int], variant: str = "clamped"
) -> FloatArray:
    """Makespan (remaining work after the last arrival) of a fixed task assignment.

    Task ``j`` arrives at time ``j``; one time unit passes between arrivals. Starting from
    ``rem = 0`` for every machine, for each task in order: one unit of work is done on every
    busy machine, then the task's cost is added to its machine. The result is
    ``max(max_i rem_i, 0)``, the time still needed after the last task arrived (a constant
    ``T - 1`` offset from the wall-clock makespan).

    Parameters
    ----------
    costs : ndarray of shape (k, n, T)
        Processing times ``C[agent, task]`` for ``k`` profiles.
    assignment : sequence of int, length T
        0-based agent of every task.
    variant : {"clamped", "reference"}, default "clamped"
        ``"clamped"``: ``rem = max(rem - 1, 0)`` (idle machines do not bank time).
        ``"reference"``: the rule of the authors' code, which decreases only entries ``> 0`` by
        1, so a machine that finishes early goes negative and keeps that credit. This variant
        produced the paper's Tables 3 and 4: their VCG columns match it (``docs/results.md``),
        not the clamped rule.

    Returns
    -------
    ndarray of shape (k,)

    Raises
    ------
    ValueError
        On malformed shapes, agent indices out of range or an unknown variant.

    Examples
    --------
    >>> import numpy as np
    >>> C = np.array([[[0.3, 2.0], [1.0, 1.0]]])  # agent 0 costs 0.3 then 2.0
    >>> makespan_of_assignment(C, [0, 0], "clamped")
    array([2.])
    >>> makespan_of_assignment(C, [0, 0], "reference")  # 0.3 - 1 = -0.7, then + 2.0
    array([1.3])
    """
    variant = _check_choice(variant, "variant", _MAKESPANS)
    arr = np.asarray(costs, dtype=np.float64)
    if arr.ndim != 3:
        raise ValueError(f"expected costs of shape (k, n, T), got {arr.shape}")
    _, n, T = arr.shape
    assign = np.asarray(assignment, dtype=np.int64).reshape(-1)
    if assign.shape != (T,):
        raise ValueError(f"expected an assignment of length T = {T}, got {assign.shape[0]}")
    if assign.size and (assign.min() < 0 or assign.max() >= n):
        raise ValueError(f"expected 0-based agent indices in [0, {n}), got {assign.tolist()}")
    return _makespans(arr, assign[None, :], variant)[:, 0]


def scheduling(
    *,
    n_agents: int = 2,
    n_tasks: int = 4,
    dist: str = "uniform",
    gamma: float = 1.0,
    makespan: str = "clamped",
) -> Environment:
    """Assign ``T`` tasks, arriving one per step, to ``n`` machines (Curry et al., 2024, §5).

    * **States**: tuples ``(t, o_1, ..., o_T)`` with ``t`` the 1-based task to assign now and
      ``o_j`` in ``{-1, 1..n}`` the agent that got task ``j``; start ``(1, -1, ..., -1)``;
      breadth-first order. The last level ``t = T`` has no successor (the flow leaves after
      the last assignment). ``S = sum_{k<T} n^k``.
    * **Actions**: ``("agent1", ..., "agentn")`` (every task must be assigned); ``A = n``.
    * **Rewards**: agent ``a`` gets ``-C[a, t]`` for action ``a`` in a state with task ``t``.
    * **Types**: cost matrices of shape ``(n, T)``; ``"uniform"``: ``U[0, 3]``;
      ``"asymmetric"``: row ``i`` (1-based) ``~ U[0, 3 i]``.
    * **Counterfactual** of agent ``i``: its whole row set to :data:`SCHEDULER_SENTINEL`
      (5.0), as in the authors' code (there is no way to remove a machine).
    * **Cost** ``"makespan"``: coefficients ``(k, S, A)``, nonzero only at last-task states,
      where ``(s, a)`` completes the assignment ``(o_1, ..., o_{T-1}, a)``; the value is
      :func:`makespan_of_assignment` of that assignment. Minimised.

    Parameters
    ----------
    n_agents : int, default 2
        Number of machines n >= 1.
    n_tasks : int, default 4
        Number of tasks T >= 1.
    dist : {"uniform", "asymmetric"}, default "uniform"
        Cost distribution.
    gamma : float, default 1.0
        Discount factor in (0, 1].
    makespan : {"clamped", "reference"}, default "clamped"
        Makespan rule (see :func:`makespan_of_assignment`). ``"clamped"`` is the correct
        remaining-work simulation; ``"reference"`` reproduces the authors' code's un-clamped
        rule (remaining work may go negative), which is what produced the paper's Tables 3
        and 4 (e.g. VCG makespan ~1.03 instead of ~1.27 for n=2, T=4, uniform).

    Returns
    -------
    Environment
        ``objective="makespan"``, ``costs={"makespan": ...}``,
        ``boost_box = (-n max(n, 3), n max(n, 3))`` (the authors' grid-search box),
        ``optimise_weights = (dist == "asymmetric")``, ``nonnegative_rewards=False``.

    Raises
    ------
    TypeError
        If a size is not an int or gamma is not a number.
    ValueError
        If a size is < 1, or ``dist``, ``makespan`` or gamma is invalid.

    Examples
    --------
    >>> env = scheduling(n_agents=2, n_tasks=4)
    >>> env.mdp.shape
    (15, 2)
    >>> C = env.sample_types(0, 5)
    >>> C.shape, env.cost("makespan", C).shape
    ((5, 2, 4), (5, 15, 2))
    """
    n = _check_int(n_agents, "n_agents")
    T = _check_int(n_tasks, "n_tasks")
    dist = _check_choice(dist, "dist", _DISTS)
    g = _check_gamma(gamma)
    variant = _check_choice(makespan, "makespan", _MAKESPANS)

    def successors(s: ScheduleState, a: int) -> list[tuple[ScheduleState, float]]:
        t = s[0]
        if t == T:
            return []
        return [((t + 1, *s[1:t], a + 1, *s[t + 1 :]), 1.0)]

    actions = tuple(f"agent{i}" for i in range(1, n + 1))
    start: ScheduleState = (1, *([-1] * T))
    mdp = mdp_from_successors(start, successors, actions, g)
    S, A = mdp.shape

    labels = np.array(mdp.states, dtype=np.int64)  # (S, 1 + T)
    task = labels[:, 0] - 1  # 0-based current task, (S,)
    agent_idx = np.arange(n)

    # Last-level states and the full assignments completed by each of their actions.
    last = np.flatnonzero(labels[:, 0] == T)  # (L0,)
    prefix = labels[last, 1:T] - 1  # (L0, T-1), 0-based agents
    completed = np.concatenate(
        [np.repeat(prefix, n, axis=0), np.tile(agent_idx, last.size)[:, None]], axis=1
    )  # (L0 * n, T); row l * n + a is state last[l] with action a

    scale = np.arange(1, n + 1, dtype=np.float64) if dist == "asymmetric" else np.ones(n)

    def sampler(rng: np.random.Generator, k: int) -> FloatArray:
        return 3.0 * rng.uniform(size=(k, n, T)) * scale[None, :, None]

    def reward_fn(types: FloatArray) -> FloatArray:
        k = types.shape[0]
        R = np.zeros((k, n, S, A))
        # R[:, a, s, a] = -C[:, a, task[s]]  (advanced indices first: shape (n, k, S))
        R[:, agent_idx, :, agent_idx] = -types[:, :, task].transpose(1, 0, 2)
        return R

    def counterfactual_fn(types: FloatArray, i: int) -> FloatArray:
        types[:, i, :] = SCHEDULER_SENTINEL
        return types

    def makespan_fn(types: FloatArray) -> FloatArray:
        k = types.shape[0]
        coef = np.zeros((k, S, A))
        coef[:, last, :] = _makespans(types, completed, variant).reshape(k, last.size, n)
        return coef

    box = float(n * max(n, 3))
    return Environment(
        name="scheduling",
        mdp=mdp,
        n_agents=n,
        dist=dist,
        type_shape=(n, T),
        sampler=sampler,
        reward_fn=reward_fn,
        counterfactual_fn=counterfactual_fn,
        objective="makespan",
        costs={"makespan": makespan_fn},
        boost_box=(-box, box),
        optimise_weights=dist == "asymmetric",
        nonnegative_rewards=False,
        params={"n_agents": n, "n_tasks": T, "dist": dist, "gamma": g, "makespan": variant},
    )
