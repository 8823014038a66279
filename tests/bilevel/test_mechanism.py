"""Tests of AMA mechanisms: VCG known answers, payment identity, inner-solver agreement, I/O.

Known answers: VCG sales revenue m(n-m)/(n+1) for uniform values, the gridworld profile of the
authors' code (runtests.jl of Curry et al. (2024)), the AMA payments of Curry et al. (2024),
Definition 3.1, and the VCG makespan of their Table 3.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from bilevel import AMA, evaluate, load_mechanism, make_env, mechanism_outcomes, vcg
from bilevel.models import Environment
from bilevel.solvers import solve_lp


def random_ama(env: Environment, seed: int, scale: float) -> AMA:
    rng = np.random.default_rng(seed)
    return AMA(
        rng.uniform(0.3, 3.0, size=env.n_agents),
        rng.normal(0.0, scale, size=env.mdp.shape),
        name="random",
    )


# ---------------------------------------------------------------------- VCG sales revenue


@pytest.mark.parametrize(
    ("n", "m", "expected"),
    [(3, 2, 0.5), (4, 2, 0.8), (5, 3, 1.0), (4, 3, 0.6)],
)
def test_vcg_sales_revenue_closed_form(n: int, m: int, expected: float) -> None:
    # Sequential sales (Curry et al. (2024), §5): each of the m winners pays the (m+1)-th highest
    # of n U[0,1] values,
    # E = m (n - m) / (n + 1).
    assert expected == pytest.approx(m * (n - m) / (n + 1), rel=1e-15)
    env = make_env("sales", n_agents=n, n_items=m, dist="uniform")
    ev = evaluate(env, vcg(env), n_samples=20_000, seed=12345, baseline=None)
    assert ev.objective == "revenue" and ev.maximize
    assert ev.n_samples == 20_000 and ev.se > 0
    assert abs(ev.mean - expected) < 4 * ev.se, (ev.mean, ev.se)
    assert ev.revenue == ev.mean
    # VCG welfare is the sum of the m highest values, positive; all utilities are >= 0.
    assert ev.min_utility >= -1e-12


@pytest.mark.parametrize(("n", "m"), [(2, 2), (3, 3)])
def test_vcg_sales_revenue_zero_when_items_suffice(n: int, m: int) -> None:
    env = make_env("sales", n_agents=n, n_items=m, dist="uniform")
    ev = evaluate(env, vcg(env), n_samples=2_000, seed=3, baseline=None)
    assert abs(ev.mean) <= 1e-12 and ev.se <= 1e-12
    out = mechanism_outcomes(env, vcg(env), env.sample_types(4, 50))
    assert out.payments is not None
    np.testing.assert_allclose(out.payments, 0.0, rtol=0, atol=1e-12)
    # Everybody gets an item, so welfare = sum of all values.
    types = env.sample_types(5, 20)
    np.testing.assert_allclose(
        mechanism_outcomes(env, vcg(env), types).welfare[0], types.sum(axis=1), rtol=0, atol=1e-12
    )


def test_vcg_sales_hand_worked_profile() -> None:
    # n=3, m=2, values [0.9, 0.5, 0.2]: items to agents 1 and 2; each pays the externality it
    # imposes = the value of agent 3 who would otherwise get an item, 0.2.
    env = make_env("sales", n_agents=3, n_items=2)
    out = mechanism_outcomes(env, vcg(env), np.array([[0.9, 0.5, 0.2]]))
    assert out.payments is not None
    assert out.occupancy.shape == (1, 1, *env.mdp.shape)
    assert out.agent_rewards.shape == out.payments.shape == (1, 1, 3)
    np.testing.assert_allclose(out.payments, [[[0.2, 0.2, 0.0]]], rtol=0, atol=1e-12)
    np.testing.assert_allclose(out.agent_rewards, [[[0.9, 0.5, 0.0]]], rtol=0, atol=1e-12)
    np.testing.assert_allclose(out.revenue, [[0.4]], rtol=0, atol=1e-12)
    np.testing.assert_allclose(out.welfare, [[1.4]], rtol=0, atol=1e-12)
    np.testing.assert_allclose(out.utility, [[[0.7, 0.3, 0.0]]], rtol=0, atol=1e-12)
    np.testing.assert_allclose(out.asw, [[1.4]], rtol=0, atol=1e-12)


def test_vcg_gridworld_runtests_profile() -> None:
    # The profile of the authors' runtests.jl: 3x3 onecell, n=2, gamma=0.9; agent 1 worth
    # 0.7458 at (1,3), agent 2 worth 0.5930 at (3,1). VCG walks up to (1,3) and oscillates with
    # a neighbour: agent 1 gets 0.7458 / (1 - 0.81) = 3.9253 and pays 3.1210; agent 2 gets
    # nothing and pays 0.
    env = make_env("gridworld", n_agents=2, grid=3, dist="onecell", gamma=0.9)
    types = np.zeros((1, 2, 3, 3))
    types[0, 0, 1 - 1, 3 - 1] = 0.7458
    types[0, 1, 3 - 1, 1 - 1] = 0.5930
    for inner in ("dp", "lp"):
        out = mechanism_outcomes(env, vcg(env), types, inner=inner)
        assert out.payments is not None
        np.testing.assert_allclose(out.revenue, [[3.1210]], rtol=0, atol=1e-3)
        np.testing.assert_allclose(out.payments, [[[3.1210, 0.0]]], rtol=0, atol=1e-3)
        np.testing.assert_allclose(out.welfare, [[3.9253]], rtol=0, atol=1e-3)
        np.testing.assert_allclose(out.welfare, [[0.7458 / (1 - 0.81)]], rtol=1e-10, atol=0)
        np.testing.assert_allclose(
            out.agent_rewards, [[[0.7458 / 0.19, 0.0]]], rtol=1e-10, atol=1e-12
        )


# ---------------------------------------------------------------------- payment identity

IDENTITY_ENVS = [
    pytest.param("sales", dict(n_agents=3, n_items=2), 0.5, id="sales"),
    pytest.param("gridworld", dict(n_agents=2, grid=3, dist="uniform"), 0.5, id="gridworld"),
    pytest.param("matching", dict(n_agents=2, rounds=3), 0.5, id="matching"),
    pytest.param("scheduling", dict(n_agents=2, n_tasks=3), 1.5, id="scheduling"),
]


@pytest.mark.parametrize(("name", "kwargs", "scale"), IDENTITY_ENVS)
def test_payment_identity_random_ama(name: str, kwargs: dict[str, object], scale: float) -> None:
    # The payments of Curry et al. (2024), Definition 3.1, summed over agents: revenue =
    # SW + sum_i (A_{-i} - A) / w_i, with A and A_{-i} the optimal affine welfare for the
    # reports and the counterfactual reports (solved here by the LP, independently of the
    # mechanism's own DP solves).
    env = make_env(name, **kwargs)
    mech = random_ama(env, seed=7, scale=scale)
    types = env.sample_types(11, 6)
    out = mechanism_outcomes(env, mech, types)
    assert out.payments is not None
    A = solve_lp(env.mdp, mech.affine_welfare(env.rewards(types))).value  # (K,)
    A_cf = np.stack(
        [
            solve_lp(env.mdp, mech.affine_welfare(env.rewards(env.counterfactual(types, i)))).value
            for i in range(env.n_agents)
        ],
        axis=1,
    )  # (K, n)
    np.testing.assert_allclose(out.asw[0], A, rtol=1e-9, atol=1e-9)
    expected = out.welfare[0] + ((A_cf - A[:, None]) / mech.weights).sum(axis=1)
    np.testing.assert_allclose(out.revenue[0], expected, rtol=1e-8, atol=1e-8)
    # Per agent: p_i = (A_{-i} - (A - w_i r_i(x))) / w_i.
    p = (A_cf - (A[:, None] - mech.weights * out.agent_rewards[0])) / mech.weights
    np.testing.assert_allclose(out.payments[0], p, rtol=1e-8, atol=1e-8)


def test_vcg_equals_ama_with_unit_weights_zero_boosts() -> None:
    env = make_env("sales", n_agents=4, n_items=2)
    types = env.sample_types(0, 20)
    a = mechanism_outcomes(env, vcg(env), types)
    b = mechanism_outcomes(env, AMA(np.ones(4), np.zeros(env.mdp.shape)), types)
    assert a.payments is not None and b.payments is not None
    np.testing.assert_array_equal(a.payments, b.payments)
    assert vcg(env).is_vcg and not random_ama(env, 0, 0.5).is_vcg


def test_payments_invariant_to_weight_scaling() -> None:
    # Scaling (w, b) by c > 0 leaves the allocation and the payments unchanged.
    env = make_env("gridworld", n_agents=2, grid=3, dist="uniform")
    mech = random_ama(env, seed=3, scale=0.5)
    scaled = AMA(2.5 * mech.weights, 2.5 * mech.boosts)
    types = env.sample_types(1, 8)
    a, b = mechanism_outcomes(env, mech, types), mechanism_outcomes(env, scaled, types)
    assert a.payments is not None and b.payments is not None
    np.testing.assert_allclose(a.payments, b.payments, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(a.agent_rewards, b.agent_rewards, rtol=1e-9, atol=1e-9)


# ---------------------------------------------------------------------- DP vs LP inner

INNER_ENVS = [
    pytest.param("sales", dict(n_agents=3, n_items=2), 0.5, id="sales"),
    pytest.param("scheduling", dict(n_agents=2, n_tasks=4), 1.5, id="scheduling"),
    pytest.param("gridworld", dict(n_agents=2, grid=3, dist="onecell"), 0.5, id="gridworld"),
    pytest.param("matching", dict(n_agents=2, rounds=3), 0.5, id="matching"),
]


@pytest.mark.parametrize(("name", "kwargs", "scale"), INNER_ENVS)
def test_dp_and_lp_inner_give_same_payments(
    name: str, kwargs: dict[str, object], scale: float
) -> None:
    # Random boosts make the optimal allocation unique, so both solvers must return it.
    env = make_env(name, **kwargs)
    mech = random_ama(env, seed=5, scale=scale)
    types = env.sample_types(9, 4)
    dp = mechanism_outcomes(env, mech, types, inner="dp")
    lp = mechanism_outcomes(env, mech, types, inner="lp")
    assert dp.payments is not None and lp.payments is not None
    np.testing.assert_allclose(dp.payments, lp.payments, rtol=1e-8, atol=1e-8)
    np.testing.assert_allclose(dp.agent_rewards, lp.agent_rewards, rtol=1e-8, atol=1e-8)
    np.testing.assert_allclose(dp.asw, lp.asw, rtol=1e-9, atol=1e-9)


def test_unknown_inner_raises() -> None:
    env = make_env("sales", n_agents=2, n_items=1)
    with pytest.raises(ValueError, match=r"expected inner solver in \('dp', 'lp'\)"):
        mechanism_outcomes(env, vcg(env), env.sample_types(0, 1), inner="nope")


# ---------------------------------------------------------------------- persistence


@pytest.mark.parametrize("suffix", [".json", ".npz"])
def test_save_load_round_trip(tmp_path: Path, suffix: str) -> None:
    env = make_env("gridworld", n_agents=2, grid=3)
    mech = AMA(
        [0.3, 1.0 / 3.0],
        np.random.default_rng(0).normal(size=env.mdp.shape) * 1e3,
        name="designed",
        meta={"env": "gridworld", "seed": 4, "score": 0.123456789012345678, "tags": ["a", "b"]},
    )
    path = mech.save(tmp_path / "sub" / f"mech{suffix}")
    assert path.exists()
    back = load_mechanism(path)
    np.testing.assert_array_equal(back.weights, mech.weights)
    np.testing.assert_array_equal(back.boosts, mech.boosts)
    assert back.weights.dtype == back.boosts.dtype == np.float64
    assert back.name == "designed"
    assert back.meta == mech.meta
    back.check_compatible(env)


def test_to_dict_round_trip_and_json() -> None:
    env = make_env("sales", n_agents=3, n_items=2)
    mech = random_ama(env, 1, 0.5)
    d = json.loads(json.dumps(mech.to_dict()))
    back = AMA.from_dict(d)
    np.testing.assert_array_equal(back.weights, mech.weights)
    np.testing.assert_array_equal(back.boosts, mech.boosts)


def test_load_non_mechanism_json_raises(tmp_path: Path) -> None:
    p = tmp_path / "other.json"
    p.write_text(json.dumps({"weights": [1.0], "boosts": [[0.0]]}))
    with pytest.raises(ValueError, match=r"expected a mechanism with format 'bilevel.ama/1'"):
        load_mechanism(p)
    q = tmp_path / "list.json"
    q.write_text("[1, 2, 3]")
    with pytest.raises(ValueError, match=r"expected a mechanism with format"):
        load_mechanism(q)


def test_load_non_mechanism_npz_raises(tmp_path: Path) -> None:
    p = tmp_path / "other.npz"
    np.savez(p, a=np.ones(3))
    with pytest.raises(ValueError, match=r"expected a mechanism"):
        load_mechanism(p)


def test_load_wrong_suffix_raises(tmp_path: Path) -> None:
    p = tmp_path / "mech.pkl"
    p.write_text("x")
    with pytest.raises(ValueError, match=r"expected a path ending in .json or .npz"):
        load_mechanism(p)
    env = make_env("sales", n_agents=2, n_items=1)
    with pytest.raises(ValueError, match=r"expected a path ending in .json or .npz"):
        vcg(env).save(tmp_path / "mech.txt")


# ---------------------------------------------------------------------- invalid AMAs


@pytest.mark.parametrize("w", [[1.0, 0.0], [1.0, -0.5], [np.nan, 1.0], [np.inf, 1.0]])
def test_ama_rejects_bad_weights(w: list[float]) -> None:
    with pytest.raises(ValueError, match=r"expected weights w > 0 and finite"):
        AMA(w, np.zeros((3, 2)))


def test_ama_rejects_bad_shapes_and_boosts() -> None:
    with pytest.raises(ValueError, match=r"expected weights of shape \(n,\)"):
        AMA([], np.zeros((3, 2)))
    with pytest.raises(ValueError, match=r"expected weights of shape \(n,\)"):
        AMA([[1.0, 1.0]], np.zeros((3, 2)))
    with pytest.raises(ValueError, match=r"expected boosts of shape \(S, A\)"):
        AMA([1.0], np.zeros(6))
    for bad in (np.nan, np.inf):
        b = np.zeros((3, 2))
        b[1, 1] = bad
        with pytest.raises(ValueError, match=r"expected finite boosts"):
            AMA([1.0], b)


def test_ama_check_env_rejects_mismatch() -> None:
    env = make_env("sales", n_agents=3, n_items=2)  # (S, A) = (5, 4)
    with pytest.raises(ValueError, match=r"boosts must have shape \(S, A\) = \(5, 4\)"):
        AMA(np.ones(3), np.zeros((4, 5))).check_compatible(env)
    with pytest.raises(ValueError, match=r"expected a mechanism for 3 agents, got weights for 2"):
        AMA(np.ones(2), np.zeros((5, 4))).check_compatible(env)
    # The same checks guard the public entry points.
    with pytest.raises(ValueError, match=r"boosts must have shape"):
        mechanism_outcomes(env, AMA(np.ones(3), np.zeros((5, 3))), env.sample_types(0, 2))
    with pytest.raises(ValueError, match=r"boosts must have shape"):
        evaluate(env, AMA(np.ones(3), np.zeros((5, 3))), n_samples=10)


def test_ama_arrays_are_read_only() -> None:
    mech = AMA([1.0, 2.0], np.zeros((2, 2)))
    with pytest.raises(ValueError, match=r"read-only"):
        mech.weights[0] = 3.0
    with pytest.raises(ValueError, match=r"read-only"):
        mech.boosts[0, 0] = 3.0


# ---------------------------------------------------------------------- scheduling makespan


def test_vcg_scheduling_makespan_matches_paper() -> None:
    # Curry et al. (2024), Table 3: VCG expected makespan ~1.0336 for uniform n=2, T=4 under
    # the makespan rule of the authors' code (un-clamped, "reference"); the clamped rule gives
    # a larger value.
    ref = make_env("scheduling", n_agents=2, n_tasks=4, dist="uniform", makespan="reference")
    ev = evaluate(ref, vcg(ref), n_samples=4_000, seed=2024, objective="makespan", baseline=None)
    assert ev.objective == "makespan" and not ev.maximize
    assert abs(ev.mean - 1.0336) < 4 * ev.se, (ev.mean, ev.se)
    clamped = make_env("scheduling", n_agents=2, n_tasks=4, dist="uniform", makespan="clamped")
    ev_c = evaluate(
        clamped, vcg(clamped), n_samples=4_000, seed=2024, objective="makespan", baseline=None
    )
    # Same seed -> same profiles and same VCG allocations; the clamped rule is never smaller.
    assert ev_c.mean > ev.mean + 0.1, (ev_c.mean, ev.mean)
    # The default objective of scheduling is the makespan.
    ev_default = evaluate(ref, vcg(ref), n_samples=500, seed=1, baseline=None)
    assert ev_default.objective == "makespan"
