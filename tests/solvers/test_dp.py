"""Tests of the batched dynamic-programming inner solver (solvers/_dp.py, solvers/_dp_torch.py).

The DP must agree with the occupancy LP (HiGHS) on every built-in environment and on random
MDPs, return occupancy measures that satisfy the LP's flow constraints, agree across back ends,
dominate every deterministic policy and break ties towards the lowest action index.
"""

from __future__ import annotations

import numpy as np
import pytest

from bilevel.models._mdp import TabularMDP, mdp_from_arrays
from bilevel.models.typing import FloatArray
from bilevel.solvers import occupancy_of_policy, policy_values, solve_dp, solve_lp, solve_values
from tests import catalogue

SEEDS = [0, 1, 2]

# (id, make_env kwargs, boost scale ~ typical per-step reward size)
ENV_CASES = [
    ("sales-n3-m2", dict(name="sales", n_agents=3, n_items=2), 0.5),
    ("sales-n2-m3", dict(name="sales", n_agents=2, n_items=3), 0.5),
    ("scheduling-n2-T4", dict(name="scheduling", n_agents=2, n_tasks=4), 1.5),
    ("scheduling-n3-T4", dict(name="scheduling", n_agents=3, n_tasks=4), 1.5),
    ("gridworld-onecell", dict(name="gridworld", n_agents=2, grid=3, dist="onecell"), 0.5),
    ("gridworld-uniform", dict(name="gridworld", n_agents=2, grid=3, dist="uniform"), 0.5),
    ("matching-n2-r3", dict(name="matching", n_agents=2, rounds=3), 0.5),
]


# ---------------------------------------------------------------------- random MDPs


def random_mdp(kind: str, seed: int) -> tuple[TabularMDP, FloatArray]:
    rng = np.random.default_rng(seed)
    if kind == "layered-stochastic":
        mdp = catalogue.random_layered_mdp(rng, (2, 3, 4, 2))
    elif kind == "layered-deterministic":
        mdp = catalogue.random_layered_mdp(rng, (2, 3, 4, 2), deterministic=True)
    else:
        mdp = catalogue.random_cyclic_mdp(rng)
    return mdp, rng.normal(size=(5, *mdp.shape))


MDP_KINDS = ["layered-stochastic", "layered-deterministic", "discounted"]


def all_cases() -> list[object]:
    cases: list[object] = []
    for name, kw, scale in ENV_CASES:
        for seed in SEEDS[:2]:
            cases.append(pytest.param("env", kw, scale, seed, id=f"{name}-{seed}"))
    for kind in MDP_KINDS:
        for seed in SEEDS:
            cases.append(pytest.param("mdp", kind, None, seed, id=f"{kind}-{seed}"))
    return cases


def build_case(
    source: str, spec: object, scale: float | None, seed: int
) -> tuple[TabularMDP, FloatArray]:
    if source == "env":
        assert isinstance(spec, dict) and scale is not None
        kw = dict(spec)
        env = catalogue.env(kw.pop("name"), **kw)
        return env.mdp, catalogue.affine_welfare_rewards(env, seed, scale)
    assert isinstance(spec, str)
    return random_mdp(spec, seed)


def test_random_mdp_kinds_are_what_they_claim() -> None:
    rng = np.random.default_rng(0)
    st = catalogue.random_layered_mdp(rng, (2, 3, 4, 2))
    det = catalogue.random_layered_mdp(rng, (2, 3, 4, 2), deterministic=True)
    disc = catalogue.random_cyclic_mdp(rng)
    assert st.is_layered and not st.is_deterministic
    assert det.is_layered and det.is_deterministic
    assert not disc.is_layered and disc.gamma == 0.9


# ---------------------------------------------------------------------- LP agreement


@pytest.mark.parametrize(("source", "spec", "scale", "seed"), all_cases())
def test_dp_matches_lp_value(source: str, spec: object, scale: float | None, seed: int) -> None:
    mdp, c = build_case(source, spec, scale, seed)
    dp = solve_dp(mdp, c)
    lp = solve_lp(mdp, c, solver="highs")
    assert dp.success and lp.success
    np.testing.assert_allclose(dp.value, lp.value, rtol=1e-9, atol=1e-9, err_msg="DP vs LP")
    # The LP value of the DP occupancy is optimal too.
    assert dp.occupancy is not None
    np.testing.assert_allclose(
        np.einsum("ksa,ksa->k", dp.occupancy, c), lp.value, rtol=1e-9, atol=1e-9
    )


@pytest.mark.parametrize(("source", "spec", "scale", "seed"), all_cases())
def test_dp_occupancy_is_feasible_and_consistent(
    source: str, spec: object, scale: float | None, seed: int
) -> None:
    mdp, c = build_case(source, spec, scale, seed)
    sol = solve_dp(mdp, c)
    x = sol.occupancy
    assert x is not None and x.shape == (c.shape[0], *mdp.shape)
    assert sol.policy is not None and sol.policy.shape == (c.shape[0], mdp.n_states)
    assert sol.state_values is not None
    assert np.all(x >= 0.0)
    M = mdp.flow_matrix()
    for k in range(c.shape[0]):
        np.testing.assert_allclose(M @ x[k].ravel(), mdp.mu0, rtol=0, atol=1e-9, err_msg="M x")
    np.testing.assert_allclose(sol.value, np.einsum("ksa,ksa->k", x, c), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(sol.value, sol.state_values @ mdp.mu0, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(sol.fun, sol.value, rtol=0, atol=0)
    # x is the occupancy of the returned greedy policy: one action per state.
    np.testing.assert_allclose(x, occupancy_of_policy(mdp, sol.policy), rtol=0, atol=1e-12)
    assert np.all((x > 0).sum(axis=2) <= 1)


@pytest.mark.parametrize(("source", "spec", "scale", "seed"), all_cases())
def test_solve_values_fast_path_matches(
    source: str, spec: object, scale: float | None, seed: int
) -> None:
    mdp, c = build_case(source, spec, scale, seed)
    sol = solve_dp(mdp, c)
    value, policy = solve_values(mdp, c)
    np.testing.assert_allclose(value, sol.value, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(policy, sol.policy)


# ---------------------------------------------------------------------- back ends


@pytest.mark.parametrize(("source", "spec", "scale", "seed"), all_cases())
def test_numpy_and_torch_backends_agree(
    source: str, spec: object, scale: float | None, seed: int
) -> None:
    pytest.importorskip("torch")
    mdp, c = build_case(source, spec, scale, seed)
    a = solve_dp(mdp, c, backend="numpy")
    b = solve_dp(mdp, c, backend="torch")
    np.testing.assert_allclose(a.value, b.value, rtol=1e-10, atol=1e-10)
    assert a.policy is not None and b.policy is not None
    # The VCG half of an env batch can have exact ties; both back ends break them the same way
    # (lowest index), so policies must be identical everywhere.
    np.testing.assert_array_equal(a.policy, b.policy)
    assert a.occupancy is not None and b.occupancy is not None
    np.testing.assert_allclose(a.occupancy, b.occupancy, rtol=1e-10, atol=1e-10)
    assert isinstance(b.value, np.ndarray) and b.value.dtype == np.float64


# ---------------------------------------------------------------------- optimality


@pytest.mark.parametrize(("source", "spec", "scale", "seed"), all_cases())
def test_dp_beats_random_deterministic_policies(
    source: str, spec: object, scale: float | None, seed: int
) -> None:
    mdp, c = build_case(source, spec, scale, seed)
    sol = solve_dp(mdp, c)
    rng = np.random.default_rng(100 + seed)
    K = c.shape[0]
    for _ in range(20):
        pol = rng.integers(0, mdp.n_actions, size=(K, mdp.n_states))
        vals = policy_values(mdp, pol, c)
        assert np.all(sol.value >= vals - 1e-9), (sol.value, vals)
    # policy_values of the DP policy reproduces the DP value.
    assert sol.policy is not None
    np.testing.assert_allclose(policy_values(mdp, sol.policy, c), sol.value, rtol=1e-10, atol=1e-10)


def test_policy_values_with_several_rewards_per_policy() -> None:
    mdp, c = random_mdp("layered-stochastic", 0)
    pol = np.zeros((c.shape[0], mdp.n_states), dtype=np.int64)
    both = np.stack([c, 2.0 * c], axis=1)  # (K, 2, S, A)
    vals = policy_values(mdp, pol, both)
    assert vals.shape == (c.shape[0], 2)
    np.testing.assert_allclose(vals[:, 1], 2.0 * vals[:, 0], rtol=1e-12, atol=1e-12)


def test_two_step_hand_computed() -> None:
    # State 0 -> a0: state 1 surely; a1: state 1 or 2 w.p. 1/2. States 1 and 2 end.
    # r = [[1, 0], [0, 2], [5, 1]]: V(1) = 2, V(2) = 5, Q(0, a0) = 3, Q(0, a1) = 3.5.
    P = np.zeros((3, 2, 3))
    P[0, 0, 1] = 1.0
    P[0, 1, 1] = P[0, 1, 2] = 0.5
    mdp = mdp_from_arrays(P, [1.0, 0.0, 0.0], gamma=1.0)
    sol = solve_dp(mdp, np.array([[1.0, 0.0], [0.0, 2.0], [5.0, 1.0]]))
    np.testing.assert_allclose(sol.value, [3.5], rtol=0, atol=1e-15)
    np.testing.assert_array_equal(sol.policy, [[1, 1, 0]])
    assert sol.state_values is not None
    np.testing.assert_allclose(sol.state_values, [[3.5, 2.0, 5.0]], rtol=0, atol=1e-15)
    assert sol.occupancy is not None
    np.testing.assert_allclose(
        sol.occupancy[0], [[0.0, 1.0], [0.0, 0.5], [0.5, 0.0]], rtol=0, atol=1e-15
    )


def test_discounted_one_state_closed_form() -> None:
    # One state looping on itself: V = max_a r(a) / (1 - gamma).
    mdp = mdp_from_arrays(np.ones((1, 3, 1)), [1.0], gamma=0.75)
    sol = solve_dp(mdp, np.array([[1.0, 3.0, 2.0]]))
    np.testing.assert_allclose(sol.value, [12.0], rtol=1e-13, atol=0)
    np.testing.assert_array_equal(sol.policy, [[1]])
    assert sol.occupancy is not None
    np.testing.assert_allclose(sol.occupancy, [[[0.0, 4.0, 0.0]]], rtol=1e-13, atol=1e-13)


# ---------------------------------------------------------------------- tie-breaking

BACKENDS = ["numpy", "torch"]


@pytest.mark.parametrize("backend", BACKENDS)
def test_ties_break_to_lowest_index_static(backend: str) -> None:
    if backend == "torch":
        pytest.importorskip("torch")
    mdp = mdp_from_arrays(np.zeros((1, 4, 1)), [1.0], gamma=1.0)  # one decision, flow leaves
    c = np.array([[[0.0, 2.0, 2.0, 1.0]], [[0.0, 0.0, 0.0, 0.0]], [[-1.0, 5.0, 3.0, 5.0]]])
    sol = solve_dp(mdp, c, backend=backend)  # type: ignore[arg-type]
    np.testing.assert_array_equal(sol.policy, [[1], [0], [1]])
    np.testing.assert_allclose(sol.value, [2.0, 0.0, 5.0], rtol=0, atol=0)


@pytest.mark.parametrize("backend", BACKENDS)
def test_ties_break_to_lowest_index_through_future_values(backend: str) -> None:
    if backend == "torch":
        pytest.importorskip("torch")
    # State 0: a0 -> state 1 (worth 2), a1 -> state 2 (worth 1), a2 -> state 1.
    # Q(0, .) = [0 + 2, 1 + 1, 0 + 2]: a three-way tie, lowest index 0 wins.
    P = np.zeros((3, 3, 3))
    P[0, 0, 1] = P[0, 2, 1] = 1.0
    P[0, 1, 2] = 1.0
    mdp = mdp_from_arrays(P, [1.0, 0.0, 0.0], gamma=1.0)
    c = np.array([[0.0, 1.0, 0.0], [2.0, 2.0, 0.0], [0.0, 1.0, 1.0]])
    sol = solve_dp(mdp, c, backend=backend)  # type: ignore[arg-type]
    np.testing.assert_array_equal(sol.policy, [[0, 0, 1]])
    np.testing.assert_allclose(sol.value, [2.0], rtol=0, atol=0)


@pytest.mark.parametrize("backend", BACKENDS)
def test_ties_break_to_lowest_index_discounted(backend: str) -> None:
    if backend == "torch":
        pytest.importorskip("torch")
    # Two states, both actions swap states; equal rewards everywhere -> all ties -> action 0.
    P = np.zeros((2, 2, 2))
    P[0, :, 1] = 1.0
    P[1, :, 0] = 1.0
    mdp = mdp_from_arrays(P, [1.0, 0.0], gamma=0.5)
    sol = solve_dp(mdp, np.ones((2, 2)), backend=backend)  # type: ignore[arg-type]
    np.testing.assert_array_equal(sol.policy, [[0, 0]])
    np.testing.assert_allclose(sol.value, [2.0], rtol=1e-14, atol=0)


# ---------------------------------------------------------------------- bad input


@pytest.fixture(scope="module")
def small_mdp() -> TabularMDP:
    return catalogue.named_env("sales-3x2").mdp  # (5, 4)


def test_k_zero_raises(small_mdp: TabularMDP) -> None:
    with pytest.raises(ValueError, match=r"K >= 1"):
        solve_dp(small_mdp, np.zeros((0, 5, 4)))


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nonfinite_reward_raises(small_mdp: TabularMDP, bad: float) -> None:
    c = np.zeros((5, 4))
    c[2, 1] = bad
    with pytest.raises(ValueError, match=r"expected finite rewards"):
        solve_dp(small_mdp, c)


@pytest.mark.parametrize("shape", [(5,), (4, 5), (5, 5), (2, 5, 3), (1, 2, 5, 4)])
def test_wrong_shape_raises(small_mdp: TabularMDP, shape: tuple[int, ...]) -> None:
    with pytest.raises(ValueError, match=r"expected reward of shape \(S, A\) = \(5, 4\)"):
        solve_dp(small_mdp, np.zeros(shape))


def test_unknown_backend_raises(small_mdp: TabularMDP) -> None:
    with pytest.raises(ValueError, match=r"expected backend in \('numpy', 'torch'\), got 'jax'"):
        solve_dp(small_mdp, np.zeros((5, 4)), backend="jax")  # type: ignore[arg-type]
