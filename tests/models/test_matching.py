"""Dynamic matching: state counts and structure, arrival transitions, types and rewards."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from bilevel.models import matching

ATOL = 1e-12


@pytest.mark.parametrize(
    ("n", "T", "S"),
    [
        (2, 2, 15), (2, 3, 37), (2, 4, 69), (2, 5, 113),
        (3, 2, 27), (3, 3, 100), (3, 4, 252), (3, 5, 500),
        (4, 3, 222),
    ],
)  # fmt: skip
def test_matching_counts(n: int, T: int, S: int) -> None:
    env = matching(n_agents=n, rounds=T)
    assert env.mdp.shape == (S, n + 1)


@pytest.mark.parametrize(("n", "T"), [(2, 3), (3, 3), (2, 5)])
def test_matching_structure(n: int, T: int) -> None:
    env = matching(n_agents=n, rounds=T)
    mdp = env.mdp
    labels: list[Any] = list(mdp.states)
    assert labels == sorted(labels)
    assert labels[0] == (-1, *([-2] * n))
    np.testing.assert_array_equal(mdp.mu0, np.eye(mdp.n_states)[0])
    assert mdp.actions == ("none", *(f"agent{i}" for i in range(1, n + 1)))
    assert mdp.successor is None  # stochastic arrivals
    rows = mdp.dense_P().sum(axis=2)
    last = np.array([s[0] == T - 1 for s in labels])
    np.testing.assert_allclose(rows[~last], 1.0, rtol=0, atol=1e-12)
    np.testing.assert_allclose(rows[last], 0.0, rtol=0, atol=0)
    assert {s[0] for s in labels} == set(range(-1, T))


def test_matching_transitions() -> None:
    env = matching(n_agents=2, rounds=3)
    P = env.mdp.dense_P()
    idx = env.mdp.state_index
    start = idx((-1, -2, -2))
    for a in range(3):  # no one has arrived: every action is a no-op
        np.testing.assert_allclose(
            P[start, a, [idx((0, -2, -2)), idx((0, 0, -2)), idx((0, -2, 0))]],
            [1 / 3, 1 / 3, 1 / 3],
            rtol=0,
            atol=1e-15,
        )
    s = idx((0, 0, -2))  # agent 1 arrived in round 0, agent 2 not yet
    np.testing.assert_allclose(P[s, 1, idx((1, -1, -2))], 0.5, rtol=0, atol=1e-15)
    np.testing.assert_allclose(P[s, 1, idx((1, -1, 1))], 0.5, rtol=0, atol=1e-15)
    np.testing.assert_allclose(P[s, 2, idx((1, 0, -2))], 0.5, rtol=0, atol=1e-15)  # no-op
    np.testing.assert_allclose(P[s, 2, idx((1, 0, 1))], 0.5, rtol=0, atol=1e-15)
    s = idx((1, 0, 1))  # everyone arrived: nobody arrives any more
    np.testing.assert_allclose(P[s, 2, idx((2, 0, -1))], 1.0, rtol=0, atol=1e-15)


@pytest.mark.parametrize("dist", ["uniform", "asymmetric"])
def test_matching_types(dist: str) -> None:
    types = matching(n_agents=3, rounds=3, dist=dist).sample_types(0, 3000)
    assert types.shape == (3000, 3, 2)
    value, patience = types[:, :, 0], types[:, :, 1]
    upper = 1.0 / np.arange(1, 4) if dist == "asymmetric" else np.ones(3)
    assert (value >= 0).all() and (value <= upper).all()
    np.testing.assert_allclose(value.max(axis=0), upper, rtol=0.01, atol=0)
    assert set(np.unique(patience).tolist()) == {1.0, 2.0, 3.0, 4.0, 5.0}


def test_matching_rewards_hand_built() -> None:
    env = matching(n_agents=2, rounds=3)
    t = np.array([[[0.7, 1.0], [0.4, 3.0]]])  # values 0.7, 0.4; patience 1, 3
    R = env.rewards(t)[0]
    idx = env.mdp.state_index
    np.testing.assert_array_equal(R[:, :, 0], 0.0)
    np.testing.assert_allclose(R[0, idx((1, 0, -2)), 1], 0.7, atol=ATOL)  # waited 1 <= 1
    np.testing.assert_allclose(R[0, idx((2, 0, -2)), 1], 0.0, atol=ATOL)  # waited 2 > 1
    np.testing.assert_allclose(R[0, idx((0, 0, -2)), 1], 0.7, atol=ATOL)  # just arrived
    np.testing.assert_allclose(R[1, idx((2, -2, 0)), 2], 0.4, atol=ATOL)  # waited 2 <= 3
    np.testing.assert_allclose(R[1, idx((2, -1, -2)), 2], 0.0, atol=ATOL)  # not arrived
    np.testing.assert_allclose(R[0, idx((2, -1, 1)), 1], 0.0, atol=ATOL)  # already matched
    np.testing.assert_allclose(R[0, idx((1, 0, 1)), 2], 0.0, atol=ATOL)  # others get nothing
