"""Static-report exploitability audits against known answers.

* AMAs and VCG are dominant-strategy incentive compatible with an exact inner solver (Curry et
  al., AAAI 2024, §3: the affine-welfare payment argument), so no misreport gains anything, on
  every built-in environment and with both exact inner solvers.
* Pay-your-bid with one bidder: bidding just above 0 gains the whole value, ``E[v] = 1/2``.
* Two-bidder first price with values ``U[0, 1]``: ex-post the best bid is just above the other
  value (gain ``E[(v_1 - v_2)^+] = 1/6`` per agent, 1/3 in total); interim the best bid is
  ``v/2`` (gain ``E[v^2/4] = 1/12`` per agent, 1/6 in total).
* Values uniform on {1, 2, 3}, ties split: each agent gains 2/9 (both notions), 4/9 in total.
"""

from __future__ import annotations

import numpy as np
import pytest

import bilevel
from bilevel import AMA, make_env, optimal_mechanism, vcg
from bilevel.audit import AMAOutcome, DirectMechanism, exploitability, first_price, pay_your_bid
from bilevel.models import Environment, custom_env, mdp_from_arrays
from bilevel.models.typing import FloatArray

SMALL = {
    "sales": {"n_agents": 3, "n_items": 2},
    "scheduling": {"n_agents": 2, "n_tasks": 2},
    "gridworld": {"n_agents": 2, "grid": 3},
    "matching": {"n_agents": 2, "rounds": 2},
}


def _random_ama(env: Environment, seed: int = 1) -> AMA:
    rng = np.random.default_rng(seed)
    return AMA(rng.uniform(0.5, 2.0, env.n_agents), rng.uniform(-1.0, 1.0, env.mdp.shape))


def test_public_api() -> None:
    assert bilevel.exploitability is exploitability
    env = make_env("sales", n_agents=2, n_items=1)
    assert isinstance(first_price(env), DirectMechanism)
    assert isinstance(AMAOutcome(vcg(env)), DirectMechanism)
    r = exploitability("sales", vcg(make_env("sales")), samples=10, grid=5, refine=False)
    assert r.n_profiles == 10 and r.per_agent.shape == (3,)


# ------------------------------------------------------------------ check 7: AMAs are truthful


@pytest.mark.parametrize("name", sorted(SMALL))
@pytest.mark.parametrize("inner", ["dp", "lp"])
def test_ama_and_vcg_are_not_exploitable(name: str, inner: str) -> None:
    env = make_env(name, **SMALL[name])
    # the LP solves one HiGHS problem per report profile (milliseconds each): a few profiles,
    # no refinement, the ex-post notion only (its zero implies the Bayes one)
    kw = {"samples": 60, "grid": 21} if inner == "dp" else {"samples": 3, "grid": 3,
                                                             "refine": False}
    notions = ("ex_post", "bayes") if inner == "dp" else ("ex_post",)
    for mech in (vcg(env), _random_ama(env)):
        for notion in notions:
            r = exploitability(env, mech, inner=inner, notion=notion, **kw)
            assert r.kind == "lower_bound"
            assert r.max_gain <= 1e-9, (name, inner, mech.name, notion, r.per_agent)
            if notion == "ex_post":
                assert r.per_agent.min() >= 0.0


def test_optimal_mechanism_on_sales_is_not_exploitable() -> None:
    env = make_env("sales", n_agents=2, n_items=2)
    r = exploitability(env, optimal_mechanism(env), samples=200, grid=41)
    assert r.max_gain <= 1e-9
    assert r.method == "static-grid(G=41)+breakpoints+golden" and r.resolution == 41


def test_random_ama_on_sales_3x2() -> None:
    env = make_env("sales", n_agents=3, n_items=2)
    r = exploitability(env, _random_ama(env, 7), samples=300, grid=41)
    assert r.max_gain <= 1e-9
    assert r.se is not None and r.se <= 1e-9


# ------------------------------------------------------------------ check 8: known exploitable


def _first_price_env() -> Environment:
    return make_env("sales", n_agents=2, n_items=1)


@pytest.mark.parametrize("G", [11, 41, 201])
def test_pay_your_bid_single_bidder(G: int) -> None:
    env = make_env("sales", n_agents=1, n_items=1)
    K = 2000
    mean_v = float(env.sample_types(0, K).mean())
    # G points over [0, 1]: the smallest positive bid is h = 1/(G - 1), gain (v - h)^+
    raw = exploitability(env, pay_your_bid(env), samples=K, grid=G, refine=False)
    assert mean_v - 1.0 / (G - 1) <= raw.total <= mean_v + 1e-12
    # golden refinement between 0 and h drives the bid to 0+: >= 1/2 - 1/G (sampling aside)
    r = exploitability(env, pay_your_bid(env), samples=K, grid=G)
    assert mean_v - 1e-6 <= r.total <= mean_v + 1e-12
    assert r.total >= 0.5 - 1.0 / G - 4 * (r.se or 0.0)
    assert r.total >= raw.total


def test_pay_your_bid_converges() -> None:
    env = make_env("sales", n_agents=1, n_items=1)
    totals = [exploitability(env, pay_your_bid(env), samples=500, grid=G, refine=False).total
              for G in (3, 11, 41, 161)]
    assert totals == sorted(totals)
    mean_v = float(env.sample_types(0, 500).mean())
    assert mean_v - totals[-1] <= 1 / 160 + 1e-12


def test_first_price_two_bidders_smoke() -> None:
    # 2,000 profiles: SE of the totals about 0.005 (ex-post) and 0.0025 (Bayes); 0.02 is 4 SE
    env = _first_price_env()
    ep = exploitability(env, first_price(env), samples=2000, grid=101)
    by = exploitability(env, first_price(env), samples=2000, grid=101, notion="bayes")
    assert ep.total == pytest.approx(1 / 3, abs=0.02)
    assert by.total == pytest.approx(1 / 6, abs=0.02)
    assert by.total <= ep.total
    # interim best bid v/2: (v - b) F(b) is flat at its maximum and F is the empirical CDF of
    # the 500-profile inner sample, so the argmax is only close on average
    t = env.sample_types(0, 2000)
    assert np.mean(np.abs(by.best_deviation[0] - t[:, 0] / 2)) <= 0.03


@pytest.mark.slow
def test_first_price_two_bidders_full() -> None:
    env = _first_price_env()
    ep = exploitability(env, first_price(env), samples=20_000, grid=201)
    # the interim CDF of the other bid comes from the inner sample: with 500 draws its noise
    # (not in the SE) moves the total by about 0.008 between seeds, with 4,000 by about 0.003
    by = exploitability(env, first_price(env), samples=20_000, grid=201, notion="bayes",
                        inner_samples=4000)
    assert ep.total == pytest.approx(1 / 3, abs=0.01)
    assert by.total == pytest.approx(1 / 6, abs=0.01)


def _discrete_env() -> Environment:
    P = np.zeros((1, 2, 1))  # one state, action a gives the item to agent a, the flow leaves

    def rewards(v: FloatArray) -> FloatArray:
        R = np.zeros((v.shape[0], 2, 1, 2))
        R[:, 0, 0, 0] = v[:, 0]
        R[:, 1, 0, 1] = v[:, 1]
        return R

    def sampler(rng: np.random.Generator, k: int) -> FloatArray:
        out: FloatArray = rng.integers(1, 4, size=(k, 2)).astype(np.float64)
        return out

    return custom_env(mdp_from_arrays(P, [1.0], 1.0), n_agents=2, type_shape=(2,),
                      sampler=sampler, reward_fn=rewards, recipe="first-price-123/v1")


@pytest.mark.parametrize("notion", ["ex_post", "bayes"])
def test_discrete_first_price_exact(notion: str) -> None:
    env = _discrete_env()
    r = exploitability(env, first_price(env), support=[1.0, 2.0, 3.0], notion=notion)
    assert r.kind == "exact" and r.se is None and r.per_agent_se is None
    assert r.method == "static-enumeration" and r.resolution is None and r.n_profiles == 9
    assert r.total == pytest.approx(4 / 9, abs=1e-12)
    np.testing.assert_allclose(r.per_agent, [2 / 9, 2 / 9], atol=1e-12)
    # truthful reporting pays the whole value: utility 0
    np.testing.assert_allclose(r.truthful_utility, 0.0, atol=1e-12)


def test_discrete_first_price_sampled_support() -> None:
    env = _discrete_env()
    r = exploitability(env, first_price(env), support=[1.0, 2.0, 3.0], samples=4000)
    assert r.kind == "exact" and r.se is not None and r.n_profiles == 4000
    assert abs(r.total - 4 / 9) <= 4 * r.se


def test_vcg_discrete_support_exact_zero() -> None:
    env = _discrete_env()
    r = exploitability(env, vcg(env), support=[1.0, 2.0, 3.0])
    assert r.kind == "exact" and abs(r.total) <= 1e-12


# ------------------------------------------------------------------ bad input


class _Wrong:
    def outcome(self, env: Environment, reports: FloatArray) -> tuple[FloatArray, FloatArray]:
        return np.zeros((reports.shape[0], 2, 2)), np.zeros((reports.shape[0], 3))


def _message(**kw: object) -> str:
    env = kw.pop("env", None) or _first_price_env()
    mech = kw.pop("mechanism", None) or first_price(env)  # type: ignore[arg-type]
    with pytest.raises((ValueError, TypeError)) as e:
        exploitability(env, mech, samples=5, **kw)  # type: ignore[arg-type]
    return str(e.value)


def test_bad_input_messages() -> None:
    env = _first_price_env()
    assert _message(notion="bne") == "expected notion in ('ex_post', 'bayes'), got 'bne'"
    assert _message(mechanism=vcg(make_env("sales", n_agents=3, n_items=1))) == (
        "expected a mechanism for 2 agents, got weights for 3"
    )
    assert _message(mechanism=_Wrong()) == (
        "expected mechanism outcomes of shapes occupancy (K, S, A) = (5, 1, 3) and payments "
        "(K, n) = (5, 2), got (5, 2, 2) and (5, 3)"
    )
    assert _message(mechanism="vcg") == (
        "expected an AMA or a DirectMechanism (an object with outcome(env, reports)), got str"
    )
    assert _message(env=3, mechanism=first_price(env)) == (
        "expected an Environment, an environment name, an SPMSetting, an SPMDesigner or a "
        "BanditAuctionSetting, got int"
    )
    assert _message(grid=[0.0, 0.5, 1.5]) == (
        "expected a report grid within agent 1's type support [0, 1], got reports in [0, 1.5]"
    )
    assert _message(grid=1) == "expected grid >= 2 points, got 1"
    assert _message(grid=np.zeros((3, 2))) == "expected a grid of shape (C,), got (3, 2)"
    assert _message(support=np.zeros((3, 2))) == (
        "expected a support of shape (V,), got (3, 2)"
    )
    with pytest.raises(ValueError) as e:
        exploitability(env, first_price(env), samples=0)
    assert str(e.value) == "expected samples as an int >= 1, got 0"
    with pytest.raises(ValueError) as e:
        first_price(make_env("sales", n_agents=2, n_items=2))
    assert str(e.value) == (
        "expected a single-item environment (1 state, type shape (2,), 2 or 3 actions), got 4 "
        "states, type shape (2,) and 3 actions"
    )
