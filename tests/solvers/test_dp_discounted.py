"""Tests of the discounted dynamic program (solvers/_dp_discounted.py, behind solve_dp).

The fast paths (pointer-doubling evaluation, certified modified policy iteration, the occupancy
walk) are compared with independent references: the HiGHS occupancy LP, value iteration to
convergence followed by a dense policy evaluation, and a dense-LU copy of plain policy iteration
with the documented tie rule. Instances: random deterministic MDPs with cycles (with and without
exits, point-mass and spread initial distributions), random stochastic MDPs, and gridworlds with
exact ties (zero rewards, VCG welfare, structured boosts).
"""

from __future__ import annotations

import numpy as np
import pytest

from bilevel.models._mdp import TabularMDP
from bilevel.models.typing import FloatArray, IntArray
from bilevel.solvers import occupancy_of_policy, solve_dp, solve_lp, solve_values
from bilevel.solvers._dp_discounted import deterministic_occupancy, doubling_steps, policy_iteration
from bilevel.solvers._result import InnerSolveError, Status
from tests import catalogue

TOL = 1e-12


# ---------------------------------------------------------------------- instances


def gridworld_rewards(grid: int, k: int, seed: int) -> tuple[TabularMDP, FloatArray]:
    """VCG welfare (exact ties), structured boosts (Sobol-like 0, ±box/2) and random boosts."""
    env = catalogue.env("gridworld", n_agents=2, grid=grid, dist="onecell", gamma=0.9)
    rng = np.random.default_rng(seed)
    R = env.rewards(env.sample_types(rng, k)).sum(axis=1)  # (k, S, A)
    S, A = env.mdp.shape
    assert env.boost_box is not None
    box = env.boost_box[1]
    boosts = [np.zeros((S, A)), np.full((S, A), box / 2), np.full((S, A), -box / 4)]
    boosts += [rng.uniform(-box, box, size=(S, A)) for _ in range(3)]
    c = np.concatenate([R + b for b in boosts] + [np.zeros((2, S, A))])
    return env.mdp, c


# ---------------------------------------------------------------------- references


def reference_pi(mdp: TabularMDP, c: FloatArray, tol: float = TOL) -> tuple[FloatArray, IntArray]:
    """Plain policy iteration with dense LU evaluation and the documented tie rule."""
    P = mdp.dense_P()
    S = mdp.n_states
    g = mdp.gamma
    pols, vals = [], []
    for ck in c:
        pol = ck.argmax(axis=1)
        while True:
            V = np.linalg.solve(np.eye(S) - g * P[np.arange(S), pol], ck[np.arange(S), pol])
            Q = ck + g * P @ V
            q_cur = Q[np.arange(S), pol]
            thr = q_cur + tol * np.maximum(1.0, np.abs(q_cur))
            q_best = Q.max(axis=1)
            near = q_best - tol * np.maximum(1.0, np.abs(q_best))
            cand = (thr[:, None] < Q) & (near[:, None] <= Q)
            improve = cand.any(axis=1)
            if not improve.any():
                break
            pol = np.where(improve, cand.argmax(axis=1), pol)
        pols.append(pol)
        vals.append(V)
    return np.array(vals), np.array(pols)


def value_iteration(mdp: TabularMDP, c: FloatArray) -> FloatArray:
    """Optimal state values by value iteration until the update is below 1e-14 (shape (K, S))."""
    P = mdp.dense_P()
    V = np.zeros(c.shape[:2])
    for _ in range(100_000):
        V_new: FloatArray = (c + mdp.gamma * np.einsum("sat,kt->ksa", P, V)).max(axis=2)
        if np.max(np.abs(V_new - V)) <= 1e-14 * max(1.0, float(np.abs(V_new).max())):
            return V_new
        V = V_new
    raise AssertionError("value iteration did not converge")


def dense_occupancy(mdp: TabularMDP, policy: IntArray) -> FloatArray:
    """``(I - gamma P_pi^T)^{-1} mu0`` per policy, shape (K, S)."""
    P = mdp.dense_P()
    S = mdp.n_states
    out = [np.linalg.solve(np.eye(S) - mdp.gamma * P[np.arange(S), p].T, mdp.mu0) for p in policy]
    return np.array(out)


# ---------------------------------------------------------------------- agreement


def _cases() -> list[object]:
    cases: list[object] = []
    for seed in range(3):
        cases.append(pytest.param("det", dict(), seed, id=f"det-{seed}"))
        cases.append(pytest.param("det", dict(exits=True), seed, id=f"det-exits-{seed}"))
        cases.append(pytest.param("det", dict(spread_mu0=True, gamma=0.5), seed,
                                  id=f"det-spread-g0.5-{seed}"))
        cases.append(pytest.param("det", dict(gamma=0.99, S=9, A=4), seed, id=f"det-g0.99-{seed}"))
        cases.append(pytest.param("stoch", dict(), seed, id=f"stochastic-{seed}"))
    return cases


def _instance(kind: str, kw: dict[str, object], seed: int) -> tuple[TabularMDP, FloatArray]:
    rng = np.random.default_rng(seed)
    if kind == "det":
        kw = {"S": 7, **kw}  # the default size of these deterministic instances
        mdp = catalogue.random_cyclic_mdp(rng, deterministic=True, **kw)  # type: ignore[arg-type]
    else:
        mdp = catalogue.random_cyclic_mdp(rng)
    c = rng.normal(size=(40, *mdp.shape))
    c[:5] = np.round(c[:5])  # integer rewards: many exact ties
    c[5] = 0.0
    return mdp, c


@pytest.mark.parametrize(("kind", "kw", "seed"), _cases())
def test_discounted_dp_matches_references(kind: str, kw: dict[str, object], seed: int) -> None:
    mdp, c = _instance(kind, kw, seed)
    sol = solve_dp(mdp, c)
    assert sol.success and sol.state_values is not None and sol.occupancy is not None
    # Values: the HiGHS LP and value iteration (independent of policy iteration).
    lp = solve_lp(mdp, c, solver="highs")
    np.testing.assert_allclose(sol.value, lp.value, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(sol.state_values, value_iteration(mdp, c), rtol=1e-9, atol=1e-9)
    # Policy: plain policy iteration with dense LU and the same tie rule, identically.
    V_ref, pol_ref = reference_pi(mdp, c)
    np.testing.assert_array_equal(sol.policy, pol_ref)
    np.testing.assert_allclose(sol.state_values, V_ref, rtol=1e-12, atol=1e-12)
    # Occupancy of the returned policy: a dense linear solve.
    d = sol.occupancy.sum(axis=2)
    np.testing.assert_allclose(d, dense_occupancy(mdp, pol_ref), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(np.einsum("ksa,ksa->k", sol.occupancy, c), sol.value,
                               rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("grid", [3, 4])
def test_gridworld_with_ties_matches_references(grid: int) -> None:
    mdp, c = gridworld_rewards(grid, k=12, seed=grid)
    sol = solve_dp(mdp, c)
    assert sol.success and sol.policy is not None and sol.occupancy is not None
    assert sol.state_values is not None
    lp = solve_lp(mdp, c, solver="highs")
    np.testing.assert_allclose(sol.value, lp.value, rtol=1e-9, atol=1e-9)
    V_ref, pol_ref = reference_pi(mdp, c)
    np.testing.assert_array_equal(sol.policy, pol_ref)
    np.testing.assert_allclose(sol.state_values, V_ref, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(sol.occupancy.sum(axis=2), dense_occupancy(mdp, pol_ref),
                               rtol=1e-12, atol=1e-12)
    # All-zero rewards: every action ties everywhere, so the policy is action 0 everywhere.
    np.testing.assert_array_equal(sol.policy[-2:], 0)
    np.testing.assert_array_equal(sol.value[-2:], 0.0)


def test_ties_are_not_decided_by_rounding() -> None:
    # A VCG gridworld batch where exactly tied actions differ by rounding noise in the values:
    # the result must not depend on how values were computed (doubling, LU, torch).
    pytest.importorskip("torch")
    mdp, c = gridworld_rewards(4, k=30, seed=7)
    a = solve_dp(mdp, c)
    b = solve_dp(mdp, c, backend="torch")
    np.testing.assert_array_equal(a.policy, b.policy)
    np.testing.assert_allclose(a.value, b.value, rtol=1e-12, atol=1e-12)
    assert a.occupancy is not None and b.occupancy is not None
    np.testing.assert_allclose(a.occupancy, b.occupancy, rtol=1e-12, atol=1e-12)


# ---------------------------------------------------------------------- fast path = plain loop


@pytest.mark.parametrize("grid", [3, 4])
def test_fast_path_equals_plain_policy_iteration(grid: int) -> None:
    mdp, c = gridworld_rewards(grid, k=60, seed=11)
    assert mdp.successor is not None
    plain = policy_iteration(c, mdp.gamma, TOL, 1000, succ=mdp.successor, sweeps=-1)
    fast = policy_iteration(c, mdp.gamma, TOL, 1000, succ=mdp.successor)
    small_chunks = policy_iteration(c, mdp.gamma, TOL, 1000, succ=mdp.successor, chunk=7,
                                    sweeps=0)
    for other in (fast, small_chunks):
        np.testing.assert_array_equal(other[1], plain[1])
        np.testing.assert_allclose(other[0], plain[0], rtol=1e-13, atol=1e-13)
        assert other[3].all()


def test_solve_values_matches_solve_dp_on_gridworld() -> None:
    mdp, c = gridworld_rewards(4, k=20, seed=3)
    sol = solve_dp(mdp, c)
    value, policy = solve_values(mdp, c)
    np.testing.assert_array_equal(policy, sol.policy)
    np.testing.assert_allclose(value, sol.value, rtol=0, atol=1e-12)


# ---------------------------------------------------------------------- pieces


@pytest.mark.parametrize(("gamma", "m"), [(0.5, 6), (0.9, 9), (0.99, 13)])
def test_doubling_steps(gamma: float, m: int) -> None:
    assert doubling_steps(gamma) == m
    assert gamma ** (2**m) <= 2.0**-60 < gamma ** (2 ** (m - 1))


def test_doubling_steps_rejects_gamma_one() -> None:
    with pytest.raises(ValueError, match=r"gamma in \(0, 1\)"):
        doubling_steps(1.0)


@pytest.mark.parametrize("exits", [False, True])
def test_occupancy_walk_matches_linear_solve(exits: bool) -> None:
    rng = np.random.default_rng(5)
    mdp = catalogue.random_cyclic_mdp(rng, S=8, A=3, deterministic=True, exits=exits,
                                             spread_mu0=True)
    assert mdp.successor is not None
    policy = rng.integers(0, 3, size=(50, 8))
    d = deterministic_occupancy(mdp.successor, mdp.gamma, mdp.mu0, policy)
    np.testing.assert_allclose(d, dense_occupancy(mdp, policy), rtol=1e-12, atol=1e-12)
    x = occupancy_of_policy(mdp, policy)
    np.testing.assert_allclose(x.sum(axis=2), d, rtol=0, atol=0)
    M = mdp.flow_matrix()
    for k in range(5):
        np.testing.assert_allclose(M @ x[k].ravel(), mdp.mu0, rtol=0, atol=1e-12)


def test_small_max_iter_reports_max_steps() -> None:
    # With a round limit below the fast path's threshold, the plain loop alone bounds the
    # rounds, as before: one round cannot certify a policy that needs improving.
    mdp, c = gridworld_rewards(3, k=4, seed=1)
    sol = solve_dp(mdp, c, max_iter=1, throw=False)
    assert sol.status is Status.MAX_STEPS_REACHED
    assert sol.nit == 1
    with pytest.raises(InnerSolveError):
        solve_values(mdp, c, max_iter=1)
