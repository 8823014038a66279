"""Soft-Bellman (causal-entropy) solver: flow constraints, closed forms, gradients, α → 0."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from bilevel.models import TabularMDP
from bilevel.models.typing import FloatArray
from bilevel.solvers import EntropicSolver, solve_dp
from bilevel.solvers._soft import SoftBellmanSolver
from tests import catalogue

ENVS = [
    ("sales", {"n_agents": 2, "n_items": 2}),
    ("scheduling", {"n_agents": 2, "n_tasks": 3}),
    ("gridworld", {"n_agents": 2, "grid": 3}),
    ("matching", {"n_agents": 2, "rounds": 2}),
]


def _rewards(name: str, kwargs: dict[str, object], k: int = 3) -> tuple[TabularMDP, FloatArray]:
    env = catalogue.env(name, **kwargs)
    return env.mdp, catalogue.welfare_rewards(env, 0, k, shared_boost=True)


@pytest.mark.parametrize(("name", "kwargs"), ENVS)
@pytest.mark.parametrize("alpha", [1.0, 0.1])
def test_flow_constraints_and_softmax_policy(
    name: str, kwargs: dict[str, object], alpha: float
) -> None:
    mdp, c = _rewards(name, kwargs)
    x = SoftBellmanSolver(mdp, alpha)(torch.tensor(c)).numpy()
    M = mdp.flow_matrix().toarray()
    flow = np.einsum("uk,bk->bu", M, x.reshape(x.shape[0], -1))
    np.testing.assert_allclose(flow, np.broadcast_to(mdp.mu0, flow.shape),
                               rtol=0, atol=1e-9)
    assert np.all(x > 0)


def test_static_problem_is_a_softmax() -> None:
    # one state, flow leaves: x(a) = softmax(c / alpha)
    from bilevel.models import mdp_from_arrays

    mdp = mdp_from_arrays(np.zeros((1, 3, 1)), [1.0], 1.0)
    c = np.array([[0.3, 1.0, -0.5]])
    x = SoftBellmanSolver(mdp, 0.5)(torch.tensor(c[None])).numpy()[0, 0]
    e = np.exp(c[0] / 0.5)
    np.testing.assert_allclose(x, e / e.sum(), rtol=1e-12)


@pytest.mark.parametrize("kind", ["layered", "discounted"])
def test_gradcheck(kind: str) -> None:
    rng = np.random.default_rng(1)
    if kind == "layered":
        mdp = catalogue.random_layered_mdp(rng, (2, 3, 2))
    else:
        mdp = catalogue.random_cyclic_mdp(rng, S=4, A=2)
    solver = SoftBellmanSolver(mdp, 0.5)
    c = torch.tensor(rng.normal(size=(2, *mdp.shape)), requires_grad=True)
    g = torch.tensor(rng.normal(size=(2, *mdp.shape)))
    assert torch.autograd.gradcheck(lambda t: (solver(t) * g).sum(), (c,), eps=1e-6, atol=1e-7)


def test_alpha_to_zero_converges_to_lp_and_differs_from_occupancy_entropy() -> None:
    mdp, c = _rewards("sales", {"n_agents": 3, "n_items": 2})
    exact = solve_dp(mdp, c).value
    gaps = []
    for alpha in (1.0, 0.1, 0.01, 0.001):
        x = SoftBellmanSolver(mdp, alpha)(torch.tensor(c)).numpy()
        gaps.append(float(np.abs((x * c).sum(axis=(1, 2)) - exact).max()))
    assert all(a >= b for a, b in itertools.pairwise(gaps))
    assert gaps[-1] < 1e-2
    x_soft = SoftBellmanSolver(mdp, 1.0)(torch.tensor(c)).numpy()
    x_occ = EntropicSolver(mdp, 1.0)(torch.tensor(c)).detach().numpy()
    assert np.abs(x_soft - x_occ).max() > 1e-3  # a different regulariser


def test_bad_input() -> None:
    mdp, c = _rewards("sales", {"n_agents": 2, "n_items": 2})
    with pytest.raises(ValueError, match="expected alpha > 0"):
        SoftBellmanSolver(mdp, 0.0)
    with pytest.raises(ValueError, match="expected reward of shape"):
        SoftBellmanSolver(mdp, 1.0)(torch.zeros(2, 3))
    bad = torch.tensor(c)
    bad[0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="expected finite rewards"):
        SoftBellmanSolver(mdp, 1.0)(bad)
