"""Q-learning followers (a policy-interactive response algorithm in the sense of Brero et al.,
*Stackelberg POMDP*, §3; tabular, as in the authors' code): hand-worked updates, the
exploration schedule, bad input, and episode arithmetic inside the Stackelberg POMDP against a
hand-run Q-table."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from bilevel.models.stackelberg import make_game
from bilevel.solvers.rl._protocol import Action
from bilevel.solvers.stackelberg._cores import core_from_game
from bilevel.solvers.stackelberg._exact import payoff_table
from bilevel.solvers.stackelberg._pomdp import StackelbergPOMDP
from bilevel.solvers.stackelberg._qlearning import QLearningFollowers


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


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_qlearning_update_by_hand() -> None:
    ql = QLearningFollowers((2, 1), (2, 3), alpha=0.5)
    types, acts = torch.tensor([[1, 0]]), torch.tensor([[0, 2]])
    ql.update(types, acts, torch.tensor([[1.0, -2.0]]))
    ql.update(types, acts, torch.tensor([[1.0, -2.0]]))
    np.testing.assert_allclose(ql.q[0][0].numpy(), [[0.0, 0.0], [0.75, 0.0]], rtol=0, atol=1e-15)
    np.testing.assert_allclose(ql.q[1][0].numpy(), [[0, 0, -1.5]], rtol=0, atol=1e-15)
    assert ql.n_games == 2
    f = ql.critic_features()
    np.testing.assert_allclose(f[0].numpy(), [0, 0, 1, 0, 0, 0, -1, math.exp(-2e-5)], atol=1e-15)
    assert ql.response().strategies[1][0, 0, 0].tolist() == [1.0, 0.0, 0.0]


def test_qlearning_exploration_schedule() -> None:
    ql = QLearningFollowers((1,), (4,), batch=4000, beta=0.0)
    types = torch.zeros(4000, 1, dtype=torch.int64)
    a = ql.act(types, gen(0))  # eps = 1: uniform
    freq = torch.bincount(a[:, 0], minlength=4).double() / 4000
    np.testing.assert_allclose(freq.numpy(), [0.25] * 4, rtol=0, atol=0.03)  # 4 se
    ql2 = QLearningFollowers((1,), (4,), batch=10, beta=1.0)
    ql2.update(types[:10], torch.full((10, 1), 2), torch.ones(10, 1))
    ql2.n_games = 100  # eps = exp(-100): greedy
    assert ql2.act(types[:10], gen(0))[:, 0].tolist() == [2] * 10


def test_qlearning_bad_input() -> None:
    with pytest.raises(ValueError, match=r"alpha in \(0, 1\]"):
        QLearningFollowers((1,), (2,), alpha=0.0)
    with pytest.raises(ValueError, match="beta >= 0"):
        QLearningFollowers((1,), (2,), beta=-1.0)
    ql = QLearningFollowers((1,), (2,))
    with pytest.raises(ValueError, match=r"actions in \[0"):
        ql.update(torch.tensor([[0]]), torch.tensor([[2]]), torch.tensor([[0.0]]))
    with pytest.raises(ValueError, match="finite utilities"):
        ql.update(torch.tensor([[0]]), torch.tensor([[1]]), torch.tensor([[math.inf]]))


@pytest.mark.slow
def test_qlearning_followers_learn_truth_telling() -> None:
    # 16 independent rows, 3000 games each with exploration exp(-0.002 t): every row ends
    # truthful under the rule message 0 -> item 2, 1 -> 0, 2 -> 1 (value 1).
    game = make_game("simple_allocation:3")
    table = payoff_table(game, [2, 0, 1])
    ql = QLearningFollowers((3,), (3,), batch=16, beta=2e-3)
    g = gen(0)
    for _ in range(3000):
        types = game.sample_types(g, 16)
        a = ql.act(types, g)
        ql.update(types, a, table.follower[0, types[:, 0], a[:, 0], :])
    r = ql.response()
    assert r.strategies[0][:, 0].argmax(-1).tolist() == [[1, 2, 0]] * 16
