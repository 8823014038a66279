"""The Environment interface on the four built-in environments.

Tree successors, counterfactual profiles, vectorised rewards against a per-entry loop, metadata,
bad constructor arguments and ``make_env``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from bilevel.models import Environment, gridworld, make_env, matching, sales, scheduling
from bilevel.models._scheduling import SCHEDULER_SENTINEL

# ---------------------------------------------------------------------- orders and transitions


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


def _reference_reward(env: Environment, label: Any, a: int, types: Any) -> np.ndarray:
    """Per-agent reward of one (state, action, profile), one entry at a time as in the
    environments of Curry et al. (2024), §5 (and the authors' code for matching)."""
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


def test_an_environment_with_a_lambda_refuses_to_pickle_with_the_fix() -> None:
    import pickle

    from bilevel.models import custom_env, mdp_from_arrays

    def rewards(v: np.ndarray) -> np.ndarray:
        R = np.zeros((v.shape[0], 2, 1, 2))
        R[:, 0, 0, 0], R[:, 1, 0, 1] = v[:, 0], v[:, 1]
        return R

    env = custom_env(mdp_from_arrays(np.zeros((1, 2, 1)), [1.0], 1.0), n_agents=2,
                     type_shape=(2,), sampler=lambda rng, k: rng.uniform(size=(k, 2)),
                     reward_fn=rewards)
    with pytest.raises(pickle.PicklingError,
                       match=r"its sampler '\S*<lambda>'.*package\.module:function"):
        pickle.dumps(env)


def test_a_custom_environment_of_module_level_functions_pickles() -> None:
    import pickle

    from bilevel.models import custom_env, mdp_from_arrays

    env = custom_env(mdp_from_arrays(np.zeros((1, 2, 1)), [1.0], 1.0), n_agents=2,
                     type_shape=(2,), sampler=_uniform2, reward_fn=_rewards2)
    assert pickle.loads(pickle.dumps(env)).identity() == env.identity()


def _uniform2(rng: np.random.Generator, k: int) -> np.ndarray:
    return rng.uniform(size=(k, 2))


def _rewards2(v: np.ndarray) -> np.ndarray:
    R = np.zeros((v.shape[0], 2, 1, 2))
    R[:, 0, 0, 0], R[:, 1, 0, 1] = v[:, 0], v[:, 1]
    return R
