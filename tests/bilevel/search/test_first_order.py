"""Gradient-based outer search: hypergradients vs finite differences, the zeroth-order
estimator's unbiasedness, the searchers through AMADesigner, and bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bilevel import AMADesigner, Environment, make_env, resolve_objective
from bilevel._differentiable import affine_welfare, profile_objective, sample_batch
from bilevel.search import FirstOrder, MultiStart, ZerothOrder
from bilevel.search._zeroth_order import perturbation_gradient
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


def test_perturbation_gradient_is_unbiased_on_a_smooth_toy() -> None:
    # h(theta) = sin(a . theta) + theta' Q theta with known gradient
    rng = np.random.default_rng(0)
    d = 5
    a = rng.normal(size=d)
    Q = rng.normal(size=(d, d))
    Q = Q @ Q.T / d
    theta = rng.normal(size=d)

    def h(t: np.ndarray) -> np.ndarray:
        return np.sin(t @ a) + np.einsum("...i,ij,...j->...", t, Q, t)

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


@pytest.mark.parametrize("method", ["first_order", "zeroth_order", "multistart"])
def test_designer_gradient_methods_improve_on_vcg(method: str) -> None:
    env = make_env("sales", n_agents=3, n_items=2)
    extra = {"n_points": 256} if method == "multistart" else {}
    d = AMADesigner(method=method, steps=100, n_validation=500, eval_every=20,
                    eval_samples=3000, seed=1, n_starts=2, **extra).fit(env)
    ev = d.evaluation_
    assert ev is not None and ev.diff_mean is not None and ev.diff_se is not None
    # VCG revenue is 0.5; every method must beat it clearly on fresh profiles
    assert ev.diff_mean > 4 * ev.diff_se, (method, ev.diff_mean, ev.diff_se)
    assert np.all(d.mechanism_.weights > 0)


def test_first_order_optimises_positive_weights_for_asymmetric() -> None:
    env = make_env("sales", n_agents=3, n_items=2, dist="asymmetric")
    d = AMADesigner(method="first_order", steps=30, learning_rate=0.05, optimizer="adam",
                    n_validation=0, eval_samples=500, seed=0).fit(env)
    w = d.mechanism_.weights
    assert np.all(w > 0)
    assert not np.allclose(w, 1.0)  # weights moved


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


@pytest.mark.parametrize(
    ("factory", "fragment"),
    [
        (lambda: FirstOrder(alpha=0.0), "expected alpha > 0"),
        (lambda: FirstOrder(alpha=float("nan")), "expected alpha > 0"),
        (lambda: FirstOrder(lr=-0.1), "expected lr > 0"),
        (lambda: FirstOrder(optimizer="rmsprop"), "expected optimizer"),
        (lambda: FirstOrder(estimator="full"), "expected estimator"),
        (lambda: ZerothOrder(lr=0.0), "expected lr > 0"),
        (lambda: ZerothOrder(sigma=0.0), "expected sigma > 0"),
        (lambda: ZerothOrder(n_perturbations=0), "expected n_perturbations"),
        (lambda: MultiStart(n_starts=0), "expected n_starts"),
    ],
)
def test_bad_searcher_parameters(factory: object, fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        factory()  # type: ignore[operator]


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"method": "first_order", "alpha": -1.0}, "expected alpha as"),
        ({"method": "first_order", "learning_rate": 0.0}, "expected learning_rate as"),
        ({"method": "multistart", "refine": "grid"}, "expected refine as"),
        ({"method": "zeroth_order", "steps": 0}, "expected steps as"),
    ],
)
def test_bad_designer_parameters(kwargs: dict[str, object], fragment: str) -> None:
    env = make_env("sales", n_agents=2, n_items=2)
    with pytest.raises(ValueError, match=fragment):
        AMADesigner(**kwargs).fit(env)  # type: ignore[arg-type]


def test_nan_gradients_raise() -> None:
    env = make_env("sales", n_agents=2, n_items=2)

    def bad_inner(c: torch.Tensor) -> torch.Tensor:
        return c * float("nan")

    fo = FirstOrder(iters=1, inner=bad_inner)
    from bilevel._outcomes import exact_inner
    from bilevel.search import DesignProblem

    problem = DesignProblem(env, resolve_objective(env, None), exact_inner("dp"), False,
                            (-2.0, 2.0))
    state = fo.init(problem, np.random.default_rng(0))
    with pytest.raises(FloatingPointError, match="expected finite gradients"):
        fo.step(problem, state)


def test_first_order_through_cvxpylayers_reference_matches_fast_solver() -> None:
    env = make_env("sales", n_agents=2, n_items=2)
    kw = {"method": "first_order", "steps": 3, "alpha": 0.1, "n_validation": 0,
          "eval_samples": 100, "seed": 5}
    fast = AMADesigner(**kw).fit(env).mechanism_  # type: ignore[arg-type]
    ref = AMADesigner(**kw, regularised_solver="cvxpy").fit(env).mechanism_  # type: ignore[arg-type]
    np.testing.assert_allclose(fast.boosts, ref.boosts, rtol=0, atol=1e-8)
