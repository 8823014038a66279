"""Exploitability of dynamic mechanisms in the bandit auction (``bilevel.audit``).

Targets (derived by exact dynamic programming; the one-buyer posted-price values are also in
tests/solvers/dynamic/test_exact.py): the posted price 1.5 at T = 3 has φ = 0.109320 (1e-6),
price 2 has φ = 0 at T = 3 and 0.201693 at T = 10; the dynamic pivot mechanism
(Bergemann and Välimäki, 2010) has φ ≤ 1e-9 by the exact and the clairvoyant estimators for two
buyers and T = 1..4. The three estimators are ordered, learned ≤ exact ≤ clairvoyant, on random
small network mechanisms; learned deviators recover ≥ 90 % of 0.109320 (best of 3 seeds, 2e5
episodes: slow) and never find more than 3 paired se above 0 against the pivot mechanism.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bilevel import exploitability as top_level_exploitability
from bilevel.audit import Exploitability, dynamic_exploitability, exploitability
from bilevel.models.dynamic import (
    BanditAuctionSetting,
    Mechanism,
    make_bandit_setting,
    posted_price,
)
from bilevel.solvers.dynamic import dynamic_pivot, exact_arrays, tabulate
from bilevel.solvers.dynamic import posted_price as table_posted_price

PHI = 0.10931995845
Tensor = torch.Tensor


def _network(setting: BanditAuctionSetting, seed: int, width: int = 8) -> Mechanism:
    """A random two-layer network mechanism on (one-hot current reports, experience, τ)."""
    n, T, V = setting.n_buyers, setting.horizon, len(setting.support)
    g = torch.Generator().manual_seed(seed)
    w1 = torch.randn(n * V + n + 1, width, generator=g, dtype=torch.float64)
    w2 = 2.0 * torch.randn(width, 2 * n + 1, generator=g, dtype=torch.float64)
    sup = setting.support_tensor()

    def mechanism(history: Tensor, cumulative: Tensor) -> tuple[Tensor, Tensor]:
        rep = history[:, -1, :, 0]
        onehot = (rep.unsqueeze(-1) == sup).to(torch.float64).reshape(rep.shape[0], -1)
        tau = torch.full((rep.shape[0], 1), (history.shape[1] - 1) / T, dtype=torch.float64)
        z = torch.tanh(torch.cat([onehot, cumulative[:, :, 0] / T, tau], dim=1) @ w1) @ w2
        x = torch.softmax(z[:, : n + 1], dim=1).unsqueeze(-1)
        pay = x[:, 1:, 0] * (1.0 + torch.sigmoid(z[:, n + 1 :]) * rep)  # ≤ value + 1 when won
        return x, pay

    return mechanism


def test_exact_posted_price_values() -> None:
    s = make_bandit_setting("discrete", horizon=3)
    r = exploitability(s, posted_price(s, 1.5))
    assert isinstance(r, Exploitability)
    assert (r.kind, r.notion, r.method, r.se) == ("exact", "bayes", "mdp-dp", None)
    assert r.total == pytest.approx(PHI, abs=1e-6)
    assert r.best_deviation[0].shape == (3, 3, 3)  # report per (τ, experience, value)
    assert abs(exploitability(s, posted_price(s, 2.0)).total) <= 1e-12
    s10 = make_bandit_setting("discrete", horizon=10)
    table = table_posted_price(2.0, n=1, horizon=10, support=np.array(s10.support))
    assert exploitability(s10, table).total == pytest.approx(0.201693, abs=1e-6)
    assert top_level_exploitability(s, posted_price(s, 1.5)).total == r.total


@pytest.mark.parametrize("horizon", [1, 2, 3, 4])
def test_dynamic_pivot_is_not_exploitable(horizon: int) -> None:
    s = make_bandit_setting("discrete", n_buyers=2, horizon=horizon)
    pivot = dynamic_pivot(n=2, horizon=horizon, **exact_arrays(s))
    own = exploitability(s, pivot)
    clair = exploitability(s, pivot, estimator="clairvoyant")
    assert own.kind == "exact" and clair.kind == "upper_bound"
    assert own.method == "bayes-belief-dp" and clair.notion == "clairvoyant"
    assert np.all(np.abs(own.per_agent) <= 1e-9) and np.all(np.abs(clair.per_agent) <= 1e-9)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_exact_is_below_clairvoyant_on_random_networks(seed: int) -> None:
    s = make_bandit_setting("discrete", n_buyers=2, horizon=2)
    mech = _network(s, seed)
    own = exploitability(s, mech)
    clair = exploitability(s, mech, estimator="clairvoyant")
    assert np.all(own.per_agent >= -1e-12)
    assert np.all(own.per_agent <= clair.per_agent + 1e-6)
    assert clair.total > 1e-3  # random mechanisms are exploitable: the check is not vacuous


def test_bounds_are_ordered_learned_exact_clairvoyant() -> None:
    s = make_bandit_setting("discrete", n_buyers=2, horizon=2)
    mech = _network(s, 0)
    own = exploitability(s, mech)
    clair = exploitability(s, mech, estimator="clairvoyant")
    learned = exploitability(s, mech, estimator="learned", episodes=30_000, seeds=1,
                             eval_episodes=16_384)
    assert learned.kind == "lower_bound" and learned.per_agent_se is not None
    assert np.all(learned.per_agent <= own.per_agent + 3 * learned.per_agent_se + 1e-6)
    assert np.all(own.per_agent <= clair.per_agent + 1e-6)
    assert learned.total > 0.1 * own.total  # the deviators do learn something (0.125 of 0.79)


def test_learned_deviators_find_nothing_against_the_pivot() -> None:
    s = make_bandit_setting("discrete", n_buyers=2, horizon=2)
    pivot = dynamic_pivot(n=2, horizon=2, **exact_arrays(s))
    r = dynamic_exploitability(s, pivot, estimator="learned", episodes=20_000, seeds=1,
                               eval_episodes=16_384)
    assert r.per_agent_se is not None
    assert np.all(r.per_agent <= 3 * r.per_agent_se + 1e-9), (r.per_agent, r.per_agent_se)


@pytest.mark.slow
def test_learned_deviators_recover_the_posted_price_gain() -> None:
    s = make_bandit_setting("discrete", horizon=3)
    r = exploitability(s, posted_price(s, 1.5), estimator="learned")  # 2e5 episodes, 3 seeds
    assert r.se is not None
    assert 0.9 * PHI <= r.total <= PHI + 3 * r.se + 1e-6, (r.total, r.se)


def test_learned_is_seeded() -> None:
    s = make_bandit_setting("discrete", horizon=2)
    kw = {"estimator": "learned", "episodes": 4096, "seeds": 1, "eval_episodes": 4096}
    a = exploitability(s, posted_price(s, 1.5), **kw)
    b = exploitability(s, posted_price(s, 1.5), **kw)
    assert a.total == b.total and a.se == b.se


def test_bad_input_is_refused() -> None:
    cont = make_bandit_setting("continuous", horizon=2)
    with pytest.raises(ValueError, match=r"expected a discrete one-good setting .* got "
                                         r"continuous types; use estimator='learned'"):
        exploitability(cont, posted_price(cont, 2.0))
    two = make_bandit_setting("discrete", n_goods=2, horizon=2)
    with pytest.raises(ValueError, match="got 2 goods"):
        exploitability(two, posted_price(two, 2.0), estimator="clairvoyant")
    s = make_bandit_setting("discrete", n_buyers=2, horizon=2)

    def reads_history(history: Tensor, cumulative: Tensor) -> tuple[Tensor, Tensor]:
        first = history[:, 0, :, 0]
        x = torch.zeros(first.shape[0], 3, 1, dtype=first.dtype)
        x[:, 1, 0] = 1.0
        return x, torch.stack([first[:, 1], torch.zeros_like(first[:, 1])], dim=1)

    with pytest.raises(ValueError, match="reads the history only through the experience"):
        exploitability(s, reads_history)
    assert exploitability(s, reads_history, estimator="clairvoyant").kind == "upper_bound"
    with pytest.raises(ValueError, match="HistoryMechanism"):
        exploitability(s, tabulate(s, reads_history), estimator="learned")
    table = dynamic_pivot(n=2, horizon=3, **exact_arrays(make_bandit_setting(
        "discrete", n_buyers=2, horizon=3)))
    with pytest.raises(ValueError, match="expected a mechanism for T = 2 periods"):
        exploitability(s, table)
    with pytest.raises(ValueError, match="expected estimator in"):
        exploitability(s, table, estimator="exactly")
    with pytest.raises(TypeError, match="expected a TabularMechanism, HistoryMechanism or torch"):
        exploitability(s, 3.0)
    with pytest.raises(TypeError, match="expected an Environment, an environment name, an "
                                        "SPMSetting, an SPMDesigner or a BanditAuctionSetting"):
        exploitability(42, table)  # type: ignore[arg-type]
    from bilevel.solvers.dynamic import MechanismNet

    with pytest.raises(ValueError, match="sees the true types, so its exploitability is "
                                         "meaningless"):
        exploitability(s, MechanismNet(s, type_stream="true"))
    with pytest.raises(TypeError, match="unexpected keyword argument 'grid'"):
        exploitability(s, table, grid=11)


def test_learned_audit_of_a_network_with_parameters() -> None:
    """A torch module whose outputs carry gradients is audited (evaluated without autograd)."""
    from bilevel.solvers.dynamic import MechanismNet

    s = make_bandit_setting("continuous", horizon=1)
    r = exploitability(s, MechanismNet(s), estimator="learned", episodes=2048, seeds=1,
                       eval_episodes=2048)
    assert r.kind == "lower_bound" and r.se is not None and abs(r.total) <= 1e-3
