"""Tyings of the boosts: every pair in one group, finer tyings nest, depths on a cyclic MDP."""

from __future__ import annotations

from typing import cast

import numpy as np
import pytest

from bilevel import make_env
from bilevel.search import TYINGS, tying_matrix
from bilevel.search._tying import lift, state_depths


def test_tyings_partition_and_nest() -> None:
    env = make_env("sales", n_agents=3, n_items=3)
    mdp = env.mdp
    S, A = mdp.shape
    rounds = [cast(tuple[int, ...], s)[0] for s in mdp.states]
    np.testing.assert_array_equal(state_depths(mdp), rounds)  # round k
    dims = []
    for kind in TYINGS:
        T = tying_matrix(mdp, kind)
        assert T.shape[0] == S * A
        np.testing.assert_array_equal(T.sum(axis=1), 1.0)  # every pair in one group
        assert T.sum(axis=0).min() >= 1
        dims.append(T.shape[1])
    assert dims == [A, 3 * A, S * A]
    # a coarse point is represented exactly by every finer tying
    theta = np.random.default_rng(0).standard_normal(A)
    b = (tying_matrix(mdp, "action") @ theta).reshape(S, A)
    for kind in TYINGS:
        T = tying_matrix(mdp, kind)
        np.testing.assert_allclose((T @ lift(T, b)).reshape(S, A), b, atol=1e-12)
    with pytest.raises(ValueError, match="expected a tying"):
        tying_matrix(mdp, "per_state")


def test_state_depths_on_a_cyclic_mdp() -> None:
    env = make_env("gridworld", n_agents=2, grid=3)
    d = state_depths(env.mdp)
    assert d[0] == 0 and d.max() == 2  # torus 3x3: every cell within 2 moves of the start
    assert tying_matrix(env.mdp, "layer_action").shape == (36, 12)
