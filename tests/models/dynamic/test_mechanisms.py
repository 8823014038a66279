"""The per-period posted-price and second-price mechanisms."""

from __future__ import annotations

import pytest
import torch

from bilevel.models.dynamic import make_bandit_setting, posted_price, second_price

F64 = torch.float64


def test_second_price_with_reserve_and_ties() -> None:
    s = make_bandit_setting("discrete", n_buyers=3, n_goods=2)
    mech = second_price(s, reserve=2.0)
    reports = torch.tensor([[[3.0, 1.0], [2.0, 1.0], [3.0, 2.0]]], dtype=F64)  # (1, 3, 2)
    x, p = mech(reports.unsqueeze(1), torch.zeros(1, 3, 2, dtype=F64))
    # good 0: buyers 0 and 2 tie at 3, the lowest index wins and pays 3; good 1: buyer 2 at the
    # reserve 2 pays the reserve
    assert x[0].tolist() == [[0.0, 0.0], [1.0, 0.0], [0.0, 0.0], [0.0, 1.0]]
    assert p[0].tolist() == [3.0, 0.0, 2.0]
    assert torch.equal(x.sum(1), torch.ones(1, 2, dtype=F64))


def test_posted_price_per_good_and_bad_prices() -> None:
    s = make_bandit_setting("discrete", n_buyers=2, n_goods=2)
    mech = posted_price(s, [1.5, 2.5])
    reports = torch.tensor([[[1.0, 3.0], [2.0, 2.0]]], dtype=F64)
    x, p = mech(reports.unsqueeze(1), torch.zeros(1, 2, 2, dtype=F64))
    assert x[0].tolist() == [[0.0, 0.0], [0.0, 1.0], [1.0, 0.0]]
    assert p[0].tolist() == [2.5, 1.5]
    with pytest.raises(ValueError, match="expected price as a finite float or 2 floats"):
        posted_price(s, [1.0])
    with pytest.raises(ValueError, match="expected reserve as a finite float or 2 floats"):
        second_price(s, float("nan"))
