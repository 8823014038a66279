"""The batched SPM decision process and its BatchedEnv adapter on hand-worked episodes."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import pytest
import torch

from bilevel.models.spm import (
    SPMProcess,
    SPMSetting,
    make_spm_setting,
    observation_dim,
    optimal_welfare,
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


def _run_static(proc: SPMProcess, prices: list[float]) -> None:
    for t, p in enumerate(prices):
        if bool(proc.done.all()):
            break
        E = proc.num_rows
        agent = torch.full((E,), t, dtype=torch.int64)
        agent = torch.where(proc.done, proc.agent_mask().to(torch.int64).argmax(1), agent)
        proc.step(agent, torch.full((E, 1), p, dtype=F64))


def test_proposition1_prices_two_then_zero_reach_opt() -> None:
    proc = SPMProcess(make_spm_setting("proposition1"), dtype=F64)
    proc.reset(_prop1_profiles())
    _run_static(proc, [2 / 3, 0.0])
    # hand-worked: (1,1) -> agent 1 takes it at 0: 1; (1,3) -> 3; (3,1) -> 3; (3,3) -> 3
    assert (proc.objective() * 3).tolist() == pytest.approx([1.0, 3.0, 3.0, 3.0], abs=1e-12)
    assert float(proc.objective().mean() * 3) == pytest.approx(2.5, abs=1e-12)
    assert torch.allclose(proc.objective(), proc.optimum)
    # revenue: 2 paid whenever agent 0 has value 3, else 0
    assert (proc.objective("revenue") * 3).tolist() == pytest.approx([0, 0, 2, 2], abs=1e-12)
    assert proc.steps.tolist() == [2, 2, 1, 1]


@pytest.mark.parametrize("price", [0.0, 0.2, 1 / 3, 0.5, 2 / 3, 0.9, 1.0])
def test_proposition1_any_single_price_is_worse(price: float) -> None:
    proc = SPMProcess(make_spm_setting("proposition1"), dtype=F64)
    proc.reset(_prop1_profiles())
    _run_static(proc, [price, price])
    # price < 1/3: first agent always buys (E = 2); 1/3 <= p < 1: only value 3 buys (E = 2.25);
    # p >= 1: nobody buys (strict rule)
    expected = 2.0 if price < 1 / 3 else (2.25 if price < 1.0 else 0.0)
    assert float(proc.objective().mean() * 3) == pytest.approx(expected, abs=1e-12)
    assert expected < 2.5


def test_tie_rule() -> None:
    s = make_spm_setting("proposition1")
    values = _t([[[0.5], [0.5]]])
    for tie, bought in (("strict", 0.0), ("weak", 1.0)):
        proc = SPMProcess(s, tie=tie, dtype=F64)
        proc.reset(values)
        ended = proc.step(torch.tensor([0]), _t([[0.5]]))  # price equals value
        assert float(proc.allocation[0, 0, 0]) == bought
        assert bool(ended[0]) == (bought == 1.0)
    with pytest.raises(ValueError, match="tie"):
        SPMProcess(s, tie="sometimes")


def _two_type_setting(valuation: str) -> SPMSetting:
    return SPMSetting(
        "toy", 2, (1, 2), lambda num, g: torch.rand(num, 2, 2, generator=g, dtype=F64),
        valuation=valuation,
    )


def test_unit_demand_takes_best_utility_and_breaks_type_ties_by_index() -> None:
    proc = SPMProcess(_two_type_setting("unit_demand"), dtype=F64)
    proc.reset(_t([[[0.9, 0.6], [0.5, 0.5]], [[0.9, 0.6], [0.5, 0.5]]]))
    # row 0: utilities 0.9-0.5=0.4 vs 0.6-0.1=0.5 -> type 1; row 1: 0.4 vs 0.4 -> type 0
    proc.step(torch.tensor([0, 0]), _t([[0.5, 0.1], [0.5, 0.2]]))
    assert proc.allocation[:, 0].tolist() == [[0.0, 1.0], [1.0, 0.0]]
    assert proc.payments[:, 0].tolist() == pytest.approx([0.1, 0.5])
    assert proc.items_left.tolist() == [[1.0, 1.0], [0.0, 2.0]]
    # sold-out type 0 in row 1 is unavailable even at price 0: agent 1 buys type 1
    proc.step(torch.tensor([1, 1]), _t([[0.0, 0.4], [0.0, 0.4]]))
    assert proc.allocation[1, 1].tolist() == [0.0, 1.0]
    assert proc.allocation[0, 1].tolist() == [1.0, 0.0]
    assert bool(proc.done.all())
    assert proc.objective("welfare").tolist() == pytest.approx([1.1, 1.4])
    assert proc.objective("maxmin").tolist() == pytest.approx([0.5, 0.5])


def test_additive_buys_every_positive_type() -> None:
    proc = SPMProcess(_two_type_setting("additive"), dtype=F64)
    proc.reset(_t([[[0.9, 0.6], [0.5, 0.5]]]))
    proc.step(torch.tensor([0]), _t([[0.5, 0.1]]))
    assert proc.allocation[0, 0].tolist() == [1.0, 1.0]
    assert float(proc.payments[0, 0]) == pytest.approx(0.6)
    assert not bool(proc.done[0])  # one unit of type 1 remains
    proc.step(torch.tensor([1]), _t([[0.0, 0.6]]))  # 0.5 - 0.6 < 0: no purchase
    assert bool(proc.done[0])
    assert float(proc.objective()) == pytest.approx(1.5)
    assert float(proc.optimum[0]) == pytest.approx(0.9 + 0.6 + 0.5)


def test_episode_ends_when_items_run_out_and_steps_are_noops_after() -> None:
    proc = SPMProcess(make_spm_setting("proposition1"), dtype=F64)
    proc.reset(_t([[[1.0], [1.0]]]))
    assert proc.step(torch.tensor([1]), _t([[0.0]])).tolist() == [True]
    before = proc.objective().clone()
    assert proc.agent_mask().tolist() == [[True, True]]  # finished rows: any choice is legal
    proc.step(torch.tensor([0]), _t([[0.0]]))
    assert torch.equal(proc.objective(), before) and proc.steps.tolist() == [1]


def test_masking_rejects_visited_agents() -> None:
    proc = SPMProcess(make_spm_setting("proposition2"), dtype=F64)
    proc.reset(_t([[[1.0], [1.0], [1.0]]]))
    proc.step(torch.tensor([1]), _t([[1.0]]))  # nobody buys at price 1 (strict)
    assert proc.agent_mask().tolist() == [[True, False, True]]
    with pytest.raises(ValueError, match="remaining agent"):
        proc.step(torch.tensor([1]), _t([[0.0]]))
    with pytest.raises(ValueError, match="agent indices"):
        proc.step(torch.tensor([3]), _t([[0.0]]))
    with pytest.raises(ValueError, match="finite prices"):
        proc.step(torch.tensor([0]), _t([[float("nan")]]))


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


def test_observation_layouts() -> None:
    proc = SPMProcess(_two_type_setting("unit_demand"), dtype=F64)
    proc.reset(_t([[[0.9, 0.6], [0.5, 0.5]]]))
    proc.step(torch.tensor([1]), _t([[0.3, 0.7]]))  # agent 1 buys type 0 at 0.3
    expected = {
        "none": [1.0],
        "agents_left": [1.0, 0.0],
        "items_agents_left": [1.0, 0.0, 0.0, 1.0],
        "allocation": [1.0, 0.0, 0.0, 1.0, 0.0, 0.0, 1.0, 0.0],
        "price_allocation": [1.0, 0.0, 0.0, 1.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.3, 0.7],
    }
    for stat, obs in expected.items():
        got = proc.observation(stat)
        assert got.shape == (1, observation_dim(stat, 2, 2))
        assert got[0].tolist() == pytest.approx(obs)
    with pytest.raises(ValueError, match="statistic"):
        proc.observation("everything")


def _naive_opt(values: torch.Tensor, units: tuple[int, ...]) -> float:
    n, d = values.shape
    best = 0.0
    for a in itertools.product(range(d + 1), repeat=n):
        if all(a.count(j) <= units[j] for j in range(d)):
            best = max(best, sum(float(values[i, a[i]]) for i in range(n) if a[i] < d))
    return best


@pytest.mark.parametrize(("n", "units"), [(5, (2,)), (6, (2, 3)), (7, (1, 2)), (4, (1, 1, 1))])
def test_optimal_welfare_matches_brute_force(n: int, units: tuple[int, ...]) -> None:
    g = torch.Generator().manual_seed(n)
    values = torch.rand(40, n, len(units), generator=g, dtype=F64)
    values[values < 0.2] = 0.0
    got = optimal_welfare(values, units, "unit_demand")
    want = [_naive_opt(v, units) for v in values]
    assert got.tolist() == pytest.approx(want, abs=1e-12)


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


def test_full_horizon_visits_every_agent() -> None:
    s = make_spm_setting("proposition2")
    proc = SPMProcess(s, horizon="full", dtype=F64)
    proc.reset(_t([[[1.0], [1.0], [1.0]]]))
    for t in range(3):
        ended = proc.step(torch.tensor([t]), _t([[0.0]]))
        assert bool(ended[0]) == (t == 2)  # units run out after step 1, the episode goes on
    assert proc.allocation[0, :, 0].tolist() == [1.0, 1.0, 0.0]  # nothing left for agent 2
    assert proc.steps.tolist() == [3]
    env = SPMBatchedEnv(s, num_envs=5, horizon="full")
    g = torch.Generator().manual_seed(0)
    out = env.reset(g)
    for t in range(3):
        agent = out.masks[0].to(torch.int64).argmax(1, keepdim=True)
        out = env.step(Action(agent, torch.zeros(5, 1)), g)
        assert out.done.tolist() == [t == 2] * 5
    assert out.info["length"].tolist() == [3] * 5
    with pytest.raises(ValueError, match="horizon"):
        SPMProcess(s, horizon="sometimes")


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

