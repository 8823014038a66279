"""The batched SPM decision process (SPMProcess) on hand-worked episodes."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch

from bilevel.models.spm import (
    SPMProcess,
    SPMSetting,
    make_spm_setting,
    observation_dim,
)
from bilevel.solvers.rl._protocol import Action
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
