"""A custom environment as a factory: ``bilevel design examples.custom_environment:auction``.

A factory is any module-level function returning an :class:`bilevel.models.Environment`. Named
as ``"package.module:function"`` — on the command line, in a TOML ``[env] name``, or in
``bilevel.make_env`` — the environment remembers that name and its keyword arguments, so it
reaches worker processes (``--workers N``, a process pool) as that recipe and each worker
rebuilds it: the callables inside may be lambdas or closures. Results do not depend on the
number of workers.

Usage (from the repository root, which puts ``examples`` on the import path)::

    bilevel design examples.custom_environment:auction --n-agents 2 --points 200 --workers 2
    bilevel run examples/custom_experiment.toml
    python examples/custom_environment.py

A package can also publish factories as plugins, under a plain name, through the entry-point
group ``bilevel.environments`` of its ``pyproject.toml``::

    [project.entry-points."bilevel.environments"]
    auction = "examples.custom_environment:auction"
"""

from __future__ import annotations

import numpy as np

from bilevel.models import Environment, custom_env, mdp_from_arrays


def auction(*, n_agents: int = 2, high: float = 1.0) -> Environment:
    """One item sold to ``n_agents`` bidders with values U[0, high] (action n: keep it).

    Parameters
    ----------
    n_agents : int, default 2
        Number of bidders.
    high : float, default 1.0
        Upper end of the value distribution.

    Returns
    -------
    Environment
    """
    n = int(n_agents)
    P = np.zeros((1, n + 1, 1))  # one state, n + 1 actions, the flow leaves: a static auction

    def rewards(v: np.ndarray) -> np.ndarray:
        R = np.zeros((v.shape[0], n, 1, n + 1))
        R[:, np.arange(n), 0, np.arange(n)] = v  # action a gives the item to bidder a
        return R

    return custom_env(
        mdp_from_arrays(P, [1.0], 1.0),
        n_agents=n,
        type_shape=(n,),
        sampler=lambda rng, k: rng.uniform(0.0, high, size=(k, n)),  # a lambda: fine here
        reward_fn=rewards,
        name="auction",
        dist="uniform",
        boost_box=(0.0, high),
        recipe={"example": "auction/v1", "n_agents": n, "high": high},
    )


if __name__ == "__main__":
    import sys
    from pathlib import Path

    from bilevel import AMADesigner, make_env
    from bilevel._workers import process_pool

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root
    env = make_env("examples.custom_environment:auction", n_agents=2)
    with process_pool(2) as pool:
        designer = AMADesigner(method="grid", n_points=200, n_profiles=500, eval_samples=2000,
                               executor=pool, seed=0).fit(env)
    print(designer.evaluation_)
