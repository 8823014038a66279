"""Exact leader values of hand-built leader policies against the known optima of the games of
Brero et al., *Stackelberg POMDP* (§5.1-5.2, Appendices G and H), by enumeration over type
profiles × follower actions."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from bilevel.models.stackelberg import (
    MSPMGame,
    make_game,
    matrix_design_game,
    mspm_game,
    normal_form_game,
    simple_allocation_game,
)
from bilevel.solvers.stackelberg._bcce import bcce_gap
from bilevel.solvers.stackelberg._exact import (
    PayoffTable,
    best_response,
    dominant_actions,
    follower_values,
    leader_value,
    payoff_table,
    respond,
)
from bilevel.solvers.stackelberg._no_regret import Response

torch.set_num_threads(1)


# ---------------------------------------------------------------------- normal form


def test_game2_pure_and_mixed_commitments() -> None:
    pure = payoff_table(normal_form_game(game=2), 0)
    np.testing.assert_allclose(
        leader_value(pure, best_response(pure)).numpy(), [20 / 30], rtol=0, atol=1e-12
    )
    np.testing.assert_allclose(round(float(leader_value(pure, best_response(pure))[0]), 4), 0.6667)
    mixed = payoff_table(normal_form_game(game=2, randomized=True), [0.25, 0.75, 0.0])
    # Follower indifferent between columns 0 and 1 (15/4 each); ties go to the leader: 27.5.
    np.testing.assert_allclose(
        leader_value(mixed, best_response(mixed)).numpy(), [27.5 / 30], rtol=0, atol=1e-12
    )
    value = float(leader_value(mixed, best_response(mixed))[0])
    np.testing.assert_allclose(round(value, 4), 0.9167)
    np.testing.assert_allclose(
        leader_value(mixed, Response.pure([[1]], (3,))).numpy(), [7.5 / 30], rtol=0, atol=1e-12
    )


@pytest.mark.parametrize("k", [1, 2, 3, 4])
def test_pure_commitment_optimum_by_brute_force(k: int) -> None:
    g = normal_form_game(game=k)
    table = payoff_table(g, np.arange(g.n_rows))  # every row at once (batch R)
    best = float(leader_value(table, best_response(table)).max())
    assert g.optimum is not None
    np.testing.assert_allclose(best, g.optimum, rtol=0, atol=1e-12)


@pytest.mark.parametrize("k", [1, 2, 3, 4])
def test_mixed_commitment_optimum_on_a_simplex_grid(k: int) -> None:
    g = normal_form_game(game=k, randomized=True)
    steps = 24  # contains (1/4, 3/4, 0) and (1/2, 1/2)
    grid = [
        np.array(c) / steps
        for c in itertools.product(range(steps + 1), repeat=g.n_rows)
        if sum(c) == steps
    ]
    table = payoff_table(g, np.stack(grid))
    values = leader_value(table, best_response(table))
    assert g.optimum is not None
    np.testing.assert_allclose(float(values.max()), g.optimum, rtol=0, atol=1e-12)


def test_game2_learning_follower_just_above_the_kink() -> None:
    # p_row0 = 1/4 + d: MW follower learns column 0, leader gets 27.5 - 10 d (raw).
    g = normal_form_game(game=2, randomized=True)
    d = 0.01
    table = payoff_table(g, [0.25 + d, 0.75 - d, 0.0])
    r = respond(table, "deterministic", iterations=50, generator=torch.Generator().manual_seed(0))
    v = float(leader_value(table, r)[0])
    np.testing.assert_allclose(v, (27.5 - 10 * d) / 30, rtol=0, atol=1e-12)
    assert 0.90 <= v <= 0.9167 + 1e-4


# ---------------------------------------------------------------------- matrix design


def test_matrix_design_best_value_and_tau_threshold() -> None:
    g = matrix_design_game()
    for tau in (4.0, 4.5, 3.99):
        t = np.zeros((2, 2, 2))
        t[0, 0, 0] = 1 / 6
        t[1, 1, 1] = tau / 6
        table = payoff_table(g, t)
        dom = [d[0, 0].tolist() for d in dominant_actions(table)]
        assert dom[0] == [True, False]  # t1(0,0) - t1(1,0) = 1 raw: action 0 weakly dominant
        assert dom[1] == [False, tau >= 4], tau  # the tau >= 4 threshold
        strict = [d[0, 0].tolist() for d in dominant_actions(table, strict=True)]
        assert strict == [[False, False], [False, tau > 4]]  # equality is only weak
        v = leader_value(table, Response.pure([[0], [1]], (2, 2)))
        np.testing.assert_allclose(v.numpy(), [10 / 6], rtol=0, atol=1e-12)
        np.testing.assert_allclose(round(float(v[0]), 4), 1.6667)
        # On-path transfers are 0 at (0, 1): the followers get their plain payoffs.
        np.testing.assert_allclose(
            follower_values(table, Response.pure([[0], [1]], (2, 2))).numpy(),
            [[1.0, 4 / 6]], rtol=0, atol=1e-12,
        )
    # No design references: argmax of near-uniform play lands on (0, 0) = 1.0.
    plain = payoff_table(g, np.zeros((2, 2, 2)))
    np.testing.assert_allclose(
        leader_value(plain, Response.pure([[0], [0]], (2, 2))).numpy(), [1.0], atol=1e-12
    )
    # Best over every pure outcome is 10/6: nothing beats it.
    best = max(
        float(leader_value(plain, Response.pure([[a], [b]], (2, 2)))[0])
        for a, b in itertools.product(range(2), range(2))
    )
    assert g.optimum is not None
    np.testing.assert_allclose(best, g.optimum, rtol=0, atol=1e-12)


# ---------------------------------------------------------------------- simple allocation


@pytest.mark.parametrize(("m", "want"), [(1, 1 / 3), (2, 2 / 3), (3, 1.0)])
def test_simple_allocation_optimum(m: int, want: float) -> None:
    g = simple_allocation_game(messages=m)
    # Hand-built rule: message i -> item i; the follower reports its type when it can.
    rule = np.arange(m)
    table = payoff_table(g, rule)
    truthful = Response.pure([np.minimum(np.arange(3), m - 1)], (m,))
    np.testing.assert_allclose(leader_value(table, truthful).numpy(), [want], rtol=0, atol=1e-12)
    np.testing.assert_allclose(bcce_gap(table, truthful).max_gap.numpy(), [0.0], atol=1e-15)
    # Brute force over every rule and every pure follower strategy: nothing beats min(m, 3)/3.
    rules = np.array(list(itertools.product(range(3), repeat=m)))
    all_table = payoff_table(g, rules)
    best = 0.0
    for strat in itertools.product(range(m), repeat=3):
        v = leader_value(all_table, Response.pure([list(strat)], (m,)))
        best = max(best, float(v.max()))
    np.testing.assert_allclose(best, want, rtol=0, atol=1e-12)
    assert g.optimum == pytest.approx(want, abs=1e-15)


# ---------------------------------------------------------------------- MSPM


def spm_table(game: MSPMGame) -> tuple[PayoffTable, list[tuple[int, float, float]]]:
    """All message-blind SPMs on a threshold grid: order × first price × second price."""
    vals = np.unique(np.concatenate(game.values))
    grid = np.concatenate([[0.0], (vals[1:] + vals[:-1]) / 2, [1.0]])
    M = game.n_messages
    combos = [(f, a, b) for f in (0, 1) for a in grid for b in grid]
    f = np.stack([np.full((M, M), c[0]) for c in combos])
    p1 = np.stack([np.full((M, M), c[1]) for c in combos])
    p2 = np.stack([np.full((M, M), c[2]) for c in combos])
    return payoff_table(game, f, p1, p2), combos


def babbling(game: MSPMGame) -> Response:
    """Every type sends message 0 (messages carry no information)."""
    return Response.pure([np.zeros(t, int) for t in game.n_types], game.n_actions)


def test_pi_best_standard_spm_and_a0_first() -> None:
    g = mspm_game(setting="PI", messages=2)
    table, combos = spm_table(g)
    values = leader_value(table, babbling(g))
    np.testing.assert_allclose(float(values.max()), -0.06, rtol=0, atol=1e-12)
    # Every optimum visits A1 first at a price below 0.4 (0 included under the strict buyer
    # rule: A1 with value 0 does not buy at 0), then A0 at a price below its low value 0.2.
    best = [combos[i] for i in torch.nonzero(values > -0.06 - 1e-12)[:, 0].tolist()]
    assert best and all(f == 1 and p1 < 0.4 and p2 < 0.2 for f, p1, p2 in best)
    a0 = payoff_table(g, np.zeros((2, 2), int), np.zeros((2, 2)), np.zeros((2, 2)))
    np.testing.assert_allclose(
        leader_value(a0, babbling(g)).numpy(), [-0.08], rtol=0, atol=1e-12
    )


def test_pi_second_price_rule_is_efficient_with_zero_gap() -> None:
    g = mspm_game(setting="PI", messages=2)
    claims = (np.array([0.2, 1.0]), np.array([0.0, 0.4]))
    f = np.zeros((2, 2), int)
    p1 = np.zeros((2, 2))
    for a, b in itertools.product(range(2), range(2)):
        c0, c1 = claims[0][a], claims[1][b]
        f[a, b] = int(c1 > c0)
        p1[a, b] = max(min(c0, c1) - 0.001, 0.0)
    table = payoff_table(g, f, p1, np.zeros((2, 2)))
    truthful = Response.pure([[0, 1], [0, 1]], (2, 2))
    np.testing.assert_allclose(leader_value(table, truthful).numpy(), [0.0], rtol=0, atol=1e-12)
    np.testing.assert_allclose(bcce_gap(table, truthful).max_gap.numpy(), [0.0], atol=1e-12)
    assert g.optimum == 0.0


@pytest.mark.parametrize(("k", "want"), [(3, -1 / 18), (4, -1 / 24), (5, -1 / 20)])
def test_msgspace_best_standard_spm(k: int, want: float) -> None:
    g = mspm_game(setting="MSGSpace", types=k, messages=2)
    table, _ = spm_table(g)
    best = float(leader_value(table, babbling(g)).max())
    np.testing.assert_allclose(best, want, rtol=0, atol=1e-12)
    assert g.spm_optimum == pytest.approx(want, abs=1e-15)


def test_msgspace3_known_optimal_mspm() -> None:
    # An optimal MSPM for 3 types and 2 messages (loss 0, as the one of Brero et al., Stackelberg
    # POMDP, Appendix H, Table 3): A0 always sends 0; A1 sends 1 iff v = 1. On (0,0): A0 at
    # price 0, then A1 at 0.1. On (0,1): A1 first at 0.5 (then A0 at 0). On A0 = 1: no sale
    # (price 1, strict).
    g = mspm_game(setting="MSGSpace", types=3, messages=2)
    f = np.array([[0, 1], [0, 0]])
    p1 = np.array([[0.0, 0.5], [1.0, 1.0]])
    p2 = np.array([[0.1, 0.0], [1.0, 1.0]])
    table = payoff_table(g, f, p1, p2)
    resp = Response.pure([[0, 0, 0], [0, 0, 1]], (2, 2))
    np.testing.assert_allclose(leader_value(table, resp).numpy(), [0.0], rtol=0, atol=1e-12)
    np.testing.assert_allclose(bcce_gap(table, resp).max_gap.numpy(), [0.0], atol=1e-12)
    np.testing.assert_allclose(g.expected_max, 13 / 18, rtol=0, atol=1e-12)


def test_leader_value_by_naive_enumeration() -> None:
    # leader_value against an explicit loop over profiles and joint actions for a mixed,
    # snapshot-mixed response on a random MSPM policy.
    g = make_game("mspm:MSGSpace:3:2")
    rng = np.random.default_rng(7)
    assert isinstance(g, MSPMGame)
    table = payoff_table(g, rng.integers(2, size=(2, 2)), rng.uniform(size=(2, 2)),
                         rng.uniform(size=(2, 2)))
    s = [torch.tensor(rng.dirichlet(np.ones(2), size=(1, 2, 3))) for _ in range(2)]
    resp = Response(tuple(s), torch.tensor([[0.3, 0.7]], dtype=torch.float64))
    profiles, probs = g.type_profiles()
    want = 0.0
    for k, (t0, t1) in enumerate(profiles):
        for j, (a0, a1) in enumerate(g.joint_actions()):
            pj = sum(
                w * float(s[0][0, sn, t0, a0]) * float(s[1][0, sn, t1, a1])
                for sn, w in enumerate((0.3, 0.7))
            )
            want += probs[k] * pj * float(table.leader[0, k, j])
    np.testing.assert_allclose(float(leader_value(table, resp)[0]), want, rtol=1e-12)


def test_exact_evaluator_bad_input() -> None:
    table = payoff_table(make_game("simple_allocation:2"), [0, 1])
    with pytest.raises(TypeError, match="expected a StackelbergGame"):
        payoff_table("simple_allocation:2", [0, 1])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="at most one batch axis"):
        payoff_table(make_game("simple_allocation:2"), np.zeros((2, 2, 2), int))
    with pytest.raises(ValueError, match="single-follower"):
        best_response(payoff_table(matrix_design_game(), np.zeros((2, 2, 2))))
    with pytest.raises(ValueError, match="expected a response over types"):
        leader_value(table, Response.pure([[0, 1]], (2,)))
    with pytest.raises(ValueError, match="follower of shape"):
        PayoffTable(torch.zeros(1, 3, 2), torch.zeros(1, 3, 2), torch.ones(3) / 3, (3,), (2,))
    with pytest.raises(ValueError, match="profile_probs as a distribution"):
        PayoffTable(torch.zeros(1, 3, 2, 1), torch.zeros(1, 3, 2), torch.ones(3), (3,), (2,))
    with pytest.raises(ValueError, match="finite payoffs"):
        PayoffTable(
            torch.full((1, 1, 2, 1), np.nan), torch.zeros(1, 1, 2), torch.ones(1), (1,), (2,)
        )
    with pytest.raises(ValueError, match="iterations >= 0"):
        respond(table, iterations=-1, generator=torch.Generator())
    with pytest.raises(TypeError, match=r"expected a torch\.Generator"):
        respond(table, iterations=1, generator=0)  # type: ignore[arg-type]


@pytest.mark.parametrize(("flavour", "prefix"), [("exact", 75), ("sampled", 300)])
def test_msgspace3_optimum_against_learned_certified_followers(flavour: str, prefix: int) -> None:
    # The k = 3 optimal MSPM against MW followers (SP-B prefix: 75 exact updates): the mixed
    # strategies are not yet certified (A0 with value 0 is indifferent between its messages),
    # their argmax is, and it is the efficient equilibrium: loss 0.
    from bilevel.solvers.stackelberg._bcce import certified_response

    g = mspm_game(setting="MSGSpace", types=3, messages=2)
    f = np.array([[0, 1], [0, 0]])
    table = payoff_table(g, f, np.array([[0.0, 0.5], [1.0, 1.0]]), np.array([[0.1, 0.0], [1, 1]]))
    cr = certified_response(
        table, prefix_iterations=prefix, generator=torch.Generator().manual_seed(0),
        flavour=flavour,  # type: ignore[arg-type]
    )
    assert cr.kinds == ("deterministic",) and cr.iterations.tolist() == [prefix]
    np.testing.assert_allclose(leader_value(table, cr.response).numpy(), [0.0], atol=1e-12)
    np.testing.assert_allclose(cr.gap.max_gap.numpy(), [0.0], atol=1e-12)


@pytest.mark.parametrize("randomized", [False, True])
@pytest.mark.parametrize("k", [1, 2, 3, 4])
def test_optimal_commitment_matches_the_known_optima(k: int, randomized: bool) -> None:
    from bilevel.solvers.stackelberg._exact import optimal_commitment

    g = normal_form_game(game=k, randomized=randomized)
    value, mixture, column = optimal_commitment(g)
    assert g.optimum is not None
    np.testing.assert_allclose(value, g.optimum, rtol=0, atol=1e-9)
    # The returned commitment attains it against the leader-favourable best response.
    policy = mixture if randomized else np.array(int(mixture.argmax()))
    table = payoff_table(g, policy)
    np.testing.assert_allclose(
        leader_value(table, best_response(table, tol=1e-7)).numpy(), [value], atol=1e-7
    )
    assert int(best_response(table, tol=1e-7).strategies[0][0, 0, 0].argmax()) == column
    if k == 2 and randomized:
        np.testing.assert_allclose(mixture, [0.25, 0.75, 0.0], atol=1e-9)


@pytest.mark.parametrize(
    ("name", "want"),
    [("mspm:PI:2", -0.06), ("mspm:MSGSpace:3:2", -1 / 18), ("mspm:MSGSpace:4:2", -1 / 24),
     ("mspm:MSGSpace:5:2", -1 / 20), ("mspm:MSGSpace:6:2", -2 / 45)],
)
def test_best_standard_spm_helper(name: str, want: float) -> None:
    from bilevel.solvers.stackelberg._exact import best_standard_spm

    g = make_game(name)
    assert isinstance(g, MSPMGame)
    value, (f, p1, p2) = best_standard_spm(g)
    np.testing.assert_allclose(value, want, rtol=0, atol=1e-12)
    table = payoff_table(g, f, p1, p2)
    np.testing.assert_allclose(leader_value(table, babbling(g)).numpy(), [want], atol=1e-12)
    with pytest.raises(TypeError, match="expected an MSPMGame"):
        best_standard_spm(make_game("matrix_design"))  # type: ignore[arg-type]


def test_dominant_actions_with_types() -> None:
    # Simple allocation, identity rule: reporting the type is strictly dominant for each type;
    # with a rule that never gives item 2, type 2 is indifferent (every message weakly dominant).
    g = simple_allocation_game(messages=3)
    strict = dominant_actions(payoff_table(g, [0, 1, 2]), strict=True)[0][0]
    np.testing.assert_array_equal(strict.numpy(), np.eye(3, dtype=bool))
    weak = dominant_actions(payoff_table(g, [0, 1, 1]))[0][0]
    np.testing.assert_array_equal(
        weak.numpy(), [[True, False, False], [False, True, True], [True, True, True]]
    )
