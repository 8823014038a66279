"""The exact B-CCE gap: zero at known equilibria, hand-checked values elsewhere (including one
that depends on the true, non-uniform prior), snapshot correlation, and certification."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from bilevel.models.stackelberg import make_game, matrix_design_game, mspm_game
from bilevel.solvers.stackelberg._bcce import CertificationError, bcce_gap, certified_response
from bilevel.solvers.stackelberg._exact import PayoffTable, leader_value, payoff_table
from bilevel.solvers.stackelberg._no_regret import Response

torch.set_num_threads(1)


def second_price_rule() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """PI, 2 messages read as claimed values (0.2 | 1.0) and (0 | 0.4): visit the higher claim
    first at the other's claim − 0.001 (clipped at 0), then the other at price 0."""
    claims = (np.array([0.2, 1.0]), np.array([0.0, 0.4]))
    f = np.zeros((2, 2), int)
    p1 = np.zeros((2, 2))
    for a, b in itertools.product(range(2), range(2)):
        c0, c1 = claims[0][a], claims[1][b]
        f[a, b] = int(c1 > c0)
        p1[a, b] = max(min(c0, c1) - 0.001, 0.0)
    return f, p1, np.zeros((2, 2))


PI_TABLE = payoff_table(mspm_game(setting="PI", messages=2), *second_price_rule())
TRUTHFUL = Response.pure([[0, 1], [0, 1]], (2, 2))


def test_gap_is_zero_at_known_equilibria() -> None:
    # PI second-price-like rule with truthful messages: a pure BNE (the Vickrey-like MSPM of
    # Brero et al., Stackelberg POMDP, §5.2).
    r = bcce_gap(PI_TABLE, TRUTHFUL)
    np.testing.assert_allclose(r.max_gap.numpy(), [0.0], rtol=0, atol=1e-12)
    assert r.certified.tolist() == [True] and r.threshold == 0.05
    # Normal-form game 2, row 0 committed, follower on column 0 (its best response).
    nf = payoff_table(make_game("normal_form:game_2"), 0)
    np.testing.assert_allclose(
        bcce_gap(nf, Response.pure([[0]], (3,))).max_gap.numpy(), [0.0], atol=1e-15
    )
    # Matrix design without transfers: the mixed NE (0.8, 0.2) for both followers.
    md = payoff_table(matrix_design_game(), np.zeros((2, 2, 2)))
    ne = Response.mixed([[[0.8, 0.2]], [[0.8, 0.2]]])
    np.testing.assert_allclose(bcce_gap(md, ne).max_gap.numpy(), [0.0], rtol=0, atol=1e-12)
    np.testing.assert_allclose(leader_value(md, ne).numpy(), [1.2], rtol=0, atol=1e-12)


def test_gap_at_hand_checked_non_equilibria() -> None:
    # Game 2, row 0: a follower on column 1 earns 0 and could earn 15/30 on column 0.
    nf = payoff_table(make_game("normal_form:game_2"), 0)
    r = bcce_gap(nf, Response.pure([[1]], (3,)))
    np.testing.assert_allclose(r.gaps[0].numpy(), [[0.5]], rtol=0, atol=1e-15)
    assert r.best_deviation[0].tolist() == [[0]] and r.certified.tolist() == [False]
    # PI second-price rule, A0 always sends 0, A1 truthful. A0 with value 1.0 earns
    # 0.5 * 1.0 (vs A1 message 0, first at price 0) + 0.5 * 0 (A1 first at 0.199 buys) = 0.5;
    # claiming 1.0 earns 0.5 * 1.0 + 0.5 * (1 - 0.399) = 0.8005: gap 0.3005. Others: 0.
    r = bcce_gap(PI_TABLE, Response.pure([[0, 0], [0, 1]], (2, 2)))
    np.testing.assert_allclose(r.gaps[0].numpy(), [[0.0, 0.3005]], rtol=0, atol=1e-12)
    np.testing.assert_allclose(r.gaps[1].numpy(), [[0.0, 0.0]], rtol=0, atol=1e-12)
    np.testing.assert_allclose(r.max_gap.numpy(), [0.3005], rtol=0, atol=1e-12)


def test_gap_uses_the_true_prior() -> None:
    # A0 truthful, A1 with value 0.4 hides (sends 0). Claiming 0.4 would win against A0's
    # message 0 (prior 0.8, not the uniform 0.5): 0.8 * (0.4 - 0.199) = 0.1608.
    r = bcce_gap(PI_TABLE, Response.pure([[0, 1], [0, 0]], (2, 2)))
    np.testing.assert_allclose(r.gaps[1].numpy(), [[0.0, 0.8 * 0.201]], rtol=0, atol=1e-12)
    np.testing.assert_allclose(r.gaps[0].numpy(), [[0.0, 0.0]], rtol=0, atol=1e-12)


def test_snapshot_correlation_gives_a_cce_that_is_not_a_product() -> None:
    # Matrix design, no transfers: snapshots (0,1) and (1,0) with weight 1/2 each. Follower 1
    # earns (6 + 4)/2 = 5 raw; its best fixed action 0 earns (6 + 3)/2 = 4.5: gap -0.5 / 6.
    md = payoff_table(matrix_design_game(), np.zeros((2, 2, 2)))
    s0 = torch.tensor([[[[1.0, 0.0]], [[0.0, 1.0]]]], dtype=torch.float64)  # (B, S, T, A)
    s1 = torch.tensor([[[[0.0, 1.0]], [[1.0, 0.0]]]], dtype=torch.float64)
    corr = Response((s0, s1), torch.tensor([[0.5, 0.5]], dtype=torch.float64))
    r = bcce_gap(md, corr)
    for g in r.gaps:
        np.testing.assert_allclose(g.numpy(), [[-0.5 / 6]], rtol=0, atol=1e-12)
    np.testing.assert_allclose(r.max_gap.numpy(), [0.0], atol=0)
    np.testing.assert_allclose(leader_value(md, corr).numpy(), [10 / 6], rtol=0, atol=1e-12)
    # The product of the two marginals (1/2, 1/2) is not an equilibrium of this game.
    prod = Response.mixed([[[0.5, 0.5]], [[0.5, 0.5]]])
    # Follower 1: 0.5*(3+6)/2 + 0.5*(4+2)/2 = 3.75 raw; action 0 earns 4.5: gap 0.75 / 6.
    np.testing.assert_allclose(bcce_gap(md, prod).max_gap.numpy(), [0.75 / 6], atol=1e-12)


def test_gap_is_batched_and_broadcasts_the_response() -> None:
    g = make_game("simple_allocation:3")
    table = payoff_table(g, [[0, 1, 2], [0, 0, 0]])
    r = bcce_gap(table, Response.pure([[0, 1, 2]], (3,)))
    np.testing.assert_allclose(r.max_gap.numpy(), [0.0, 0.0], atol=0)
    r = bcce_gap(table, Response.pure([[0, 0, 0]], (3,)), threshold=0.5)
    np.testing.assert_allclose(r.max_gap.numpy(), [1.0, 0.0], atol=0)
    assert r.certified.tolist() == [False, True] and not r.all_certified


def test_bad_input_raises() -> None:
    with pytest.raises(ValueError, match="threshold >= 0"):
        bcce_gap(PI_TABLE, TRUTHFUL, threshold=-0.1)
    with pytest.raises(ValueError, match="expected a response over types"):
        bcce_gap(PI_TABLE, Response.pure([[0, 1]], (2,)))
    with pytest.raises(ValueError, match="batch 1 or 1"):
        bcce_gap(PI_TABLE, Response.pure([[[0, 1], [0, 1]], [[0, 1], [0, 1]]], (2, 2)))
    with pytest.raises(TypeError, match="expected a Response"):
        bcce_gap(PI_TABLE, "truthful")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="candidates among"):
        certified_response(
            PI_TABLE, prefix_iterations=1, generator=torch.Generator(), candidates=("best",)  # type: ignore[arg-type]
        )


def test_certified_response_selects_in_priority_order() -> None:
    gen = torch.Generator().manual_seed(0)
    cr = certified_response(PI_TABLE, prefix_iterations=25, generator=gen)
    # 25 exact updates (reference default prefix for PI): the mixed strategy is not yet within
    # 0.05, its argmax (truth-telling) is.
    assert cr.kinds == ("deterministic",) and cr.iterations.tolist() == [25]
    assert cr.certified.tolist() == [True]
    np.testing.assert_allclose(cr.gap.max_gap.numpy(), [0.0], atol=1e-12)
    np.testing.assert_allclose(leader_value(PI_TABLE, cr.response).numpy(), [0.0], atol=1e-12)


def test_certification_extends_and_gives_up() -> None:
    # One follower without types, utilities (1, 0): last_mixed has gap 1 - p(0) > 0.
    table = PayoffTable.from_arrays([[[1.0], [0.0]]], [[1.0, 1.0]], [[1.0]], (2,))
    gen = torch.Generator().manual_seed(0)
    cr = certified_response(
        table, prefix_iterations=0, generator=gen, candidates=("last_mixed",), threshold=0.1
    )
    # p(0) after N exact updates = 1.1^N / (1.1^N + 1) >= 0.9 first at N = 24.
    assert cr.iterations.tolist() == [24] and cr.kinds == ("last_mixed",)
    with pytest.raises(CertificationError, match="within 3 extra MW updates") as info:
        certified_response(
            table, prefix_iterations=0, generator=gen, candidates=("last_mixed",),
            threshold=0.1, max_extra=3,
        )
    assert info.value.result.certified.tolist() == [False]
    res = certified_response(
        table, prefix_iterations=0, generator=gen, candidates=("last_mixed",), threshold=0.1,
        max_extra=3, throw=False,
    )
    np.testing.assert_allclose(res.gap.max_gap.numpy(), [1 - 1.1**3 / (1.1**3 + 1)], atol=1e-12)


def test_certified_rows_pad_snapshots() -> None:
    # Empirical averages only. Row 0 (all actions pay 0) is certified after 1 update; row 1
    # (utilities (1, 0)) when the average of p(0) = 1.1^n / (1.1^n + 1), n = 1..N, reaches 0.8:
    # first at N = 34. Row 0 is padded with 33 zero-weight snapshots.
    follower = np.array([[[[0.0], [0.0]]], [[[1.0], [0.0]]]])
    table = PayoffTable(
        torch.tensor(follower), torch.zeros(2, 1, 2), torch.ones(1, dtype=torch.float64), (1,), (2,)
    )
    cr = certified_response(
        table, prefix_iterations=0, generator=torch.Generator(), threshold=0.2,
        candidates=("empirical_average",),
    )
    assert cr.kinds == ("empirical_average", "empirical_average")
    assert cr.iterations.tolist() == [1, 34] and cr.certified.tolist() == [True, True]
    w = cr.response.snapshot_weights
    assert w.shape == (2, 34)
    np.testing.assert_allclose(w[0].numpy(), [1.0] + [0.0] * 33, atol=0)
    np.testing.assert_allclose(w[1].numpy(), [1 / 34] * 34, rtol=1e-15)
    p0 = np.array([1.1**n / (1.1**n + 1) for n in range(1, 35)])
    np.testing.assert_allclose(cr.gap.max_gap.numpy(), [0.0, 1 - p0.mean()], atol=1e-12)
