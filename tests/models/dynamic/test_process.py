"""The batched bandit-auction process: the dynamics of the paper's Appendix D.2 with Table 2's
kernels, allocation modes, determinism and bad input."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from bilevel.models.dynamic import (
    BanditAuctionProcess,
    discrete_kernel,
    logit_box,
    make_bandit_setting,
    posted_price,
    second_price,
)

F64 = torch.float64


def _alloc(E: int, n: int, m: int, buyer: int | None) -> torch.Tensor:
    """Every good to ``buyer`` (0-based), or to nobody."""
    x = torch.zeros(E, n + 1, m, dtype=F64)
    x[:, 0 if buyer is None else buyer + 1, :] = 1.0
    return x


def _run(name: str, E: int, seed: int, **kw: Any) -> BanditAuctionProcess:
    s = make_bandit_setting(name, **kw)
    proc = BanditAuctionProcess(s)
    mech = second_price(s, reserve=2.0)
    g = torch.Generator().manual_seed(seed)
    proc.reset(E, g)
    while not proc.finished:
        x, p = mech(proc.history_with(proc.values), proc.experience)
        proc.step(proc.values, x, p, g)
    return proc


@pytest.mark.parametrize("mode", ["realized", "expected"])
def test_unallocated_discrete_values_stay_exactly(mode: str) -> None:
    s = make_bandit_setting("discrete", n_buyers=2, n_goods=2, horizon=4, allocation=mode)
    proc = BanditAuctionProcess(s)
    g = torch.Generator().manual_seed(0)
    proc.reset(2000, g)
    v0 = proc.values.clone()
    # good 0 always to buyer 0, good 1 to nobody: buyer 1 never moves, nor buyer 0's good 1
    x = torch.zeros(2000, 3, 2, dtype=F64)
    x[:, 1, 0] = 1.0
    x[:, 0, 1] = 1.0
    while not proc.finished:
        proc.step(proc.values, x, torch.zeros(2000, 2, dtype=F64), g)
    assert torch.equal(proc.values[:, 1], v0[:, 1])
    assert torch.equal(proc.values[:, 0, 1], v0[:, 0, 1])
    assert not torch.equal(proc.values[:, 0, 0], v0[:, 0, 0])
    assert bool((proc.experience[:, 0, 0] == 4.0).all())


def test_discrete_steps_follow_the_kernel_with_alpha_counting_the_current_allocation() -> None:
    s = make_bandit_setting("discrete", horizon=2)
    E = 120_000
    proc = BanditAuctionProcess(s)
    g = torch.Generator().manual_seed(5)
    proc.reset(E, g, values=torch.full((E, 1, 1), 1.0, dtype=F64))
    proc.step(proc.values, _alloc(E, 1, 1, 0), torch.zeros(E, 1, dtype=F64), g)
    v1 = proc.values[:, 0, 0].clone()
    first = torch.stack([(v1 == k).double().mean() for k in (1.0, 2.0, 3.0)])
    want = discrete_kernel(s.support_tensor(), 0.5)[0]
    # binomial SE <= sqrt(0.25 / 1.2e5) = 1.4e-3; 7e-3 is 5 SE
    assert torch.allclose(first, want, atol=7e-3, rtol=0)
    proc.step(proc.values, _alloc(E, 1, 1, 0), torch.zeros(E, 1, dtype=F64), g)
    from_two = proc.values[v1 == 2.0, 0, 0]
    second = torch.stack([(from_two == k).double().mean() for k in (1.0, 2.0, 3.0)])
    want2 = discrete_kernel(s.support_tensor(), 1.0)[1]  # (0.2119, 0.5761, 0.2119)
    assert torch.allclose(second, want2, atol=1.2e-2, rtol=0)  # ~37k rows: 5 SE


def test_continuous_logit_steps_have_the_stated_standard_deviations() -> None:
    s = make_bandit_setting("continuous", n_goods=2, horizon=3)
    E = 100_000
    proc = BanditAuctionProcess(s)
    g = torch.Generator().manual_seed(2)
    proc.reset(E, g)
    # good 0 allocated (first time: α = 0, σ = 1), good 1 not (σ_no = 0.01)
    x = torch.zeros(E, 2, 2, dtype=F64)
    x[:, 1, 0] = 1.0
    x[:, 0, 1] = 1.0
    s0 = logit_box(proc.values, 0.0, 5.0)
    proc.step(proc.values, x, torch.zeros(E, 1, dtype=F64), g)
    d = logit_box(proc.values, 0.0, 5.0) - s0
    # relative SE of a sample std: 1 / sqrt(2E) = 0.22 %; 1 % is 4.5 SE
    assert float(d[:, 0, 0].std()) == pytest.approx(1.0, rel=1e-2)
    assert float(d[:, 0, 1].std()) == pytest.approx(0.01, rel=1e-2)
    assert float(d.mean()) == pytest.approx(0.0, abs=1e-2)
    # second allocation: α = 1/2, σ = 2/3
    s1 = logit_box(proc.values, 0.0, 5.0)
    proc.step(proc.values, x, torch.zeros(E, 1, dtype=F64), g)
    d2 = logit_box(proc.values, 0.0, 5.0) - s1
    assert float(d2[:, 0, 0].std()) == pytest.approx(2 / 3, rel=1e-2)


def test_continuous_values_and_reports_stay_in_the_box() -> None:
    proc = _run("continuous", 4000, 3, n_buyers=2, n_goods=2, horizon=6)
    assert float(proc.values.min()) >= 0.0 and float(proc.values.max()) <= 5.0
    assert float(proc.reports.min()) >= 0.0 and float(proc.reports.max()) <= 5.0
    s = make_bandit_setting("continuous")
    p = BanditAuctionProcess(s)
    g = torch.Generator().manual_seed(0)
    p.reset(2, g)
    with pytest.raises(ValueError, match=r"expected reports in \[0.0, 5.0\], got \[0.0, 5.5\]"):
        p.step(torch.tensor([[[0.0]], [[5.5]]], dtype=F64), _alloc(2, 1, 1, None),
               torch.zeros(2, 1, dtype=F64), g)


@pytest.mark.parametrize("name", ["discrete", "continuous"])
def test_expected_and_realized_modes_agree_exactly_for_deterministic_mechanisms(name: str) -> None:
    a = _run(name, 500, 11, n_buyers=2, n_goods=2, horizon=4, allocation="realized")
    b = _run(name, 500, 11, n_buyers=2, n_goods=2, horizon=4, allocation="expected")
    for key in ("values", "experience", "reports", "total_utility", "total_revenue",
                "total_welfare", "last_allocation"):
        assert torch.equal(getattr(a, key), getattr(b, key)), key


def test_realized_winners_follow_the_column_probabilities() -> None:
    s = make_bandit_setting("discrete", n_buyers=2)
    E = 100_000
    proc = BanditAuctionProcess(s)
    g = torch.Generator().manual_seed(4)
    proc.reset(E, g)
    x = torch.tensor([0.2, 0.5, 0.3], dtype=F64).reshape(1, 3, 1).expand(E, 3, 1)
    out = proc.step(proc.values, x, torch.zeros(E, 2, dtype=F64), g)
    assert bool(((out.allocation == 0.0) | (out.allocation == 1.0)).all())
    freq = out.allocation.mean(0)[:, 0]
    assert torch.allclose(freq, x[0, :, 0], atol=7e-3, rtol=0)  # SE 1.6e-3
    assert torch.equal(out.allocation.sum(1), torch.ones(E, 1, dtype=F64))
    # rewards use the realised allocation: v a - p
    assert torch.equal(out.utility, (proc.reports[:, 0] * out.allocation[:, 1:]).sum(-1))


def test_expected_mode_uses_probabilities_for_rewards_and_experience() -> None:
    s = make_bandit_setting("discrete", n_buyers=2, allocation="expected", costs=0.5)
    proc = BanditAuctionProcess(s)
    g = torch.Generator().manual_seed(0)
    proc.reset(3, g, values=torch.tensor([[[1.0], [3.0]]] * 3, dtype=F64))
    x = torch.tensor([[[0.2], [0.5], [0.3]]] * 3, dtype=F64)
    pay = torch.tensor([[0.25, 1.0]] * 3, dtype=F64)
    out = proc.step(proc.values, x, pay, g)
    assert torch.allclose(out.utility[0], torch.tensor([0.5 - 0.25, 0.9 - 1.0], dtype=F64),
                          atol=1e-15)
    assert float(out.revenue[0]) == pytest.approx(1.25 - 0.5 * 0.8, abs=1e-15)
    assert float(out.welfare[0]) == pytest.approx(0.5 + 0.9 - 0.4, abs=1e-15)
    assert proc.experience[0, :, 0].tolist() == [0.5, 0.3]


def test_discounting_and_costs_in_the_totals() -> None:
    s = make_bandit_setting("discrete", horizon=3, gamma=0.5, costs=0.25)
    proc = BanditAuctionProcess(s)
    g = torch.Generator().manual_seed(0)
    proc.reset(2, g, values=torch.tensor([[[3.0]], [[1.0]]], dtype=F64))
    mech = posted_price(s, 1.0)
    while not proc.finished:
        x, p = mech(proc.history_with(proc.values), proc.experience)
        proc.step(proc.values, x, p, g)
    # always sold at 1: revenue (1 - 0.25)(1 + 0.5 + 0.25)
    assert torch.allclose(proc.total_revenue, torch.full((2,), 0.75 * 1.75, dtype=F64), atol=1e-15)
    assert bool(proc.done.all()) and proc.tau == 3


@pytest.mark.parametrize("name", ["discrete", "continuous"])
def test_results_depend_on_the_seed_alone_not_on_the_batch_size(name: str) -> None:
    big = _run(name, 64, 9, n_buyers=2, n_goods=2, horizon=4)
    small = _run(name, 8, 9, n_buyers=2, n_goods=2, horizon=4)
    again = _run(name, 8, 9, n_buyers=2, n_goods=2, horizon=4)
    for key in ("values", "reports", "total_utility", "total_revenue"):
        assert torch.equal(getattr(big, key)[:8], getattr(small, key)), key
        assert torch.equal(getattr(small, key), getattr(again, key)), key
    other = _run(name, 8, 10, n_buyers=2, n_goods=2, horizon=4)
    assert not torch.equal(other.values, small.values)


def test_bad_input_fails_clearly() -> None:
    s = make_bandit_setting("discrete", n_buyers=2)
    proc = BanditAuctionProcess(s)
    g = torch.Generator().manual_seed(0)
    with pytest.raises(ValueError, match="expected num as an int >= 0, got -2"):
        proc.reset(-2, g)
    with pytest.raises(ValueError, match=r"expected values in the support \(1.0, 2.0, 3\.0\)"):
        proc.reset(1, g, values=torch.full((1, 2, 1), 1.5, dtype=F64))
    proc.reset(2, g)
    ok_x, ok_p = _alloc(2, 2, 1, 0), torch.zeros(2, 2, dtype=F64)
    with pytest.raises(ValueError, match=r"expected reports of shape \(2, 2, 1\), got \(2, 1, 1\)"):
        proc.step(proc.values[:, :1], ok_x, ok_p, g)
    with pytest.raises(ValueError, match=r"expected allocation of shape \(2, 3, 1\), got \(2, 2,"):
        proc.step(proc.values, ok_x[:, 1:], ok_p, g)
    with pytest.raises(ValueError, match=r"expected payments of shape \(2, 2\), got \(2,\)"):
        proc.step(proc.values, ok_x, ok_p[:, 0], g)
    with pytest.raises(ValueError, match=r"expected allocation columns .* summing to 1"):
        proc.step(proc.values, ok_x * 0.5, ok_p, g)
    with pytest.raises(ValueError, match=r"expected allocation probabilities in \[0, 1\]"):
        proc.step(proc.values, ok_x * 2 - 0.5, ok_p, g)
    with pytest.raises(ValueError, match="expected finite allocation and payments"):
        proc.step(proc.values, ok_x, ok_p + torch.nan, g)
    with pytest.raises(ValueError, match=r"expected reports in the support .*, got 3.5"):
        proc.step(proc.values + 0.5, ok_x, ok_p, g)
    for _ in range(3):
        proc.step(proc.values, ok_x, ok_p, g)
    with pytest.raises(ValueError, match="expected an unfinished episode"):
        proc.step(proc.values, ok_x, ok_p, g)
    with pytest.raises(TypeError, match="expected a BanditAuctionSetting, got dict"):
        BanditAuctionProcess({})  # type: ignore[arg-type]
