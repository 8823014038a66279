"""The zeroth-order search: the perturbation gradient is unbiased on a smooth toy, the search
minimises makespan and is reproducible for a seed."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bilevel import AMADesigner, make_env
from bilevel.search._zeroth_order import perturbation_gradient


@pytest.fixture(autouse=True)
def _one_torch_thread() -> object:
    # tiny batched ops are much faster single-threaded on a loaded 2-core machine
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield None
    torch.set_num_threads(old)


def test_perturbation_gradient_is_unbiased_on_a_smooth_toy() -> None:
    # h(theta) = sin(a . theta) + theta' Q theta with known gradient
    rng = np.random.default_rng(0)
    d = 5
    a = rng.normal(size=d)
    Q = rng.normal(size=(d, d))
    Q = Q @ Q.T / d
    theta = rng.normal(size=d)

    def h(t: np.ndarray) -> np.ndarray:
        out: np.ndarray = np.sin(t @ a) + np.einsum("...i,ij,...j->...", t, Q, t)
        return out

    true = np.cos(theta @ a) * a + 2 * Q @ theta
    mu, N, reps = 1e-3, 50, 400
    ests = []
    for _ in range(reps):
        u = rng.standard_normal((N, 1, d))
        diff = (h(theta + mu * u[:, 0]) - h(theta))[:, None]
        ests.append(perturbation_gradient(diff, u, mu))
    E = np.array(ests)
    mean, se = E.mean(axis=0), E.std(axis=0, ddof=1) / np.sqrt(reps)
    assert np.all(np.abs(mean - true) < 4 * se + 1e-3), (mean, true, se)
    # and it can fail: a biased estimator (missing the 1/mu) is detected
    assert np.any(np.abs(mean * mu - true) > 4 * se * mu + 1e-3)


def test_makespan_search_minimises() -> None:
    env = make_env("scheduling", n_agents=2, n_tasks=3, makespan="reference")
    d = AMADesigner(method="zeroth_order", steps=200, n_validation=300, eval_every=20,
                    eval_samples=2000, seed=0).fit(env)
    ev = d.evaluation_
    assert ev is not None and not ev.maximize and ev.diff_mean is not None
    assert ev.diff_se is not None
    assert ev.diff_mean < -4 * ev.diff_se  # shorter makespan than VCG (paper Table 3: -11%)


def test_search_reproducible() -> None:
    env = make_env("sales", n_agents=2, n_items=2)
    kw = {"method": "zeroth_order", "steps": 10, "n_validation": 0, "eval_samples": 100}
    m1 = AMADesigner(**kw, seed=3).fit(env).mechanism_  # type: ignore[arg-type]
    m2 = AMADesigner(**kw, seed=3).fit(env).mechanism_  # type: ignore[arg-type]
    np.testing.assert_array_equal(m1.boosts, m2.boosts)
