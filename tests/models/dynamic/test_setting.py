"""Bandit-auction settings as validated data (the paper's Appendix D.2, Table 2)."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from bilevel.models.dynamic import BanditAuctionSetting, make_bandit_setting


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_buyers": 0}, "expected n_buyers as an int >= 1, got 0"),
        ({"n_goods": 1.5}, "expected n_goods as an int >= 1, got 1.5"),
        ({"horizon": True}, "expected horizon as an int >= 1, got True"),
        ({"gamma": 0.0}, r"expected gamma in \(0, 1\], got 0.0"),
        ({"gamma": 1.5}, r"expected gamma in \(0, 1\], got 1.5"),
        ({"types": "mixed"}, r"expected types in \('discrete', 'continuous'\), got 'mixed'"),
        ({"allocation": "random"}, "expected allocation in .*, got 'random'"),
        ({"costs": ((0.0, 1.0),)}, "expected costs as a float or 1 rows of 1 finite floats"),
        ({"costs": "x"}, "expected costs as a float or 1 rows of 1 finite floats"),
        ({"support": (1.0, 1.0)}, r"expected a strictly increasing support, got \(1.0, 1.0\)"),
        ({"prior": (0.5, 0.5)}, "expected prior as 3 non-negative floats"),
        ({"prior": (0.5, 0.5, 0.5)}, "expected prior summing to 1, got 1.5"),
        ({"kernel_rate": -0.5}, "expected kernel_rate >= 0, got -0.5"),
        ({"experience_includes_current": 1}, "expected experience_includes_current as a bool"),
        ({"types": "continuous", "low": 5.0}, "expected low < high, got low=5.0, high=5.0"),
        ({"types": "continuous", "prior_mean": 6.0}, r"expected prior_mean in \[0.0, 5.0\]"),
        ({"types": "continuous", "sigma_no": -1.0}, "expected prior_std >= 0 and sigma_no >= 0"),
    ],
)
def test_bad_fields_fail_clearly(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        BanditAuctionSetting(**kwargs)


def test_defaults_follow_table_2() -> None:
    d = make_bandit_setting("discrete")
    assert (d.support, d.prior, d.kernel_rate) == ((1.0, 2.0, 3.0), (1 / 3,) * 3, 0.5)
    assert (d.horizon, d.gamma, d.allocation, d.experience_includes_current) == (
        3, 1.0, "realized", True)
    c = make_bandit_setting("continuous", n_buyers=2, n_goods=2, costs=0.25)
    assert (c.low, c.high, c.prior_mean, c.prior_std, c.sigma_no) == (0.0, 5.0, 2.5, 0.1, 0.01)
    assert c.experience_includes_current is False and c.n_reports == 0
    assert c.costs == ((0.25, 0.25), (0.25, 0.25))
    assert torch.equal(c.cost_tensor(), torch.full((2, 2), 0.25, dtype=torch.float64))
    with pytest.raises(ValueError, match="expected a discrete setting for report_grid"):
        c.report_grid()


def test_report_grid_enumerates_v_to_the_m() -> None:
    grid = make_bandit_setting("discrete", n_goods=2).report_grid()
    assert grid.shape == (9, 2)
    assert grid[4].tolist() == [2.0, 2.0] and grid[8].tolist() == [3.0, 3.0]
    assert len({tuple(r) for r in grid.tolist()}) == 9


def test_discrete_prior_is_uniform_on_the_support() -> None:
    v = make_bandit_setting("discrete", n_buyers=2, n_goods=2).sample(
        300_000, torch.Generator().manual_seed(3))
    for k in (1.0, 2.0, 3.0):
        # binomial SE sqrt(2/9 / 1.2e6) = 4.3e-4 per frequency; 3e-3 is 7 SE
        assert float((v == k).double().mean()) == pytest.approx(1 / 3, abs=3e-3)


def test_continuous_prior_mean_and_std_on_a_million_draws() -> None:
    v = make_bandit_setting("continuous").sample(1_000_000, torch.Generator().manual_seed(0))
    assert v.shape == (1_000_000, 1, 1) and v.dtype == torch.float64
    assert float(v.mean()) == pytest.approx(2.5, abs=3e-4)
    assert float(v.std()) == pytest.approx(0.1, abs=3e-4)
    assert float(v.min()) >= 0.0 and float(v.max()) <= 5.0


@pytest.mark.parametrize("name", ["discrete", "continuous"])
def test_draws_depend_on_the_seed_alone_not_on_the_batch_size(name: str) -> None:
    s = make_bandit_setting(name, n_buyers=2, n_goods=2)
    big = s.sample(64, torch.Generator().manual_seed(7))
    small = s.sample(8, torch.Generator().manual_seed(7))
    assert torch.equal(big[:8], small)
    assert not torch.equal(big[:8], s.sample(8, torch.Generator().manual_seed(8)))


def test_sample_rejects_bad_input() -> None:
    s = make_bandit_setting("discrete")
    with pytest.raises(ValueError, match="expected num as an int >= 0, got -1"):
        s.sample(-1, torch.Generator())
    with pytest.raises(TypeError, match=r"expected a torch\.Generator, got int"):
        s.sample(3, 0)  # type: ignore[arg-type]
