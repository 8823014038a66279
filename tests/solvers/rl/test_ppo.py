"""PPO: learning known optima on toy environments, respect of environment overrides,
reproducibility, the update callback and bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from bilevel.solvers.rl._policy import ActorCritic
from bilevel.solvers.rl._ppo import PPOConfig, PPOUpdate, rollout_objective, train_ppo
from bilevel.solvers.rl._protocol import Action, ActionSpec
from bilevel.solvers.rl._toys import MaskedBandit, OverridingBandit, TwoStepPricing

torch.set_num_threads(1)


def _cfg(**kw: object) -> PPOConfig:
    base: dict[str, object] = dict(total_steps=12_800, num_envs=64, num_steps=8,
                                   num_minibatches=4, learning_rate=3e-3)
    base.update(kw)
    return PPOConfig(**base)  # type: ignore[arg-type]


def test_masked_bandit_learns_its_legal_optimum() -> None:
    env = MaskedBandit(64)
    res = train_ppo(env, _cfg(), torch.Generator().manual_seed(0))
    mean, se, n = rollout_objective(env, lambda s: res.policy.act(s.obs, s.masks), 4,
                                    torch.Generator().manual_seed(9))
    # the best legal arm pays exactly 1 in both contexts; the masked arm would pay 2
    assert n == 256
    assert mean == pytest.approx(1.0, abs=1e-12), (mean, se)
    assert res.curve_objective[-1] > 0.9
    assert res.env_steps == 12_800 and res.updates == 25


def test_two_step_learns_history_dependent_price() -> None:
    env = TwoStepPricing(64)
    res = train_ppo(env, _cfg(total_steps=40_000), torch.Generator().manual_seed(0))
    s = env.reset(torch.Generator().manual_seed(1))
    a1 = res.policy.act(s.obs, s.masks)
    assert bool((a1.categorical[:, 0] == 0).all())  # door 0 (optimum 1 vs 0.8)
    s = env.step(a1, torch.Generator().manual_seed(2))
    a2 = res.policy.act(s.obs, s.masks)
    np.testing.assert_allclose(a2.continuous[:, 0].numpy(), 0.3, atol=0.05)
    s = env.step(a2, torch.Generator().manual_seed(2))
    np.testing.assert_allclose(s.info["objective"].numpy(), 1.0, atol=4 * 0.05**2)


def test_executed_overrides_are_credited_not_proposals() -> None:
    env = OverridingBandit(64)
    res = train_ppo(env, _cfg(total_steps=6400), torch.Generator().manual_seed(0))
    obs, masks = torch.ones(1, 1), (torch.ones(1, 3, dtype=torch.bool),)
    with torch.no_grad():
        p = res.policy.distribution(obs, masks).logits[0].exp()[0]
    # crediting proposals would leave about half the mass on arm 0 (it "pays" 1 too)
    assert float(p[1]) > 0.95, p


def test_reproducible_for_a_seed() -> None:
    env_a, env_b = TwoStepPricing(32), TwoStepPricing(32)
    cfg = _cfg(total_steps=2048, num_envs=32)
    a = train_ppo(env_a, cfg, torch.Generator().manual_seed(7))
    b = train_ppo(env_b, cfg, torch.Generator().manual_seed(7))
    c = train_ppo(TwoStepPricing(32), cfg, torch.Generator().manual_seed(8))
    np.testing.assert_array_equal(a.curve_objective, b.curve_objective)
    for (k, x), y in zip(a.policy.state_dict().items(), b.policy.state_dict().values(),
                         strict=True):
        torch.testing.assert_close(x, y, rtol=0, atol=0, msg=k)
    assert not np.array_equal(a.curve_objective, c.curve_objective)


def test_callback_receives_updates_and_can_stop() -> None:
    seen: list[PPOUpdate] = []

    def cb(u: PPOUpdate) -> None:
        seen.append(u)
        if u.update == 3:
            raise StopIteration

    res = train_ppo(MaskedBandit(16), _cfg(num_envs=16, total_steps=16 * 8 * 10),
                    torch.Generator().manual_seed(0), callback=cb)
    assert [u.update for u in seen] == [1, 2, 3]
    assert res.updates == 3 and res.env_steps == 3 * 128
    assert "stopped by the callback" in res.message
    assert seen[0].episodes == 128 and math.isfinite(seen[0].mean_objective)


@pytest.mark.parametrize(
    "kw,match",
    [
        (dict(total_steps=0), "total_steps"),
        (dict(num_minibatches=3), "divide"),
        (dict(gamma=1.5), "gamma"),
        (dict(learning_rate=-1.0), "learning_rate"),
        (dict(ent_coef=-0.1), "ent_coef"),
        (dict(activation="gelu"), "activation"),
        (dict(dtype="float16"), "dtype"),
        (dict(hidden=()), "hidden"),
    ],
)
def test_config_rejects_bad_values(kw: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        _cfg(**kw)


def test_train_rejects_mismatched_inputs() -> None:
    with pytest.raises(ValueError, match=r"env\.num_envs"):
        train_ppo(MaskedBandit(8), _cfg(), torch.Generator())
    with pytest.raises(TypeError, match="BatchedEnv"):
        train_ppo(object(), _cfg(), torch.Generator())  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"torch\.Generator"):
        train_ppo(MaskedBandit(64), _cfg(), 0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="masks"):
        ActorCritic(2, 2, ActionSpec(categorical=(4,))).distribution(torch.zeros(1, 2), ())
    with pytest.raises(ValueError, match="episodes_per_row"):
        rollout_objective(MaskedBandit(4), lambda s: Action(torch.zeros(4, 1), torch.zeros(4, 0)),
                          0, torch.Generator())


def test_ppo_update_is_the_loop_body() -> None:
    """One update from a hand-made batch: the surrogate improves the advantaged action, and a
    batch that the minibatches do not divide is refused."""
    from bilevel.solvers.rl import PPOBatch, ppo_update

    spec = ActionSpec(categorical=(3,))
    net = ActorCritic(2, 2, spec, generator=torch.Generator().manual_seed(0))
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    N = 64
    obs = torch.zeros(N, 2)
    masks = (torch.ones(N, 3, dtype=torch.bool),)
    cat = torch.arange(N).remainder(3).unsqueeze(1)
    with torch.no_grad():
        logp = net.distribution(obs, masks).log_prob(cat, torch.zeros(N, 0))
    adv = (cat[:, 0] == 2).to(torch.float32) - 1 / 3  # action 2 is good
    batch = PPOBatch(obs, obs, masks, cat, torch.zeros(N, 0), logp, adv, adv)
    cfg = PPOConfig(num_envs=8, num_steps=8, num_minibatches=4, update_epochs=4)
    with torch.no_grad():
        before = float(net.distribution(obs[:1], (masks[0][:1],)).logits[0][0, 2].exp())
    losses = ppo_update(net, opt, batch, cfg, torch.Generator().manual_seed(1))
    with torch.no_grad():
        after = float(net.distribution(obs[:1], (masks[0][:1],)).logits[0][0, 2].exp())
    assert after > before + 0.05 and set(losses) == {"policy", "value", "entropy", "approx_kl",
                                                      "clipfrac"}
    short = PPOBatch(obs[:10], obs[:10], (masks[0][:10],), cat[:10], torch.zeros(10, 0),
                     logp[:10], adv[:10], adv[:10])
    with pytest.raises(ValueError, match="expected a batch of N transitions with N a multiple"):
        ppo_update(net, opt, short, cfg, torch.Generator())
