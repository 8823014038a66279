"""The differentiable profile objective: exact hypergradients against central differences, and
the envelope estimator (same value, different gradient)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bilevel import Environment, make_env, resolve_objective
from bilevel._differentiable import affine_welfare, profile_objective, sample_batch
from bilevel.solvers import EntropicSolver


@pytest.fixture(autouse=True)
def _one_torch_thread() -> object:
    # tiny batched ops are much faster single-threaded on a loaded 2-core machine
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield None
    torch.set_num_threads(old)


def _regularised_objective(
    env: Environment, objective: str, alpha: float, envelope: bool, seed: int = 0
) -> tuple[object, object]:
    obj = resolve_objective(env, objective)
    batch = sample_batch(env, obj, np.random.default_rng(seed), 4)
    solver = EntropicSolver(env.mdp, alpha, tol=1e-12)
    n = env.n_agents

    def f(log_w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        w = torch.exp(log_w)
        x_all = solver(affine_welfare(w, b, batch.all_rewards))
        K = batch.rewards.shape[0]
        x_cf = x_all[K:].reshape(n, K, *x_all.shape[1:]) if x_all.shape[0] > K else None
        return profile_objective(obj, w, b, batch, x_all[:K], x_cf, envelope=envelope).mean()

    return f, obj


@pytest.mark.parametrize(
    ("name", "kwargs", "objective"),
    [
        ("sales", {"n_agents": 2, "n_items": 2}, "revenue"),
        ("sales", {"n_agents": 3, "n_items": 2, "dist": "asymmetric"}, "revenue"),
        ("scheduling", {"n_agents": 2, "n_tasks": 3}, "makespan"),
        ("gridworld", {"n_agents": 2, "grid": 3}, "revenue"),
        ("sales", {"n_agents": 2, "n_items": 2}, "welfare"),
    ],
)
def test_exact_hypergradient_matches_central_differences(
    name: str, kwargs: dict[str, object], objective: str
) -> None:
    env = make_env(name, **kwargs)
    f, _ = _regularised_objective(env, objective, alpha=0.1, envelope=False)
    rng = np.random.default_rng(1)
    lw = torch.tensor(rng.normal(0, 0.2, env.n_agents), requires_grad=True)
    b = torch.tensor(rng.uniform(0, 1, env.mdp.shape), requires_grad=True)
    val = f(lw, b)  # type: ignore[operator]
    val.backward()
    assert lw.grad is not None and b.grad is not None
    d_lw = rng.normal(size=lw.shape)
    d_b = rng.normal(size=b.shape)
    auto = float((lw.grad.numpy() * d_lw).sum() + (b.grad.numpy() * d_b).sum())
    h = 1e-5
    with torch.no_grad():
        plus = f(lw + h * torch.tensor(d_lw), b + h * torch.tensor(d_b))  # type: ignore[operator]
        minus = f(lw - h * torch.tensor(d_lw), b - h * torch.tensor(d_b))  # type: ignore[operator]
    fd = float(plus - minus) / (2 * h)
    np.testing.assert_allclose(auto, fd, rtol=1e-5, atol=1e-8, err_msg=f"{name} {objective}")


def test_envelope_estimator_differs_from_exact_but_agrees_on_welfare_term() -> None:
    env = make_env("sales", n_agents=3, n_items=2)
    f_exact, _ = _regularised_objective(env, "revenue", 0.1, envelope=False)
    f_env, _ = _regularised_objective(env, "revenue", 0.1, envelope=True)
    b1 = torch.full(env.mdp.shape, 0.3, dtype=torch.float64, requires_grad=True)
    b2 = torch.full(env.mdp.shape, 0.3, dtype=torch.float64, requires_grad=True)
    lw = torch.zeros(env.n_agents, dtype=torch.float64)
    v1, v2 = f_exact(lw, b1), f_env(lw, b2)  # type: ignore[operator]
    # same value (detaching does not change it), different gradients (entropy ignored)
    np.testing.assert_allclose(float(v1.detach()), float(v2.detach()), rtol=0, atol=1e-12)
    v1.backward()
    v2.backward()
    assert b1.grad is not None and b2.grad is not None
    assert float((b1.grad - b2.grad).abs().max()) > 1e-6
