"""Exact evaluation of a leader network, and the worst certified value against a grid."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bilevel.models.stackelberg import MatrixDesignGame, make_game
from bilevel.solvers.rl._policy import ActorCritic
from bilevel.solvers.rl._protocol import ActionSpec
from bilevel.solvers.stackelberg._exact import payoff_table
from bilevel.stackelberg._designer import StackelbergDesigner
from bilevel.stackelberg._evaluation import evaluate_leader, worst_certified_value


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


def test_evaluate_leader_of_a_hand_set_network() -> None:
    # a network whose Gaussian mean is (0.3, 0.7, 0) commits to that mixture in game 2:
    # the follower's response is column 0 and the leader earns (20·0.3 + 30·0.7)/30 = 0.9
    net = ActorCritic(1, 1, ActionSpec(continuous=3), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        for p in net.actor.parameters():
            p.zero_()
        last = net.actor[-1]
        assert isinstance(last, torch.nn.Linear)
        last.bias.copy_(torch.tensor([0.3, 0.7, 0.0]))
    ev = evaluate_leader("normal_form:game_2:randomized", net, iterations=33)
    np.testing.assert_allclose(ev.table[0], [0.3, 0.7, 0.0], atol=1e-6)
    assert ev.value == pytest.approx(0.9, abs=1e-6)
    assert ev.episode_value == pytest.approx(0.9, abs=1e-6)
    assert ev.certified and ev.gap == pytest.approx(0.0, abs=1e-12)


def _grid_worst(t: np.ndarray, delta: float, step: float = 0.02) -> float:
    # naive check: minimum welfare over a grid of the 4-outcome simplex under the CCE constraints
    g = make_game("matrix_design")
    assert isinstance(g, MatrixDesignGame)
    u = (g.payoffs_normalised + t).reshape(4, 2)
    w = g.payoffs_normalised.reshape(4, 2).sum(1)
    n = round(1 / step)
    best = np.inf
    for i in range(n + 1):
        for j in range(n + 1 - i):
            k = np.arange(n + 1 - i - j)
            x = np.stack([np.full_like(k, i), np.full_like(k, j), k, n - i - j - k], 1) / n
            ok = np.ones(len(k), dtype=bool)
            for f in range(2):
                for d in range(2):
                    dev = [(d, b) if f == 0 else (a, d) for a in (0, 1) for b in (0, 1)]
                    gain = np.array([u[2 * a + b, f] for a, b in dev]) - u[:, f]
                    ok &= x @ gain <= delta + 1e-12
            if ok.any():
                best = min(best, float((x[ok] @ w).min()))
    return best


def test_worst_certified_value_against_a_grid_and_dominance() -> None:
    g = make_game("matrix_design")
    both = np.zeros((2, 2, 2))  # both optimal outcomes equilibria (what PPO learns against MW)
    both[0, 0], both[0, 1], both[1, 0] = (4.48, 3.72), 10.0, 10.0
    dom = np.zeros((2, 2, 2))  # (0, 1) dominant by wide margins
    dom[0, 1], dom[0, 0, 0], dom[1, 1, 1] = 10.0, 10.0, 10.0
    tabs = np.stack([np.zeros((2, 2, 2)), both, dom])
    w = worst_certified_value(payoff_table(g, tabs), 0.05)
    for b in range(3):  # the LP minimum is below every feasible grid point, and close to one
        grid = _grid_worst(tabs[b], 0.05)
        assert w[b] <= grid + 1e-9 and grid - w[b] < 0.05
    # no transfers: (0.7, 0.1, 0.1, 0.1) on (00, 01, 10, 11) is the worst CCE, welfare 1.1
    assert w[0] == pytest.approx(1.1, abs=1e-9)
    assert w[1] < 1.3 and w[2] > 1.65  # dominance is what the worst response rewards
    # matrix design trains for (and selects snapshots by) the worst certified value
    d = StackelbergDesigner(steps=2_000, seed=0, num_envs=4, eval_every=2)
    r = d.fit("matrix_design").result_
    assert r.config["objective"] == "worst-certified" and r.worst_value is not None
    assert r.worst_value == pytest.approx(
        float(worst_certified_value(payoff_table(g, r.leader_table[0]))[0]), abs=1e-9)
    assert r.worst_value <= r.value + 1e-9  # the MW response is one of the certified ones
    with pytest.raises(ValueError, match="one type per follower"):
        worst_certified_value(payoff_table(make_game("simple_allocation:2"), [0, 1]))
    with pytest.raises(ValueError, match="threshold"):
        worst_certified_value(payoff_table(g, dom), 0.0)
    with pytest.raises(ValueError, match="objective"):
        StackelbergDesigner(objective="bogus").fit("matrix_design")
    with pytest.raises(ValueError, match="complete-information"):
        StackelbergDesigner(objective="worst-certified").fit("simple_allocation:2")
