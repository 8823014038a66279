"""Sequential sales: state counts, breadth-first order, transitions, values and rewards."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from bilevel.models import Environment, sales

ATOL = 1e-12


@pytest.mark.parametrize(
    ("n", "m", "S"),
    [(2, 2, 4), (2, 3, 13), (3, 2, 5), (3, 3, 21), (4, 2, 6), (4, 3, 31), (5, 2, 7), (5, 3, 43)],
)
def test_sales_counts(n: int, m: int, S: int) -> None:
    env = sales(n_agents=n, n_items=m)
    assert env.mdp.shape == (S, n + 1)
    assert env.mdp.horizon == m


def _next(env: Environment, label: Any, action: str) -> Any:
    mdp = env.mdp
    assert mdp.successor is not None
    s2 = int(mdp.successor[mdp.state_index(label), mdp.actions.index(action)])
    return None if s2 == mdp.n_states else mdp.states[s2]


def test_sales_bfs_order_and_transitions() -> None:
    env = sales(n_agents=2, n_items=3)
    assert env.mdp.actions == ("skip", "agent1", "agent2")
    assert env.mdp.states[:7] == (
        (0, -1, -1, -1),
        (1, 0, -1, -1),
        (1, 1, -1, -1),
        (1, 2, -1, -1),
        (2, 0, 0, -1),
        (2, 0, 1, -1),
        (2, 0, 2, -1),
    )
    assert env.mdp.states[-1] == (2, 2, 2, -1)
    np.testing.assert_array_equal(env.mdp.mu0, np.eye(13)[0])
    assert _next(env, (1, 1, -1, -1), "agent2") == (2, 1, 2, -1)
    assert _next(env, (0, -1, -1, -1), "skip") == (1, 0, -1, -1)
    assert _next(env, (2, 1, 2, -1), "agent1") is None  # the flow leaves at the last level


@pytest.mark.parametrize("n", [1, 3, 5])
def test_sales_types(n: int) -> None:
    v = sales(n_agents=n, dist="uniform").sample_types(0, 4000)
    assert v.shape == (4000, n) and v.dtype == np.float64
    assert v.min() >= 0.0 and v.max() <= 1.0
    np.testing.assert_allclose(v.mean(axis=0), 0.5, rtol=0, atol=0.03)
    w = sales(n_agents=n, dist="asymmetric").sample_types(1, 4000)
    upper = 1.0 / np.arange(1, n + 1)
    assert (w >= 0).all() and (w <= upper).all()
    np.testing.assert_allclose(w.max(axis=0), upper, rtol=0.01, atol=0)
    np.testing.assert_allclose(w.mean(axis=0), upper / 2, rtol=0.06, atol=0)


def test_sales_sampling_is_seeded() -> None:
    env = sales()
    np.testing.assert_array_equal(env.sample_types(7, 5), env.sample_types(7, 5))


def test_sales_rewards_hand_built() -> None:
    env = sales(n_agents=3, n_items=2)
    v = np.array([[0.5, 0.3, 0.8]])
    R = env.rewards(v)[0]  # (n, S, A)
    idx = env.mdp.state_index
    np.testing.assert_array_equal(R[:, :, 0], 0.0)  # skipping pays nobody
    np.testing.assert_allclose(R[:, idx((0, -1, -1)), 1:], np.diag([0.5, 0.3, 0.8]), atol=ATOL)
    # Unit demand: agent 1 already holds item 1, so a second item is worth 0 to it.
    np.testing.assert_allclose(R[:, idx((1, 1, -1)), 1:], np.diag([0.0, 0.3, 0.8]), atol=ATOL)
    np.testing.assert_allclose(R[:, idx((1, 3, -1)), 1:], np.diag([0.5, 0.3, 0.0]), atol=ATOL)
    np.testing.assert_allclose(R[:, idx((1, 0, -1)), 1:], np.diag([0.5, 0.3, 0.8]), atol=ATOL)
