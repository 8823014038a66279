"""Tests of the entropy-regularised inner solver (solvers/_entropic.py).

Checks: implicit-function gradients (gradcheck, the closed-form implicit derivative of the
regularised program of Curry et al. (2024), Appendix E, eq. (13), central finite differences),
flow feasibility and the primal–dual relation on every built-in environment, convergence of the
regularised optimum to the exact LP/DP optimum as alpha → 0, and input validation / failure
reporting.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import torch

from bilevel.models import Environment, TabularMDP, mdp_from_arrays
from bilevel.models.typing import FloatArray
from bilevel.solvers._dp import solve_dp
from bilevel.solvers._entropic import EntropicSolver, solve_entropic
from bilevel.solvers._result import InnerSolveError, Status
from tests import catalogue

DEVICE = "cpu"


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread() -> Iterator[None]:
    # these problems are tiny: intra-op threads only add contention (10x slower on a busy box)
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _small(kind: str) -> tuple[TabularMDP, FloatArray]:
    """Small instances for gradcheck: (mdp, rewards of shape (2, S, A))."""
    if kind == "sales":
        env = catalogue.env("sales", n_agents=2, n_items=2)
        return env.mdp, catalogue.welfare_rewards(env, 0, 2)
    if kind == "gridworld":
        env = catalogue.env("gridworld", n_agents=2, grid=3)
        return env.mdp, catalogue.welfare_rewards(env, 1, 2)
    rng = np.random.default_rng(2)
    if kind == "layered":
        mdp = catalogue.random_layered_mdp(rng, (2, 3, 2))
    else:
        mdp = catalogue.random_cyclic_mdp(rng, S=4, A=2)
    return mdp, rng.normal(size=(2, *mdp.shape))


def _flow_matrix(mdp: TabularMDP) -> FloatArray:
    M: FloatArray = np.asarray(mdp.flow_matrix().toarray(), dtype=np.float64)
    return M


# ---------------------------------------------------------------------- gradients


@pytest.mark.parametrize("alpha", [1.0, 0.1])
@pytest.mark.parametrize("kind", ["sales", "gridworld", "layered", "discounted"])
def test_gradcheck(kind: str, alpha: float) -> None:
    mdp, R = _small(kind)
    solver = EntropicSolver(mdp, alpha, device=DEVICE, tol=1e-12)
    c = torch.tensor(R, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(solver, (c,), eps=1e-6, atol=1e-6, rtol=1e-4)


def test_gradcheck_small_alpha_well_conditioned() -> None:
    # alpha = 0.01 with reward gaps of order alpha keeps the Jacobian O(1/alpha)-well-scaled
    env = catalogue.env("sales", n_agents=2, n_items=2)
    rng = np.random.default_rng(3)
    R = 0.01 * rng.normal(size=(2, *env.mdp.shape))
    solver = EntropicSolver(env.mdp, 0.01, device=DEVICE, tol=1e-12)
    c = torch.tensor(R, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(solver, (c,), eps=1e-7, atol=1e-5, rtol=1e-4)


def test_vjp_matches_closed_form() -> None:
    """∂L/∂c = (1/α)(X g − X Mᵀ (M X Mᵀ)⁻¹ M X g), the implicit derivative of eq. (13), in numpy."""
    rng = np.random.default_rng(4)
    mdp = catalogue.random_layered_mdp(rng, (2, 2, 2), A=2)
    alpha = 0.3
    c = rng.normal(size=(1, *mdp.shape))
    g = rng.normal(size=(1, *mdp.shape))
    solver = EntropicSolver(mdp, alpha, device=DEVICE, tol=1e-12)
    ct = torch.tensor(c, requires_grad=True)
    x = solver(ct)
    (x * torch.tensor(g)).sum().backward()  # type: ignore[no-untyped-call]
    assert ct.grad is not None
    got = ct.grad.numpy().ravel()
    M = _flow_matrix(mdp)
    X = np.diag(x.detach().numpy().ravel())
    gf = g.ravel()
    want = (X @ gf - X @ M.T @ np.linalg.solve(M @ X @ M.T, M @ X @ gf)) / alpha
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("env_name", ["sales", "gridworld"])
def test_vjp_matches_finite_differences(env_name: str) -> None:
    env = (
        catalogue.env("sales", n_agents=3, n_items=2)
        if env_name == "sales"
        else catalogue.env("gridworld", n_agents=2, grid=3)
    )
    alpha = 0.1
    c = catalogue.welfare_rewards(env, 5, 1)
    rng = np.random.default_rng(6)
    g = rng.normal(size=c.shape)
    d = rng.normal(size=c.shape)
    solver = EntropicSolver(env.mdp, alpha, device=DEVICE, tol=1e-12)
    ct = torch.tensor(c, requires_grad=True)
    (solver(ct) * torch.tensor(g)).sum().backward()  # type: ignore[no-untyped-call]
    assert ct.grad is not None
    auto = float((ct.grad.numpy() * d).sum())

    def loss(cc: FloatArray) -> float:
        x, _, _, conv = solver.solve(torch.tensor(cc))
        assert bool(conv.all())
        return float((x.numpy() * g).sum())

    h = 1e-5
    fd = (loss(c + h * d) - loss(c - h * d)) / (2 * h)
    np.testing.assert_allclose(auto, fd, rtol=1e-6, atol=1e-9)


# ---------------------------------------------------------------------- solutions

ENVS: dict[str, dict[str, Any]] = {
    "sales-n5-m3": dict(name="sales", n_agents=5, n_items=3),
    "scheduling-n3-T5": dict(name="scheduling", n_agents=3, n_tasks=5),
    "gridworld-4x4": dict(name="gridworld", n_agents=2, grid=4),
    "matching-n2-r3": dict(name="matching", n_agents=2, rounds=3),
}


def _env(key: str) -> Environment:
    kw = dict(ENVS[key])
    return catalogue.env(kw.pop("name"), **kw)


@pytest.mark.parametrize("alpha", [1.0, 0.1, 0.01])
@pytest.mark.parametrize("key", list(ENVS))
def test_flow_constraints_and_primal_dual(key: str, alpha: float) -> None:
    env = _env(key)
    c = catalogue.welfare_rewards(env, 7, 4)
    sol = solve_entropic(env.mdp, c, alpha, device=DEVICE)
    assert sol.success and sol.statuses == (Status.OPTIMAL,) * 4
    assert sol.occupancy is not None and sol.state_values is not None
    x, v = sol.occupancy, sol.state_values
    M = _flow_matrix(env.mdp)
    resid = x.reshape(4, -1) @ M.T - env.mdp.mu0
    np.testing.assert_allclose(resid, 0.0, atol=1e-9, err_msg="flow constraints M x = mu0")
    assert np.all(x > 0)
    # x = exp((c - M^T v)/alpha - 1), compared in the log domain
    z = (c.reshape(4, -1) - v @ M) / alpha - 1.0
    np.testing.assert_allclose(np.log(x.reshape(4, -1)), z, rtol=0, atol=1e-9)
    # fun = D(v*) (strong duality) and value = sum(c x)
    D = v @ env.mdp.mu0 + alpha * np.exp(z).sum(axis=1)
    np.testing.assert_allclose(sol.fun, D, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(sol.value, (c * x).sum(axis=(1, 2)), rtol=1e-12, atol=1e-12)
    assert sol.policy is None


@pytest.mark.parametrize("key", list(ENVS))
def test_alpha_to_zero_approaches_lp(key: str) -> None:
    env = _env(key)
    c = catalogue.welfare_rewards(env, 8, 2)
    lp = solve_dp(env.mdp, c).value
    gaps = []
    for alpha in [1.0, 0.1, 0.01, 0.001]:
        sol = solve_entropic(env.mdp, c, alpha, device=DEVICE)
        gaps.append(np.abs(sol.fun - lp))
        if alpha == 0.001:
            np.testing.assert_array_less(np.abs(sol.value - lp), 0.05 * np.abs(lp) + 0.05)
    gap = np.array(gaps)  # (4, 2)
    assert np.all(np.diff(gap, axis=0) < 0), gap
    # the regularised optimum dominates the LP optimum (entropy bonus >= 0 needs x <= 1)
    assert np.all(gap[-1] < 0.05 * np.abs(lp) + 0.05)


def test_batch_equals_single_solves() -> None:
    env = catalogue.env("matching", n_agents=2, rounds=3)
    c = catalogue.welfare_rewards(env, 9, 3)
    batch = solve_entropic(env.mdp, c, 0.05)
    for k in range(3):
        one = solve_entropic(env.mdp, c[k], 0.05)
        np.testing.assert_allclose(one.fun, batch.fun[k : k + 1], rtol=1e-12, atol=1e-12)
        assert one.occupancy is not None and batch.occupancy is not None
        np.testing.assert_allclose(one.occupancy[0], batch.occupancy[k], rtol=0, atol=1e-10)


# ---------------------------------------------------------------------- warm start (cyclic MDPs)


@pytest.mark.parametrize("alpha", [0.5, 0.01])
def test_soft_policy_iteration_matches_value_iteration(alpha: float) -> None:
    # two independent solutions of the offset soft Bellman equation of the warm start
    env = catalogue.env("gridworld", n_agents=3, grid=4)
    solver = EntropicSolver(env.mdp, alpha)
    cf = torch.as_tensor(catalogue.welfare_rewards(env, 11, 6)).reshape(6, -1)
    logd = torch.as_tensor(np.random.default_rng(3).normal(size=(6, solver.S)))
    v0 = torch.zeros(6, solver.S, dtype=torch.float64)
    pi_v = solver._soft_policy_iteration(cf, v0.clone(), logd)
    vi_v = solver._soft_value_iteration(cf, v0.clone(), logd)
    np.testing.assert_allclose(pi_v.numpy(), vi_v.numpy(), rtol=0, atol=1e-8 * alpha)
    # and it is the fixed point: v = alpha (logsumexp(q / alpha - 1) - log d)
    q = solver._soft_backup(cf, pi_v).reshape(6, solver.S, solver.A)
    rhs = alpha * (torch.logsumexp(q / alpha - 1.0, dim=2) - logd)
    np.testing.assert_allclose(pi_v.numpy(), rhs.numpy(), rtol=0, atol=1e-9 * alpha)


@pytest.mark.parametrize("warm_rounds", [0, 1, 2])
def test_warm_rounds_reach_the_same_optimum(warm_rounds: int) -> None:
    # the warm start changes the Newton iterations, never the optimum
    env = catalogue.env("gridworld", n_agents=2, grid=4)
    c = torch.as_tensor(catalogue.welfare_rewards(env, 12, 5))
    ref = EntropicSolver(env.mdp, 0.02, warm_rounds=0)
    alt = EntropicSolver(env.mdp, 0.02, warm_rounds=warm_rounds)
    x0, _, _, conv0 = ref.solve(c)
    x1, _, _, conv1 = alt.solve(c)
    assert bool(conv0.all()) and bool(conv1.all())
    np.testing.assert_allclose(x1.numpy(), x0.numpy(), rtol=0, atol=1e-8)


def test_warm_start_cuts_newton_iterations_on_the_gridworld() -> None:
    # the default warm start (soft policy iteration, then one -alpha log d offset) beats plain
    # soft Bellman values: measured 14 against 18 iterations at alpha = 0.01
    env = catalogue.env("gridworld", n_agents=3, grid=3)
    c = torch.as_tensor(catalogue.welfare_rewards(env, 13, 40))
    solver = EntropicSolver(env.mdp, 0.01)
    _, _, nit_default, conv = solver.solve(c)
    v_plain = solver._soft_value_iteration(
        c.reshape(40, -1), torch.zeros(40, solver.S, dtype=torch.float64),
        torch.zeros(40, solver.S, dtype=torch.float64),
    )
    _, _, nit_plain, conv_plain = solver._newton(c.reshape(40, -1), v_plain, 1e-10, 100)
    assert bool(conv.all()) and bool(conv_plain.all())
    assert nit_default < nit_plain, (nit_default, nit_plain)


def test_failed_policy_evaluation_falls_back_to_value_iteration(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # gamma < 1 keeps I - gamma P_pi invertible, but a failed factorisation must still give
    # the value-iteration answer, never inf/NaN values
    env = catalogue.env("gridworld", n_agents=2, grid=3)
    solver = EntropicSolver(env.mdp, 0.1)
    cf = torch.as_tensor(catalogue.welfare_rewards(env, 14, 3)).reshape(3, -1)
    zeros = torch.zeros(3, solver.S, dtype=torch.float64)
    expected = solver._soft_value_iteration(cf, zeros.clone(), zeros)

    def failing(A: torch.Tensor, B: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.full_like(B, float("nan")), torch.ones(A.shape[0], dtype=torch.int32)

    monkeypatch.setattr(torch.linalg, "solve_ex", failing)
    v = solver._soft_policy_iteration(cf, zeros.clone(), zeros)
    np.testing.assert_allclose(v.numpy(), expected.numpy(), rtol=0, atol=0)


# ---------------------------------------------------------------------- bad input and failures


@pytest.mark.parametrize("alpha", [0.0, -1.0, float("nan"), float("inf")])
def test_bad_alpha(alpha: float) -> None:
    env = catalogue.env("sales", n_agents=2, n_items=2)
    c = np.zeros(env.mdp.shape)
    with pytest.raises(ValueError, match="expected alpha > 0"):
        solve_entropic(env.mdp, c, alpha)
    with pytest.raises(ValueError, match="expected alpha > 0"):
        EntropicSolver(env.mdp, alpha)


def test_bad_rewards() -> None:
    env = catalogue.env("sales", n_agents=2, n_items=2)
    S, A = env.mdp.shape
    c = np.zeros((S, A))
    c[0, 0] = np.nan
    with pytest.raises(ValueError, match="expected finite rewards"):
        solve_entropic(env.mdp, c, 0.1)
    with pytest.raises(ValueError, match=r"expected reward of shape \(S, A\)"):
        solve_entropic(env.mdp, np.zeros((S, A + 1)), 0.1)
    with pytest.raises(ValueError, match=r"expected c of shape \(B, S, A\)"):
        EntropicSolver(env.mdp, 0.1).solve(torch.zeros(S, A, dtype=torch.float64))


def test_non_convergence_is_reported() -> None:
    env = catalogue.env("gridworld", n_agents=2, grid=4)
    c = catalogue.welfare_rewards(env, 10, 2)
    with pytest.raises(InnerSolveError, match="max_steps_reached"):
        solve_entropic(env.mdp, c, 0.01, max_iter=1)
    sol = solve_entropic(env.mdp, c, 0.01, max_iter=1, throw=False)
    assert not sol.success
    assert sol.status is Status.MAX_STEPS_REACHED
    assert sol.occupancy is not None and np.all(np.isfinite(sol.occupancy))


def test_nonfinite_rewards_in_torch_api() -> None:
    env = catalogue.env("sales", n_agents=2, n_items=2)
    c = torch.zeros((2, *env.mdp.shape), dtype=torch.float64)
    c[1, 0, 0] = torch.nan
    x, _, _, conv = EntropicSolver(env.mdp, 0.1).solve(c)
    assert conv.tolist() == [True, False]
    assert torch.isnan(x[1]).all() and torch.isfinite(x[0]).all()
    with pytest.raises(InnerSolveError, match="nonfinite"):
        EntropicSolver(env.mdp, 0.1)(c)


def test_explicit_cpu_device_and_2d_call() -> None:
    env = catalogue.env("sales", n_agents=2, n_items=2)
    solver = EntropicSolver(env.mdp, 0.1, device=torch.device(DEVICE))
    c = torch.zeros(env.mdp.shape, dtype=torch.float64)
    x = solver(c)
    assert x.shape == env.mdp.shape and x.device.type == DEVICE
    # zero rewards: uniform over actions in every state; total mass = 2 decision epochs
    torch.testing.assert_close(x.sum(), torch.tensor(2.0, dtype=torch.float64))


# ---------------------------------------------------------------------- structured fast paths


def _stochastic_tree(*, uneven: bool = False) -> TabularMDP:
    """A stochastic tree (every state has one parent pair) plus a second, terminal root.

    ``uneven``: one action of a leaf continues one more step while the other exits, so the
    subtree mass depends on the action and the closed form does not apply.
    """
    S, A = 15, 2
    P = np.zeros((S, A, S))
    P[0, 0, [1, 2]] = [0.3, 0.7]
    P[0, 1, [3, 4]] = [0.5, 0.5]
    for k, s in enumerate(range(1, 5)):
        P[s, 0, 5 + 2 * k] = 1.0
        P[s, 1, 6 + 2 * k] = 1.0
    if uneven:
        P[12, 0, 13] = 1.0
    else:
        P[4, 1, 12], P[4, 1, 13] = 0.5, 0.5  # keeps state 13 reachable, N constant
        P[4, 1, 6 + 2 * 3] = 0.5
    mu0 = np.zeros(S)
    mu0[0], mu0[14] = 0.6, 0.4
    return mdp_from_arrays(P, mu0, gamma=0.9)


def _general(solver: EntropicSolver) -> EntropicSolver:
    """The same solver with the tree closed form and the block elimination switched off."""
    other = EntropicSolver(solver.mdp, solver.alpha, device=DEVICE, tol=solver.tol)
    other._tree = None
    other._schur = None
    return other


def _tree_mdps() -> dict[str, tuple[TabularMDP, FloatArray]]:
    out: dict[str, tuple[TabularMDP, FloatArray]] = {}
    for key in ("sales-n5-m3", "scheduling-n3-T5"):
        env = _env(key)
        out[key] = env.mdp, catalogue.welfare_rewards(env, 11, 3)
    mdp = _stochastic_tree()
    out["stochastic-tree"] = mdp, np.random.default_rng(12).normal(size=(3, *mdp.shape))
    return out


@pytest.mark.parametrize("alpha", [1.0, 0.01])
@pytest.mark.parametrize("key", ["sales-n5-m3", "scheduling-n3-T5", "stochastic-tree"])
def test_tree_closed_form_matches_newton(key: str, alpha: float) -> None:
    mdp, R = _tree_mdps()[key]
    solver = EntropicSolver(mdp, alpha, device=DEVICE)
    assert solver._tree is not None
    c = torch.tensor(R)
    x, v, nit, conv = solver.solve(c)
    assert nit == 0 and bool(conv.all())
    x2, v2, nit2, conv2 = _general(solver).solve(c)
    assert nit2 > 0 and bool(conv2.all())
    torch.testing.assert_close(x, x2, rtol=0, atol=1e-9)
    # the duals of states with a negligible occupancy are loosely determined by Newton's stop
    seen = x.sum(dim=2) > 1e-3
    torch.testing.assert_close(v[seen], v2[seen], rtol=0, atol=1e-7)
    resid = mdp.mu0 - x.reshape(x.shape[0], -1).numpy() @ _flow_matrix(mdp).T
    np.testing.assert_allclose(resid, 0.0, atol=1e-10)


def test_uneven_tree_uses_newton() -> None:
    mdp = _stochastic_tree(uneven=True)
    solver = EntropicSolver(mdp, 0.1, device=DEVICE)
    assert solver._tree is None
    c = torch.tensor(np.random.default_rng(13).normal(size=(2, *mdp.shape)))
    x, _, nit, conv = solver.solve(c)
    assert nit > 0 and bool(conv.all())
    x2, _, _, _ = _general(solver).solve(c)
    torch.testing.assert_close(x, x2, rtol=0, atol=1e-12)


@pytest.mark.parametrize(
    "key", ["sales-tree", "stochastic-tree", "matching-schur", "layered-schur", "gridworld-dense"]
)
def test_vjp_paths_match_closed_form(key: str) -> None:
    """Tree VJP, block elimination and the dense Cholesky all give the closed-form VJP."""
    rng = np.random.default_rng(14)
    if key == "sales-tree":
        mdp = catalogue.env("sales", n_agents=3, n_items=2).mdp
    elif key == "stochastic-tree":
        mdp = _stochastic_tree()
    elif key == "matching-schur":
        mdp = catalogue.env("matching", n_agents=2, rounds=3).mdp
    elif key == "layered-schur":
        mdp = catalogue.random_layered_mdp(rng, (2, 3, 4), A=2)
    else:
        mdp = catalogue.env("gridworld", n_agents=2, grid=3).mdp
    alpha = 0.2
    solver = EntropicSolver(mdp, alpha, device=DEVICE, tol=1e-12)
    if key.endswith("tree"):
        assert solver._tree is not None
    elif key.endswith("schur"):
        assert solver._tree is None and solver._schur is not None
    else:
        solver._schur = None
    c = rng.normal(size=(2, *mdp.shape))
    g = rng.normal(size=(2, *mdp.shape))
    ct = torch.tensor(c, requires_grad=True)
    x = solver(ct)
    (x * torch.tensor(g)).sum().backward()  # type: ignore[no-untyped-call]
    assert ct.grad is not None
    M = _flow_matrix(mdp)
    for k in range(2):
        X = np.diag(x[k].detach().numpy().ravel())
        gf = g[k].ravel()
        want = (X @ gf - X @ M.T @ np.linalg.solve(M @ X @ M.T, M @ X @ gf)) / alpha
        np.testing.assert_allclose(ct.grad[k].numpy().ravel(), want, rtol=1e-8, atol=1e-11)


def test_tree_underflow_falls_back() -> None:
    # alpha = 1e-3 on sales: some occupancies underflow, so the backward leaves the tree VJP
    env = _env("sales-n5-m3")
    c = torch.tensor(catalogue.welfare_rewards(env, 15, 3))
    g = torch.tensor(np.random.default_rng(16).normal(size=c.shape))
    grads = []
    for solver in (EntropicSolver(env.mdp, 1e-3, device=DEVICE), None):
        if solver is None:
            solver = _general(EntropicSolver(env.mdp, 1e-3, device=DEVICE))
        ct = c.clone().requires_grad_(True)
        (solver(ct) * g).sum().backward()  # type: ignore[no-untyped-call]
        assert ct.grad is not None and bool(torch.isfinite(ct.grad).all())
        grads.append(ct.grad)
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-6, atol=1e-8)
