"""PPO: kernels against naive loops, masking, learning known optima on toy environments,
respect of environment overrides, reproducibility, save/load and bad input."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from bilevel.solvers.rl._kernels import discounted_returns, gae
from bilevel.solvers.rl._policy import ActorCritic
from bilevel.solvers.rl._ppo import PPOConfig, PPOUpdate, rollout_objective, train_ppo
from bilevel.solvers.rl._protocol import Action, ActionSpec
from bilevel.solvers.rl._toys import MaskedBandit, OverridingBandit, TwoStepPricing

torch.set_num_threads(1)


def _naive_gae(r, v, d, last, gamma, lam):  # type: ignore[no-untyped-def]
    T, E = r.shape
    adv = np.zeros((T, E))
    for e in range(E):
        a = 0.0
        for t in reversed(range(T)):
            nv = last[e] if t == T - 1 else v[t + 1, e]
            nd = 0.0 if d[t, e] else 1.0
            delta = r[t, e] + gamma * nv * nd - v[t, e]
            a = delta + gamma * lam * nd * a
            adv[t, e] = a
    return adv, adv + v


def _naive_returns(r, d, last, gamma):  # type: ignore[no-untyped-def]
    T, E = r.shape
    out = np.zeros((T, E))
    for e in range(E):
        g = last[e]
        for t in reversed(range(T)):
            g = r[t, e] + gamma * (0.0 if d[t, e] else 1.0) * g
            out[t, e] = g
    return out


@pytest.mark.parametrize("gamma,lam", [(1.0, 0.95), (0.9, 0.5), (0.99, 1.0), (0.5, 0.0)])
def test_gae_and_returns_match_naive_loops(gamma: float, lam: float) -> None:
    rng = np.random.default_rng(3)
    T, E = 7, 5
    r, v, last = rng.normal(size=(T, E)), rng.normal(size=(T, E)), rng.normal(size=E)
    d = rng.random((T, E)) < 0.3
    adv, ret = gae(torch.tensor(r), torch.tensor(v), torch.tensor(d), torch.tensor(last),
                   gamma, lam)
    want_adv, want_ret = _naive_gae(r, v, d, last, gamma, lam)
    np.testing.assert_allclose(adv.numpy(), want_adv, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(ret.numpy(), want_ret, rtol=1e-12, atol=1e-12)
    g = discounted_returns(torch.tensor(r), torch.tensor(d), torch.tensor(last), gamma)
    np.testing.assert_allclose(g.numpy(), _naive_returns(r, d, last, gamma), rtol=1e-12,
                               atol=1e-12)


def test_gae_with_lambda_one_gives_discounted_returns() -> None:
    rng = np.random.default_rng(4)
    r, v = torch.tensor(rng.normal(size=(6, 3))), torch.tensor(rng.normal(size=(6, 3)))
    d, last = torch.tensor(rng.random((6, 3)) < 0.4), torch.tensor(rng.normal(size=3))
    _, ret = gae(r, v, d, last, 0.8, 1.0)
    torch.testing.assert_close(ret, discounted_returns(r, d, last, 0.8), rtol=1e-12, atol=1e-12)


def test_gae_constant_value_closed_form() -> None:
    # reward 1 per step, V ≡ 1, no episode end, γ = 0.5, λ = 1: δ_t = 1 + 0.5 − 1 = 0.5 and
    # A_t = Σ_k 0.5^k δ over the remaining steps; at the last step A = 1 + 0.5·last − 1.
    T = 4
    r, v = torch.ones(T, 1), torch.ones(T, 1)
    adv, _ = gae(r, v, torch.zeros(T, 1, dtype=torch.bool), torch.ones(1), 0.5, 1.0)
    want = [sum(0.5 * 0.5**k for k in range(T - t)) for t in range(T)]
    np.testing.assert_allclose(adv[:, 0].numpy(), want, rtol=1e-6)


def test_kernels_reject_bad_shapes() -> None:
    with pytest.raises(ValueError, match="expected rewards of shape"):
        gae(torch.zeros(3), torch.zeros(3), torch.zeros(3, dtype=torch.bool), torch.zeros(()),
            1.0, 0.9)
    with pytest.raises(ValueError, match="expected last_value of shape"):
        discounted_returns(torch.zeros(3, 2), torch.zeros(3, 2, dtype=torch.bool),
                           torch.zeros(3), 1.0)
    with pytest.raises(ValueError, match="expected lam in"):
        gae(torch.zeros(3, 2), torch.zeros(3, 2), torch.zeros(3, 2, dtype=torch.bool),
            torch.zeros(2), 1.0, 1.5)


def test_masked_heads_never_choose_illegal() -> None:
    spec = ActionSpec(categorical=(5, 3), continuous=2, low=0.0, high=2.0)
    ac = ActorCritic(4, 6, spec, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():  # make the illegal choice the most attractive one
        ac.actor[-1].bias[0] = 50.0
    E = 2000
    g = torch.Generator().manual_seed(2)
    m1 = torch.rand((E, 5), generator=g) < 0.5
    m1[:, 1] = True
    m1[:, 0] = False
    m2 = torch.zeros((E, 3), dtype=torch.bool)
    m2[:, 2] = True
    with torch.no_grad():
        dist = ac.distribution(torch.randn((E, 4), generator=g), (m1, m2))
    cat, raw = dist.sample(g)
    assert bool(m1[torch.arange(E), cat[:, 0]].all())
    assert bool((cat[:, 1] == 2).all())
    mode, cont = dist.mode()
    assert bool(m1[torch.arange(E), mode[:, 0]].all())
    assert float(cont.min()) >= 0.0 and float(cont.max()) <= 2.0
    assert bool(torch.isfinite(dist.entropy()).all())
    assert bool(torch.isfinite(dist.log_prob(cat, raw)).all())
    # the probability of every illegal choice is exactly zero
    assert float(dist.logits[0].exp()[~m1].max()) == 0.0


def test_gaussian_log_prob_and_entropy_match_torch() -> None:
    spec = ActionSpec(categorical=(3,), continuous=2, low=-1.0, high=1.0)
    ac = ActorCritic(2, 2, spec, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    obs = torch.randn((6, 2), generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    masks = (torch.ones((6, 3), dtype=torch.bool),)
    dist = ac.distribution(obs, masks)
    cat, raw = dist.sample(torch.Generator().manual_seed(5))
    logits = ac.actor(obs)
    ref_c = torch.distributions.Categorical(logits=logits[:, :3])
    ref_n = torch.distributions.Normal(logits[:, 3:], ac.log_std.exp())
    want = ref_c.log_prob(cat[:, 0]) + ref_n.log_prob(raw).sum(1)
    torch.testing.assert_close(dist.log_prob(cat, raw), want, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(dist.entropy(), ref_c.entropy() + ref_n.entropy().sum(1),
                               rtol=1e-10, atol=1e-10)


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


def test_save_load_roundtrip(tmp_path: Path) -> None:
    spec = ActionSpec(categorical=(4, 2), continuous=3, low=0.0, high=1.0)
    ac = ActorCritic(5, 7, spec, hidden=(16, 8), generator=torch.Generator().manual_seed(3))
    path = tmp_path / "policy.pt"
    ac.save(path)
    back = ActorCritic.load(path)
    assert back.constructor_args() == ac.constructor_args()
    obs = torch.randn(10, 5, generator=torch.Generator().manual_seed(4))
    masks = (torch.ones(10, 4, dtype=torch.bool), torch.ones(10, 2, dtype=torch.bool))
    a, b = ac.act(obs, masks), back.act(obs, masks)
    torch.testing.assert_close(a.categorical, b.categorical)
    torch.testing.assert_close(a.continuous, b.continuous)
    torch.save({"x": torch.zeros(1)}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match=r"expected a file written by ActorCritic\.save"):
        ActorCritic.load(tmp_path / "other.pt")


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
