"""Gridworld: state order, moves on the torus, goal distributions and rewards."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from bilevel.models import Environment, gridworld

ATOL = 1e-12


@pytest.mark.parametrize("n", [2, 3, 4, 5])
@pytest.mark.parametrize(("G", "S"), [(3, 9), (4, 16)])
def test_gridworld_counts(n: int, G: int, S: int) -> None:
    assert gridworld(n_agents=n, grid=G).mdp.shape == (S, 4)


def _next(env: Environment, label: Any, action: str) -> Any:
    mdp = env.mdp
    assert mdp.successor is not None
    s2 = int(mdp.successor[mdp.state_index(label), mdp.actions.index(action)])
    return None if s2 == mdp.n_states else mdp.states[s2]


def test_gridworld_order_actions_and_moves() -> None:
    env = gridworld(n_agents=2, grid=3, gamma=0.9)
    assert env.mdp.states == (
        (1, 1), (2, 1), (3, 1), (1, 2), (2, 2), (3, 2), (1, 3), (2, 3), (3, 3),
    )  # fmt: skip
    assert env.mdp.actions == ("up", "down", "left", "right")
    np.testing.assert_array_equal(env.mdp.mu0, np.eye(9)[0])
    assert env.mdp.gamma == 0.9
    assert not env.mdp.is_layered
    # the moves checked by the authors' code (runtests.jl of Curry et al. (2024))
    assert _next(env, (1, 1), "up") == (1, 3)
    assert _next(env, (1, 1), "down") == (1, 2)
    assert _next(env, (1, 1), "left") == (3, 1)
    assert _next(env, (1, 1), "right") == (2, 1)
    assert _next(env, (3, 2), "up") == (3, 1)
    assert _next(env, (3, 2), "down") == (3, 3)
    assert _next(env, (2, 3), "down") == (2, 1)
    P = env.mdp.dense_P()
    s = env.mdp.state_index
    assert P[s((1, 1)), 0, s((1, 2))] == 0.0
    assert P[s((2, 3)), 1, s((3, 2))] == 0.0
    assert env.mdp.successor is not None
    assert (env.mdp.successor < env.mdp.n_states).all()


def test_gridworld_4x4_order() -> None:
    states = gridworld(grid=4).mdp.states
    assert states == tuple((x, y) for y in range(1, 5) for x in range(1, 5))


@pytest.mark.parametrize("G", [3, 4])
def test_gridworld_onecell_types(G: int) -> None:
    types = gridworld(n_agents=3, grid=G, dist="onecell").sample_types(0, 3000)
    assert types.shape == (3000, 3, G, G)
    assert types.min() >= 0.0 and types.max() <= 1.0
    nonzero = types > 0
    assert (nonzero.sum(axis=(2, 3)) == 1).all()  # exactly one goal per agent
    assert not nonzero[:, :, 0, 0].any()  # never the start cell (1, 1)
    counts = nonzero.sum(axis=(0, 1)).ravel()[1:]  # goals spread over the other cells
    expected = 3000 * 3 / (G * G - 1)
    np.testing.assert_allclose(counts, expected, rtol=0.15, atol=0)


def test_gridworld_uniform_types() -> None:
    types = gridworld(n_agents=2, grid=3, dist="uniform").sample_types(0, 500)
    assert types.shape == (500, 2, 3, 3)
    np.testing.assert_array_equal(types[:, :, 0, 0], 0.0)
    rest = types.reshape(500, 2, 9)[:, :, 1:]
    assert rest.min() > 0.0 and rest.max() <= 1.0


def test_gridworld_rewards_runtests_profile() -> None:
    env = gridworld(n_agents=2, grid=3, dist="onecell", gamma=0.9)
    t = np.zeros((1, 2, 3, 3))
    t[0, 0, 0, 2] = 0.7458  # agent 1 values cell (1, 3)
    t[0, 1, 2, 0] = 0.5930  # agent 2 values cell (3, 1)
    R = env.rewards(t)[0]
    idx = env.mdp.state_index
    up, down, left, right = range(4)
    np.testing.assert_allclose(R[:, idx((1, 1)), up], [0.7458, 0.0], atol=ATOL)
    np.testing.assert_allclose(R[:, idx((1, 1)), left], [0.0, 0.5930], atol=ATOL)
    np.testing.assert_allclose(R[:, idx((1, 1)), down], 0.0, atol=ATOL)
    np.testing.assert_allclose(R[:, idx((3, 3)), right], [0.7458, 0.0], atol=ATOL)
    np.testing.assert_allclose(R[:, idx((1, 2)), down], [0.7458, 0.0], atol=ATOL)
    np.testing.assert_allclose(R[:, idx((2, 1)), left], 0.0, atol=ATOL)
    assert np.count_nonzero(R[0]) == 4 and np.count_nonzero(R[1]) == 4  # 4 ways into a cell
