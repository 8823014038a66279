"""Multiplicative-weights followers: kernels against naive loops, hand-worked
updates, response objects, and convergence to the known equilibria of small games."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from bilevel.models.stackelberg import make_game, matrix_design_game, mspm_game
from bilevel.solvers.stackelberg._exact import leader_value, payoff_table, run_dynamics
from bilevel.solvers.stackelberg._no_regret import (
    MultiplicativeWeights,
    Response,
    expected_deviation_utilities,
    joint_index,
)

torch.set_num_threads(1)


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ---------------------------------------------------------------------- kernels


def test_expected_deviation_utilities_matches_a_naive_loop() -> None:
    rng = np.random.default_rng(3)
    counts = (2, 3, 2)
    J = int(np.prod(counts))
    u = torch.tensor(rng.normal(size=(4, J, 3)))
    s = [torch.tensor(rng.dirichlet(np.ones(k), size=4)) for k in counts]
    got = expected_deviation_utilities(u, s, counts)
    for b in range(4):
        for i in range(3):
            for a in range(counts[i]):
                want = 0.0
                for j, prof in enumerate(itertools.product(*map(range, counts))):
                    if prof[i] != a:
                        continue
                    w = math.prod(float(s[o][b, prof[o]]) for o in range(3) if o != i)
                    want += w * float(u[b, j, i])
                np.testing.assert_allclose(float(got[i][b, a]), want, rtol=1e-12, atol=1e-12)


def test_joint_index_is_c_order() -> None:
    acts = torch.tensor(list(itertools.product(range(2), range(3))))
    assert joint_index(acts, (2, 3)).tolist() == list(range(6))


# ---------------------------------------------------------------------- one update by hand


def test_exact_update_by_hand() -> None:
    # Two followers, 2 actions, no types; start uniform, eps = 0.1.
    mw = MultiplicativeWeights((1, 1), (2, 2), flavour="exact")
    assert mw.epsilon == 0.1 and mw.n_queries == 4
    u = torch.tensor([[[1.0, 0.0], [0.0, 2.0], [0.5, 1.0], [0.0, 0.0]]], dtype=torch.float64)
    mw.update(torch.zeros(1, 2, dtype=torch.int64), u)
    # U_1 = (0.5*1 + 0.5*0, 0.5*0.5 + 0.5*0) = (0.5, 0.25);
    # U_2 = (0.5*0 + 0.5*1, 0.5*2 + 0.5*0) = (0.5, 1).
    for i, U in enumerate(([0.5, 0.25], [0.5, 1.0])):
        w = np.power(1.1, U)
        np.testing.assert_allclose(mw.weights()[i][0, 0].numpy(), w / w.sum(), rtol=1e-13)
    assert mw.n_updates == 1


def test_sampled_queries_and_update_by_hand() -> None:
    mw = MultiplicativeWeights((2, 1), (3, 2), batch=2, flavour="sampled")
    assert mw.epsilon == 0.01 and mw.n_queries == 5
    types = torch.tensor([[1, 0], [0, 0]])
    q = mw.queries(types, gen(1))
    assert q.shape == (2, 5, 2)
    for b in range(2):
        # Follower 0 deviates over its 3 actions with follower 1 at its reference action, then
        # follower 1 over its 2 actions with follower 0 at its reference action.
        ref0, ref1 = int(q[b, 3, 0]), int(q[b, 0, 1])
        assert q[b, :3].tolist() == [[0, ref1], [1, ref1], [2, ref1]]
        assert q[b, 3:].tolist() == [[ref0, 0], [ref0, 1]]
    u = torch.arange(20, dtype=torch.float64).reshape(2, 5, 2) / 10
    mw.update(types, u)
    w0 = mw.weights()[0]
    # Unnormalised: w = 1.01 ** u for the queried type only, row of the other type stays 1.
    np.testing.assert_allclose(w0[0, 1].numpy(), 1.01 ** (u[0, :3, 0].numpy()), rtol=1e-13)
    np.testing.assert_allclose(w0[0, 0].numpy(), [1.0, 1.0, 1.0], rtol=0)
    np.testing.assert_allclose(
        mw.weights()[1][1, 0].numpy(), 1.01 ** (u[1, 3:, 1].numpy()), rtol=1e-13
    )


def test_update_from_table_equals_manual_queries() -> None:
    game = make_game("mspm:PI:2")
    table = payoff_table(game, np.ones((2, 2), int), np.full((2, 2), 0.3), np.zeros((2, 2)))
    a = MultiplicativeWeights(game.n_types, game.n_actions)
    b = MultiplicativeWeights(game.n_types, game.n_actions)
    a.update_from_table(table.follower, torch.tensor([3]))
    types = torch.tensor([[1, 1]])
    b.update(types, table.follower[0, 3][None])
    for x, y in zip(a.log_weights, b.log_weights, strict=True):
        torch.testing.assert_close(x, y, rtol=0, atol=0)


def test_critic_features_are_block_normalised() -> None:
    mw = MultiplicativeWeights((2,), (3,), flavour="sampled")
    types = torch.tensor([[1]])
    mw.queries(types, gen())
    mw.update(types, torch.tensor([[[0.0], [5.0], [1.0]]], dtype=torch.float64))
    f = mw.critic_features()
    assert f.shape == (1, 6)
    np.testing.assert_allclose(float(f.max()), 1.0, rtol=0, atol=1e-15)
    np.testing.assert_allclose(f[0, 3:].numpy(), 1.01 ** np.array([-5.0, 0.0, -4.0]), rtol=1e-13)


# ---------------------------------------------------------------------- responses


def test_empirical_average_is_the_snapshot_mixture() -> None:
    mw = MultiplicativeWeights((1, 1), (2, 2), flavour="exact", epsilon=0.5)
    types = torch.zeros(1, 2, dtype=torch.int64)
    u = torch.tensor([[[1.0, 0.0], [0.0, 1.0], [0.0, 1.0], [1.0, 0.0]]], dtype=torch.float64)
    snaps = []
    for _ in range(3):
        mw.update(types, u)
        snaps.append([s[0, 0] for s in mw.strategies()])
    r = mw.response("empirical_average")
    assert r.strategies[0].shape == (1, 3, 1, 2) and r.kind == "empirical_average"
    P = r.joint_action_probs(torch.zeros(1, 2, dtype=torch.int64))[0, 0]
    want = sum(torch.outer(a, b).reshape(-1) for a, b in snaps) / 3
    torch.testing.assert_close(P, want, rtol=1e-13, atol=1e-13)


def test_deterministic_response_is_the_argmax() -> None:
    mw = MultiplicativeWeights((1,), (3,), flavour="exact")
    mw.update(torch.zeros(1, 1, dtype=torch.int64), torch.tensor([[[0.0], [2.0], [1.0]]]))
    assert mw.response("deterministic").strategies[0][0, 0, 0].tolist() == [0.0, 1.0, 0.0]
    # Uniform weights: the first index.
    mw.reset()
    assert mw.response("deterministic").strategies[0][0, 0, 0].tolist() == [1.0, 0.0, 0.0]


def test_response_constructors_and_validation() -> None:
    r = Response.mixed([[[0.5, 0.5]], [[0.25, 0.75]]])
    P = r.joint_action_probs(torch.zeros(1, 2, dtype=torch.int64))
    np.testing.assert_allclose(P[0, 0].numpy(), [0.125, 0.375, 0.125, 0.375], rtol=1e-15)
    with pytest.raises(ValueError, match="rows of strategies"):
        Response.mixed([[[0.5, 0.6]]])
    with pytest.raises(ValueError, match="snapshot_weights"):
        Response((torch.ones(1, 2, 1, 1),), torch.tensor([[0.7, 0.7]]))
    with pytest.raises(ValueError, match=r"actions\[0\] in \[0, 2\)"):
        Response.pure([[0, 2]], (2,))
    with pytest.raises(TypeError, match="as ints"):
        Response.pure([[0.0, 1.0]], (2,))
    with pytest.raises(ValueError, match="one batch size"):
        Response.pure([[[0], [1]], [[0], [1], [0]]], (2, 2))
    with pytest.raises(ValueError, match="profiles of shape"):
        r.joint_action_probs(torch.zeros(1, 3, dtype=torch.int64))


def test_bad_input_raises() -> None:
    with pytest.raises(ValueError, match="expected flavour in"):
        MultiplicativeWeights((1,), (2,), flavour="hedge")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="epsilon > 0"):
        MultiplicativeWeights((1,), (2,), epsilon=0.0)
    with pytest.raises(ValueError, match="one type count per follower"):
        MultiplicativeWeights((1, 1), (2,))
    with pytest.raises(ValueError, match="n_actions >= 1"):
        MultiplicativeWeights((1,), (0,))
    mw = MultiplicativeWeights((2,), (2,), flavour="sampled")
    types = torch.tensor([[1]])
    with pytest.raises(ValueError, match=r"torch\.Generator for the sampled flavour"):
        mw.queries(types)
    with pytest.raises(ValueError, match="queries\\(\\) before update\\(\\)"):
        mw.update(types, torch.zeros(1, 2, 1))
    with pytest.raises(ValueError, match=r"types in \[0"):
        mw.queries(torch.tensor([[2]]), gen())
    mw.queries(types, gen())
    with pytest.raises(ValueError, match="finite utilities"):
        mw.update(types, torch.tensor([[[math.nan], [0.0]]]))
    with pytest.raises(ValueError, match="utilities of shape"):
        mw.update(types, torch.zeros(1, 3, 1))
    with pytest.raises(ValueError, match="at least one recorded update"):
        MultiplicativeWeights((1,), (2,)).response("empirical_average")
    with pytest.raises(ValueError, match="expected kind in"):
        MultiplicativeWeights((1,), (2,)).response("best")  # type: ignore[arg-type]


def test_dynamics_are_reproducible_for_a_seed() -> None:
    table = payoff_table(make_game("simple_allocation:3"), [0, 1, 2])
    a = run_dynamics(table, iterations=30, generator=gen(5), flavour="sampled")
    b = run_dynamics(table, iterations=30, generator=gen(5), flavour="sampled")
    for x, y in zip(a.log_weights, b.log_weights, strict=True):
        torch.testing.assert_close(x, y, rtol=0, atol=0)


# ---------------------------------------------------------------------- convergence


@pytest.mark.parametrize(("flavour", "iterations"), [("exact", 100), ("sampled", 300)])
def test_game2_follower_learns_the_best_response(flavour: str, iterations: int) -> None:
    game = make_game("normal_form:game_2:randomized")
    # Row 0 alone -> column 0 (20/30); (1/4 + 0.02, 3/4 - 0.02, 0) -> column 0 (27.3/30).
    table = payoff_table(game, [[1.0, 0.0, 0.0], [0.27, 0.73, 0.0]])
    mw = run_dynamics(table, iterations=iterations, generator=gen(), flavour=flavour)  # type: ignore[arg-type]
    r = mw.response("deterministic")
    assert r.strategies[0][:, 0, 0].argmax(-1).tolist() == [0, 0]
    np.testing.assert_allclose(
        leader_value(table, r).numpy(), [20 / 30, 27.3 / 30], rtol=0, atol=1e-12
    )
    # One follower without types: the strategy is exactly softmax(N log(1 + eps) u).
    eps = 0.1 if flavour == "exact" else 0.01
    u = table.follower[:, 0, :, 0]
    torch.testing.assert_close(
        mw.strategies()[0][:, 0], torch.softmax(iterations * math.log1p(eps) * u, -1),
        rtol=1e-9, atol=1e-12,
    )


@pytest.mark.parametrize(("flavour", "iterations"), [("exact", 200), ("sampled", 400)])
def test_simple_allocation_learns_truth_telling(flavour: str, iterations: int) -> None:
    game = make_game("simple_allocation:3")
    table = payoff_table(game, [2, 0, 1])  # message 0 -> item 2, 1 -> 0, 2 -> 1
    mw = run_dynamics(table, iterations=iterations, generator=gen(1), flavour=flavour)  # type: ignore[arg-type]
    r = mw.response("deterministic")
    assert r.strategies[0][0, 0].argmax(-1).tolist() == [1, 2, 0]
    np.testing.assert_allclose(leader_value(table, r).numpy(), [1.0], rtol=0, atol=1e-12)


@pytest.mark.parametrize(("flavour", "iterations"), [("exact", 100), ("sampled", 300)])
def test_matrix_design_with_dominance_transfers_reaches_the_welfare_optimum(
    flavour: str, iterations: int
) -> None:
    t = np.zeros((2, 2, 2))
    t[0, 0, 0] = 1.5 / 6  # t1(0,0) - t1(1,0) >= 1 raw, with a margin
    t[1, 1, 1] = 4.5 / 6  # tau = 4.5 >= 4 raw
    table = payoff_table(matrix_design_game(), t)
    mw = run_dynamics(table, iterations=iterations, generator=gen(2), flavour=flavour)  # type: ignore[arg-type]
    r = mw.response("deterministic")
    assert [float(s[0, 0, 0].argmax()) for s in r.strategies] == [0, 1]
    np.testing.assert_allclose(leader_value(table, r).numpy(), [10 / 6], rtol=0, atol=1e-12)


def test_mspm_second_price_rule_learns_truth_telling() -> None:
    game = mspm_game(setting="PI", messages=2)
    claims = (np.array([0.2, 1.0]), np.array([0.0, 0.4]))
    f = np.zeros((2, 2), int)
    p1 = np.zeros((2, 2))
    for a, b in itertools.product(range(2), range(2)):
        c0, c1 = claims[0][a], claims[1][b]
        f[a, b] = int(c1 > c0)
        p1[a, b] = max(min(c0, c1) - 0.001, 0.0)
    table = payoff_table(game, f, p1, np.zeros((2, 2)))
    mw = run_dynamics(table, iterations=300, generator=gen(3))
    r = mw.response("deterministic")
    assert [s[0, 0].argmax(-1).tolist() for s in r.strategies] == [[0, 1], [0, 1]]
    np.testing.assert_allclose(leader_value(table, r).numpy(), [0.0], rtol=0, atol=1e-12)


def test_batched_rows_are_independent() -> None:
    game = make_game("simple_allocation:2")
    both = payoff_table(game, [[0, 1], [1, 0]])
    one = payoff_table(game, [[1, 0]])
    a = run_dynamics(both, iterations=50, generator=gen(4))
    b = run_dynamics(one, iterations=50, generator=gen(4))
    torch.testing.assert_close(a.log_weights[0][1], b.log_weights[0][0], rtol=0, atol=1e-15)


# ---------------------------------------------------------------------- Q-learning


def test_rows_reset_and_update_separately() -> None:
    # Row 0 is reset after two updates and then skips none; row 1 skips update 3. Each row must
    # equal a single-row learner that saw only its own updates since its own reset.
    rng = np.random.default_rng(11)
    us = [torch.tensor(rng.normal(size=(2, 4, 2))) for _ in range(4)]
    types = torch.zeros(2, 2, dtype=torch.int64)
    mw = MultiplicativeWeights((1, 1), (2, 2), batch=2, epsilon=0.3)
    mw.update(types, us[0])
    mw.update(types, us[1])
    mw.reset(torch.tensor([True, False]))
    mw.update(types, us[2], active=torch.tensor([True, False]))
    mw.update(types, us[3])
    assert mw.row_updates.tolist() == [2, 3] and mw.n_updates == 4
    one = torch.zeros(1, 2, dtype=torch.int64)
    solo = [MultiplicativeWeights((1, 1), (2, 2), epsilon=0.3) for _ in range(2)]
    for k in (2, 3):
        solo[0].update(one, us[k][0:1])
    for k in (0, 1, 3):
        solo[1].update(one, us[k][1:2])
    emp = mw.response("empirical_average")
    assert emp.snapshot_weights.shape == (2, 3)
    np.testing.assert_allclose(emp.snapshot_weights[0].numpy(), [0.5, 0.5, 0.0], atol=0)
    for b in range(2):
        for i in range(2):
            torch.testing.assert_close(
                mw.log_weights[i][b], solo[b].log_weights[i][0], rtol=0, atol=1e-14
            )
        torch.testing.assert_close(
            emp.joint_action_probs(one)[b],
            solo[b].response("empirical_average").joint_action_probs(one)[0],
            rtol=0, atol=1e-14,
        )
    mw.reset(torch.tensor([False, True]))
    with pytest.raises(ValueError, match="at least one recorded update per row"):
        mw.response("empirical_average")
    with pytest.raises(ValueError, match="row mask of shape"):
        mw.reset(torch.tensor([1, 0]))


@pytest.mark.slow
@pytest.mark.parametrize("flavour", ["exact", "sampled"])
def test_mixed_strategies_converge_on_the_pi_second_price_rule(flavour: str) -> None:
    # Long run: the last mixed strategy itself (not only its argmax) becomes truthful to within
    # 0.01 per type, and is certified.
    from bilevel.solvers.stackelberg._bcce import bcce_gap

    game = mspm_game(setting="PI", messages=2)
    claims = (np.array([0.2, 1.0]), np.array([0.0, 0.4]))
    f = np.zeros((2, 2), int)
    p1 = np.zeros((2, 2))
    for a, b in itertools.product(range(2), range(2)):
        c0, c1 = claims[0][a], claims[1][b]
        f[a, b] = int(c1 > c0)
        p1[a, b] = max(min(c0, c1) - 0.001, 0.0)
    table = payoff_table(game, f, p1, np.zeros((2, 2)))
    its = 3000 if flavour == "exact" else 30000
    mw = run_dynamics(table, iterations=its, generator=gen(0), flavour=flavour)  # type: ignore[arg-type]
    s = mw.strategies()
    # A0 with value 0.2 and A1 with value 0 earn the same with either message (their mixed
    # strategies need not move); the high types strictly prefer telling the truth.
    assert float(s[0][0, 1, 1]) > 0.99 and float(s[1][0, 1, 1]) > 0.99
    assert bool(bcce_gap(table, mw.response("last_mixed")).certified[0])
