"""Environment factories for the tests (importable by subprocesses and spawned workers)."""

from __future__ import annotations

import numpy as np

from bilevel.models import Environment, custom_env, mdp_from_arrays


def auction(*, n_agents: int = 2, high: float = 1.0) -> Environment:
    """One item, ``n_agents`` bidders with U[0, high] values, a lambda sampler (action n: keep)."""
    n = int(n_agents)

    def rewards(v: np.ndarray) -> np.ndarray:
        R = np.zeros((v.shape[0], n, 1, n + 1))
        R[:, np.arange(n), 0, np.arange(n)] = v
        return R

    return custom_env(mdp_from_arrays(np.zeros((1, n + 1, 1)), [1.0], 1.0), n_agents=n,
                      type_shape=(n,), sampler=lambda rng, k: rng.uniform(0.0, high, (k, n)),
                      reward_fn=rewards, name="auction", boost_box=(0.0, high))


NOT_CALLABLE = 3
