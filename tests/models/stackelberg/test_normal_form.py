"""Normal-form Stackelberg games: entries, normalisation, the randomised leader, bad input."""

from __future__ import annotations

import numpy as np
import pytest

from bilevel.models.stackelberg import (
    NormalFormGame,
    normal_form_game,
)


def test_normal_form_entries_and_normalisation() -> None:
    g2 = normal_form_game(game=2)
    # "Maintain" (Brero et al., Stackelberg POMDP, Appendix G.1, Figure 4), divided by 30.
    np.testing.assert_allclose(
        g2.leader * 30, [[20, 0, 0], [30, 10, 0], [0, 0, 5]], rtol=0, atol=1e-12
    )
    np.testing.assert_allclose(
        g2.follower * 30, [[15, 0, 0], [0, 5, 0], [0, 0, 10]], rtol=0, atol=1e-12
    )
    g3 = normal_form_game(game=3)
    np.testing.assert_allclose(g3.leader * 3, [[1, 3], [0, 2]], rtol=0, atol=1e-12)
    np.testing.assert_allclose(g3.follower * 3, [[1, 0], [0, 1]], rtol=0, atol=1e-12)
    assert normal_form_game(game=1).normalisation == 30.0
    assert normal_form_game(game=4).normalisation == 3.0


def test_randomised_leader_mixture() -> None:
    g = normal_form_game(game=2, randomized=True)
    np.testing.assert_allclose(g.mixture([0.2, 0.6, 0.0]), [0.25, 0.75, 0.0], atol=1e-15)
    np.testing.assert_allclose(g.mixture([0.0, 0.0, 0.0]), [1 / 3] * 3, atol=1e-15)
    follower, leader = g.payoffs([[1.0, 0.0, 0.0], [0.25, 0.75, 0.0]])  # a batch of two
    assert follower.shape == (2, 1, 3, 1)
    # Hand-worked: mixture (1/4, 3/4, 0) gives the follower 15/4 on columns 0 and 1.
    np.testing.assert_allclose(follower[1, 0, :, 0] * 30, [3.75, 3.75, 0.0], atol=1e-12)
    np.testing.assert_allclose(leader[1, 0] * 30, [27.5, 7.5, 0.0], atol=1e-12)


def test_normal_form_bad_input() -> None:
    det, rnd = normal_form_game(game=2), normal_form_game(game=2, randomized=True)
    with pytest.raises(ValueError, match=r"expected leader rows in \[0, 3\)"):
        det.payoffs(3)
    with pytest.raises(TypeError, match="expected leader rows as integers"):
        det.payoffs(0.5)
    with pytest.raises(ValueError, match=r"expected leader weights in \[0, 1\]"):
        rnd.payoffs([1.5, 0.0, 0.0])
    with pytest.raises(ValueError, match=r"shape \(\.\.\., 3\)"):
        rnd.payoffs([0.5, 0.5])
    with pytest.raises(ValueError, match="one shape"):
        NormalFormGame(np.zeros((2, 2)), np.zeros((2, 3)), 1.0)
    with pytest.raises(ValueError, match="positive normalisation"):
        NormalFormGame(np.zeros((2, 2)), np.zeros((2, 2)), 0.0)
    with pytest.raises(TypeError, match="randomized as a bool"):
        normal_form_game(game=1, randomized=1)  # type: ignore[arg-type]
