"""SPM exploitability (spec check 13): forcing any bundle at any visit never helps.

An agent visited once at posted prices that takes its utility-maximising bundle cannot gain by
taking another one (Brero et al. 2021: it is a dominant strategy), whatever the mechanism does
with the rest of the episode. The negative control has buyers that take every available unit
whatever its price: on Proposition 1 with prices 2/3 then 0, agent 1 with value 1/3 then pays
2/3 and would rather decline, a gain of (1/2)(2/3 - 1/3) = 1/6 exactly.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bilevel.audit import Exploitability
from bilevel.audit._spm import spm_exploitability
from bilevel.models.spm import SPMSetting, make_spm_setting, observation_dim
from bilevel.solvers.rl import ActorCritic
from bilevel.solvers.spm import SPMBatchedEnv, SPMPolicy, static_mechanism
from bilevel.spm import SPMDesigner

Tensor = torch.Tensor
TOL = 1e-9


def _take_everything(values: Tensor, prices: Tensor, available: Tensor) -> Tensor:
    """Buyers that take one unit of the first available type at any price (not utility
    maximising)."""
    first = available.to(torch.int64).argmax(dim=1)
    return torch.nn.functional.one_hot(first, values.shape[1]).to(torch.bool) & available


def _adaptive(n: int, d: int, units: tuple[int, ...]) -> SPMPolicy:
    """Visit agents in index order; the price rises with the share of units already sold (the
    offers react to earlier purchases, so a deviation changes later agents' prices)."""
    total = float(sum(units))

    def policy(obs: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        agent = mask.to(torch.int64).argmax(dim=1)
        left = obs[:, n : n + d] * torch.tensor(units, dtype=obs.dtype)  # remaining units
        sold = 1.0 - left.sum(dim=1, keepdim=True) / total
        return agent, (0.2 + 0.6 * sold).expand(-1, d).to(torch.float64)

    return policy


def _random_network(setting_name: str, seed: int,
                    **params: int) -> tuple[ActorCritic, SPMSetting]:
    setting = make_spm_setting(setting_name, **params)
    env = SPMBatchedEnv(setting, num_envs=1, price_grid=None)
    dim = observation_dim("price_allocation", setting.n_agents, setting.n_types)
    g = torch.Generator().manual_seed(seed)
    net = ActorCritic(dim, dim, env.action_spec, hidden=(16,), generator=g, dtype=torch.float64)
    with torch.no_grad():  # weights large enough that order and prices depend on the history
        for p in net.actor.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=torch.float64))
    return net, setting


# ------------------------------------------------------------------ check 13: the gain is 0


@pytest.fixture(scope="module")
def prop1_designer() -> SPMDesigner:
    return SPMDesigner(steps=2048, baselines=(), exact_references=False,
                       eval_every=1).fit("proposition1")


def test_trained_designer_on_proposition1(prop1_designer: SPMDesigner) -> None:
    r = spm_exploitability(prop1_designer)
    assert isinstance(r, Exploitability)
    assert (r.kind, r.notion, r.method, r.se, r.resolution) == (
        "exact", "ex_post", "spm-bundle-enumeration", None, None)
    assert r.n_profiles == 4  # the whole support {1/3, 1}^2
    assert r.max_gain <= TOL and r.total <= TOL
    assert np.all(r.per_agent >= -TOL)
    assert [d.shape for d in r.best_deviation] == [(4, 1), (4, 1)]
    # the learned mechanism reaches E[OPT] = 2.5 raw: utilities sum to welfare - revenue
    assert prop1_designer.result_.learned.value * 3 == pytest.approx(2.5, abs=1e-9)


def test_optimal_spm_of_proposition1_exhaustively() -> None:
    # prices 2/3 then 0: agent 1 buys only with value 1 (utility 1/3, probability 1/2); agent
    # 2 gets the item for free otherwise (E[v_2] = 2/3, probability 1/2)
    mech = static_mechanism([0, 1], [[2 / 3], [0.0]])
    r = spm_exploitability("proposition1", mech)
    assert r.total == pytest.approx(0.0, abs=TOL)
    np.testing.assert_allclose(r.truthful_utility, [1 / 6, 1 / 3], atol=1e-12)
    # agent 1's best bundle is its own purchase: the item exactly when its value is 1
    np.testing.assert_array_equal(r.best_deviation[0][:, 0], [0.0, 0.0, 1.0, 1.0])


@pytest.mark.parametrize("n_agents", [2, 3, 5])
def test_two_worlds_static_and_adaptive_exhaustively(n_agents: int) -> None:
    setting = make_spm_setting("two_worlds", n_agents=n_agents)
    half = n_agents // 2
    psp = static_mechanism(range(n_agents), [[0.9]] * half + [[0.2]] * (n_agents - half))
    for mech in (psp, _adaptive(n_agents, 1, (1,))):
        r = spm_exploitability(setting, mech)
        assert r.n_profiles == 2 * 2**n_agents and r.se is None
        assert r.max_gain <= TOL
        assert r.per_agent.shape == (n_agents,)


def test_trained_designer_on_two_worlds() -> None:
    d = SPMDesigner(steps=2048, baselines=(), exact_references=False, eval_every=1,
                    setting_params={"n_agents": 4}).fit("two_worlds")
    r = spm_exploitability(d)
    assert r.n_profiles == 32 and r.max_gain <= TOL


@pytest.mark.parametrize(("name", "params"), [("two_worlds", {"n_agents": 4}),
                                              ("proposition2", {}), ("kitchen_sink", {})])
def test_random_history_dependent_networks(name: str, params: dict[str, int]) -> None:
    # random networks on the full price-allocation history: adaptive order and prices, several
    # units (proposition 2) and item types (the kitchen sink)
    for seed in range(3):
        net, setting = _random_network(name, seed, **params)
        r = spm_exploitability(setting, net, price_grid=None)
        assert r.kind == "exact" and r.max_gain <= TOL


def test_adaptive_prices_with_several_units_react_to_deviations() -> None:
    # proposition 2 (2 units): declining lowers the next agents' prices, still no gain
    setting = make_spm_setting("proposition2")
    r = spm_exploitability(setting, _adaptive(3, 1, (2,)))
    assert r.n_profiles == 8 and r.max_gain <= TOL


def test_sampled_profiles_have_a_paired_standard_error() -> None:
    setting = make_spm_setting("two_worlds", n_agents=6)
    mech = _adaptive(6, 1, (1,))
    r = spm_exploitability(setting, mech, samples=300, seed=3)
    assert r.n_profiles == 300 and r.kind == "exact"
    assert r.se == pytest.approx(0.0, abs=TOL) and r.per_agent_se is not None
    assert r.max_gain <= TOL
    again = spm_exploitability(setting, mech, samples=300, seed=3)
    np.testing.assert_array_equal(r.truthful_utility, again.truthful_utility)


def test_additive_valuations_enumerate_every_set_of_types() -> None:
    setting = make_spm_setting("additive_across_types", n_agents=3)
    r = spm_exploitability(setting, _adaptive(3, 2, setting.units), samples=200)
    assert r.max_gain <= TOL
    assert r.best_deviation[0].shape == (200, 2)


# ------------------------------------------------------------------ negative control


def test_detects_the_gain_of_buyers_that_do_not_maximise_utility() -> None:
    mech = static_mechanism([0, 1], [[2 / 3], [0.0]])
    r = spm_exploitability("proposition1", mech, response=_take_everything)
    # agent 1 pays 2/3 for a value of 1/3 half the time; declining gains 1/3 there
    np.testing.assert_allclose(r.per_agent, [1 / 6, 0.0], atol=1e-12)
    assert r.total == pytest.approx(1 / 6, abs=1e-12)
    # its best deviation: decline at value 1/3 (profiles 0, 1), buy at value 1
    np.testing.assert_array_equal(r.best_deviation[0][:, 0], [0.0, 0.0, 1.0, 1.0])
    sampled = spm_exploitability("proposition1", mech, response=_take_everything,
                                 samples=4000, seed=0)
    assert sampled.se is not None and sampled.se > 0
    assert abs(sampled.total - 1 / 6) <= 4 * sampled.se


# ------------------------------------------------------------------ bad input


def test_bad_input() -> None:
    mech = static_mechanism([0, 1], [[2 / 3], [0.0]])
    with pytest.raises(TypeError, match="expected a mechanism"):
        spm_exploitability("proposition1")
    with pytest.raises(ValueError, match="expected a fitted SPMDesigner"):
        spm_exploitability("proposition1", SPMDesigner())
    with pytest.raises(TypeError, match="expected a fitted SPMDesigner, an ActorCritic"):
        spm_exploitability("proposition1", 42)
    with pytest.raises(TypeError, match="expected the setting as an SPMSetting"):
        spm_exploitability(3, mech)
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="expected samples as an int >= 1"):
            spm_exploitability("proposition1", mech, samples=bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="expected statistic in"):
        spm_exploitability("proposition1", mech, statistic="prices")
    with pytest.raises(ValueError, match="expected tie in"):
        spm_exploitability("proposition1", mech, tie="loose")
    with pytest.raises(ValueError, match="expected horizon in"):
        spm_exploitability("proposition1", mech, horizon="never")
    with pytest.raises(ValueError, match="expected response bundles of shape"):
        spm_exploitability("proposition1", mech,
                           response=lambda v, p, a: torch.ones(1, 3, dtype=torch.bool))
    with pytest.raises(ValueError, match="expected an agent mask with 3 columns"):
        spm_exploitability("proposition1", static_mechanism([0, 1, 2], [[0.5]] * 3))

    def two_prices(obs: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        return mask.to(torch.int64).argmax(dim=1), torch.zeros(mask.shape[0], 2)

    with pytest.raises(ValueError, match=r"expected the policy to return agent \(4,\) and "
                                         r"prices \(4, 1\), got \(4,\) and \(4, 2\)"):
        spm_exploitability("proposition1", two_prices)


def test_designer_setting_must_match(prop1_designer: SPMDesigner) -> None:
    with pytest.raises(ValueError, match="expected the designer's setting 'proposition1'"):
        spm_exploitability("two_worlds", prop1_designer)
    assert spm_exploitability("proposition1", prop1_designer).max_gain <= TOL


@pytest.mark.slow
@pytest.mark.parametrize(("name", "samples"), [("two_worlds", None), ("kitchen_sink", None),
                                               ("colors", 500)])
def test_trained_designers_on_the_paper_settings(name: str, samples: int | None) -> None:
    # the paper's sizes (two worlds: n = 10, all 2,048 profiles; colors: 30 agents, sampled)
    d = SPMDesigner(steps=20_000, baselines=(), exact_references=False).fit(name)
    r = spm_exploitability(d, samples=samples, seed=1)
    assert r.kind == "exact" and r.max_gain <= TOL
    assert r.n_profiles == (samples or d.setting_.n_profiles)


def test_exploitability_dispatches_spm_settings_and_designers(
    prop1_designer: SPMDesigner,
) -> None:
    from bilevel.audit import exploitability
    from bilevel.models.spm import make_spm_setting

    mech = static_mechanism([0, 1], [[2 / 3], [0.0]])
    r = exploitability(make_spm_setting("proposition1"), mech)
    assert r.method == "spm-bundle-enumeration" and abs(r.total) <= TOL
    np.testing.assert_allclose(r.truthful_utility, [1 / 6, 1 / 3], atol=1e-12)
    assert abs(exploitability(prop1_designer).total) <= TOL
