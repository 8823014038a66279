"""Tests of the four built-in environments against the reference specification (§2, §7, §10)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from bilevel.models import Environment, gridworld, make_env, matching, sales, scheduling
from bilevel.models._scheduling import SCHEDULER_SENTINEL, makespan_of_assignment

ATOL = 1e-12


# ---------------------------------------------------------------------- counts (reference §10)


@pytest.mark.parametrize(
    ("n", "m", "S"),
    [(2, 2, 4), (2, 3, 13), (3, 2, 5), (3, 3, 21), (4, 2, 6), (4, 3, 31), (5, 2, 7), (5, 3, 43)],
)
def test_sales_counts(n: int, m: int, S: int) -> None:
    env = sales(n_agents=n, n_items=m)
    assert env.mdp.shape == (S, n + 1)
    assert env.mdp.horizon == m


@pytest.mark.parametrize(("n", "T", "S"), [(2, 4, 15), (2, 5, 31), (3, 4, 40), (3, 5, 121)])
def test_scheduling_counts(n: int, T: int, S: int) -> None:
    env = scheduling(n_agents=n, n_tasks=T)
    assert env.mdp.shape == (S, n)
    assert env.mdp.horizon == T


@pytest.mark.parametrize("n", [2, 3, 4, 5])
@pytest.mark.parametrize(("G", "S"), [(3, 9), (4, 16)])
def test_gridworld_counts(n: int, G: int, S: int) -> None:
    assert gridworld(n_agents=n, grid=G).mdp.shape == (S, 4)


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


# ---------------------------------------------------------------------- orders and transitions


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


def test_scheduling_bfs_order_and_transitions() -> None:
    env = scheduling(n_agents=2, n_tasks=3)
    assert env.mdp.actions == ("agent1", "agent2")
    assert env.mdp.states == (
        (1, -1, -1, -1),
        (2, 1, -1, -1),
        (2, 2, -1, -1),
        (3, 1, 1, -1),
        (3, 1, 2, -1),
        (3, 2, 1, -1),
        (3, 2, 2, -1),
    )
    assert _next(env, (2, 2, -1, -1), "agent1") == (3, 2, 1, -1)
    assert _next(env, (3, 2, 1, -1), "agent2") is None


def test_gridworld_order_actions_and_moves() -> None:
    env = gridworld(n_agents=2, grid=3, gamma=0.9)
    assert env.mdp.states == (
        (1, 1), (2, 1), (3, 1), (1, 2), (2, 2), (3, 2), (1, 3), (2, 3), (3, 3),
    )  # fmt: skip
    assert env.mdp.actions == ("up", "down", "left", "right")
    np.testing.assert_array_equal(env.mdp.mu0, np.eye(9)[0])
    assert env.mdp.gamma == 0.9
    assert not env.mdp.is_layered
    # reference runtests.jl (§7)
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


@pytest.mark.parametrize(
    "env",
    [sales(n_agents=3, n_items=3), scheduling(n_agents=3, n_tasks=4)],
    ids=["sales", "scheduling"],
)
def test_deterministic_tree_successors(env: Environment) -> None:
    mdp = env.mdp
    succ = mdp.successor
    assert succ is not None
    assert mdp.layers is not None
    last = set(mdp.layers[-1].tolist())
    for s in range(mdp.n_states):
        if s in last:
            assert (succ[s] == mdp.n_states).all()
        else:
            assert (succ[s] < mdp.n_states).all()
    # A tree: every state but the start has exactly one parent (state, action).
    inner = succ[succ < mdp.n_states]
    assert np.array_equal(np.sort(inner), np.arange(1, mdp.n_states))


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


# ---------------------------------------------------------------------- type distributions


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


def test_scheduling_types() -> None:
    C = scheduling(n_agents=3, n_tasks=4).sample_types(0, 3000)
    assert C.shape == (3000, 3, 4)
    assert C.min() >= 0.0 and C.max() <= 3.0
    np.testing.assert_allclose(C.max(axis=(0, 2)), 3.0, rtol=0.01, atol=0)
    D = scheduling(n_agents=3, n_tasks=4, dist="asymmetric").sample_types(1, 3000)
    upper = 3.0 * np.arange(1, 4)
    assert (D >= 0).all() and (upper[None, :, None] >= D).all()
    np.testing.assert_allclose(D.max(axis=(0, 2)), upper, rtol=0.01, atol=0)


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


@pytest.mark.parametrize("dist", ["uniform", "asymmetric"])
def test_matching_types(dist: str) -> None:
    types = matching(n_agents=3, rounds=3, dist=dist).sample_types(0, 3000)
    assert types.shape == (3000, 3, 2)
    value, patience = types[:, :, 0], types[:, :, 1]
    upper = 1.0 / np.arange(1, 4) if dist == "asymmetric" else np.ones(3)
    assert (value >= 0).all() and (value <= upper).all()
    np.testing.assert_allclose(value.max(axis=0), upper, rtol=0.01, atol=0)
    assert set(np.unique(patience).tolist()) == {1.0, 2.0, 3.0, 4.0, 5.0}


# ---------------------------------------------------------------------- counterfactuals


def test_counterfactuals() -> None:
    env = sales(n_agents=3)
    v = np.array([[0.5, 0.3, 0.8]])
    np.testing.assert_array_equal(env.counterfactual(v, 1), [[0.5, 0.0, 0.8]])
    np.testing.assert_array_equal(v, [[0.5, 0.3, 0.8]])  # input untouched

    sch = scheduling(n_agents=2, n_tasks=3)
    C = np.arange(6.0).reshape(1, 2, 3)
    cf = sch.counterfactual(C, 0)
    np.testing.assert_array_equal(cf[0, 0], [SCHEDULER_SENTINEL] * 3)
    np.testing.assert_array_equal(cf[0, 1], C[0, 1])
    assert SCHEDULER_SENTINEL == 5.0

    grid = gridworld(n_agents=2, grid=3, dist="uniform")
    t = grid.sample_types(0, 2)
    cf = grid.counterfactual(t, 1)
    np.testing.assert_array_equal(cf[:, 1], 0.0)
    np.testing.assert_array_equal(cf[:, 0], t[:, 0])

    mat = matching(n_agents=2)
    t = np.array([[[0.7, 1.0], [0.4, 3.0]]])
    np.testing.assert_array_equal(mat.counterfactual(t, 0), [[[0.0, 1.0], [0.4, 3.0]]])


# ---------------------------------------------------------------------- rewards


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


def test_scheduling_rewards_hand_built() -> None:
    env = scheduling(n_agents=2, n_tasks=2)
    C = np.array([[[1.0, 2.0], [3.0, 4.0]]])
    R = env.rewards(C)[0]
    idx = env.mdp.state_index
    np.testing.assert_allclose(R[:, idx((1, -1, -1))], [[-1.0, 0.0], [0.0, -3.0]], atol=ATOL)
    for s in [(2, 1, -1), (2, 2, -1)]:
        np.testing.assert_allclose(R[:, idx(s)], [[-2.0, 0.0], [0.0, -4.0]], atol=ATOL)
    assert not env.nonnegative_rewards


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


def _reference_reward(env: Environment, label: Any, a: int, types: Any) -> np.ndarray:
    """Per-agent reward of one (state, action, profile), written as in the reference (§2)."""
    n = env.n_agents
    r = np.zeros(n)
    if env.name == "sales":
        if a != 0 and a not in label[1:]:
            r[a - 1] = types[a - 1]
    elif env.name == "scheduling":
        r[a] = -types[a, label[0] - 1]
    elif env.name == "gridworld":
        G = types.shape[1]
        dx, dy = [(0, -1), (0, 1), (-1, 0), (1, 0)][a]
        x2, y2 = (label[0] - 1 + dx) % G, (label[1] - 1 + dy) % G
        r[:] = types[:, x2, y2]
    else:
        if a > 0 and label[a] >= 0 and label[0] - label[a] <= types[a - 1, 1]:
            r[a - 1] = types[a - 1, 0]
    return r


@pytest.mark.parametrize(
    "env",
    [
        sales(n_agents=3, n_items=3, dist="asymmetric"),
        scheduling(n_agents=3, n_tasks=3, dist="asymmetric"),
        gridworld(n_agents=3, grid=4, dist="uniform"),
        gridworld(n_agents=2, grid=3, dist="onecell"),
        matching(n_agents=3, rounds=3),
    ],
    ids=["sales", "scheduling", "grid-uniform", "grid-onecell", "matching"],
)
def test_vectorised_rewards_match_reference_loop(env: Environment) -> None:
    types = env.sample_types(np.random.default_rng(3), 4)
    R = env.rewards(types)
    assert R.shape == (4, env.n_agents, env.n_states, env.n_actions)
    for k in range(4):
        for s, label in enumerate(env.mdp.states):
            for a in range(env.n_actions):
                np.testing.assert_allclose(
                    R[k, :, s, a], _reference_reward(env, label, a, types[k]), rtol=0, atol=0
                )
    if env.nonnegative_rewards:
        assert R.min() >= 0.0


# ---------------------------------------------------------------------- makespan


def test_makespan_hand_computed() -> None:
    C = np.array([[[0.3, 2.0], [1.0, 1.0]]])
    # rem: [0.3, 0] -> clamped [0, 0] + 2 = 2; reference [-0.7, 0] + 2 = 1.3
    np.testing.assert_allclose(makespan_of_assignment(C, [0, 0], "clamped"), [2.0], atol=ATOL)
    np.testing.assert_allclose(makespan_of_assignment(C, [0, 0], "reference"), [1.3], atol=ATOL)
    for variant in ("clamped", "reference"):
        np.testing.assert_allclose(makespan_of_assignment(C, [0, 1], variant), [1.0], atol=ATOL)
        np.testing.assert_allclose(makespan_of_assignment(C, [1, 0], variant), [2.0], atol=ATOL)
        np.testing.assert_allclose(makespan_of_assignment(C, [1, 1], variant), [1.0], atol=ATOL)


def test_makespan_reference_stays_negative() -> None:
    # One busy machine, tasks 0.2, 0.2, 0.5. Clamped: 0.2 -> 0 + 0.2 -> 0 + 0.5 = 0.5.
    # Reference: 0.2 -> -0.8 + 0.2 = -0.6 -> stays -0.6 (not > 0) + 0.5 = -0.1 -> max(., 0) = 0.
    C = np.array([[[0.2, 0.2, 0.5], [9.0, 9.0, 9.0]]])
    np.testing.assert_allclose(makespan_of_assignment(C, [0, 0, 0], "clamped"), [0.5], atol=ATOL)
    np.testing.assert_allclose(makespan_of_assignment(C, [0, 0, 0], "reference"), [0.0], atol=ATOL)
    # Mixed machines; rem_ref = [-0.1, 1.5] and rem_clamped = [0.4, 1.5] -> both 1.5.
    D = np.array([[[0.5, 0.0, 0.4], [0.0, 2.5, 0.0]]])
    for variant in ("clamped", "reference"):
        np.testing.assert_allclose(makespan_of_assignment(D, [0, 1, 0], variant), [1.5], atol=ATOL)


def test_makespan_vectorised_over_profiles() -> None:
    C = np.stack([np.array([[0.3, 2.0], [1.0, 1.0]]), np.array([[1.5, 0.5], [0.0, 0.0]])])
    # second profile: [1.5, 0] -> clamped [0.5, 0] + 0.5 = 1.0; reference also 1.0
    np.testing.assert_allclose(makespan_of_assignment(C, [0, 0], "clamped"), [2.0, 1.0], atol=ATOL)
    np.testing.assert_allclose(
        makespan_of_assignment(C, [0, 0], "reference"), [1.3, 1.0], atol=ATOL
    )


@pytest.mark.parametrize("variant", ["clamped", "reference"])
def test_makespan_cost_coefficients(variant: str) -> None:
    env = scheduling(n_agents=2, n_tasks=2, makespan=variant)
    assert env.objective == "makespan" and env.params["makespan"] == variant
    C = np.array([[[0.3, 2.0], [1.0, 1.0]]])
    coef = env.cost("makespan", C)[0]
    idx = env.mdp.state_index
    np.testing.assert_array_equal(coef[idx((1, -1, -1))], 0.0)  # not a last-task state
    first = 2.0 if variant == "clamped" else 1.3
    np.testing.assert_allclose(coef[idx((2, 1, -1))], [first, 1.0], atol=ATOL)
    np.testing.assert_allclose(coef[idx((2, 2, -1))], [2.0, 1.0], atol=ATOL)


@pytest.mark.parametrize("variant", ["clamped", "reference"])
def test_makespan_cost_matches_per_assignment(variant: str) -> None:
    env = scheduling(n_agents=3, n_tasks=4, dist="asymmetric", makespan=variant)
    C = env.sample_types(5, 6)
    coef = env.cost("makespan", C)
    labels: list[Any] = list(env.mdp.states)
    for s, label in enumerate(labels):
        for a in range(3):
            if label[0] < 4:
                np.testing.assert_array_equal(coef[:, s, a], 0.0)
            else:
                assign = [o - 1 for o in label[1:4]] + [a]
                np.testing.assert_allclose(
                    coef[:, s, a], makespan_of_assignment(C, assign, variant), rtol=0, atol=ATOL
                )


def test_makespan_variants_differ_on_random_profiles() -> None:
    C = scheduling(n_agents=2, n_tasks=4).sample_types(0, 200)
    clamped = makespan_of_assignment(C, [0, 1, 0, 1], "clamped")
    ref = makespan_of_assignment(C, [0, 1, 0, 1], "reference")
    assert (ref <= clamped + ATOL).all()  # banking idle time can only shorten it
    assert (ref < clamped - 1e-6).any()


def test_makespan_bad_input() -> None:
    C = np.zeros((1, 2, 3))
    with pytest.raises(ValueError, match="expected variant in"):
        makespan_of_assignment(C, [0, 1, 0], "nope")
    with pytest.raises(ValueError, match="expected an assignment of length T = 3"):
        makespan_of_assignment(C, [0, 1], "clamped")
    with pytest.raises(ValueError, match="expected 0-based agent indices"):
        makespan_of_assignment(C, [0, 2, 0], "clamped")
    with pytest.raises(ValueError, match=r"expected costs of shape \(k, n, T\)"):
        makespan_of_assignment(np.zeros((2, 3)), [0, 1, 0], "clamped")


# ---------------------------------------------------------------------- metadata


def test_environment_metadata() -> None:
    s = sales(n_agents=4, n_items=3, dist="asymmetric")
    assert s.name == "sales" and s.objective == "revenue" and s.type_shape == (4,)
    assert s.boost_box == (-4.0, 4.0) and s.optimise_weights and s.nonnegative_rewards
    assert dict(s.params) == {"n_agents": 4, "n_items": 3, "dist": "asymmetric", "gamma": 1.0}
    assert not sales(dist="uniform").optimise_weights

    sch = scheduling(n_agents=2)
    assert sch.boost_box == (-6.0, 6.0) and sch.type_shape == (2, 4)
    assert scheduling(n_agents=3).boost_box == (-9.0, 9.0)
    assert scheduling(n_agents=4, n_tasks=2).boost_box == (-16.0, 16.0)
    assert set(sch.costs) == {"makespan"} and sch.params["makespan"] == "clamped"

    g1 = gridworld(n_agents=2, grid=3, dist="onecell", gamma=0.9)
    assert g1.boost_box is not None
    np.testing.assert_allclose(g1.boost_box, (-20.0, 20.0), rtol=1e-12)
    g2 = gridworld(n_agents=2, grid=3, dist="uniform", gamma=0.9)
    assert g2.boost_box is not None
    np.testing.assert_allclose(g2.boost_box, (-180.0, 180.0), rtol=1e-12)
    assert not g1.optimise_weights and g1.type_shape == (2, 3, 3)

    m = matching(n_agents=3, dist="asymmetric")
    assert m.boost_box is None and m.optimise_weights and m.type_shape == (3, 2)
    assert dict(m.params) == {"n_agents": 3, "rounds": 3, "dist": "asymmetric", "gamma": 1.0}


# ---------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("builder", "kwargs", "exc", "match"),
    [
        (sales, {"dist": "normal"}, ValueError, r"expected dist in \('uniform', 'asymmetric'\)"),
        (scheduling, {"dist": "onecell"}, ValueError, "expected dist in"),
        (gridworld, {"dist": "asymmetric"}, ValueError, r"expected dist in \('onecell'"),
        (matching, {"dist": "x"}, ValueError, "expected dist in .*, got 'x'"),
        (gridworld, {"gamma": 1.0}, ValueError, "expected gamma < 1"),
        (gridworld, {"grid": 1}, ValueError, "expected grid >= 2"),
        (sales, {"gamma": 0.0}, ValueError, r"expected gamma in \(0, 1\]"),
        (matching, {"gamma": 1.5}, ValueError, r"expected gamma in \(0, 1\]"),
        (scheduling, {"gamma": "0.9"}, TypeError, "expected gamma as a float"),
        (sales, {"n_agents": 0}, ValueError, "expected n_agents >= 1, got 0"),
        (scheduling, {"n_agents": 0}, ValueError, "expected n_agents >= 1"),
        (gridworld, {"n_agents": -1}, ValueError, "expected n_agents >= 1"),
        (matching, {"n_agents": 0}, ValueError, "expected n_agents >= 1"),
        (sales, {"n_items": 0}, ValueError, "expected n_items >= 1"),
        (matching, {"rounds": 0}, ValueError, "expected rounds >= 1"),
        (sales, {"n_items": 2.0}, TypeError, "expected n_items as an int, got float"),
        (scheduling, {"n_tasks": "4"}, TypeError, "expected n_tasks as an int, got str"),
        (gridworld, {"grid": 3.0}, TypeError, "expected grid as an int"),
        (matching, {"n_agents": True}, TypeError, "expected n_agents as an int, got bool"),
        (scheduling, {"makespan": "exact"}, ValueError, "expected makespan in"),
    ],
)
def test_bad_arguments(builder: Any, kwargs: dict[str, Any], exc: type, match: str) -> None:
    with pytest.raises(exc, match=match):
        builder(**kwargs)


def test_numpy_integer_sizes_accepted() -> None:
    env = sales(n_agents=np.int64(2), n_items=np.int64(2))  # type: ignore[arg-type]
    assert env.mdp.shape == (4, 3) and type(env.params["n_agents"]) is int


def test_small_sizes() -> None:
    assert sales(n_agents=1, n_items=1).mdp.shape == (1, 2)
    assert scheduling(n_agents=1, n_tasks=1).mdp.shape == (1, 1)
    assert matching(n_agents=1, rounds=1).mdp.states == ((-1, -2), (0, -2), (0, 0))
    assert gridworld(n_agents=1, grid=2).mdp.shape == (4, 4)


# ---------------------------------------------------------------------- registry


def test_make_env() -> None:
    env = make_env("sales", n_agents=3, n_items=2, dist="uniform")
    assert env.name == "sales" and env.mdp.shape == (5, 4)
    assert make_env("matching", n_agents=2, rounds=2).n_states == 15
    with pytest.raises(ValueError, match="expected an environment name"):
        make_env("nope")
    with pytest.raises(ValueError, match="unknown"):
        make_env("gridworld", n_items=3)
