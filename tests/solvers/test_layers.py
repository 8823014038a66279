"""The cvxpylayers reference solver of the entropy-regularised program (bilevel.solvers._layers).

Ground truth for gradients is the closed-form implicit derivative of the regularised program of
Curry et al. (2024), Appendix E, eq. (13) (see ``bilevel.solvers._entropic``, "Gradients"),
``dL/dc = (X g - X M^T (M X M^T)^{-1} M X g) / alpha``, evaluated in 50-digit arithmetic
(mpmath) at the layer's own forward solution. Gradients are compared with
``||got - ref|| <= 1e-5 ||ref|| + 1e-13 ||x * g|| / alpha``: the second term is the float64
cancellation floor of the formula (at alpha = 0.01 and a nearly deterministic optimum the VJP
can be ~1e-16 of its terms), far below the 1e-5 relative target on every instance used here.
"""

from __future__ import annotations

import importlib.util
import warnings
from typing import Any

import numpy as np
import pytest
import torch

from bilevel.models import Environment
from bilevel.models.typing import FloatArray
from bilevel.solvers._layers import (
    DIFFCP_MIN_ALPHA,
    FLOW_TOL,
    CvxpyEntropicLayer,
    GradientAccuracyWarning,
)
from bilevel.solvers._result import InnerSolveError, Status
from tests import catalogue

mp = pytest.importorskip("mpmath")

ALPHAS = (1.0, 0.1, 0.01)
ENVS: dict[str, dict[str, Any]] = {
    "sales": {"name": "sales", "n_agents": 3, "n_items": 2},
    "scheduling": {"name": "scheduling", "n_agents": 2, "n_tasks": 3},
    "gridworld": {"name": "gridworld", "grid": 3},
}


def _env(name: str) -> Environment:
    kw = dict(ENVS[name])
    return catalogue.env(kw.pop("name"), **kw)


def _rewards(env: Environment, seed: int, k: int) -> FloatArray:
    return catalogue.welfare_rewards(env, seed, k, shared_boost=True)


def _closed_form_mp(M: np.ndarray, x: np.ndarray, g: np.ndarray, alpha: float) -> np.ndarray:
    """``(X g - X M^T (M X M^T)^{-1} M X g) / alpha`` in 50-digit arithmetic."""
    mp.mp.dps = 50
    keep = x > 0  # exactly-zero (underflowed) entries have zero gradient
    Md = mp.matrix(M[:, keep].tolist())
    xs = [mp.mpf(float(t)) for t in x[keep]]
    xg = mp.matrix([xi * mp.mpf(float(gi)) for xi, gi in zip(xs, g[keep], strict=True)])
    K = mp.matrix(M.shape[0], M.shape[0])
    for i in range(M.shape[0]):
        for j in range(i, M.shape[0]):
            K[i, j] = K[j, i] = mp.fsum(Md[i, k] * xs[k] * Md[j, k] for k in range(len(xs)))
    y = mp.lu_solve(K, Md * xg)
    MTy = Md.T * y
    out = np.zeros_like(x)
    out[keep] = [float((xg[k] - xs[k] * MTy[k]) / alpha) for k in range(len(xs))]
    return out


def _assert_vjp_close(got: np.ndarray, ref: np.ndarray, x: np.ndarray, g: np.ndarray,
                      alpha: float, floor_rel: float = 1e-13) -> None:
    floor = floor_rel * np.linalg.norm(x * g) / alpha
    err = np.linalg.norm(got - ref)
    assert err <= 1e-5 * np.linalg.norm(ref) + floor, (err, np.linalg.norm(ref), floor)


# ---------------------------------------------------------------------- forward


@pytest.mark.parametrize("name", list(ENVS))
@pytest.mark.parametrize("alpha", ALPHAS)
def test_forward_feasible_and_nonnegative(name: str, alpha: float) -> None:
    env = _env(name)
    layer = CvxpyEntropicLayer(env.mdp, alpha)
    C = torch.from_numpy(_rewards(env, 0, 3))
    x = layer(C).numpy()
    assert x.shape == C.shape
    assert x.min() >= 0.0
    M = env.mdp.flow_matrix()
    residual = np.abs(x.reshape(3, -1) @ M.T - env.mdp.mu0).max()
    # The Newton refinement reaches max |M x - mu0| <= FLOW_TOL = 1e-11 (or it raises).
    assert residual <= 1e-7
    assert residual <= FLOW_TOL


def test_forward_matches_softmax_on_one_decision() -> None:
    from bilevel.models._mdp import mdp_from_arrays

    mdp = mdp_from_arrays(np.zeros((1, 3, 1)), [1.0], gamma=1.0)
    c = np.array([0.3, -0.2, 1.0])
    for alpha in ALPHAS:
        x = CvxpyEntropicLayer(mdp, alpha)(torch.tensor(c[None, None, :])).numpy().ravel()
        z = np.exp((c - c.max()) / alpha)
        np.testing.assert_allclose(x, z / z.sum(), rtol=1e-9, atol=1e-15)


def test_unbatched_input_and_solve_result() -> None:
    env = _env("sales")
    layer = CvxpyEntropicLayer(env.mdp, 0.1)
    C = torch.from_numpy(_rewards(env, 1, 2))
    x1 = layer(C[0])
    assert x1.shape == env.mdp.shape
    res = layer.solve(C)
    assert res.success and res.statuses == (Status.OPTIMAL, Status.OPTIMAL)
    assert res.occupancy is not None and res.state_values is not None
    np.testing.assert_allclose(res.occupancy[0], x1.numpy(), rtol=0, atol=1e-12)
    x = res.occupancy.reshape(2, -1)
    entropy = -(x * np.log(x)).sum(axis=1)
    np.testing.assert_allclose(res.fun, res.value + 0.1 * entropy, rtol=1e-12)


# ---------------------------------------------------------------------- gradients


@pytest.mark.parametrize("name", list(ENVS))
@pytest.mark.parametrize("alpha", ALPHAS)
def test_default_vjp_matches_closed_form(name: str, alpha: float) -> None:
    env = _env(name)
    S, A = env.mdp.shape
    layer = CvxpyEntropicLayer(env.mdp, alpha)
    C = torch.from_numpy(_rewards(env, 2, 2)).requires_grad_(True)
    G = np.random.default_rng(3).standard_normal((2, S, A))
    x = layer(C)
    x.backward(torch.from_numpy(G))  # type: ignore[no-untyped-call]  # torch's backward is untyped
    assert C.grad is not None
    M = env.mdp.flow_matrix().toarray()
    X = x.detach().numpy().reshape(2, -1)
    for b in range(2):
        g = G[b].ravel()
        ref = _closed_form_mp(M, X[b], g, alpha)
        _assert_vjp_close(C.grad[b].numpy().ravel(), ref, X[b], g, alpha)


def test_vjp_matches_finite_differences() -> None:
    env = _env("gridworld")
    layer = CvxpyEntropicLayer(env.mdp, 0.5)
    c = torch.from_numpy(_rewards(env, 4, 1)[0]).requires_grad_(True)
    g = torch.from_numpy(np.random.default_rng(5).standard_normal(env.mdp.shape))
    (layer(c) * g).sum().backward()  # type: ignore[no-untyped-call]  # torch's backward is untyped
    assert c.grad is not None
    d = torch.from_numpy(np.random.default_rng(6).standard_normal(env.mdp.shape))
    h = 1e-5
    fd = float(((layer(c.detach() + h * d) - layer(c.detach() - h * d)) * g).sum()) / (2 * h)
    assert fd == pytest.approx(float((c.grad * d).sum()), rel=1e-7)


def test_diffcp_mode_warns_below_threshold_and_is_wrong_there() -> None:
    env = _env("sales")
    with pytest.warns(GradientAccuracyWarning, match="wrong by factors"):
        layer = CvxpyEntropicLayer(env.mdp, 0.01, gradient_mode="diffcp")
    assert DIFFCP_MIN_ALPHA > 0.01
    C = torch.from_numpy(_rewards(env, 7, 1)).requires_grad_(True)
    G = torch.from_numpy(np.random.default_rng(8).standard_normal(C.shape))
    layer(C).backward(G)  # type: ignore[no-untyped-call]  # torch's backward is untyped
    exact = CvxpyEntropicLayer(env.mdp, 0.01)
    C2 = C.detach().clone().requires_grad_(True)
    exact(C2).backward(G)  # type: ignore[no-untyped-call]  # torch's backward is untyped
    assert C.grad is not None and C2.grad is not None
    rel = float(torch.linalg.norm(C.grad - C2.grad) / torch.linalg.norm(C2.grad))
    assert rel > 1.0  # the documented defect: what the warning is about


def test_diffcp_mode_warns_above_threshold_too() -> None:
    env = _env("sales")
    with pytest.warns(GradientAccuracyWarning, match="approximate"):
        layer = CvxpyEntropicLayer(env.mdp, 1.0, gradient_mode="diffcp")
    C = torch.from_numpy(_rewards(env, 9, 1)).requires_grad_(True)
    x = layer(C)
    assert float(x.detach().min()) >= 0.0
    exact = CvxpyEntropicLayer(env.mdp, 1.0)(C.detach())
    np.testing.assert_allclose(x.detach().numpy(), exact.numpy(), atol=1e-6)


def test_exact_mode_does_not_warn() -> None:
    env = _env("sales")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        CvxpyEntropicLayer(env.mdp, 0.01)(torch.from_numpy(_rewards(env, 0, 1)))


# ---------------------------------------------------------------------- failures and inputs


def test_failed_solve_raises_inner_solve_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import bilevel.solvers._layers as layers_mod

    env = _env("sales")
    layer = CvxpyEntropicLayer(env.mdp, 0.1)
    monkeypatch.setattr(layers_mod, "_NEWTON_MAX_ITER", 0)  # no refinement: raw solve only
    monkeypatch.setattr(layers_mod, "FLOW_TOL", 1e-30)  # unattainable certificate
    with pytest.raises(InnerSolveError, match="max_steps_reached") as info:
        layer(torch.from_numpy(_rewards(env, 0, 2)))
    result = info.value.result
    assert not result.success and result.occupancy is not None
    assert np.isnan(result.occupancy).all()  # never zeros


def test_solver_exception_becomes_inner_solve_error() -> None:
    env = _env("sales")
    layer = CvxpyEntropicLayer(env.mdp, 0.1)
    with pytest.raises(InnerSolveError, match="error"):
        layer._raw_solve(torch.from_numpy(_rewards(env, 0, 1)).reshape(1, -1),
                         {"solve_method": "NoSuchSolver"})


@pytest.mark.parametrize("alpha", [0.0, -1.0, float("nan"), float("inf")])
def test_bad_alpha(alpha: float) -> None:
    with pytest.raises(ValueError, match="expected alpha > 0"):
        CvxpyEntropicLayer(_env("sales").mdp, alpha)


def test_bad_options() -> None:
    mdp = _env("sales").mdp
    with pytest.raises(ValueError, match="expected alpha as a float"):
        CvxpyEntropicLayer(mdp, True)
    with pytest.raises(ValueError, match="expected solver"):
        CvxpyEntropicLayer(mdp, 1.0, solver="ecos")
    with pytest.raises(ValueError, match="MOSEK"):
        CvxpyEntropicLayer(mdp, 1.0, solver="mosek")
    with pytest.raises(ValueError, match="expected gradient_mode"):
        CvxpyEntropicLayer(mdp, 1.0, gradient_mode="lpgd")


def test_bad_rewards() -> None:
    env = _env("sales")
    S, A = env.mdp.shape
    layer = CvxpyEntropicLayer(env.mdp, 1.0)
    with pytest.raises(ValueError, match="expected c of shape"):
        layer(torch.zeros((2, S, A + 1), dtype=torch.float64))
    with pytest.raises(ValueError, match="expected c of shape"):
        layer(torch.zeros((0, S, A), dtype=torch.float64))
    with pytest.raises(ValueError, match="expected c of shape"):
        layer(torch.zeros((1, 1, S, A), dtype=torch.float64))
    with pytest.raises(ValueError, match="expected c of dtype"):
        layer(torch.zeros((1, S, A), dtype=torch.float32))
    with pytest.raises(ValueError, match=r"expected c as a torch\.Tensor"):
        layer(np.zeros((1, S, A)))  # type: ignore[arg-type]
    bad = torch.zeros((1, S, A), dtype=torch.float64)
    bad[0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="expected finite rewards"):
        layer(bad)


def test_compiled_once_and_reused() -> None:
    env = _env("gridworld")
    a = CvxpyEntropicLayer(env.mdp, 0.1)
    b = CvxpyEntropicLayer(env.mdp, 0.1, solver="scs")
    c = CvxpyEntropicLayer(env.mdp, 0.2)
    assert a.cvxpy_layer is b.cvxpy_layer
    assert a.cvxpy_layer is not c.cvxpy_layer
    C = torch.from_numpy(_rewards(env, 0, 1))
    first = a.cvxpy_layer
    a(C)
    a(C)
    assert a.cvxpy_layer is first
    # the two solvers agree (one compiled problem, two diffcp back ends)
    np.testing.assert_allclose(a(C).numpy(), b(C).numpy(), rtol=0, atol=1e-10)


# ---------------------------------------------------------------------- fast vs reference

HAS_FAST = importlib.util.find_spec("bilevel.solvers._entropic") is not None


@pytest.mark.skipif(not HAS_FAST, reason="bilevel.solvers._entropic not available")
@pytest.mark.parametrize("name", list(ENVS))
@pytest.mark.parametrize("alpha", ALPHAS)
def test_fast_solver_agrees_with_reference(name: str, alpha: float) -> None:
    from bilevel.solvers._entropic import EntropicSolver

    env = _env(name)
    S, A = env.mdp.shape
    C = torch.from_numpy(_rewards(env, 10, 3))
    G = torch.from_numpy(np.random.default_rng(11).standard_normal((3, S, A)))
    c_ref = C.clone().requires_grad_(True)
    x_ref = CvxpyEntropicLayer(env.mdp, alpha)(c_ref)
    x_ref.backward(G)  # type: ignore[no-untyped-call]  # torch's backward is untyped
    c_fast = C.clone().requires_grad_(True)
    x_fast = EntropicSolver(env.mdp, alpha)(c_fast)
    x_fast.backward(G)  # type: ignore[no-untyped-call]  # torch's backward is untyped
    assert c_ref.grad is not None and c_fast.grad is not None
    np.testing.assert_allclose(x_fast.detach().numpy(), x_ref.detach().numpy(), rtol=0,
                               atol=1e-6)
    X = x_ref.detach().numpy().reshape(3, -1)
    for b in range(3):
        g = G[b].numpy().ravel()
        # floor 1e-10: the fast solver forms M X M^T (graded, nearly singular at alpha = 0.01),
        # which loses ~3 more digits than the layer's SVD projector; it matters only where
        # the VJP is itself ~1e-14 of its terms (gridworld, alpha = 0.01).
        _assert_vjp_close(c_fast.grad[b].numpy().ravel(), c_ref.grad[b].numpy().ravel(), X[b],
                          g, alpha, floor_rel=1e-10)
