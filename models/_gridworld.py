"""A shared walker on a torus grid whose cells the agents value.

The gridworld of Curry et al. (2024), §5 ("Navigating a grid with multiple tasks", Table 5), as
``GridMDP`` in the authors' code (torus moves, cell order, value distributions).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from bilevel.models._env import Environment
from bilevel.models._mdp import mdp_from_arrays
from bilevel.models._sales import _check_choice, _check_gamma, _check_int
from bilevel.models._single_parameter import SingleParameter, uniform_values
from bilevel.models.typing import FloatArray

__all__ = ["gridworld"]

_DISTS = ("onecell", "uniform")
_MOVES = {"up": (0, -1), "down": (0, 1), "left": (-1, 0), "right": (1, 0)}

Cell = tuple[int, int]


def gridworld(
    *, n_agents: int = 2, grid: int = 3, dist: str = "onecell", gamma: float = 0.9
) -> Environment:
    """A walker moving on a ``G x G`` torus; every agent is paid its value of each cell entered.

    * **States**: cells ``(x, y)`` with ``x, y`` in ``1..G``, ``x`` varying fastest:
      ``(1,1), (2,1), ..., (G,1), (1,2), ..., (G,G)``; start ``(1, 1)``; ``S = G^2``. The
      process never ends (discounted, ``gamma < 1``).
    * **Actions**: ``("up", "down", "left", "right")`` (no stay action), deterministic moves on
      the torus: up ``y - 1``, down ``y + 1``, left ``x - 1``, right ``x + 1``, wrapping
      ``0 -> G`` and ``G + 1 -> 1``.
    * **Rewards**: every agent ``i`` receives ``types[i, x' - 1, y' - 1]`` where ``(x', y')`` is
      the cell entered (on every step, not only the first visit).
    * **Types**: shape ``(n, G, G)`` indexed ``[i, x - 1, y - 1]``. ``"onecell"``: for each
      agent independently one goal cell, uniform among the ``G^2 - 1`` cells other than
      ``(1, 1)``, with value ``U[0, 1]``; all other cells 0 (goals of different agents may
      coincide). ``"uniform"``: all cells ``U[0, 1]`` except ``(1, 1)``, which is 0.
    * **Counterfactual** of agent ``i``: its whole ``G x G`` slice set to 0.
    * **Single parameter** (``"onecell"`` only; Myerson 1981): ``r_i = v_i · q_i`` with ``v_i``
      the goal's value ``U[0, 1]`` and ``q_i(s, a) = 1`` iff ``(s, a)`` enters agent ``i``'s
      goal cell. ``q`` depends on the goal cell, private information treated as public by
      revenue bounds (``public_information=True``). ``"uniform"`` types are multi-parameter
      (``single_parameter=None``).

    Parameters
    ----------
    n_agents : int, default 2
        Number of agents n >= 1.
    grid : int, default 3
        Side length G >= 2.
    dist : {"onecell", "uniform"}, default "onecell"
        Value distribution. The paper's Table 5 used ``"onecell"`` with ``gamma = 0.9``.
    gamma : float, default 0.9
        Discount factor in (0, 1); 1 is rejected (the process has no end).

    Returns
    -------
    Environment
        ``objective="revenue"``, ``boost_box = ±n / (1 - gamma)`` for onecell and
        ``±n G^2 / (1 - gamma)`` for uniform (the authors' grid-search boxes),
        ``optimise_weights=False``,
        ``nonnegative_rewards=True``.

    Raises
    ------
    TypeError
        If a size is not an int or gamma is not a number.
    ValueError
        If ``n_agents < 1``, ``grid < 2``, ``dist`` is unknown or gamma is not in (0, 1).

    Examples
    --------
    >>> env = gridworld(n_agents=2, grid=3)
    >>> env.mdp.shape
    (9, 4)
    >>> env.mdp.states[:4]
    ((1, 1), (2, 1), (3, 1), (1, 2))
    >>> env.mdp.states[env.mdp.successor[0, 0]]  # "up" from (1, 1) wraps to (1, 3)
    (1, 3)
    """
    n = _check_int(n_agents, "n_agents")
    G = _check_int(grid, "grid", minimum=2)
    dist = _check_choice(dist, "dist", _DISTS)
    g = _check_gamma(gamma)
    if g >= 1.0:
        raise ValueError(
            f"expected gamma < 1 for the gridworld (it never ends, so gamma = 1 makes the "
            f"occupancy measure infinite), got {gamma!r}"
        )

    actions = tuple(_MOVES)

    def move(cell: Cell, a: int) -> Cell:
        dx, dy = _MOVES[actions[a]]
        return ((cell[0] - 1 + dx) % G + 1, (cell[1] - 1 + dy) % G + 1)

    # States in the authors' code's order (x fastest), not breadth-first discovery order.
    order: list[Cell] = [(x, y) for y in range(1, G + 1) for x in range(1, G + 1)]
    index = {c: i for i, c in enumerate(order)}
    # Sparse (S * A, S) transitions: a dense (S, A, S) array would need 32 G^4 bytes.
    succ = np.array([[index[move(c, a)] for a in range(len(actions))] for c in order])
    SA = G * G * len(actions)
    P = sp.csr_array((np.ones(SA), succ.ravel(), np.arange(SA + 1)), shape=(SA, G * G))
    mu0 = np.zeros(G * G)
    mu0[index[(1, 1)]] = 1.0
    mdp = mdp_from_arrays(P, mu0, g, states=order, actions=actions)
    A = mdp.n_actions

    # Entered cell of every (s, a), as 0-based (x, y) index arrays of shape (S, A).
    nx = np.array([[move(c, a)[0] - 1 for a in range(A)] for c in order], dtype=np.int64)
    ny = np.array([[move(c, a)[1] - 1 for a in range(A)] for c in order], dtype=np.int64)

    def sampler(rng: np.random.Generator, k: int) -> FloatArray:
        if dist == "uniform":
            types = rng.uniform(size=(k, n, G, G))
            types[:, :, 0, 0] = 0.0
            return types
        flat = np.zeros((k, n, G * G))
        goal = rng.integers(1, G * G, size=(k, n))  # flat index 0 is cell (1, 1)
        value = rng.uniform(size=(k, n))
        np.put_along_axis(flat, goal[:, :, None], value[:, :, None], axis=2)
        return flat.reshape(k, n, G, G)

    def reward_fn(types: FloatArray) -> FloatArray:
        R: FloatArray = types[:, :, nx, ny]  # (k, n, S, A)
        return R

    def counterfactual_fn(types: FloatArray, i: int) -> FloatArray:
        types[:, i] = 0.0
        return types

    entered = (nx * G + ny)[None, None]  # (1, 1, S, A): flat [x, y] index of the entered cell

    def values_fn(types: FloatArray) -> FloatArray:
        out: FloatArray = types.reshape(types.shape[0], n, G * G).sum(axis=2)
        return out

    def allocation_fn(types: FloatArray) -> FloatArray:
        goal = np.abs(types.reshape(types.shape[0], n, G * G)).argmax(axis=2)  # (k, n)
        out: FloatArray = (entered == goal[:, :, None, None]).astype(np.float64)
        return out

    single = None
    if dist == "onecell":
        single = SingleParameter(
            values_fn, allocation_fn, (uniform_values(0.0, 1.0),) * n,
            public_information=True, nonvalue_part="the goal cell",
        )

    box = (n if dist == "onecell" else n * G * G) / (1.0 - g)
    return Environment(
        name="gridworld",
        mdp=mdp,
        n_agents=n,
        dist=dist,
        type_shape=(n, G, G),
        sampler=sampler,
        reward_fn=reward_fn,
        counterfactual_fn=counterfactual_fn,
        objective="revenue",
        boost_box=(-box, box),
        optimise_weights=False,
        nonnegative_rewards=True,
        params={"n_agents": n, "grid": G, "dist": dist, "gamma": g},
        single_parameter=single,
    )
