"""Tests of the single-parameter declarations (Myerson 1981) of the built-in environments."""

from __future__ import annotations

import pickle
from typing import Any

import numpy as np
import pytest

from bilevel.models import (
    SingleParameter,
    ValueDistribution,
    check_single_parameter,
    custom_env,
    exponential_values,
    make_env,
    mdp_from_arrays,
    uniform_values,
    value_distribution,
)
from bilevel.models.typing import FloatArray

SINGLE = [
    ("sales", {"n_agents": 3, "n_items": 2}, False),
    ("sales", {"n_agents": 4, "n_items": 3, "dist": "asymmetric"}, False),
    ("gridworld", {"n_agents": 2, "grid": 3}, True),
    ("gridworld", {"n_agents": 3, "grid": 4, "gamma": 0.8}, True),
    ("matching", {"n_agents": 2, "rounds": 3}, True),
    ("matching", {"n_agents": 3, "rounds": 4, "dist": "asymmetric"}, True),
]


@pytest.mark.parametrize(("name", "kwargs", "public"), SINGLE)
def test_rewards_factor_exactly(name: str, kwargs: dict[str, Any], public: bool) -> None:
    env = make_env(name, **kwargs)
    sp = check_single_parameter(env, n_samples=500, seed=3)
    types = env.sample_types(np.random.default_rng(4), 300)
    R = env.rewards(types)
    v, q = sp.values(types), sp.allocation(types)
    np.testing.assert_array_equal(R, v[:, :, None, None] * q)
    assert sp.public_information is public
    assert sp.types_independent_allocation(types) is (not public)
    assert set(np.unique(q)) <= {0.0, 1.0}
    # pickling by recipe keeps the declaration
    env2 = pickle.loads(pickle.dumps(env))
    assert env2.single_parameter is not None
    np.testing.assert_array_equal(env2.single_parameter.allocation(types), q)


def test_sales_declared_distributions() -> None:
    sp = make_env("sales", n_agents=4, n_items=2, dist="asymmetric").single_parameter
    assert sp is not None
    for i, d in enumerate(sp.distributions, start=1):
        assert d.support[0] == 0.0 and d.support[1] == pytest.approx(1.0 / i)
        assert d.affine is not None
        assert d.affine[0] == 2.0 and d.affine[1] == pytest.approx(1.0 / i)
        assert d.regular
        assert float(d.phi(0.1)) == pytest.approx(0.2 - 1.0 / i, abs=1e-15)


@pytest.mark.parametrize(
    ("name", "kwargs"),
    [("scheduling", {"n_agents": 2, "n_tasks": 3}), ("gridworld", {"dist": "uniform"})],
)
def test_multi_parameter_envs_declare_nothing(name: str, kwargs: dict[str, Any]) -> None:
    env = make_env(name, **kwargs)
    assert env.single_parameter is None
    with pytest.raises(ValueError, match="single_parameter=None"):
        check_single_parameter(env)


def test_distributions() -> None:
    u = uniform_values(0, 2)
    assert u.affine == (2.0, 2.0) and u.reserve() == 1.0 and u.regular
    np.testing.assert_allclose(u.phi(np.array([0.0, 1.0, 2.0])), [-2.0, 0.0, 2.0], atol=1e-15)
    e = exponential_values(4.0)
    assert e.support == (0.0, np.inf) and e.affine == (1.0, 0.25)
    assert float(e.phi(1.0)) == pytest.approx(0.75, abs=1e-15)
    # a regular non-affine virtual value: F(v) = v^2 on [0, 1], φ = v - (1 - v^2) / (2 v)
    sq = value_distribution("v^2", lambda v: 1.5 * v - 0.5 / np.maximum(v, 1e-3), (0.0, 1.0))
    assert sq.regular and sq.affine is None and sq.decreasing_on is None
    bimodal = value_distribution("bimodal", lambda v: v - 0.3 * np.sin(6 * v), (0.0, 2.0))
    assert not bimodal.regular
    assert bimodal.decreasing_on is not None
    a, b = bimodal.decreasing_on
    # φ' = 1 - 1.8 cos(6 v) < 0 first on [0, arccos(1 / 1.8) / 6) ≈ [0, 0.164)
    assert a == pytest.approx(0.0, abs=1e-3)
    assert b == pytest.approx(np.arccos(1 / 1.8) / 6, abs=1e-3)
    with pytest.raises(ValueError, match="affine"):
        value_distribution("wrong", lambda v: 2 * v, (0, 1), affine=(2.0, 1.0))
    with pytest.raises(ValueError, match="expected support"):
        uniform_values(1, 0)
    with pytest.raises(ValueError, match="expected rate > 0"):
        exponential_values(0.0)
    with pytest.raises(ValueError, match="a > 0"):
        ValueDistribution("neg", (0.0, 1.0), lambda v: -v, True, (-1.0, 0.0))


def _auction(values_fn: Any = None) -> tuple[Any, SingleParameter]:
    P = np.zeros((1, 3, 1))  # skip, sell to 0, sell to 1
    q = np.zeros((2, 1, 3))
    q[0, 0, 1] = q[1, 0, 2] = 1.0

    def rewards(v: FloatArray) -> FloatArray:
        out: FloatArray = v[:, :, None, None] * q[None]
        return out

    sp = SingleParameter(
        values_fn or (lambda t: t),
        lambda t: np.broadcast_to(q, (t.shape[0], *q.shape)),
        [uniform_values(0, 1)] * 2,
    )
    env = custom_env(mdp_from_arrays(P, [1.0], 1.0), n_agents=2, type_shape=(2,),
                     sampler=lambda rng, k: rng.uniform(size=(k, 2)), reward_fn=rewards,
                     single_parameter=sp)
    return env, sp


def test_custom_env_and_mismatch() -> None:
    env, sp = _auction()
    assert env.single_parameter is sp
    assert check_single_parameter(env) is sp
    bad, _ = _auction(lambda t: 0.5 * t)
    with pytest.raises(ValueError, match="expected rewards == values · allocation"):
        check_single_parameter(bad)
    out_of_support, _ = _auction(lambda t: t + 1.5)
    with pytest.raises(ValueError, match="support"):
        check_single_parameter(out_of_support)
    with pytest.raises(ValueError, match="one per agent"):
        custom_env(env.mdp, n_agents=3, type_shape=(3,), sampler=env.sampler,
                   reward_fn=env.reward_fn, single_parameter=sp)
    with pytest.raises(TypeError, match="SingleParameter"):
        custom_env(env.mdp, n_agents=2, type_shape=(2,), sampler=env.sampler,
                   reward_fn=env.reward_fn, single_parameter="yes")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="got none"):
        SingleParameter(lambda t: t, lambda t: t, [])
