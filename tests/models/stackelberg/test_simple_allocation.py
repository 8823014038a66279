"""The simple allocation game: payoffs and bad input."""

from __future__ import annotations

import numpy as np
import pytest

from bilevel.models.stackelberg import (
    simple_allocation_game,
)


def test_simple_allocation_payoffs_and_bad_input() -> None:
    g = simple_allocation_game(messages=3)
    np.testing.assert_allclose(g.priors[0], [1 / 3] * 3, atol=1e-15)
    follower, leader = g.payoffs([2, 2, 0])
    np.testing.assert_array_equal(leader, [[0, 0, 1], [0, 0, 0], [1, 1, 0]])
    np.testing.assert_array_equal(follower[..., 0], leader)
    with pytest.raises(ValueError, match=r"items in \[0, 3\)"):
        g.payoffs([0, 1, 3])
    with pytest.raises(TypeError, match="items as integers"):
        g.payoffs([0.0, 1.0, 2.0])
    with pytest.raises(ValueError, match=r"shape \(\.\.\., 3\)"):
        g.payoffs([0, 1])
