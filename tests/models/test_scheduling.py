"""Task scheduling: state counts, order, cost distributions, rewards and the makespan costs."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from bilevel.models import Environment, scheduling
from bilevel.models._scheduling import makespan_of_assignment

ATOL = 1e-12


@pytest.mark.parametrize(("n", "T", "S"), [(2, 4, 15), (2, 5, 31), (3, 4, 40), (3, 5, 121)])
def test_scheduling_counts(n: int, T: int, S: int) -> None:
    env = scheduling(n_agents=n, n_tasks=T)
    assert env.mdp.shape == (S, n)
    assert env.mdp.horizon == T


def _next(env: Environment, label: Any, action: str) -> Any:
    mdp = env.mdp
    assert mdp.successor is not None
    s2 = int(mdp.successor[mdp.state_index(label), mdp.actions.index(action)])
    return None if s2 == mdp.n_states else mdp.states[s2]


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


def test_scheduling_types() -> None:
    C = scheduling(n_agents=3, n_tasks=4).sample_types(0, 3000)
    assert C.shape == (3000, 3, 4)
    assert C.min() >= 0.0 and C.max() <= 3.0
    np.testing.assert_allclose(C.max(axis=(0, 2)), 3.0, rtol=0.01, atol=0)
    D = scheduling(n_agents=3, n_tasks=4, dist="asymmetric").sample_types(1, 3000)
    upper = 3.0 * np.arange(1, 4)
    assert (D >= 0).all() and (upper[None, :, None] >= D).all()
    np.testing.assert_allclose(D.max(axis=(0, 2)), upper, rtol=0.01, atol=0)


def test_scheduling_rewards_hand_built() -> None:
    env = scheduling(n_agents=2, n_tasks=2)
    C = np.array([[[1.0, 2.0], [3.0, 4.0]]])
    R = env.rewards(C)[0]
    idx = env.mdp.state_index
    np.testing.assert_allclose(R[:, idx((1, -1, -1))], [[-1.0, 0.0], [0.0, -3.0]], atol=ATOL)
    for s in [(2, 1, -1), (2, 2, -1)]:
        np.testing.assert_allclose(R[:, idx(s)], [[-2.0, 0.0], [0.0, -4.0]], atol=ATOL)
    assert not env.nonnegative_rewards


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
