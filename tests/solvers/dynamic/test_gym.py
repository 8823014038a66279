"""The gymnasium wrapper of the deviator environment: env checker, and agreement with the
batched environment on the same episode."""

from __future__ import annotations

import warnings
from collections.abc import Iterator

import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env

from bilevel.models.dynamic import make_bandit_setting, posted_price, second_price
from bilevel.solvers.dynamic import DeviatorEnv, DeviatorGymEnv
from bilevel.solvers.rl import Action


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    """Run single-threaded: the CI machine has two cores shared by several jobs."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize(
    ("name", "n", "m", "T"),
    [("discrete", 1, 1, 3), ("discrete", 2, 2, 1),
     ("continuous", 2, 1, 3), ("continuous", 1, 2, 2)],
)
def test_env_checker_passes_without_warnings(name: str, n: int, m: int, T: int) -> None:
    s = make_bandit_setting(name, n_buyers=n, n_goods=m, horizon=T)
    env = DeviatorGymEnv(s, second_price(s, 2.0), agent=n - 1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_env(env, skip_render_check=True)


def test_an_episode_terminates_after_t_steps_with_the_utilities() -> None:
    s = make_bandit_setting("discrete", horizon=3)
    env = DeviatorGymEnv(s, posted_price(s, 1.5))
    obs, _ = env.reset(seed=0, options={"values": [[1.0]]})
    assert obs.shape == (5,) and obs[1] == 0.0  # own value 1 maps to 0
    total = 0.0
    for tau in range(3):
        obs, r, terminated, truncated, info = env.step(1 if tau == 0 else 0)
        total += float(r)
        if tau == 0:
            assert float(r) == -0.5  # worth 1, reports 2, pays 1.5
        assert terminated == (tau == 2) and not truncated
    assert info["episode_utility"] == pytest.approx(total, abs=1e-12)
    with pytest.raises(ValueError, match=r"expected reset\(\) before step\(\)"):
        env.step(0)
    with pytest.raises(ValueError, match=r"expected values of shape \(1, 1\), got \(2,\)"):
        env.reset(options={"values": [1.0, 2.0]})


def test_gym_agrees_with_the_batched_env_on_the_same_episode() -> None:
    s = make_bandit_setting("continuous", n_buyers=2, horizon=3)
    mech = second_price(s, 2.4)
    gym_env = DeviatorGymEnv(s, mech)
    rng = np.random.default_rng(0)
    for episode in range(3):
        obs, _ = gym_env.reset(seed=episode)
        assert gym_env._torch_gen is not None
        g = torch.Generator()
        g.set_state(gym_env._torch_gen.get_state())  # the same draws from here on
        batched = DeviatorEnv(s, mech, num_envs=1, dtype=torch.float64, auto_reset=False)
        batched.reset(torch.Generator().manual_seed(0))
        batched.process.reset(1, g, values=gym_env.env.process.values.clone())
        g.set_state(gym_env._torch_gen.get_state())
        terminated = False
        while not terminated:
            a = rng.uniform(-1, 1, size=1).astype(np.float32)
            obs, r, terminated, _, _ = gym_env.step(a)
            delta = 6.0 * torch.as_tensor(a, dtype=torch.float64).reshape(1, 1)
            out = batched.step(Action(torch.zeros(1, 0, dtype=torch.int64), delta), g)
            assert float(r) == float(out.reward[0])
            assert np.array_equal(obs, out.obs[0].numpy().astype(np.float32))
            assert terminated == bool(out.done[0])


def test_gym_rejects_a_wrong_action_shape() -> None:
    s = make_bandit_setting("continuous", n_goods=2)
    env = DeviatorGymEnv(s, posted_price(s, 2.0))
    env.reset(seed=0)
    with pytest.raises(ValueError, match=r"expected an action of shape \(2,\), got \(3,\)"):
        env.step(np.zeros(3, dtype=np.float32))
    out = env.step(np.zeros(2, dtype=np.float32))
    assert isinstance(out[1], float)
