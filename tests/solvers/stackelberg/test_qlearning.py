"""Q-learning followers inside the Stackelberg POMDP (reference §2.3, the Q-learning
alternative): episode arithmetic against a hand-run Q-table, the designer and the CLI."""

from __future__ import annotations

import argparse
import json
import math

import pytest
import torch

from bilevel.solvers.rl._protocol import Action
from bilevel.solvers.stackelberg._cores import core_from_game
from bilevel.solvers.stackelberg._pomdp import StackelbergPOMDP
from bilevel.stackelberg._cli import register
from bilevel.stackelberg._designer import StackelbergDesigner


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


ITEM_OF_MESSAGE = [0, 2]  # the leader's fixed rule in simple allocation m = 2


@pytest.mark.parametrize(("alpha", "beta"), [(0.5, 0.0), (0.15, 0.3)])
def test_episode_arithmetic_simple_allocation(alpha: float, beta: float) -> None:
    """Q-tables, critic features, phase flags and the exact reward, recomputed by hand."""
    E, its = 3, 12
    env = StackelbergPOMDP(core_from_game("simple_allocation:2"), E, iterations=its,
                           reward="exact", followers="q-learning", q_alpha=alpha, q_beta=beta)
    assert env.queries == 1 and env.n_reward_games == 3 * 2
    assert env.horizon == its + 6
    # critic: obs (2), flag, progress, Q-table (3 x 2) + epsilon, type one-hot (3), msg (2)
    assert env.critic_obs_dim == 2 + 2 + 7 + 3 + 2
    q = torch.zeros(E, 3, 2, dtype=torch.float64)  # the hand-run tables
    gen = torch.Generator().manual_seed(4)
    s = env.reset(gen)
    total = torch.zeros(E, dtype=torch.float64)
    for k in range(env.horizon):
        msg = s.obs.argmax(1)
        typ = s.critic_obs[:, 11:14].argmax(1)
        assert torch.equal(s.critic_obs[:, 14:16].argmax(1), msg)
        assert s.critic_obs[:, 2].tolist() == [float(k >= its)] * E  # phase flag
        if k == its:  # reward phase: the critic sees the final tables and epsilon_t
            scale = q.reshape(E, -1).abs().max(1).values.clamp_min(1e-300)
            want = torch.where(scale[:, None] > 0, q.reshape(E, -1) / scale[:, None], 0.0)
            assert torch.allclose(s.critic_obs[:, 4:10].double(), want, atol=1e-6)
            assert float(s.critic_obs[0, 10]) == pytest.approx(math.exp(-beta * its), rel=1e-6)
            assert torch.allclose(env.ql.q[0], q, atol=1e-12)  # type: ignore[union-attr]
        item = torch.tensor(ITEM_OF_MESSAGE)[msg]
        s = env.step(Action(item[:, None], torch.zeros(E, 0)), gen)
        if k < its:
            assert s.reward.tolist() == [0.0] * E
            u = (item == typ).double()
            rows = torch.arange(E)
            q[rows, typ, msg] += alpha * (u - q[rows, typ, msg])
        total += s.reward.double()
    # the response: each type sends argmax_a Q[t, a] (first on ties); leader pays 1 iff its
    # item for that message equals the type, each type with prior 1/3
    best = q.argmax(2)  # (E, 3)
    items = torch.tensor(ITEM_OF_MESSAGE)[best]
    value = (items == torch.arange(3)).double().mean(1)
    assert s.done.all()
    assert torch.allclose(s.info["objective"].double(), value, atol=1e-6)
    assert torch.allclose(total, value, atol=1e-6)
    # types 0 and 2 can be served (messages 0 and 1), type 1 never: value in {0, 1/3, 2/3}
    assert set((3 * value).round().tolist()) <= {0.0, 1.0, 2.0}


def test_pure_exploitation_after_first_games() -> None:
    """beta huge: epsilon_0 = 1, then greedy; the follower settles on its first paying action."""
    env = StackelbergPOMDP(core_from_game("normal_form:game_1"), 64, iterations=30,
                           followers="q-learning", q_beta=50.0)
    gen = torch.Generator().manual_seed(0)
    s = env.reset(gen)
    for _ in range(env.horizon):
        s = env.step(Action(torch.full((64, 1), 2), torch.zeros(64, 0)), gen)
    # row 2 pays the follower 1 only in column 2: greedy rows that ever tried column 2 stay
    # there; rows whose single random first game missed it keep argmax 0 (all-zero tie) and
    # are pulled back only by epsilon, so the leader's value is 1 or 0 per row
    obj = s.info["objective"]
    assert set(obj.tolist()) <= {0.0, 1.0} and 0 < float(obj.mean()) < 1


def test_bad_input() -> None:
    core = core_from_game("simple_allocation:2")
    with pytest.raises(ValueError, match="response='deterministic'"):
        StackelbergPOMDP(core, 2, followers="q-learning", response="last_mixed")
    with pytest.raises(ValueError, match="expected followers"):
        StackelbergPOMDP(core, 2, followers="sarsa")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="alpha"):
        StackelbergPOMDP(core, 2, followers="q-learning", q_alpha=0.0)
    with pytest.raises(ValueError, match="response='deterministic'"):
        StackelbergDesigner("simple_allocation:2", followers="q-learning",
                            response="empirical_average").fit()


def test_designer_learns_normal_form_game1_against_q_learners() -> None:
    r = StackelbergDesigner("normal_form:game_1", followers="q-learning", steps=5_000, seed=0,
                            num_envs=16, eval_every=0).fit()
    assert r.config["followers"] == "q-learning"
    assert r.config["iterations"] == 33 * 3  # as many games as 33 exact-MW iterations
    assert r.config["eval_iterations"] == 33
    assert r.leader_table == (2,)
    assert r.value == pytest.approx(1.0, abs=1e-9) and r.certified
    assert r.curve_objective.size > 0 and float(r.curve_objective[-1]) > 0.5


def test_cli_q_learning(capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser(prog="bilevel")
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["stackelberg", "simple_allocation:1", "--followers", "q-learning",
                              "--steps", "1000", "--envs", "4", "--eval-every", "0", "--json"])
    assert args.func(args) == 0
    out = json.loads(capsys.readouterr().out)
    r = out["results"]["centralized"][0]
    assert r["config"]["followers"] == "q-learning"
    assert r["value"] == pytest.approx(1 / 3, abs=1e-9)  # m = 1: every leader earns 1/3


@pytest.mark.slow
def test_convergence_simple_allocation_m3_against_q_learners() -> None:
    # measured: value 1.0 (optimum), B-CCE gap 0, ~30 s on a loaded 2-core machine
    r = StackelbergDesigner("simple_allocation:3", followers="q-learning", steps=400_000,
                            seed=0).fit()
    assert r.value >= 0.98 and r.certified
