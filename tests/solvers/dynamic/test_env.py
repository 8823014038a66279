"""The deviator environment: one learning buyer against a frozen bandit-auction mechanism."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch

from bilevel.models.dynamic import (
    BanditAuctionSetting,
    make_bandit_setting,
    posted_price,
    second_price,
)
from bilevel.solvers.dynamic import DeviatorEnv, deviator_obs_dim
from bilevel.solvers.rl import Action, BatchedEnv, PPOConfig, train_ppo

F64 = torch.float64


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    """Run single-threaded: the CI machine has two cores shared by several jobs."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _overbid_at_first(env: DeviatorEnv, tau: int) -> Action:
    """Truthful, except that a buyer worth 1 reports 2 in the first period."""
    a = env.truthful_action()
    if tau == 0:
        k = a.categorical.clone()
        k[k == 0] = 1
        return Action(k, a.continuous)
    return a


@pytest.mark.parametrize(("name", "n", "m"), [("discrete", 1, 1), ("discrete", 2, 2),
                                                ("continuous", 2, 1), ("continuous", 1, 2)])
def test_shapes_specs_and_the_protocol(name: str, n: int, m: int) -> None:
    s = make_bandit_setting(name, n_buyers=n, n_goods=m, horizon=3)
    env = DeviatorEnv(s, second_price(s), num_envs=5, critic="state", agent=n - 1)
    assert isinstance(env, BatchedEnv)
    assert env.obs_dim == deviator_obs_dim(n, m) == 1 + 2 * m + 2 * n * m
    assert env.critic_obs_dim == env.obs_dim + n * m
    if s.discrete:
        assert env.action_spec.categorical == (3**m,) and env.action_spec.continuous == 0
    else:
        assert env.action_spec.categorical == () and env.action_spec.continuous == m
        assert (env.action_spec.low, env.action_spec.high) == (-6.0, 6.0)
    g = torch.Generator().manual_seed(0)
    first = env.reset(g)
    assert first.obs.shape == (5, env.obs_dim) and first.obs.dtype == torch.float32
    assert first.critic_obs.shape == (5, env.critic_obs_dim)
    assert len(first.masks) == len(env.action_spec.categorical)
    for tau in range(3):
        out = env.step(env.truthful_action(), g)
        assert out.reward.shape == (5,) and out.done.shape == (5,)
        assert float(out.obs.min()) >= 0.0 and float(out.obs.max()) <= 1.0
        assert bool(out.done.all()) == (tau == 2)
        assert bool(torch.isnan(out.info["episode_utility"]).all()) == (tau < 2)
    # auto-reset: the observation after the last period is the next episode's first
    assert torch.equal(out.obs[:, 0], torch.zeros(5)) and env.process.tau == 0


@pytest.mark.parametrize("name", ["discrete", "continuous"])
def test_the_truthful_action_reports_the_values_exactly(name: str) -> None:
    s = make_bandit_setting(name, n_buyers=2, n_goods=2, horizon=2)
    env = DeviatorEnv(s, second_price(s, 2.0), num_envs=64, auto_reset=False)
    g = torch.Generator().manual_seed(1)
    env.reset(g)
    values = env.process.values.clone()
    env.step(env.truthful_action(), g)
    assert torch.equal(env.process.reports[:, 0], values)


def test_continuous_residuals_move_the_report_in_logit_space() -> None:
    s = make_bandit_setting("continuous", horizon=2)
    env = DeviatorEnv(s, posted_price(s, 2.5), num_envs=3, residual_bound=2.0)
    g = torch.Generator().manual_seed(2)
    env.reset(g)
    v = env.process.values[:, 0, 0]
    delta = torch.tensor([[1.0], [-1.0], [50.0]])
    rep = env.reports_of(Action(torch.zeros(3, 0, dtype=torch.int64), delta))[:, 0]
    logit = torch.log(v / (5 - v))
    want = 5 * torch.sigmoid(logit + torch.tensor([1.0, -1.0, 2.0], dtype=F64))  # clipped to c
    assert torch.allclose(rep, want, atol=1e-12, rtol=0)
    assert bool((rep[0] > v[0]) & (rep[1] < v[1]))


def test_truthful_value_and_the_overbidding_gain_match_the_exact_numbers() -> None:
    # discrete, one buyer, posted price 1.5, T = 3 (the exploitable example): truthful utility
    # 1.628237 and the best deviation -- a buyer worth 1 overbids once to start learning --
    # gains 0.109320 (exact values by dynamic programming; common random numbers here)
    s = make_bandit_setting("discrete", horizon=3)
    E = 40_000

    def episode(deviate: bool) -> torch.Tensor:
        env = DeviatorEnv(s, posted_price(s, 1.5), num_envs=E, dtype=F64)
        g = torch.Generator().manual_seed(0)
        env.reset(g)
        for tau in range(3):
            out = env.step(_overbid_at_first(env, tau) if deviate else env.truthful_action(), g)
        return out.info["episode_utility"]

    truthful, deviating = episode(False), episode(True)
    # SE of the truthful mean 0.006, of the paired gain 0.003
    assert float(truthful.mean()) == pytest.approx(1.628237, abs=0.025)
    assert float((deviating - truthful).mean()) == pytest.approx(0.109320, abs=0.015)


@pytest.mark.parametrize("name", ["discrete", "continuous"])
def test_results_depend_on_the_seed_alone_not_on_the_batch_size(name: str) -> None:
    s = make_bandit_setting(name, n_buyers=2, n_goods=1, horizon=3)

    def roll(E: int, seed: int) -> list[torch.Tensor]:
        env = DeviatorEnv(s, second_price(s, 2.0), num_envs=E)
        g = torch.Generator().manual_seed(seed)
        outs = [env.reset(g).obs]
        for t in range(7):  # crosses two auto-resets
            a = env.truthful_action()
            if not s.discrete:
                a = Action(a.categorical, torch.full_like(a.continuous, 0.3 * (t % 2)))
            step = env.step(a, g)
            outs += [step.obs, step.reward, step.critic_obs]
        return outs

    big, small, again = roll(64, 5), roll(8, 5), roll(8, 5)
    for b, s8, a8 in zip(big, small, again, strict=True):
        assert torch.equal(b[:8], s8) and torch.equal(s8, a8)
    assert not all(torch.equal(x, y) for x, y in zip(small, roll(8, 6), strict=True))


def test_bad_input_fails_clearly() -> None:
    s = make_bandit_setting("discrete", n_buyers=2)
    mech = second_price(s)
    with pytest.raises(ValueError, match=r"expected agent as an int in \[0, 2\), got 2"):
        DeviatorEnv(s, mech, agent=2)
    with pytest.raises(ValueError, match="expected num_envs as an int >= 1, got 0"):
        DeviatorEnv(s, mech, num_envs=0)
    with pytest.raises(ValueError, match="expected residual_bound as a finite float > 0, got -1"):
        DeviatorEnv(s, mech, residual_bound=-1)
    with pytest.raises(ValueError, match=r"expected critic in \('obs', 'state'\), got 'x'"):
        DeviatorEnv(s, mech, critic="x")
    with pytest.raises(TypeError, match="expected a callable mechanism, got int"):
        DeviatorEnv(s, 3)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="expected a BanditAuctionSetting, got str"):
        DeviatorEnv("discrete", mech)  # type: ignore[arg-type]
    env = DeviatorEnv(s, mech, num_envs=2)
    g = torch.Generator().manual_seed(0)
    with pytest.raises(ValueError, match=r"expected reset\(\) before step\(\)"):
        env.step(Action(torch.zeros(2, 1, dtype=torch.int64), torch.zeros(2, 0)), g)
    env.reset(g)
    with pytest.raises(ValueError, match=r"expected categorical actions of shape \(2, 1\)"):
        env.step(Action(torch.zeros(3, 1, dtype=torch.int64), torch.zeros(3, 0)), g)
    with pytest.raises(ValueError, match=r"expected report indices in \[0, 3\), got \[0, 7\]"):
        env.step(Action(torch.tensor([[0], [7]]), torch.zeros(2, 0)), g)

    def wrong(history: torch.Tensor, cumulative: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.zeros(history.shape[0], 2, 1, dtype=F64), torch.zeros(history.shape[0], 2)

    bad = DeviatorEnv(s, wrong, num_envs=2)
    bad.reset(g)
    with pytest.raises(ValueError, match=r"expected allocation of shape \(2, 3, 1\), got \(2, 2,"):
        bad.step(bad.truthful_action(), g)
    c = make_bandit_setting("continuous")
    cenv = DeviatorEnv(c, posted_price(c, 2.0), num_envs=2, auto_reset=False)
    cenv.reset(g)
    with pytest.raises(ValueError, match=r"expected continuous actions of shape \(2, 1\)"):
        cenv.step(Action(torch.zeros(2, 0, dtype=torch.int64), torch.zeros(2, 2)), g)
    with pytest.raises(ValueError, match="expected finite residuals"):
        cenv.step(Action(torch.zeros(2, 0, dtype=torch.int64), torch.full((2, 1), torch.nan)), g)
    for _ in range(3):
        cenv.step(cenv.truthful_action(), g)
    with pytest.raises(ValueError, match=r"expected reset\(\) after the episode ended"):
        cenv.step(cenv.truthful_action(), g)


def test_throughput_smoke_with_many_rows_and_a_ppo_update() -> None:
    s = BanditAuctionSetting(n_buyers=2, n_goods=2, horizon=5, types="continuous")
    env = DeviatorEnv(s, second_price(s, 2.0), num_envs=1024)
    g = torch.Generator().manual_seed(0)
    env.reset(g)
    for _ in range(10):  # two episodes of 1,024 rows
        out = env.step(env.truthful_action(), g)
    assert bool(out.done.all()) and bool(torch.isfinite(out.info["episode_utility"]).all())
    small = DeviatorEnv(s, second_price(s, 2.0), num_envs=64)
    cfg = PPOConfig(total_steps=64 * 10, num_envs=64, num_steps=10, update_epochs=1,
                    num_minibatches=2, hidden=(16,), gamma=s.gamma)
    result = train_ppo(small, cfg, torch.Generator().manual_seed(0))
    assert result.policy is not None
