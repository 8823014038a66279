"""Dominant-strategy incentive compatibility and individual rationality of AMAs.

With exact inner solves an AMA (any ``w > 0``, any boosts) is DSIC: for every profile, agent
``i``'s utility ``r_i(x; true type) - p_i`` under a truthful report is at least its utility
under any misreport, whatever the others report. Here this is checked on every built-in
environment with random AMAs, random profiles and several families of misreports. A sanity
test shows the check does fail for a non-AMA (first-price) payment rule.
"""

from __future__ import annotations

import numpy as np
import pytest

from bilevel import AMA, make_env, mechanism_outcomes, vcg
from bilevel.models import Environment
from bilevel.models.typing import FloatArray, IntArray

N_PROFILES = 30
TOL = 1e-9

# (id, make_env kwargs, boost scale ≈ typical reward size)
ENVS = [
    ("sales-uniform", dict(name="sales", n_agents=3, n_items=2, dist="uniform"), 0.5),
    ("sales-asymmetric", dict(name="sales", n_agents=3, n_items=2, dist="asymmetric"), 0.3),
    ("scheduling-uniform", dict(name="scheduling", n_agents=2, n_tasks=4, dist="uniform"), 1.5),
    ("gridworld-onecell", dict(name="gridworld", n_agents=2, grid=3, dist="onecell"), 0.5),
    ("gridworld-uniform", dict(name="gridworld", n_agents=2, grid=3, dist="uniform"), 0.5),
    ("matching-uniform", dict(name="matching", n_agents=2, rounds=3, dist="uniform"), 0.5),
]
ENV_PARAMS = [pytest.param(kw, scale, id=name) for name, kw, scale in ENVS]
NONNEGATIVE_ENV_PARAMS = [
    pytest.param(kw, scale, id=name) for name, kw, scale in ENVS if kw["name"] != "scheduling"
]
MISREPORTS = ["scaled", "zeroed", "swapped", "fresh"]


def _env(kwargs: dict[str, object]) -> Environment:
    kw = dict(kwargs)
    name = kw.pop("name")
    assert isinstance(name, str)
    return make_env(name, **kw)


def random_ama(env: Environment, rng: np.random.Generator, scale: float) -> AMA:
    return AMA(rng.uniform(0.3, 3.0, size=env.n_agents), rng.normal(0.0, scale, size=env.mdp.shape))


def misreport(
    env: Environment, types: FloatArray, agent: IntArray, kind: str, rng: np.random.Generator
) -> FloatArray:
    """Copy of ``types`` where agent ``agent[k]`` of profile ``k`` misreports (kind)."""
    K = types.shape[0]
    rows = np.arange(K)
    rep = types.copy()
    own = rep[rows, agent]  # (K, *per-agent type shape)
    if kind == "scaled":
        factor = np.asarray(rng.uniform(0.0, 2.0, size=K)).reshape((K,) + (1,) * (own.ndim - 1))
        new = own * factor
    elif kind == "zeroed":
        new = np.zeros_like(own)
    elif kind == "swapped":
        other = (agent + rng.integers(1, env.n_agents, size=K)) % env.n_agents
        new = types[rows, other]
        rep[rows, other] = own
    elif kind == "fresh":
        new = env.sample_types(rng, K)[rows, agent]
    else:  # pragma: no cover
        raise AssertionError(kind)
    if env.name == "matching":
        # Types are [value, patience]: column 0 is what "scaled"/"zeroed" act on; the patience
        # is either kept or misreported too, always as an integer in 1..5.
        if kind in ("scaled", "zeroed"):
            new = new.copy()
            new[:, 1] = np.where(rng.uniform(size=K) < 0.5, own[:, 1], rng.integers(1, 6, size=K))
        assert np.all(np.isin(new[:, 1], [1, 2, 3, 4, 5]))
    rep[rows, agent] = new
    out: FloatArray = rep
    return out


def utilities(out_util: FloatArray, agent: IntArray) -> FloatArray:
    """Utility of agent ``agent[k]`` in profile ``k`` from an (1, K, n) utility array."""
    u: FloatArray = out_util[0, np.arange(agent.size), agent]
    return u


def assert_truthful(u_truth: FloatArray, u_lie: FloatArray, what: str) -> None:
    gain = u_lie - u_truth
    worst = int(np.argmax(gain))
    assert gain[worst] <= TOL, (
        f"{what}: misreport gains {gain[worst]:.3e} in profile {worst} "
        f"(truthful {u_truth[worst]:.6f}, misreport {u_lie[worst]:.6f})"
    )


# ---------------------------------------------------------------------- DSIC


@pytest.mark.parametrize(("kwargs", "scale"), ENV_PARAMS)
@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_ama_is_truthful_against_misreports(
    kwargs: dict[str, object], scale: float, seed: int
) -> None:
    env = _env(kwargs)
    rng = np.random.default_rng(1000 + seed)
    mech = random_ama(env, rng, scale)
    types = env.sample_types(rng, N_PROFILES)
    agent = rng.integers(0, env.n_agents, size=N_PROFILES)
    truthful = mechanism_outcomes(env, mech, types)
    u_truth = utilities(truthful.utility, agent)
    strict_losses = 0
    for kind in MISREPORTS:
        reports = misreport(env, types, agent, kind, rng)
        # Only agent i's report changes (except for "swapped", where the other agent also
        # reports i's type: DSIC must hold whatever the others report, so compare with the
        # truthful report of i against the same others).
        if kind == "swapped":
            others_fixed = reports.copy()
            others_fixed[np.arange(N_PROFILES), agent] = types[np.arange(N_PROFILES), agent]
            base = utilities(
                mechanism_outcomes(env, mech, types, reports=others_fixed).utility, agent
            )
        else:
            base = u_truth
        lie = mechanism_outcomes(env, mech, types, reports=reports)
        assert lie.payments is not None
        u_lie = utilities(lie.utility, agent)
        assert_truthful(base, u_lie, f"{env.name} {kind}")
        strict_losses += int(np.sum(u_lie < base - 1e-6))
    # The misreports do bite (the test is not vacuous): some of them strictly hurt.
    assert strict_losses > 0


@pytest.mark.parametrize(("kwargs", "scale"), ENV_PARAMS)
def test_vcg_is_truthful(kwargs: dict[str, object], scale: float) -> None:
    env = _env(kwargs)
    rng = np.random.default_rng(7)
    mech = vcg(env)
    types = env.sample_types(rng, N_PROFILES)
    agent = rng.integers(0, env.n_agents, size=N_PROFILES)
    u_truth = utilities(mechanism_outcomes(env, mech, types).utility, agent)
    for kind in ("scaled", "zeroed", "fresh"):
        reports = misreport(env, types, agent, kind, rng)
        lie = mechanism_outcomes(env, mech, types, reports=reports)
        assert_truthful(u_truth, utilities(lie.utility, agent), f"VCG {env.name} {kind}")


def test_misreports_measure_true_rewards() -> None:
    # mechanism_outcomes(..., reports=...) allocates on the reports but values the allocation
    # with the true types: a sales agent overbidding to win still only gets its true value.
    env = make_env("sales", n_agents=3, n_items=1)
    types = np.array([[0.3, 0.5, 0.1]])
    reports = np.array([[0.9, 0.5, 0.1]])
    out = mechanism_outcomes(env, vcg(env), types, reports=reports)
    assert out.payments is not None
    np.testing.assert_allclose(out.agent_rewards, [[[0.3, 0.0, 0.0]]], rtol=0, atol=1e-12)
    np.testing.assert_allclose(out.payments, [[[0.5, 0.0, 0.0]]], rtol=0, atol=1e-12)
    np.testing.assert_allclose(out.utility[0, 0, 0], -0.2, rtol=0, atol=1e-12)
    truthful = mechanism_outcomes(env, vcg(env), types)
    np.testing.assert_allclose(truthful.utility[0, 0, 0], 0.0, rtol=0, atol=1e-12)
    with pytest.raises(ValueError, match=r"expected types of shape"):
        mechanism_outcomes(env, vcg(env), types, reports=np.zeros((1, 2)))


# ---------------------------------------------------------------------- IR


@pytest.mark.parametrize(("kwargs", "scale"), NONNEGATIVE_ENV_PARAMS)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_ama_is_individually_rational_with_nonnegative_rewards(
    kwargs: dict[str, object], scale: float, seed: int
) -> None:
    env = _env(kwargs)
    assert env.nonnegative_rewards
    rng = np.random.default_rng(2000 + seed)
    mech = random_ama(env, rng, scale)
    out = mechanism_outcomes(env, mech, env.sample_types(rng, N_PROFILES))
    assert out.utility.min() >= -TOL, out.utility.min()


def test_scheduling_is_flagged_as_signed_rewards() -> None:
    env = make_env("scheduling", n_agents=2, n_tasks=4)
    assert not env.nonnegative_rewards
    assert np.all(env.rewards(env.sample_types(0, 5)) <= 0.0)


# ---------------------------------------------------------------------- the check can fail


def first_price_utilities(env: Environment, types: FloatArray, reports: FloatArray) -> FloatArray:
    """Utilities (1, K, n) under the VCG allocation with first-price payments.

    Payment = the agent's *reported* reward for the allocation: not an AMA payment rule.
    """
    out = mechanism_outcomes(env, vcg(env), types, reports=reports)
    reported_r = np.einsum("cksa,knsa->ckn", out.occupancy, env.rewards(reports))
    util: FloatArray = out.agent_rewards - reported_r
    return util


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(name="sales", n_agents=3, n_items=2),
        dict(name="gridworld", n_agents=2, grid=3, dist="uniform"),
    ],
    ids=["sales", "gridworld"],
)
def test_first_price_is_not_truthful(kwargs: dict[str, object]) -> None:
    env = _env(kwargs)
    rng = np.random.default_rng(3)
    types = env.sample_types(rng, N_PROFILES)
    agent = rng.integers(0, env.n_agents, size=N_PROFILES)
    u_truth = utilities(first_price_utilities(env, types, types), agent)
    np.testing.assert_allclose(u_truth, 0.0, rtol=0, atol=1e-12)  # truthful bidders pay value
    reports = misreport(env, types, agent, "scaled", rng)
    u_lie = utilities(first_price_utilities(env, types, reports), agent)
    assert (u_lie - u_truth).max() > 0.01
    with pytest.raises(AssertionError, match=r"misreport gains"):
        assert_truthful(u_truth, u_lie, "first price")


def test_wrong_counterfactual_is_not_truthful() -> None:
    # An AMA whose payments use the wrong counterfactual (agent i's value halved instead of
    # removed) depends on i's own report and is manipulable: shading the bid pays off.
    env = make_env("sales", n_agents=2, n_items=1)

    def halved(types: FloatArray, i: int) -> FloatArray:
        types[:, i] *= 0.5
        return types

    from dataclasses import replace

    bad_env = replace(env, counterfactual_fn=halved)
    types = np.array([[0.9, 0.2]])
    truthful = mechanism_outcomes(bad_env, vcg(bad_env), types)
    shaded = mechanism_outcomes(bad_env, vcg(bad_env), types, reports=np.array([[0.4, 0.2]]))
    # truthful: agent 1 pays 0.45 - (0.9 - 0.9) = 0.45 -> utility 0.45;
    # shaded to 0.4: pays 0.2 - (0.4 - 0.4) = 0.2 -> utility 0.7.
    np.testing.assert_allclose(truthful.utility[0, 0, 0], 0.45, rtol=0, atol=1e-12)
    np.testing.assert_allclose(shaded.utility[0, 0, 0], 0.7, rtol=0, atol=1e-12)
    with pytest.raises(AssertionError, match=r"misreport gains"):
        assert_truthful(truthful.utility[0, :, 0], shaded.utility[0, :, 0], "bad counterfactual")
