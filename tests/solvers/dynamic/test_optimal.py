"""Myerson's optimal auction of the one-period bandit auction (discrete values).

Targets (closed form): values uniform on {1, 2, 3} have virtual values (−1, 1, 3); the optimum
earns 4/3 with one buyer (the posted price 2), 2 with two (VCG: 14/9) and 64/27 with three
(E[max φ⁺] = 3·(1 − (2/3)³) + 1·((2/3)³ − (1/3)³)); with prior (0.5, 0.1, 0.4) the virtual
values (0, −2, 3) are ironed to (−1/3, −1/3, 3) and one buyer's optimum is the price 3 (1.2).
Exploitability 0 by the exact and the clairvoyant best responses (dominant-strategy IC), and
every buyer's utility is ≥ 0 in every profile (ex-post IR).
"""

from __future__ import annotations

import numpy as np
import pytest

from bilevel.solvers.dynamic import (
    best_posted_price,
    best_response_value,
    ironed_virtual_values,
    myopic_second_price,
    one_period_optimum,
    truthful_value,
)

S = np.array([1.0, 2.0, 3.0])


def test_virtual_values_and_ironing() -> None:
    np.testing.assert_allclose(ironed_virtual_values(S), [-1.0, 1.0, 3.0], atol=1e-15)
    np.testing.assert_allclose(ironed_virtual_values(S, np.array([0.5, 0.1, 0.4])),
                               [-1 / 3, -1 / 3, 3.0], atol=1e-12)
    assert np.all(np.diff(ironed_virtual_values(np.arange(1.0, 8.0),
                                                np.array([.3, .01, .2, .01, .2, .08, .2]))) >= 0)


@pytest.mark.parametrize(("n", "revenue"), [(1, 4 / 3), (2, 2.0), (3, 64 / 27)])
def test_revenue_and_incentives(n: int, revenue: float) -> None:
    m = one_period_optimum(n=n, support=S)
    v = truthful_value(m, support=S)
    assert v.revenue == pytest.approx(revenue, abs=1e-12)
    for i in range(n):
        assert abs(best_response_value(m, agent=i, support=S).gain) <= 1e-12
        assert abs(best_response_value(m, agent=i, observe="clairvoyant", support=S).gain) <= 1e-12
    # Ex-post IR: value won minus payment >= 0 in every profile.
    prof = S[np.array(np.meshgrid(*[range(3)] * n, indexing="ij")).reshape(n, -1).T]
    won = m.allocation[0, 0, :, 1:] * prof
    assert np.all(won - m.payments[0, 0] >= -1e-12)


def test_beats_vcg_and_posted_prices() -> None:
    opt = truthful_value(one_period_optimum(n=2, support=S), support=S).revenue
    vcg = truthful_value(myopic_second_price(n=2, horizon=1, support=S), support=S).revenue
    assert vcg == pytest.approx(14 / 9, abs=1e-12) and opt - vcg == pytest.approx(4 / 9, abs=1e-12)
    assert best_posted_price(n=2, horizon=1, support=S).revenue <= opt + 1e-12


def test_ironed_prior_one_buyer_posts_three() -> None:
    pr = np.array([0.5, 0.1, 0.4])
    m = one_period_optimum(n=1, support=S, prior=pr)
    assert truthful_value(m, support=S, prior=pr).revenue == pytest.approx(1.2, abs=1e-12)
    np.testing.assert_allclose(m.allocation[0, 0, :, 1], [0.0, 0.0, 1.0], atol=0)


def test_bad_prior() -> None:
    with pytest.raises(ValueError, match="expected prior as a probability vector of shape"):
        ironed_virtual_values(S, np.array([0.5, 0.5]))
