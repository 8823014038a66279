"""The gymnasium wrapper: env checker, and agreement with the batched core on the same episode."""

from __future__ import annotations

import warnings
from collections.abc import Iterator

import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env

from bilevel.models.spm import SPMProcess, make_spm_setting
from bilevel.solvers.spm import SPMGymEnv

F64 = torch.float64


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    """Run single-threaded: the CI machine has two cores shared by several jobs."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize(
    ("name", "statistic", "reward"),
    [
        ("proposition1", "price_allocation", "welfare_loss"),
        ("kitchen_sink", "allocation", "welfare_loss"),
        ("correlated", "items_agents_left", "objective"),
        ("maxmin_fairness", "none", "objective"),
        ("additive_across_types", "agents_left", "welfare_loss"),
    ],
)
def test_env_checker_passes_without_warnings(name: str, statistic: str, reward: str) -> None:
    env = SPMGymEnv(make_spm_setting(name), statistic=statistic, reward=reward)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_env(env, skip_render_check=True)


def test_gym_agrees_with_batched_core() -> None:
    s = make_spm_setting("correlated", n_agents=6, n_items=3, delta=0.25)
    env = SPMGymEnv(s, statistic="price_allocation")
    rng = np.random.default_rng(0)
    for episode in range(5):
        values = s.sample(1, torch.Generator().manual_seed(episode))
        obs, _ = env.reset(seed=episode, options={"values": values[0].numpy()})
        proc = SPMProcess(s, dtype=F64)
        proc.reset(values)
        assert np.allclose(obs, proc.observation("price_allocation")[0].numpy(), atol=1e-6)
        terminated, total = False, 0.0
        while not terminated:
            action = rng.random(6 + 1).astype(np.float32)
            obs, reward, terminated, truncated, info = env.step(action)
            total += float(reward)
            assert not truncated
            scores = torch.as_tensor(action[:6], dtype=F64).masked_fill(
                ~proc.agents_left[0], -torch.inf
            )
            proc.step(scores.argmax().reshape(1), torch.as_tensor(action[6:], dtype=F64)[None])
            assert np.allclose(obs, proc.observation("price_allocation")[0].numpy(), atol=1e-6)
            assert bool(proc.done[0]) == terminated
        assert info["objective"] == pytest.approx(float(proc.objective()[0]), abs=1e-12)
        assert total == pytest.approx(float(proc.objective()[0] - proc.optimum[0]), abs=1e-12)


def test_gym_hand_episode_and_reproducible_reset() -> None:
    env = SPMGymEnv(make_spm_setting("proposition1"), reward="objective")
    _obs, info = env.reset(options={"values": [[1 / 3], [1.0]]})
    assert info["agent_mask"].tolist() == [True, True]
    # scores prefer agent 0, price 2/3: value 1/3 refuses
    _obs, r, term, _, info = env.step(np.array([1.0, 0.0, 2 / 3], dtype=np.float32))
    assert not term and r == 0.0 and info["agent_mask"].tolist() == [False, True]
    # the visited agent is masked even when its score is highest: agent 1 buys at 0
    _obs, r, term, _, info = env.step(np.array([1.0, 0.0, 0.0], dtype=np.float32))
    assert term and r == pytest.approx(1.0) and info["optimum"] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="reset"):
        env.step(np.zeros(3, dtype=np.float32))
    a, _ = env.reset(seed=7)
    b, _ = env.reset(seed=7)
    assert np.array_equal(a, b)
    v1 = env.process.values.clone()
    env.reset(seed=7)
    assert torch.equal(v1, env.process.values)


def test_gym_bad_input() -> None:
    with pytest.raises(ValueError, match="reward='objective'"):
        SPMGymEnv(make_spm_setting("maxmin_fairness"))
    env = SPMGymEnv(make_spm_setting("proposition1"))
    with pytest.raises(ValueError, match="values of shape"):
        env.reset(options={"values": [[0.5]]})
    env.reset(seed=0)
    with pytest.raises(ValueError, match="action of shape"):
        env.step(np.zeros(5, dtype=np.float32))
