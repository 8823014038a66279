"""The matrix design game: welfare and transfers."""

from __future__ import annotations

import numpy as np
import pytest

from bilevel.models.stackelberg import (
    matrix_design_game,
)


def test_matrix_design_welfare_and_transfers() -> None:
    g = matrix_design_game()
    # Brero et al., Stackelberg POMDP, Appendix G.2 (Figure 5), normalised by 6: welfare (0,0)
    # 1.0, (0,1) 1.667, (1,0) 1.667, (1,1) 0.667.
    np.testing.assert_allclose(g.welfare.ravel(), [1.0, 10 / 6, 10 / 6, 4 / 6], atol=1e-12)
    t = np.zeros((2, 2, 2))
    t[1, 1, 1] = 0.5
    follower, leader = g.payoffs(t)
    np.testing.assert_allclose(follower[0, :, 1] * 6, [3, 4, 6, 2 + 3], atol=1e-12)
    np.testing.assert_allclose(follower[0, :, 0] * 6, [3, 6, 4, 2], atol=1e-12)
    np.testing.assert_allclose(leader[0], g.welfare.ravel(), atol=1e-12)  # transfers are free
    with pytest.raises(ValueError, match=r"transfers in \[0, 10.0\]"):
        g.payoffs(np.full((2, 2, 2), 11.0))
    with pytest.raises(ValueError, match=r"shape \(\.\.\., 2, 2, 2\)"):
        g.payoffs(np.zeros((4, 3)))
    with pytest.raises(ValueError, match="positive transfer bound"):
        matrix_design_game(high=0.0)
