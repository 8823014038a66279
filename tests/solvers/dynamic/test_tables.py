"""Bridges between torch mechanisms and exact tables: each way round gives the same numbers.

Targets: the exact posted-price exploitability 0.10931995845 (T = 3, price 1.5) whether the
mechanism is the numpy table or the tabulated torch callable; the dynamic pivot mechanism round
trip (table → torch → table) reproduces every reachable entry; simulated truthful revenue of a
table played through ``as_torch`` matches its exact value within 4 standard errors.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bilevel.models.dynamic import (
    BanditAuctionProcess,
    make_bandit_setting,
    posted_price,
    second_price,
)
from bilevel.solvers.dynamic import (
    HistoryMechanism,
    as_torch,
    best_response_value,
    dynamic_pivot,
    exact_arrays,
    experience_kernels,
    markov_form,
    tabulate,
    truthful_value,
)
from bilevel.solvers.dynamic import posted_price as table_posted_price
from bilevel.solvers.dynamic._exact import _history_experience

PHI_POSTED_15_T3 = 0.10931995845


def test_exact_arrays_match_the_exact_modules_default_kernel() -> None:
    s = make_bandit_setting("discrete", horizon=4)
    a = exact_arrays(s)
    np.testing.assert_allclose(a["kernel"], experience_kernels(a["support"], 4), atol=1e-15)
    np.testing.assert_allclose(a["prior"], [1 / 3] * 3, atol=1e-15)
    assert a["gamma"] == 1.0


def test_tabulated_torch_posted_price_has_the_exact_exploitability() -> None:
    s = make_bandit_setting("discrete", horizon=3)
    a = exact_arrays(s)
    hist = tabulate(s, posted_price(s, 1.5))
    assert isinstance(hist, HistoryMechanism)
    assert [t.shape for t in hist.allocation] == [(1, 3, 2), (6, 3, 2), (36, 3, 2)]
    assert best_response_value(hist, **a).gain == pytest.approx(PHI_POSTED_15_T3, abs=1e-9)
    table = markov_form(hist)
    assert table is not None and not table.uses_experience
    ref = table_posted_price(1.5, n=1, horizon=3, support=a["support"])
    np.testing.assert_allclose(table.allocation, ref.allocation, atol=1e-15)
    np.testing.assert_allclose(table.payments, ref.payments, atol=1e-15)


def test_pivot_round_trip_reproduces_every_reachable_entry() -> None:
    s = make_bandit_setting("discrete", n_buyers=2, horizon=3)
    a = exact_arrays(s)
    pivot = dynamic_pivot(n=2, horizon=3, **a)
    back = markov_form(tabulate(s, as_torch(pivot, s)))
    assert back is not None and back.uses_experience
    exp = _history_experience(2, 3, 9)
    for tau in range(3):
        reached = np.unique(exp[tau])
        np.testing.assert_allclose(back.allocation[tau, reached], pivot.allocation[tau, reached],
                                   atol=1e-12)
        np.testing.assert_allclose(back.payments[tau, reached], pivot.payments[tau, reached],
                                   atol=1e-12)
    assert truthful_value(back, **a).revenue == pytest.approx(
        truthful_value(pivot, **a).revenue, abs=1e-12)


def test_history_reading_mechanism_has_no_markov_form() -> None:
    s = make_bandit_setting("discrete", horizon=2)

    def first_report_price(history: torch.Tensor, cumulative: torch.Tensor
                           ) -> tuple[torch.Tensor, torch.Tensor]:
        price = history[:, 0, :, 0]  # charges the first period's report
        x = torch.stack([torch.zeros_like(price), torch.ones_like(price)], dim=1)
        return x, price

    hist = tabulate(s, first_report_price)
    assert markov_form(hist) is None
    a = exact_arrays(s)
    # Always served; reporting the lowest value first pays 1 in both periods: E[v0 + v1] - 2.
    br = best_response_value(hist, **a)
    assert br.value == pytest.approx(2 * 2.0 - 2 * 1.0, abs=1e-9)


def test_as_torch_simulates_the_tables_exact_revenue() -> None:
    s = make_bandit_setting("discrete", n_buyers=2, horizon=3)
    a = exact_arrays(s)
    pivot = dynamic_pivot(n=2, horizon=3, **a)
    exact = truthful_value(pivot, **a).revenue
    mech = as_torch(pivot, s)
    proc = BanditAuctionProcess(s)
    g = torch.Generator().manual_seed(0)
    proc.reset(20_000, g)
    while not proc.finished:
        x, p = mech(proc.history_with(proc.values), proc.experience)
        proc.step(proc.values, x, p, g)
    rev = proc.total_revenue.numpy()
    se = rev.std() / np.sqrt(rev.size)
    assert abs(rev.mean() - exact) <= 4 * se, (rev.mean(), exact, se)


def test_second_price_tables_are_exploitable_and_bounded_by_clairvoyance() -> None:
    s = make_bandit_setting("discrete", n_buyers=2, horizon=2)
    a = exact_arrays(s)
    table = markov_form(tabulate(s, second_price(s)))
    assert table is not None
    for i in range(2):
        own = best_response_value(table, agent=i, **a).gain
        clair = best_response_value(table, agent=i, observe="clairvoyant", **a).gain
        assert -1e-12 <= own <= clair + 1e-12


def test_bad_input_is_refused() -> None:
    cont = make_bandit_setting("continuous")
    with pytest.raises(ValueError, match="expected a discrete setting for tabulate"):
        tabulate(cont, posted_price(cont, 2.0))
    two_goods = make_bandit_setting("discrete", n_goods=2)
    with pytest.raises(ValueError, match="expected one good"):
        exact_arrays(two_goods)
    s = make_bandit_setting("discrete", horizon=2)
    with pytest.raises(TypeError, match="expected a callable mechanism"):
        tabulate(s, "posted")  # type: ignore[arg-type]

    def wrong_shape(history: torch.Tensor, cumulative: torch.Tensor
                    ) -> tuple[torch.Tensor, torch.Tensor]:
        E = history.shape[0]
        return torch.ones(E, 1, 1), torch.zeros(E, 1)

    with pytest.raises(ValueError, match=r"expected allocation of shape \(3, 2, 1\)"):
        tabulate(s, wrong_shape)
    table = table_posted_price(2.0, n=1, horizon=3, support=np.array([1.0, 2.0, 3.0]))
    with pytest.raises(ValueError, match=r"expected a mechanism with \(T, V\*\*n, n \+ 1\)"):
        as_torch(table, s)  # T = 3 tables in a T = 2 setting
    big = make_bandit_setting("discrete", n_buyers=3, horizon=6)
    with pytest.raises(ValueError, match="expected at most"):
        tabulate(big, posted_price(big, 2.0))
