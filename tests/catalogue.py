"""One catalogue of small test problems, shared by the solver tests.

* random MDPs: layered (acyclic, ``gamma = 1``) and cyclic (discounted), stochastic or
  deterministic, each drawn from a ``numpy.random.Generator``;
* small named environments (``ENVIRONMENTS``: sales 2x1 and 3x2, scheduling 2x3, gridworld 3,
  a small matching), built once per session by :func:`named_env` (any other one by
  :func:`env`), and the reward arrays the tests solve on them (:func:`welfare_rewards`,
  :func:`affine_welfare_rewards`);
* :func:`problems`: every named environment and random MDP with a seeded batch of rewards, the
  instances on which every inner solver must satisfy the contract of
  ``tests/solvers/test_contract.py``.

Everything is a pure function of its arguments (and seeds), so a test that draws the same
instance twice gets the same numbers.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import numpy as np

from bilevel.models import Environment, TabularMDP, make_env, mdp_from_arrays
from bilevel.models.typing import FloatArray

__all__ = [
    "ENVIRONMENTS",
    "RANDOM_KINDS",
    "SEEDS",
    "Problem",
    "affine_welfare_rewards",
    "env",
    "named_env",
    "problem",
    "problem_keys",
    "problems",
    "random_cyclic_mdp",
    "random_layered_mdp",
    "welfare_rewards",
]

SEEDS = (0, 1, 2)
"""Seeds of the random instances of :func:`problems`."""

ENVIRONMENTS: dict[str, dict[str, Any]] = {
    "sales-2x1": {"name": "sales", "n_agents": 2, "n_items": 1},
    "sales-3x2": {"name": "sales", "n_agents": 3, "n_items": 2},
    "scheduling-2x3": {"name": "scheduling", "n_agents": 2, "n_tasks": 3},
    "gridworld-3": {"name": "gridworld", "n_agents": 2, "grid": 3},
    "matching-small": {"name": "matching", "n_agents": 2, "rounds": 2},
}
"""Small named environments: key -> ``make_env`` arguments (``name`` and keywords)."""


# ---------------------------------------------------------------------- random MDPs


def random_layered_mdp(
    rng: np.random.Generator,
    levels: tuple[int, ...] = (2, 3, 4, 3),
    *,
    deterministic: bool = False,
    A: int = 3,
) -> TabularMDP:
    """States in levels; each action leads to the next level (the last level exits).

    Parameters
    ----------
    rng : numpy.random.Generator
        Source of the transitions and the initial distribution.
    levels : tuple of int, default (2, 3, 4, 3)
        Number of states per level (S = sum(levels)).
    deterministic : bool, default False
        One random successor per (s, a) instead of a random distribution over the next level.
    A : int, default 3
        Number of actions.

    Returns
    -------
    TabularMDP
        Layered, ``gamma = 1``, initial distribution random over the first level.
    """
    S = sum(levels)
    starts = np.cumsum((0, *levels))
    P = np.zeros((S, A, S))
    for k in range(len(levels) - 1):
        lo, mid, hi = starts[k], starts[k + 1], starts[k + 2]
        if deterministic:
            tgt = rng.integers(mid, hi, size=(mid - lo, A))
            np.put_along_axis(P[lo:mid], tgt[:, :, None], 1.0, axis=2)
        else:
            P[lo:mid, :, mid:hi] = rng.dirichlet(np.ones(hi - mid), size=(mid - lo, A))
    mu0 = np.zeros(S)
    mu0[: levels[0]] = rng.dirichlet(np.ones(levels[0]))
    return mdp_from_arrays(P, mu0, gamma=1.0)


def random_cyclic_mdp(
    rng: np.random.Generator,
    S: int = 6,
    A: int = 3,
    *,
    gamma: float = 0.9,
    deterministic: bool = False,
    exits: bool = False,
    spread_mu0: bool = False,
) -> TabularMDP:
    """A discounted MDP whose transition graph has cycles (almost surely).

    Parameters
    ----------
    rng : numpy.random.Generator
        Source of the transitions and the initial distribution.
    S, A : int, default 6, 3
        Numbers of states and actions.
    gamma : float, default 0.9
        Discount factor (< 1).
    deterministic : bool, default False
        ``False``: dense random transition rows and a random initial distribution.
        ``True``: one random successor per (s, a) (the gridworld's structure) and one random
        start state (or a random distribution with ``spread_mu0``).
    exits : bool, default False
        Deterministic only: about 20 % of the pairs (s, a) leave the system.
    spread_mu0 : bool, default False
        Deterministic only: a random initial distribution instead of one start state.

    Returns
    -------
    TabularMDP
        Not layered; ``is_deterministic`` as requested.
    """
    if not deterministic:
        P = rng.dirichlet(np.ones(S), size=(S, A))
        return mdp_from_arrays(P, rng.dirichlet(np.ones(S)), gamma=gamma)
    succ = rng.integers(0, S, size=(S, A))
    if exits:
        succ[rng.uniform(size=(S, A)) < 0.2] = S
    Pe = np.zeros((S, A, S + 1))
    np.put_along_axis(Pe, succ[:, :, None], 1.0, axis=2)
    mu0 = rng.dirichlet(np.ones(S)) if spread_mu0 else np.eye(S)[rng.integers(S)]
    mdp = mdp_from_arrays(Pe[:, :, :S], mu0, gamma)
    assert mdp.is_deterministic and not mdp.is_layered
    return mdp


# ---------------------------------------------------------------------- environments


@functools.cache
def _cached_env(name: str, items: tuple[tuple[str, Any], ...]) -> Environment:
    return make_env(name, **dict(items))


def env(name: str, **kwargs: Any) -> Environment:
    """``make_env(name, **kwargs)``, built once per session (environments are immutable)."""
    return _cached_env(name, tuple(sorted(kwargs.items())))


def named_env(key: str) -> Environment:
    """The environment ``ENVIRONMENTS[key]`` (e.g. ``"sales-3x2"``)."""
    kwargs = dict(ENVIRONMENTS[key])
    return env(kwargs.pop("name"), **kwargs)


def welfare_rewards(
    environment: Environment, seed: int, k: int, *, shared_boost: bool = False
) -> FloatArray:
    """Welfare of ``k`` sampled type profiles plus U[0, 1) boosts.

    Parameters
    ----------
    environment : Environment
    seed : int
        Seed of the profiles and the boosts.
    k : int
        Number of reward arrays.
    shared_boost : bool, default False
        One boost array (S, A) added to every profile instead of one per profile.

    Returns
    -------
    ndarray of shape (k, S, A)
    """
    rng = np.random.default_rng(seed)
    R = environment.rewards(environment.sample_types(rng, k)).sum(axis=1)
    shape = environment.mdp.shape if shared_boost else (k, *environment.mdp.shape)
    out: FloatArray = np.asarray(R + rng.uniform(size=shape), dtype=np.float64)
    return out


def affine_welfare_rewards(
    environment: Environment, seed: int, scale: float, k: int = 4
) -> FloatArray:
    """``k`` welfare arrays (VCG) and ``k`` affine welfare arrays of one random AMA.

    The AMA has weights U[0.3, 3) and boosts N(0, scale²) (``scale`` about the size of one
    step's rewards).

    Returns
    -------
    ndarray of shape (2k, S, A)
    """
    rng = np.random.default_rng(seed)
    R = environment.rewards(environment.sample_types(rng, k))  # (k, n, S, A)
    w = rng.uniform(0.3, 3.0, size=environment.n_agents)
    b = rng.normal(0.0, scale, size=environment.mdp.shape)
    c_ama = np.einsum("n,knsa->ksa", w, R) + b
    out: FloatArray = np.concatenate([R.sum(axis=1), c_ama])
    return out


# ---------------------------------------------------------------------- the catalogue


@dataclass(frozen=True, eq=False)
class Problem:
    """One catalogue instance: an MDP and a batch of K reward arrays.

    Attributes
    ----------
    key : str
        Name, e.g. ``"sales-3x2"`` or ``"cyclic-deterministic-1"``.
    mdp : TabularMDP
    rewards : ndarray of shape (K, S, A)
    """

    key: str
    mdp: TabularMDP
    rewards: FloatArray

    def __repr__(self) -> str:
        return f"Problem({self.key!r}, S={self.mdp.n_states}, A={self.mdp.n_actions})"


def _random_problem(kind: str, seed: int, k: int) -> Problem:
    rng = np.random.default_rng(seed)
    if kind == "layered-stochastic":
        mdp = random_layered_mdp(rng, (2, 3, 2))
    elif kind == "layered-deterministic":
        mdp = random_layered_mdp(rng, (2, 3, 2), deterministic=True)
    elif kind == "cyclic-stochastic":
        mdp = random_cyclic_mdp(rng, S=5)
    else:
        mdp = random_cyclic_mdp(rng, S=6, deterministic=True, exits=seed % 2 == 1)
    return Problem(f"{kind}-{seed}", mdp, rng.normal(size=(k, *mdp.shape)))


RANDOM_KINDS = ("layered-stochastic", "layered-deterministic", "cyclic-stochastic",
                "cyclic-deterministic")


@functools.cache
def problems(k: int = 3) -> tuple[Problem, ...]:
    """Every catalogue instance with ``k`` reward arrays each.

    The named environments (welfare of profiles drawn with seed 0, plus boosts) and the random
    MDPs of ``RANDOM_KINDS`` for the first two ``SEEDS`` (normal rewards).
    """
    out = [Problem(key, named_env(key).mdp, welfare_rewards(named_env(key), 0, k))
           for key in ENVIRONMENTS]
    out += [_random_problem(kind, seed, k) for kind in RANDOM_KINDS for seed in SEEDS[:2]]
    return tuple(out)


def problem_keys() -> list[str]:
    """The keys of :func:`problems`, in order (for ``pytest.mark.parametrize`` ids)."""
    return [p.key for p in problems()]


def problem(key: str, k: int = 3) -> Problem:
    """The catalogue instance named ``key``."""
    for p in problems(k):
        if p.key == key:
            return p
    raise KeyError(f"expected a catalogue problem in {problem_keys()}, got {key!r}")
