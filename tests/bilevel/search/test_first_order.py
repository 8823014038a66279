"""The first-order search: positive weights on asymmetric sales, NaN gradients refused, the
cvxpylayers reference agrees with the fast solver; bad parameters of every gradient searcher."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bilevel import AMADesigner, make_env, resolve_objective
from bilevel.search import FirstOrder, MultiStart, ZerothOrder


@pytest.fixture(autouse=True)
def _one_torch_thread() -> object:
    # tiny batched ops are much faster single-threaded on a loaded 2-core machine
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield None
    torch.set_num_threads(old)


def test_first_order_optimises_positive_weights_for_asymmetric() -> None:
    env = make_env("sales", n_agents=3, n_items=2, dist="asymmetric")
    d = AMADesigner(method="first_order", steps=30, learning_rate=0.05, optimizer="adam",
                    n_validation=0, eval_samples=500, seed=0).fit(env)
    w = d.mechanism_.weights
    assert np.all(w > 0)
    assert not np.allclose(w, 1.0)  # weights moved


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
