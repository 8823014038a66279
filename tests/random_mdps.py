"""Random MDPs shared by the solver tests."""

from __future__ import annotations

import numpy as np

from bilevel.models import TabularMDP, mdp_from_arrays


def random_layered_mdp(
    rng: np.random.Generator,
    levels: tuple[int, ...] = (2, 3, 4, 3),
    *,
    deterministic: bool = False,
    A: int = 3,
) -> TabularMDP:
    """States in levels; each action leads to the next level (the last level exits).

    Stochastic: a random distribution over the next level; deterministic: one random successor.
    The initial distribution is random over the first level; gamma = 1.
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


def random_discounted_mdp(rng: np.random.Generator, S: int = 6, A: int = 3) -> TabularMDP:
    """Dense random stochastic transitions, random initial distribution, gamma = 0.9."""
    P = rng.dirichlet(np.ones(S), size=(S, A))
    return mdp_from_arrays(P, rng.dirichlet(np.ones(S)), gamma=0.9)
