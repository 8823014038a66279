"""Exact evaluators on the settings and propositions of Brero et al. (2021) ("Experimental
Results"; Propositions 1, 2 and 4) against values derived by hand, and against each other.

Every optimum computed by a DP or search is also reached by an explicit mechanism evaluated by
enumeration (or Monte Carlo within 4 standard errors), so each number is checked two ways.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from math import comb

import pytest
import torch

from bilevel.models.spm import SPMProcess, make_spm_setting
from bilevel.solvers.spm._dp import (
    _Mixture,
    _search_spm,
    best_asp_value,
    best_psp_value,
    best_spm_value,
)
from bilevel.solvers.spm._exact import (
    evaluate_mechanism,
    expected_optimum,
    rsd_value,
    spm_reference_values,
    static_mechanism,
)

F64 = torch.float64


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    """Run single-threaded: the CI machine has two cores shared by several jobs."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
Tensor = torch.Tensor


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _first_remaining(mask: Tensor) -> Tensor:
    return mask.to(torch.int64).argmax(dim=1)


# ---------------------------------------------------------------------- propositions


def test_proposition1_values() -> None:
    s = make_spm_setting("proposition1")
    assert expected_optimum(s).value * 3 == pytest.approx(2.5, abs=1e-12)
    assert best_spm_value(s).value * 3 == pytest.approx(2.5, abs=1e-12)
    asp = best_asp_value(s)
    assert asp.value * 3 == pytest.approx(2.25, abs=1e-12)  # any single price is worse
    two_then_zero = evaluate_mechanism(s, static_mechanism([0, 1], [[2 / 3], [0.0]]))
    assert two_then_zero.value * 3 == pytest.approx(2.5, abs=1e-12)
    assert two_then_zero.method == "enumeration" and two_then_zero.se == 0.0
    assert rsd_value(s).value * 3 == pytest.approx(2.0, abs=1e-12)


def test_proposition2_needs_adaptive_prices() -> None:
    s = make_spm_setting("proposition2")
    # raw E[OPT]: #agents with value 3 ~ Bin(3, 1/2): (2 + 3*4 + 3*6 + 6) / 8 = 4.75
    assert expected_optimum(s).value * 3 == pytest.approx(4.75, abs=1e-12)
    assert best_spm_value(s).value * 3 == pytest.approx(4.75, abs=1e-12)
    assert best_psp_value(s).value * 3 == pytest.approx(4.5, abs=1e-12)

    def adaptive(obs: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        # price 2 (raw) while fewer units than agents remain, else 0: 2 to the first agent;
        # then 2 if it bought (one unit, two agents), else 0 to both others
        items_left = obs[:, 3] * 2
        price = torch.where(items_left < obs[:, :3].sum(1) - 1e-9, 2 / 3, 0.0)
        return _first_remaining(mask), price.unsqueeze(1).to(F64)

    r = evaluate_mechanism(s, adaptive, statistic="items_agents_left")
    assert r.value * 3 == pytest.approx(4.75, abs=1e-12)


def test_proposition4_search_beats_static_prices_and_orders() -> None:
    s = make_spm_setting("proposition4")
    best = best_spm_value(s)
    assert best.method == "search"
    # raw value 19.375 = 1.291666.. normalised, below E[OPT] = 19.5
    assert best.value * 15 == pytest.approx(19.375, abs=1e-9)
    assert expected_optimum(s).value * 15 == pytest.approx(19.5, abs=1e-12)
    # every static order x per-agent price in {0, 2.5, 5, 10, 13.5} (raw): one row per
    # (mechanism, profile), all run at once
    values, probs = next(s.profiles())
    orders = torch.tensor(list(itertools.permutations(range(4))))
    grid = torch.tensor([0.0, 2.5, 5.0, 10.0, 13.5], dtype=F64) / 15
    price_sets = grid[torch.tensor(list(itertools.product(range(5), repeat=4)))]
    M = orders.shape[0] * price_sets.shape[0]
    rank = torch.argsort(orders, dim=1).repeat_interleave(price_sets.shape[0], 0)
    prices = price_sets.repeat(orders.shape[0], 1)
    K = values.shape[0]
    rank_r, prices_r = rank.repeat_interleave(K, 0), prices.repeat_interleave(K, 0)
    proc = SPMProcess(s, dtype=F64)
    proc.reset(values.repeat(M, 1, 1))
    rows = torch.arange(M * K)
    for _ in range(4):
        agent = torch.where(proc.agent_mask(), rank_r, 9).argmin(1)
        proc.step(agent, prices_r[rows, agent].unsqueeze(1))
    static = (proc.objective().reshape(M, K) * probs).sum(1)
    # the batched run agrees with evaluate_mechanism on one mechanism
    one = evaluate_mechanism(
        s, static_mechanism(orders[7].tolist(), prices[7 * 625 + 100].unsqueeze(1))
    )
    assert float(static[7 * 625 + 100]) == pytest.approx(one.value, abs=1e-12)
    assert float(static.max()) < best.value - 0.01
    # the general static search (full default grid) agrees with this brute force's bound and
    # returns a mechanism that evaluates to its value
    psp = best_psp_value(s)
    assert psp.value >= float(static.max()) - 1e-12 and psp.value < best.value - 0.01
    again = evaluate_mechanism(s, static_mechanism(psp.details["order"], psp.details["prices"]))
    assert again.value == pytest.approx(psp.value, abs=1e-12)
    asp = best_asp_value(s)
    assert asp.value <= psp.value + 1e-12
    assert len({tuple(p) for p in asp.details["prices"]}) == 1


@pytest.mark.parametrize(
    ("name", "params"),
    [
        ("proposition1", {}),
        ("proposition2", {}),
        ("inventory", {"n_agents": 5, "n_items": 2}),
        ("two_worlds", {"n_agents": 3}),
    ],
)
def test_search_agrees_with_the_mixture_dp(name: str, params: dict[str, int]) -> None:
    s = make_spm_setting(name, **params)
    dp = best_spm_value(s)
    assert dp.method == "dp"
    from bilevel.models.spm import default_price_grid

    searched, _ = _search_spm(s, default_price_grid(s), "welfare", "strict", 1 << 12)
    assert searched == pytest.approx(dp.value, abs=1e-12)
    dp_rev = best_spm_value(s, objective="revenue")
    searched_rev, _ = _search_spm(s, default_price_grid(s), "revenue", "strict", 1 << 12)
    assert searched_rev == pytest.approx(dp_rev.value, abs=1e-12)


# ---------------------------------------------------------------------- two worlds


def test_two_worlds_reference_values() -> None:
    s = make_spm_setting("two_worlds")
    assert expected_optimum(s).value == pytest.approx(0.7 - 0.35 / 1024, abs=1e-12)
    assert best_spm_value(s).value == pytest.approx(0.692187, abs=1e-6)
    asp = best_asp_value(s)
    assert asp.value == pytest.approx(0.599805, abs=5e-7)
    # the best sequence (reference): 5 prices in (0.6, 1), 4 in (0.1, 0.4), then < 0.1
    seq = [0.8] * 5 + [0.25] * 4 + [0.0]
    psp = evaluate_mechanism(s, static_mechanism(range(10), [[p] for p in seq]))
    assert psp.value == pytest.approx(0.6921875, abs=1e-12)
    paper = [0.9] * 5 + [0.2] * 5
    ex = evaluate_mechanism(s, static_mechanism(range(10), [[p] for p in paper]))
    assert ex.value == pytest.approx(0.690625, abs=5e-7)
    single = evaluate_mechanism(s, static_mechanism(range(10), [[asp.details["price"]]] * 10))
    assert single.value == pytest.approx(asp.value, abs=1e-12)


def test_two_worlds_best_psp_small() -> None:
    s = make_spm_setting("two_worlds", n_agents=4)
    psp = best_psp_value(s)
    # brute force over every price sequence by enumeration of the 32 profiles
    grid = [0.0, 0.25, 0.5, 0.8]
    brute = max(
        evaluate_mechanism(s, static_mechanism(range(4), [[p] for p in ps])).value
        for ps in itertools.product(grid, repeat=4)
    )
    assert psp.value == pytest.approx(brute, abs=1e-12)
    assert psp.value == pytest.approx(best_spm_value(s).value, abs=1e-12)


# ---------------------------------------------------------------------- inventory


def _inventory_adaptive(n: int, k: int) -> Callable[[Tensor, Tensor], tuple[Tensor, Tensor]]:
    def policy(obs: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        agents_left = obs[:, :n].sum(1)
        items_left = obs[:, n] * k
        price = torch.where(items_left >= agents_left - 1e-9, 0.0, 0.75)
        return _first_remaining(mask), price.unsqueeze(1).to(F64)

    return policy


def test_inventory_reference_values_by_dp() -> None:
    s = make_spm_setting("inventory")
    # E[OPT] = 5 + E[min(N, 10)]/2, N ~ Bin(20, 1/2)
    e_min = sum(min(j, 10) * comb(20, j) for j in range(21)) / 2**20
    assert best_spm_value(s).value == pytest.approx(5 + e_min / 2, abs=1e-12)
    assert best_spm_value(s).value == pytest.approx(9.559507, abs=5e-7)
    assert best_asp_value(s).value == pytest.approx(9.119015, abs=5e-7)
    assert best_asp_value(s).value == pytest.approx(e_min, abs=1e-12)


def test_inventory_small_three_ways() -> None:
    n, k = 8, 4
    s = make_spm_setting("inventory", n_agents=n, n_items=k)
    opt = expected_optimum(s)
    spm = best_spm_value(s)
    adaptive = evaluate_mechanism(s, _inventory_adaptive(n, k), statistic="items_agents_left")
    assert opt.value == pytest.approx(spm.value, abs=1e-12)
    assert adaptive.value == pytest.approx(spm.value, abs=1e-12)
    psp = best_psp_value(s)
    brute = max(
        evaluate_mechanism(s, static_mechanism(range(n), [[p] for p in ps])).value
        for ps in itertools.product([0.0, 0.75], repeat=n)
    )
    assert psp.value == pytest.approx(brute, abs=1e-12)
    asp = best_asp_value(s)
    assert spm.value > psp.value > asp.value  # adaptive > PSP > ASP


@pytest.mark.slow
def test_inventory_full_psp_and_enumerated_adaptive() -> None:
    s = make_spm_setting("inventory")
    psp = best_psp_value(s)
    assert psp.value == pytest.approx(9.354912, abs=5e-7)
    assert psp.details["prices"] == [0.75] * 17 + [0.0] * 3
    adaptive = evaluate_mechanism(s, _inventory_adaptive(20, 10), statistic="items_agents_left")
    assert adaptive.value == pytest.approx(9.559507, abs=5e-7)


# ---------------------------------------------------------------------- kitchen sink, ID, colors


def test_kitchen_sink() -> None:
    s = make_spm_setting("kitchen_sink")
    assert expected_optimum(s).value == pytest.approx(0.26192, abs=1e-12)
    assert best_spm_value(s).value == pytest.approx(0.26192, abs=1e-12)

    def optimal(obs: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        # allocation statistic: agents (3), items (3), then agent 0's row at 6:9
        E = obs.shape[0]
        world1 = obs[:, 6] > 0.5
        first = mask[:, 0]
        second = ~first & mask[:, 1] & mask[:, 2]
        agent = torch.where(
            first, 0, torch.where(world1, torch.where(second, 2, 1), torch.where(second, 1, 2))
        )
        c_price = torch.where(
            world1, torch.where(second, 2.5 / 5, 0.5 / 5), torch.where(second, 1 / 5, 0.25 / 5)
        )
        prices = torch.ones(E, 3, dtype=F64)
        prices[:, 2] = c_price
        prices[first] = 0.0
        return agent, prices

    r = evaluate_mechanism(s, optimal, statistic="allocation")
    assert r.value == pytest.approx(0.26192, abs=1e-12)


def test_id() -> None:
    s = make_spm_setting("id")
    assert expected_optimum(s).value == pytest.approx(5949 / 64 / 60, abs=1e-12)
    assert best_spm_value(s).value == pytest.approx(1.549219, abs=5e-7)

    def optimal(obs: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        E = obs.shape[0]
        bought = obs[:, 7:10] > 0.5  # allocation rows of agents 0-2 (layout 6 + 1 + 6x1)
        exactly_one = bought.sum(1) == 1
        partner = bought.to(torch.int64).argmax(1) + 3
        partner_left = mask[torch.arange(E), partner] & exactly_one
        first_phase = mask[:, :3].any(1)
        agent = torch.where(
            first_phase,
            _first_remaining(mask),
            torch.where(partner_left, partner, _first_remaining(mask)),
        )
        price = torch.where(first_phase, 30 / 60, torch.where(partner_left, 20 / 60, 10 / 60))
        return agent, price.unsqueeze(1).to(F64)

    r = evaluate_mechanism(s, optimal, statistic="allocation")
    assert r.value == pytest.approx(5949 / 64 / 60, abs=1e-12)


def test_colors_asp_reaches_opt() -> None:
    s = make_spm_setting("colors")
    assert expected_optimum(s).value == pytest.approx(15.0, abs=1e-12)
    blue_first = list(range(20, 30)) + list(range(20))
    r = evaluate_mechanism(s, static_mechanism(blue_first, torch.full((30, 2), 0.25)))
    assert r.value == pytest.approx(15.0, abs=1e-12)
    # blue agents last lose welfare whenever blue preferences are unbalanced
    r_last = evaluate_mechanism(s, static_mechanism(range(30), torch.full((30, 2), 0.25)))
    assert r_last.value < 15.0 - 0.5


# ---------------------------------------------------------------------- correlated


def test_correlated_closed_forms() -> None:
    s = make_spm_setting("correlated")
    assert expected_optimum(s).value == pytest.approx(90 / 21, abs=1e-12)
    for delta, want in [(0.25, 3.8393), (0.33, 3.6964), (0.5, 3.3929)]:
        sd = make_spm_setting("correlated", delta=delta)
        assert expected_optimum(sd).value == pytest.approx(want, abs=5e-5)
        assert expected_optimum(sd).value == pytest.approx(2.5 + (1 - delta) * 25 / 14, abs=1e-12)
    assert best_spm_value(s).value == pytest.approx(4.1293, abs=5e-5)
    asp = best_asp_value(s)
    assert asp.value == pytest.approx(3.9790, abs=5e-5)
    assert asp.details["price"] == pytest.approx(0.648, abs=1e-3)


def test_correlated_monte_carlo_agrees() -> None:
    s = make_spm_setting("correlated")
    mc_opt = expected_optimum(s, samples=20_000, generator=_gen(0))
    assert mc_opt.method == "monte_carlo" and mc_opt.se > 0
    assert abs(mc_opt.value - 90 / 21) < 4 * mc_opt.se
    rsd = rsd_value(s, samples=20_000, generator=_gen(1))
    assert abs(rsd.value - 2.5) < 4 * rsd.se
    # the DP's threshold policy: price V(r-1, q) - V(r-1, q-1) with r agents, q units left
    n, k = 20, 5
    V = torch.zeros(n + 1, k + 1, dtype=F64)
    for r in range(1, n + 1):
        for q in range(1, k + 1):
            dv = V[r - 1, q] - V[r - 1, q - 1]
            V[r, q] = V[r - 1, q] + (1 - dv) ** 2 / 2

    def threshold(obs: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        r = obs[:, :n].sum(1).round().to(torch.int64)
        q = (obs[:, n] * k).round().to(torch.int64).clamp(min=1)
        price = V[r - 1, q] - V[r - 1, q - 1]
        return _first_remaining(mask), price.unsqueeze(1)

    spm = evaluate_mechanism(
        s, threshold, statistic="items_agents_left", samples=20_000, generator=_gen(2)
    )
    assert abs(spm.value - 4.1293) < 4 * spm.se + 5e-5
    asp_price = best_asp_value(s).details["price"]
    asp = evaluate_mechanism(
        s, static_mechanism(range(n), [[asp_price]] * n), samples=20_000, generator=_gen(3)
    )
    assert abs(asp.value - 3.9790) < 4 * asp.se + 5e-5


# ---------------------------------------------------------------------- max-min fairness


def test_maxmin_fairness_adaptive_vs_static() -> None:
    s = make_spm_setting("maxmin_fairness")
    assert s.objective == "maxmin"

    def adaptive(obs: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        # orange (agent 0) first at price 0; if it took black (allocation[0, 0] at index
        # 9 + 2), blue agents 1-4 next, otherwise red agents 5-8; everyone at price 0
        E = obs.shape[0]
        took_black = obs[:, 11] > 0.5
        rank = torch.arange(9).expand(E, 9).clone()
        blue_first = torch.tensor([0, 1, 2, 3, 4, 5, 6, 7, 8])
        red_first = torch.tensor([0, 5, 6, 7, 8, 1, 2, 3, 4])
        pref = torch.where(took_black.unsqueeze(1), blue_first, red_first)
        rank.scatter_(1, pref, torch.arange(9).expand(E, 9))
        agent = torch.where(mask, rank, 99).argmin(1)
        return agent, torch.zeros(E, 2, dtype=F64)

    ad = evaluate_mechanism(s, adaptive, statistic="allocation", samples=5000, generator=_gen(4))
    assert ad.value >= 0.4
    zero = torch.zeros(9, 2)
    for order in ([0, 1, 2, 3, 4, 5, 6, 7, 8], [0, 5, 6, 7, 8, 1, 2, 3, 4]):
        st = evaluate_mechanism(
            s, static_mechanism(order, zero), samples=5000, generator=_gen(5)
        )
        assert st.value <= 0.25


# ---------------------------------------------------------------------- bad input


def test_bad_input() -> None:
    s = make_spm_setting("correlated")
    mech = static_mechanism(range(20), [[0.5]] * 20)
    with pytest.raises(ValueError, match="Generator"):
        evaluate_mechanism(s, mech)
    with pytest.raises(ValueError, match="Generator"):
        rsd_value(s)
    with pytest.raises(ValueError, match="samples"):
        evaluate_mechanism(s, mech, samples=1, generator=_gen(0))
    with pytest.raises(ValueError, match="permutation"):
        static_mechanism([0, 0], [[0.0], [0.0]])
    with pytest.raises(ValueError, match="objective"):
        best_spm_value(make_spm_setting("maxmin_fairness"))
    with pytest.raises(ValueError, match="finite support"):
        best_spm_value(make_spm_setting("correlated", delta=0.5))
    with pytest.raises(ValueError, match="one-type"):
        _Mixture(make_spm_setting("kitchen_sink"), [0.0], "welfare", "strict")


def test_reference_value_summary() -> None:
    ks = spm_reference_values(make_spm_setting("kitchen_sink"), psp_limit=1 << 20)
    # the best PSP needs 6 orders x 63**3 price vectors x 4 profiles > psp_limit rows: absent
    assert list(ks) == ["optimum", "rsd", "best_spm", "best_asp"]
    assert ks["best_spm"].value == pytest.approx(0.26192, abs=1e-12)
    assert ks["best_asp"].value < ks["best_spm"].value - 0.03  # needs adaptivity
    # RSD by enumeration of the 6 orders: welfare of a random dictatorship at price 0
    assert ks["rsd"].method == "enumeration" and ks["rsd"].value < ks["best_spm"].value
    tw = spm_reference_values(make_spm_setting("two_worlds", n_agents=6))
    assert tw["best_spm"].value >= tw["best_psp"].value - 1e-12 >= tw["best_asp"].value - 1e-12
    assert tw["rsd"].method == "dp"
    # RSD in two worlds: the first agent always buys at price 0, E[v] = (0.8 + 0.25) / 2
    assert tw["rsd"].value == pytest.approx(0.525, abs=1e-12)
    mm = spm_reference_values(make_spm_setting("maxmin_fairness"))
    assert mm == {}  # no exact method, and Monte Carlo needs a generator
    mm = spm_reference_values(
        make_spm_setting("maxmin_fairness"), generator=_gen(0), samples=2000
    )
    assert list(mm) == ["rsd"] and mm["rsd"].method == "monte_carlo"
