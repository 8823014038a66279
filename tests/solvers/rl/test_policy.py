"""ActorCritic: masked heads, Gaussian log-probabilities and entropy, save/load."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from bilevel.solvers.rl._policy import ActorCritic
from bilevel.solvers.rl._protocol import ActionSpec


def test_masked_heads_never_choose_illegal() -> None:
    spec = ActionSpec(categorical=(5, 3), continuous=2, low=0.0, high=2.0)
    ac = ActorCritic(4, 6, spec, generator=torch.Generator().manual_seed(1))
    last = ac.actor[-1]
    assert isinstance(last, torch.nn.Linear)
    with torch.no_grad():  # make the illegal choice the most attractive one
        last.bias[0] = 50.0
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
    # torch.distributions' log_prob is untyped
    want = ref_c.log_prob(cat[:, 0]) + ref_n.log_prob(raw).sum(1)  # type: ignore[no-untyped-call]
    torch.testing.assert_close(dist.log_prob(cat, raw), want, rtol=1e-10, atol=1e-10)
    want_h = ref_c.entropy() + ref_n.entropy().sum(1)  # type: ignore[no-untyped-call]
    torch.testing.assert_close(dist.entropy(), want_h, rtol=1e-10, atol=1e-10)


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
