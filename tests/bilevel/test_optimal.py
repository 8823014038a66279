"""Myerson's (1981) optimal mechanism as an AMA: optimality, threshold prices, truthfulness."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from bilevel import (
    AMA,
    Objective,
    SingleParameter,
    batch_outcomes,
    bound_values,
    counterfactual_rewards,
    custom_env,
    evaluate,
    exponential_values,
    make_env,
    mdp_from_successors,
    objective_bound,
    optimal_mechanism,
    uniform_values,
    value_distribution,
)
from bilevel.models import Environment
from bilevel.models.typing import FloatArray

SIZES = [(2, 1), (3, 1), (3, 2), (4, 2), (4, 3), (5, 3)]
N_EVAL = 6_000


def _upper(n: int, dist: str) -> FloatArray:
    return 1.0 / np.arange(1, n + 1) if dist == "asymmetric" else np.ones(n)


def _top_virtual_values(v: FloatArray, upper: FloatArray, m: int) -> FloatArray:
    """Closed form: the sum of the top min(m, n) positive virtual values 2 v_i - hi_i."""
    phi = np.maximum(2 * v - upper, 0.0)
    top: FloatArray = -np.sort(-phi, axis=1)[:, :m].sum(axis=1)
    return top


@pytest.mark.parametrize("dist", ["uniform", "asymmetric"])
@pytest.mark.parametrize(("n", "m"), SIZES)
def test_optimal_revenue_equals_bound_and_closed_form(n: int, m: int, dist: str) -> None:
    env = make_env("sales", n_agents=n, n_items=m, dist=dist)
    mech = optimal_mechanism(env)
    assert mech.name == "optimal"
    ev = evaluate(env, mech, n_samples=N_EVAL, seed=11, baseline=None)
    assert ev.bound_kind == "optimal"
    assert ev.gap_mean is not None and ev.gap_se is not None and ev.bound is not None
    assert abs(ev.gap_mean) <= 3 * ev.gap_se
    assert ev.min_utility >= -1e-9
    # the bound per profile is the closed form, on the evaluation's own profiles
    rng = np.random.default_rng(11)
    types = env.sample_types(rng, 2_000)
    kind, vals = bound_values(env, "revenue", types)
    assert kind == "optimal"
    np.testing.assert_allclose(vals, _top_virtual_values(types, _upper(n, dist), m), atol=1e-12)
    # an independent Monte Carlo of the closed form (no solver, other profiles)
    v = np.random.default_rng(99).uniform(size=(200_000, n)) * _upper(n, dist)
    cf = _top_virtual_values(v, _upper(n, dist), m)
    cf_mean, cf_se = cf.mean(), cf.std(ddof=1) / np.sqrt(cf.size)
    assert abs(ev.mean - cf_mean) <= 3 * np.hypot(ev.se, cf_se)
    assert ev.bound_se is not None
    assert abs(ev.bound - cf_mean) <= 3 * np.hypot(ev.bound_se, cf_se)


@pytest.mark.parametrize("dist", ["uniform", "asymmetric"])
def test_boosts_are_minus_reserve_on_selling_actions(dist: str) -> None:
    n, m = 4, 3
    env = make_env("sales", n_agents=n, n_items=m, dist=dist)
    mech = optimal_mechanism(env)
    np.testing.assert_array_equal(mech.weights, np.ones(n))
    for s, label in enumerate(env.mdp.states):
        holders = set(label[1:])  # type: ignore[index]
        assert mech.boosts[s, 0] == 0.0
        for i in range(1, n + 1):
            expected = 0.0 if i in holders else (-0.5 if dist == "uniform" else -1 / (2 * i))
            assert mech.boosts[s, i] == pytest.approx(expected, abs=1e-15)


def _outcomes(env: Environment, mech: AMA, types: FloatArray) -> Any:
    return batch_outcomes(env.mdp, mech.weights[None], mech.boosts[None], env.rewards(types),
                          counterfactual_rewards(env, types))


@pytest.mark.parametrize(("n", "dist"), [(2, "uniform"), (4, "uniform"), (3, "asymmetric"),
                                         (5, "asymmetric")])
def test_single_item_payments_are_myerson_thresholds(n: int, dist: str) -> None:
    env = make_env("sales", n_agents=n, n_items=1, dist=dist)
    mech = optimal_mechanism(env)
    v = env.sample_types(np.random.default_rng(5), 3_000)
    out = _outcomes(env, mech, v)
    hi = _upper(n, dist)
    phi = 2 * v - hi
    pay = np.zeros_like(v)
    for i in range(n):
        others = np.delete(phi, i, axis=1).max(axis=1) if n > 1 else np.full(len(v), -np.inf)
        wins = (phi[:, i] > 0) & (phi[:, i] > others)
        # lowest winning value: phi_i(t) = max(0, best other) -> t = (max(0, other) + hi_i) / 2
        threshold = (np.maximum(0.0, others) + hi[i]) / 2
        assert np.all(threshold >= hi[i] / 2)  # at least the reserve price
        pay[wins, i] = threshold[wins]
    assert out.payments is not None
    np.testing.assert_allclose(out.payments[0], pay, rtol=0, atol=1e-9)


@pytest.mark.parametrize(("n", "m", "dist"), [(3, 2, "uniform"), (4, 2, "asymmetric")])
def test_misreport_audit_truthful_and_ir(n: int, m: int, dist: str) -> None:
    env = make_env("sales", n_agents=n, n_items=m, dist=dist)
    mech = optimal_mechanism(env)
    K, G = 200, 41
    v = env.sample_types(np.random.default_rng(7), K)
    R_true = env.rewards(v)  # (K, n, S, A)
    truth = _outcomes(env, mech, v)
    assert truth.payments is not None
    u_true = truth.agent_rewards[0] - truth.payments[0]  # (K, n)
    assert u_true.min() >= -1e-9
    hi = _upper(n, dist)
    for i in range(n):
        grid = np.linspace(0.0, hi[i], G)
        rep = np.repeat(v, G, axis=0)
        rep[:, i] = np.tile(grid, K)
        out = _outcomes(env, mech, rep)
        assert out.payments is not None
        x = out.occupancy[0]  # (K*G, S, A)
        true_reward = np.einsum("ksa,ksa->k", x, np.repeat(R_true[:, i], G, axis=0))
        u_lie = (true_reward - out.payments[0][:, i]).reshape(K, G)
        assert np.all(u_lie <= u_true[:, i : i + 1] + 1e-9)


def _round_sale(n_agents: int, rounds: int, dist: Any) -> Environment:
    """A user-built sequential sale: one item per round, unit demand, values from ``dist``."""
    n = n_agents

    def successors(s: tuple[int, ...], a: int) -> list[tuple[tuple[int, ...], float]]:
        k, held = s[0], s[1:]
        if k + 1 == rounds:
            return []
        if a > 0:
            held = tuple(1 if j == a - 1 else h for j, h in enumerate(held))
        return [((k + 1, *held), 1.0)]

    mdp = mdp_from_successors((0, *([0] * n)), successors, ["keep", *map(str, range(n))], 1.0)
    S, A = mdp.shape
    q = np.zeros((n, S, A))
    for s, label in enumerate(mdp.states):
        for i in range(n):
            q[i, s, i + 1] = 1.0 - label[1 + i]  # type: ignore[index]

    def alloc(t: FloatArray) -> FloatArray:
        out: FloatArray = np.broadcast_to(q, (t.shape[0], *q.shape))
        return out

    def rewards(t: FloatArray) -> FloatArray:
        out: FloatArray = t[:, :, None, None] * q[None]
        return out

    if dist == "exp":
        sampler = lambda rng, k: rng.exponential(0.5, size=(k, n))  # noqa: E731 (rate 2)
        dists = [exponential_values(2.0)] * n
    else:
        sampler = lambda rng, k: rng.uniform(0, 2, size=(k, n))  # noqa: E731
        dists = [uniform_values(0, 2)] * n
    sp = SingleParameter(lambda t: t, alloc, dists)
    return custom_env(mdp, n_agents=n, type_shape=(n,), sampler=sampler, reward_fn=rewards,
                      name="rounds", single_parameter=sp)


@pytest.mark.parametrize(("dist", "reserve"), [("uniform", 1.0), ("exp", 0.5)])
def test_user_single_parameter_env(dist: str, reserve: float) -> None:
    env = _round_sale(4, 3, dist)
    mech = optimal_mechanism(env)
    q = env.single_parameter.allocation(env.sample_types(0, 1))[0]  # type: ignore[union-attr]
    np.testing.assert_allclose(mech.weights, np.ones(4))
    np.testing.assert_allclose(mech.boosts, -reserve * q.sum(axis=0), atol=1e-15)
    assert (mech.boosts < 0).sum() > 0
    bound = objective_bound(env, n_samples=5_000, seed=3)
    assert bound.kind == "optimal" and bound.sense == "upper"
    ev = evaluate(env, mech, n_samples=5_000, seed=3, baseline=None)
    assert ev.bound == pytest.approx(bound.mean, abs=1e-12)  # the same profiles
    assert ev.gap_mean is not None and ev.gap_se is not None
    assert abs(ev.gap_mean) <= 3 * ev.gap_se
    assert abs(ev.mean - bound.mean) <= 3 * np.hypot(ev.se, bound.se)


def test_welfare_optimum_is_vcg() -> None:
    env = make_env("scheduling", n_agents=2, n_tasks=3)
    mech = optimal_mechanism(env, "welfare")
    assert mech.name == "optimal" and mech.is_vcg
    ev = evaluate(env, mech, n_samples=1_000, seed=0, objective="welfare", baseline=None)
    assert ev.bound_kind == "first-best"
    assert ev.gap_mean == pytest.approx(0.0, abs=1e-9)


@pytest.mark.parametrize(
    ("name", "kwargs", "objective", "match"),
    [
        ("scheduling", {}, "revenue", "scheduling: multi-parameter types, no closed-form optimum"),
        ("scheduling", {}, "makespan", "objective 'makespan': no closed-form optimal mechanism"),
        ("gridworld", {}, "revenue", "gridworld: the goal cell is private information; only a "
         r"public-information bound exists \(objective_bound\)"),
        ("gridworld", {"dist": "uniform"}, "revenue", "gridworld: multi-parameter types"),
        ("matching", {}, "revenue", "matching: the patience is private information"),
    ],
)
def test_no_closed_form(name: str, kwargs: dict[str, Any], objective: str, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        optimal_mechanism(make_env(name, **kwargs), objective)


def _static_auction(dists: list[Any], counterfactual: Any = None) -> Environment:
    P = np.zeros((1, 3, 1))
    q = np.zeros((2, 1, 3))
    q[0, 0, 1] = q[1, 0, 2] = 1.0
    sp = SingleParameter(lambda t: t, lambda t: np.broadcast_to(q, (t.shape[0], *q.shape)), dists)
    from bilevel.models import mdp_from_arrays

    return custom_env(mdp_from_arrays(P, [1.0], 1.0), n_agents=2, type_shape=(2,),
                      sampler=lambda rng, k: rng.uniform(0.1, 1.0, size=(k, 2)),
                      reward_fn=lambda t: t[:, :, None, None] * q[None],
                      counterfactual_fn=counterfactual, single_parameter=sp)


def test_bad_distributions() -> None:
    bimodal = value_distribution("bimodal", lambda v: v - 0.3 * np.sin(6 * v), (0.0, 1.0))
    env = _static_auction([uniform_values(0, 1), bimodal])
    with pytest.raises(ValueError, match=r"non-regular value distribution for agent 2 \(virtual "
                       r"value decreases on \[0, 0\.16\d*\]\); ironing is not supported"):
        optimal_mechanism(env)
    # the bound still exists (the pointwise inequality needs no regularity)
    assert objective_bound(env, n_samples=200).kind == "virtual-welfare"
    square = value_distribution("F=v^2", lambda v: 1.5 * v - 0.5 / np.maximum(v, 1e-3), (0, 1))
    env = _static_auction([square, square])
    with pytest.raises(ValueError, match="virtual-welfare maximiser but not an affine maximizer"):
        optimal_mechanism(env)
    assert objective_bound(env, n_samples=200).kind == "optimal"

    def to_half(t: FloatArray, i: int) -> FloatArray:
        t[:, i] = 0.5
        return t

    env = _static_auction([uniform_values(0, 1)] * 2, counterfactual=to_half)
    with pytest.raises(ValueError, match="counterfactual value at the lower end"):
        optimal_mechanism(env)
    with pytest.raises(ValueError, match="expected objective in"):
        optimal_mechanism(env, "makespan")
    custom = Objective.from_occupancy(lambda x, t: x.sum(axis=(-2, -1)), name="mass")
    with pytest.raises(ValueError, match="objective 'mass': no closed-form optimal mechanism"):
        optimal_mechanism(env, custom)
