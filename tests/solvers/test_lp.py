"""Tests of the occupancy-measure LP inner solver (solvers/_lp.py)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import cvxpy as cp
import numpy as np
import pytest
from scipy.optimize import linprog

import bilevel.solvers._lp as lp_module
from bilevel.models._mdp import TabularMDP, mdp_from_arrays
from bilevel.models.typing import FloatArray
from bilevel.solvers._licence import mosek_licensed
from bilevel.solvers._lp import OccupancyLP, solve_lp
from bilevel.solvers._result import InnerSolution, InnerSolveError, Status
from tests import catalogue

SEEDS = [0, 1, 2, 3, 4]

_needs_mosek = pytest.mark.skipif(not mosek_licensed(), reason="no MOSEK licence on this machine")
SOLVERS = [
    "highs",
    "cvxpy",
    pytest.param("mosek", marks=_needs_mosek),
]


# ---------------------------------------------------------------------- MDP builders


def two_step_mdp() -> TabularMDP:
    """State 0 -> (a0: state 1 surely | a1: state 1 or 2 with prob 1/2); 1 and 2 end.

    With rewards ``r = [[1, 0], [0, 2], [5, 1]]``: V(1) = 2, V(2) = 5,
    Q(0, a0) = 1 + 2 = 3, Q(0, a1) = 0 + (2 + 5) / 2 = 3.5, so V(0) = 3.5 with action a1,
    and the occupancy is x(0, a1) = 1, x(1, a1) = x(2, a0) = 1/2 (hand computation).
    """
    P = np.zeros((3, 2, 3))
    P[0, 0, 1] = 1.0
    P[0, 1, 1] = P[0, 1, 2] = 0.5
    return mdp_from_arrays(P, [1.0, 0.0, 0.0], gamma=1.0)


TWO_STEP_REWARD = np.array([[1.0, 0.0], [0.0, 2.0], [5.0, 1.0]])


def random_mdps() -> list[tuple[str, TabularMDP, FloatArray]]:
    cases = []
    for seed in SEEDS:
        rng = np.random.default_rng(seed)
        for kind, mdp in (
            ("layered", catalogue.random_layered_mdp(rng)),
            ("discounted", catalogue.random_cyclic_mdp(rng)),
        ):
            reward = rng.normal(size=(4, *mdp.shape))
            cases.append((f"{kind}-{seed}", mdp, reward))
    return cases


RANDOM_CASES = random_mdps()
RANDOM_IDS = [name for name, _, _ in RANDOM_CASES]


# ---------------------------------------------------------------------- known answers


@pytest.mark.parametrize("solver", SOLVERS)
def test_two_step_known_answer(solver: str) -> None:
    mdp = two_step_mdp()
    res = solve_lp(mdp, TWO_STEP_REWARD, solver=solver)
    assert isinstance(res, InnerSolution)
    assert res.success and res.statuses == (Status.OPTIMAL,)
    np.testing.assert_allclose(res.fun, [3.5], rtol=0, atol=1e-9)
    np.testing.assert_allclose(res.value, [3.5], rtol=0, atol=1e-9)
    expected_x = np.array([[[0.0, 1.0], [0.0, 0.5], [0.5, 0.0]]])
    assert res.occupancy is not None
    np.testing.assert_allclose(res.occupancy, expected_x, rtol=0, atol=1e-9)
    assert res.state_values is not None
    np.testing.assert_allclose(res.state_values, [[3.5, 2.0, 5.0]], rtol=0, atol=1e-9)
    assert res.policy is not None
    np.testing.assert_array_equal(res.policy, [[1, 1, 0]])
    assert res.stats["wall_time"] >= 0.0


def test_unvisited_state_has_policy_minus_one() -> None:
    # Same MDP, but a0 is now better at the root (Q = 10 + 2): state 2 is never visited.
    reward = TWO_STEP_REWARD.copy()
    reward[0, 0] = 10.0
    res = solve_lp(two_step_mdp(), reward)
    assert res.policy is not None
    np.testing.assert_array_equal(res.policy, [[0, 1, -1]])
    np.testing.assert_allclose(res.fun, [12.0], rtol=0, atol=1e-9)


@pytest.mark.parametrize("solver", SOLVERS)
@pytest.mark.parametrize("gamma", [0.5, 0.9, 0.99])
def test_one_state_loop_geometric_value(solver: str, gamma: float) -> None:
    # One state that loops to itself under both actions: V = max_a r(a) / (1 - gamma), and the
    # occupancy of the best action is 1 / (1 - gamma).
    mdp = mdp_from_arrays(np.ones((1, 2, 1)), [1.0], gamma=gamma)
    res = solve_lp(mdp, [[0.3, 1.7]], solver=solver)
    expected = 1.7 / (1 - gamma)
    np.testing.assert_allclose(res.fun, [expected], rtol=1e-9)
    assert res.state_values is not None and res.occupancy is not None
    np.testing.assert_allclose(res.state_values, [[expected]], rtol=1e-9)
    np.testing.assert_allclose(res.occupancy, [[[0.0, 1 / (1 - gamma)]]], rtol=1e-9, atol=1e-9)


def test_dual_sign_matches_hand_value() -> None:
    # Guard on the sign flip of linprog's marginals: duals are +V, not -V.
    mdp = mdp_from_arrays(np.ones((1, 1, 1)), [1.0], gamma=0.5)
    res = solve_lp(mdp, [[1.0]])
    assert res.state_values is not None
    np.testing.assert_allclose(res.state_values, [[2.0]], rtol=1e-12)


# ---------------------------------------------------------------------- random MDPs


@pytest.mark.parametrize(("name", "mdp", "reward"), RANDOM_CASES, ids=RANDOM_IDS)
def test_highs_and_cvxpy_agree(name: str, mdp: TabularMDP, reward: FloatArray) -> None:
    a = solve_lp(mdp, reward, solver="highs")
    b = solve_lp(mdp, reward, solver="cvxpy")
    np.testing.assert_allclose(a.fun, b.fun, rtol=0, atol=1e-8, err_msg=name)
    np.testing.assert_allclose(a.value, b.value, rtol=0, atol=1e-8, err_msg=name)
    assert a.occupancy is not None and b.occupancy is not None
    np.testing.assert_allclose(a.occupancy, b.occupancy, rtol=0, atol=1e-8, err_msg=name)
    # Duals are unique only where the optimal policy goes; compare there.
    visited = a.occupancy.sum(axis=2) > 1e-9
    assert a.state_values is not None and b.state_values is not None
    np.testing.assert_allclose(
        a.state_values[visited], b.state_values[visited], rtol=0, atol=1e-8, err_msg=name
    )
    assert a.policy is not None and b.policy is not None
    np.testing.assert_array_equal(a.policy, b.policy, err_msg=name)


@pytest.mark.parametrize("solver", SOLVERS)
@pytest.mark.parametrize(("name", "mdp", "reward"), RANDOM_CASES, ids=RANDOM_IDS)
def test_primal_dual_optimality(
    solver: str, name: str, mdp: TabularMDP, reward: FloatArray
) -> None:
    res = solve_lp(mdp, reward, solver=solver)
    assert res.success and res.batch_size == reward.shape[0]
    assert res.occupancy is not None and res.state_values is not None and res.policy is not None
    M = mdp.flow_matrix()
    P = mdp.dense_P()
    for b in range(res.batch_size):
        x, V, c = res.occupancy[b], res.state_values[b], reward[b]
        # Primal feasibility.
        assert np.all(x >= 0.0)
        np.testing.assert_allclose(M @ x.ravel(), mdp.mu0, rtol=0, atol=1e-9, err_msg=name)
        # Dual feasibility: V(s) >= c(s, a) + gamma * sum_s' P(s' | s, a) V(s').
        Q = c + mdp.gamma * P @ V
        assert np.all(V[:, None] >= Q - 1e-7), name
        # Complementary slackness on the support of x, and strong duality.
        support = x > 1e-9
        np.testing.assert_allclose(
            V[:, None].repeat(mdp.n_actions, 1)[support], Q[support], rtol=0, atol=1e-7
        )
        np.testing.assert_allclose(mdp.mu0 @ V, res.fun[b], rtol=0, atol=1e-8, err_msg=name)
        np.testing.assert_allclose(np.sum(x * c), res.fun[b], rtol=0, atol=1e-8, err_msg=name)
        # The policy is greedy w.r.t. the duals on visited states, -1 elsewhere.
        d = x.sum(axis=1)
        pol = res.policy[b]
        assert np.all((pol == -1) == (d <= 1e-12))
        vis = np.flatnonzero(d > 1e-12)
        np.testing.assert_allclose(Q[vis, pol[vis]], V[vis], rtol=0, atol=1e-7)


def test_batch_equals_single_solves() -> None:
    _, mdp, reward = RANDOM_CASES[1]
    batch = solve_lp(mdp, reward)
    for b in range(reward.shape[0]):
        single = solve_lp(mdp, reward[b])
        assert single.batch_size == 1
        np.testing.assert_allclose(single.fun, batch.fun[b : b + 1], rtol=0, atol=1e-12)
    assert len(batch.statuses) == reward.shape[0]


def test_lp_beats_random_policies() -> None:
    # Property: the LP optimum is at least the value of any stationary policy.
    for seed in SEEDS:
        rng = np.random.default_rng(seed)
        mdp = catalogue.random_cyclic_mdp(rng)
        c = rng.normal(size=mdp.shape)
        best = solve_lp(mdp, c).fun[0]
        P = mdp.dense_P()
        S = mdp.n_states
        for _ in range(5):
            pi = rng.dirichlet(np.ones(mdp.n_actions), size=S)
            P_pi = np.einsum("sa,sat->st", pi, P)
            v = np.linalg.solve(np.eye(S) - mdp.gamma * P_pi, np.sum(pi * c, axis=1))
            assert mdp.mu0 @ v <= best + 1e-9


def test_occupancy_false_returns_none() -> None:
    res = solve_lp(two_step_mdp(), TWO_STEP_REWARD, occupancy=False)
    assert res.occupancy is None
    np.testing.assert_allclose(res.value, [3.5], rtol=0, atol=1e-9)
    assert res.policy is not None and res.policy[0, 0] == 1


def test_cvxpy_problem_is_compiled_once_per_mdp() -> None:
    mdp = two_step_mdp()
    first = lp_module._occupancy_lp(mdp, "cvxpy")
    solve_lp(mdp, TWO_STEP_REWARD, solver="cvxpy")
    assert lp_module._occupancy_lp(mdp, "cvxpy") is first
    assert lp_module._occupancy_lp(two_step_mdp(), "cvxpy") is not first
    installed = cp.installed_solvers()  # type: ignore[no-untyped-call]
    expected = cp.HIGHS if cp.HIGHS in installed else cp.CLARABEL
    assert first.cvxpy_solver == expected


# ---------------------------------------------------------------------- failures


def _fake_linprog(status: int, x: FloatArray | None = None) -> Any:
    """A stand-in for linprog returning ``status`` (and ``x`` if given) with 3 iterations."""

    def fake(*args: Any, **kwargs: Any) -> SimpleNamespace:
        n_rows = kwargs["A_eq"].shape[0]
        return SimpleNamespace(
            status=status,
            x=x,
            fun=None if x is None else 0.0,
            nit=3,
            eqlin=SimpleNamespace(marginals=None if x is None else np.zeros(n_rows)),
        )

    return fake


@pytest.mark.parametrize(
    ("code", "status"),
    [
        (1, Status.MAX_STEPS_REACHED),
        (2, Status.INFEASIBLE),
        (3, Status.UNBOUNDED),
        (4, Status.ERROR),
    ],
)
def test_failed_linprog_raises(monkeypatch: pytest.MonkeyPatch, code: int, status: Status) -> None:
    # A valid MDP's flow polytope is never empty or unbounded in the objective, so the failure
    # is injected: linprog reports the status and no solution.
    monkeypatch.setattr(lp_module, "linprog", _fake_linprog(code))
    with pytest.raises(InnerSolveError, match=status.value) as info:
        solve_lp(two_step_mdp(), TWO_STEP_REWARD)
    assert info.value.result.status is status
    assert info.value.result.statuses == (status,)


def test_failed_linprog_without_throw_gives_nan(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lp_module, "linprog", _fake_linprog(2))
    res = solve_lp(two_step_mdp(), TWO_STEP_REWARD[None].repeat(2, 0), throw=False)
    assert not res.success
    assert res.status is Status.INFEASIBLE
    assert res.statuses == (Status.INFEASIBLE, Status.INFEASIBLE)
    assert "infeasible" in res.message
    assert np.all(np.isnan(res.fun)) and np.all(np.isnan(res.value))
    assert res.occupancy is not None and np.all(np.isnan(res.occupancy))
    assert res.state_values is not None and np.all(np.isnan(res.state_values))
    assert res.policy is not None and np.all(res.policy == -1)
    assert res.nit == 6


def test_only_failed_entries_are_nan(monkeypatch: pytest.MonkeyPatch) -> None:
    real = linprog
    calls = {"n": 0}

    def flaky(*args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        return _fake_linprog(1)(*args, **kwargs) if calls["n"] == 2 else real(*args, **kwargs)

    monkeypatch.setattr(lp_module, "linprog", flaky)
    reward = TWO_STEP_REWARD[None].repeat(3, 0)
    res = solve_lp(two_step_mdp(), reward, throw=False)
    assert res.statuses == (Status.OPTIMAL, Status.MAX_STEPS_REACHED, Status.OPTIMAL)
    assert res.status is Status.MAX_STEPS_REACHED
    np.testing.assert_allclose(res.fun[[0, 2]], [3.5, 3.5], rtol=0, atol=1e-9)
    assert np.isnan(res.fun[1]) and np.isnan(res.value[1])
    calls["n"] = 0
    with pytest.raises(InnerSolveError, match=r"first failing problems in the batch: \[1\]"):
        solve_lp(two_step_mdp(), reward)


def test_nonfinite_solution_is_flagged(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lp_module, "linprog", _fake_linprog(0, x=np.full(6, np.nan)))
    res = solve_lp(two_step_mdp(), TWO_STEP_REWARD, throw=False)
    assert res.status is Status.NONFINITE
    assert np.isnan(res.fun[0])


def test_cvxpy_solver_error_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    mdp = two_step_mdp()
    lp = lp_module._occupancy_lp(mdp, "cvxpy")

    def broken(*args: Any, **kwargs: Any) -> None:
        raise cp.error.SolverError("injected failure")

    monkeypatch.setattr(lp.problem, "solve", broken)
    with pytest.raises(InnerSolveError, match="error"):
        solve_lp(mdp, TWO_STEP_REWARD, solver="cvxpy")
    res = solve_lp(mdp, TWO_STEP_REWARD, solver="cvxpy", throw=False)
    assert res.status is Status.ERROR and np.isnan(res.fun[0])


# ---------------------------------------------------------------------- input


@pytest.mark.skipif(mosek_licensed(), reason="a MOSEK licence is present")
def test_mosek_without_licence_raises() -> None:
    with pytest.raises(ValueError, match=r"solver='mosek' requires a MOSEK licence"):
        solve_lp(two_step_mdp(), TWO_STEP_REWARD, solver="mosek")


def test_unknown_solver_raises() -> None:
    with pytest.raises(ValueError, match=r"expected solver in \('highs', 'cvxpy', 'mosek'\)"):
        solve_lp(two_step_mdp(), TWO_STEP_REWARD, solver="glpk")
    with pytest.raises(ValueError, match="expected solver in"):
        OccupancyLP(two_step_mdp(), "highs")


@pytest.mark.parametrize("shape", [(3,), (2, 2), (3, 3), (2, 3, 3), (1, 1, 3, 2)])
def test_bad_reward_shape_raises(shape: tuple[int, ...]) -> None:
    with pytest.raises(ValueError, match=r"expected reward of shape \(S, A\) = \(3, 2\)"):
        solve_lp(two_step_mdp(), np.zeros(shape))


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nonfinite_reward_raises(bad: float) -> None:
    reward = TWO_STEP_REWARD.copy()
    reward[1, 0] = bad
    with pytest.raises(ValueError, match="expected finite rewards, got NaN or inf"):
        solve_lp(two_step_mdp(), reward)
