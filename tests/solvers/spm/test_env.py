"""SPMBatchedEnv, the BatchedEnv adapter of the SPM decision process, on hand-worked episodes."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch

from bilevel.models.spm import (
    make_spm_setting,
)
from bilevel.solvers.rl._protocol import Action, BatchedEnv
from bilevel.solvers.spm._env import SPMBatchedEnv

F64 = torch.float64


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    """Run single-threaded: the CI machine has two cores shared by several jobs."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _t(x: object) -> torch.Tensor:
    return torch.tensor(x, dtype=F64)


def _prop1_profiles() -> torch.Tensor:
    # raw values on {1, 3}, normalised by 3; rows: (1,1), (1,3), (3,1), (3,3)
    raw = [[a, b] for a in (1.0, 3.0) for b in (1.0, 3.0)]
    return _t(raw).unsqueeze(-1) / 3.0


def test_random_masked_policy_never_revisits() -> None:
    s = make_spm_setting("correlated", n_agents=6, n_items=3, delta=0.5)
    env = SPMBatchedEnv(s, num_envs=256, statistic="allocation")
    g = torch.Generator().manual_seed(0)
    out = env.reset(g)
    visits = torch.zeros(256, 6)
    for _ in range(60):
        mask = out.masks[0]
        assert bool(mask.any(1).all())
        scores = torch.rand(mask.shape, generator=g).masked_fill(~mask, -1.0)
        agent = scores.argmax(1)
        assert bool(mask[torch.arange(256), agent].all())
        visits[torch.arange(256), agent] += 1
        prices = torch.rand(256, 1, generator=g)
        out = env.step(Action(agent.unsqueeze(1), prices), g)
        visits[out.done] = 0
        assert float(visits.max()) <= 1.0
        # the agents-left block of the observation equals the mask
        assert torch.equal(out.obs[:, :6].bool(), out.masks[0])


def test_batched_env_protocol_rewards_and_auto_reset() -> None:
    s = make_spm_setting("proposition1")
    fixed = _prop1_profiles().repeat(2, 1, 1)  # 8 rows
    env = SPMBatchedEnv(s, values=fixed, reward="welfare_loss", dtype=F64)
    assert isinstance(env, BatchedEnv)
    assert env.num_envs == 8 and env.obs_dim == 7 and env.critic_obs_dim == 7
    g = torch.Generator().manual_seed(0)
    first = env.reset(g)
    assert first.reward.tolist() == [0.0] * 8 and not bool(first.done.any())
    a0 = Action(torch.zeros(8, 1, dtype=torch.int64), torch.full((8, 1), 2 / 3))
    out = env.step(a0, g)
    done_rows = [False, False, True, True] * 2  # agent 0 with value 3 buys at 2/3
    assert out.done.tolist() == done_rows
    assert torch.isnan(out.info["objective"][~out.done]).all()
    assert out.info["objective"][out.done].tolist() == pytest.approx([1.0] * 4)
    assert out.reward.tolist() == pytest.approx([0.0] * 8)  # optimal: loss 0
    # finished rows were reset: their agents are all remaining again
    assert out.masks[0][out.done].all()
    a1 = Action(torch.ones(8, 1, dtype=torch.int64), torch.full((8, 1), 0.0))
    out2 = env.step(a1, g)
    # rows 0-1 finish their first episode; rows 2-3 restarted on the same fixed profiles and
    # agent 1 (value 1/3 or 1) buys at price 0 at once
    assert out2.done.tolist() == [True] * 8
    assert out2.info["objective"].tolist() == pytest.approx([1 / 3, 1.0] * 4)
    assert (out2.reward * 3).tolist() == pytest.approx([0.0, 0.0, -2.0, 0.0] * 2)


def test_batched_env_welfare_loss_reward_is_objective_minus_opt() -> None:
    s = make_spm_setting("proposition1")
    env = SPMBatchedEnv(s, values=_prop1_profiles(), reward="welfare_loss", dtype=F64)
    g = torch.Generator().manual_seed(0)
    env.reset(g)
    # price 0 to agent 0: it always buys, so welfare = v_0 and loss = v_0 - max(v)
    out = env.step(Action(torch.zeros(4, 1, dtype=torch.int64), torch.zeros(4, 1)), g)
    assert bool(out.done.all())
    assert (out.reward * 3).tolist() == pytest.approx([0.0, -2.0, 0.0, 0.0])
    env_obj = SPMBatchedEnv(s, values=_prop1_profiles(), reward="objective", dtype=F64)
    env_obj.reset(g)
    out = env_obj.step(Action(torch.zeros(4, 1, dtype=torch.int64), torch.zeros(4, 1)), g)
    assert (out.reward * 3).tolist() == pytest.approx([1.0, 1.0, 3.0, 3.0])


def test_batched_env_price_grid_and_critic_state() -> None:
    s = make_spm_setting("kitchen_sink")
    env = SPMBatchedEnv(s, num_envs=3, price_grid="auto", critic="state", statistic="none")
    assert env.action_spec.categorical == (3, 3, 3, 7) and env.action_spec.continuous == 0
    assert env.obs_dim == 1 and env.critic_obs_dim == 3 + 3 + 3 * 9
    g = torch.Generator().manual_seed(1)
    out = env.reset(g)
    assert len(out.masks) == 4 and out.critic_obs.shape == (3, 33)
    # head 1 + j picks type j's price: grid index 0 is price 0 for every type
    act = Action(torch.tensor([[0, 0, 0, 0]] * 3), torch.zeros(3, 0))
    assert env.prices_of(act).tolist() == [[0.0, 0.0, 0.0]] * 3
    act = Action(torch.tensor([[0, 2, 2, 6]] * 3), torch.zeros(3, 0))
    assert env.prices_of(act).tolist() == [[1.0, 1.0, 1.0]] * 3
    grid_env = SPMBatchedEnv(s, num_envs=2, price_grid=5)
    assert grid_env.price_grid == ((0.0, 0.25, 0.5, 0.75, 1.0),) * 3


def test_batched_env_reproducible_and_bad_input() -> None:
    s = make_spm_setting("correlated", n_agents=4, n_items=2)

    def roll(seed: int) -> torch.Tensor:
        env = SPMBatchedEnv(s, num_envs=16)
        g = torch.Generator().manual_seed(seed)
        out = env.reset(g)
        objs = []
        for _ in range(12):
            agent = out.masks[0].to(torch.int64).argmax(1, keepdim=True)
            out = env.step(Action(agent, torch.full((16, 1), 0.4)), g)
            objs.append(torch.nan_to_num(out.info["objective"], nan=-1.0))
        return torch.stack(objs)

    assert torch.equal(roll(3), roll(3)) and not torch.equal(roll(3), roll(4))
    with pytest.raises(ValueError, match="reward='objective'"):
        SPMBatchedEnv(make_spm_setting("maxmin_fairness"))
    with pytest.raises(ValueError, match="reward"):
        SPMBatchedEnv(s, reward="loss")
    with pytest.raises(ValueError, match="statistic"):
        SPMBatchedEnv(s, statistic="all")
    with pytest.raises(ValueError, match="reset"):
        SPMBatchedEnv(s, num_envs=2).step(
            Action(torch.zeros(2, 1, dtype=torch.int64), torch.zeros(2, 1)),
            torch.Generator(),
        )
    env = SPMBatchedEnv(s, num_envs=2)
    env.reset(torch.Generator())
    with pytest.raises(ValueError, match="continuous"):
        env.step(Action(torch.zeros(2, 1, dtype=torch.int64), torch.zeros(2, 2)), torch.Generator())
    with pytest.raises(ValueError, match="price grid"):
        SPMBatchedEnv(s, price_grid=1)


def test_revenue_objective_and_reward() -> None:
    s = make_spm_setting("proposition1")
    env = SPMBatchedEnv(s, values=_prop1_profiles(), objective="revenue", dtype=F64)
    g = torch.Generator().manual_seed(0)
    env.reset(g)
    out = env.step(Action(torch.zeros(4, 1, dtype=torch.int64), torch.full((4, 1), 0.5)), g)
    # agent 0 buys at 0.5 iff its value is 1 (raw 3): revenue 0.5; reward = revenue - OPT
    assert out.done.tolist() == [False, False, True, True]
    assert out.info["objective"][2:].tolist() == pytest.approx([0.5, 0.5])
    assert out.reward[2:].tolist() == pytest.approx([0.5 - 1.0, 0.5 - 1.0])
