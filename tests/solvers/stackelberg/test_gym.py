"""The gymnasium interface of the Stackelberg POMDP: env checker, action encoding, and agreement
with the batched environment on the same episodes."""

from __future__ import annotations

import warnings
from collections.abc import Iterator

import numpy as np
import pytest
import torch
from gymnasium import spaces
from gymnasium.utils import seeding
from gymnasium.utils.env_checker import check_env

from bilevel.solvers.rl._protocol import Action, ActionSpec
from bilevel.solvers.stackelberg._cores import core_from_game
from bilevel.solvers.stackelberg._gym import StackelbergGymEnv, decode_actions, gym_action_space
from bilevel.solvers.stackelberg._pomdp import StackelbergPOMDP


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


GAMES = [
    ("normal_form:game_2", {"iterations": 3}),
    ("normal_form:game_2:randomized", {"iterations": 3}),
    ("matrix_design", {"iterations": 2}),
    ("simple_allocation:3", {"iterations": 2, "reward_games": 4}),
    ("mspm:PI:2", {"iterations": 2, "reward": "exact"}),
    ("mspm:MSGSpace:3:2", {"iterations": 1, "flavour": "sampled"}),
]


@pytest.mark.parametrize(("name", "opts"), GAMES)
def test_env_checker_passes_without_warnings(name: str, opts: dict[str, object]) -> None:
    env = StackelbergGymEnv(name, **opts)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_env(env, skip_render_check=True)


def test_action_spaces() -> None:
    assert gym_action_space(ActionSpec(categorical=(3,))) == spaces.Discrete(3)
    assert gym_action_space(ActionSpec(categorical=(2, 4))) == spaces.MultiDiscrete([2, 4])
    box = gym_action_space(ActionSpec(continuous=2, low=0.0, high=10.0))
    assert isinstance(box, spaces.Box) and box.shape == (2,) and float(box.high[1]) == 1.0
    t = decode_actions(ActionSpec(continuous=2, low=0.0, high=10.0), [[0.25, 1.0]], ())
    assert t.continuous[0].tolist() == pytest.approx([2.5, 10.0])  # [0, 1] -> [low, high]
    mixed = gym_action_space(ActionSpec(categorical=(2,), continuous=1, low=0.0, high=1.0))
    assert isinstance(mixed, spaces.Box) and mixed.shape == (3,)


def test_decode_masks_and_first_legal() -> None:
    spec = ActionSpec(categorical=(3,), continuous=1)
    mask = torch.tensor([[True, False, True], [False, True, True]])
    a = decode_actions(spec, [[0.1, 0.9, 0.5, 0.25], [0.9, 0.2, 0.1, 0.75]], (mask,))
    # row 0: choice 1 (0.9) illegal -> best legal 2; row 1: choice 0 illegal -> 1 (0.2 > 0.1)
    assert a.categorical[:, 0].tolist() == [2, 1]
    assert a.continuous[:, 0].tolist() == pytest.approx([0.25, 0.75])
    d = decode_actions(ActionSpec(categorical=(3,)), [1, 0], (mask,))
    assert d.categorical[:, 0].tolist() == [0, 1]  # row 0: 1 illegal -> first legal 0
    with pytest.raises(ValueError, match="Box actions of shape"):
        decode_actions(spec, [[0.1, 0.2]], (mask[:1],))
    with pytest.raises(ValueError, match="choices in"):
        decode_actions(ActionSpec(categorical=(3,)), [3, 0], (mask,))


def _random_gym_action(env: StackelbergGymEnv, rng: np.random.Generator) -> object:
    sp = env.action_space
    if isinstance(sp, spaces.Discrete):
        return int(rng.integers(int(sp.n)))
    assert isinstance(sp, spaces.Box)
    return rng.uniform(sp.low, sp.high).astype(np.float32)


def _independent_action(name: str, a: object, mask: torch.Tensor) -> Action:
    """The batched action a gym action stands for, decoded here by hand."""
    if name.startswith("mspm"):
        v = np.asarray(a, dtype=np.float64)
        scores = np.where(mask[0].numpy(), v[:2], -np.inf)
        return Action(torch.tensor([[int(np.argmax(scores))]]),
                      torch.tensor([[float(v[2])]], dtype=torch.float32))
    if isinstance(a, int):
        return Action(torch.tensor([[a]]), torch.zeros(1, 0))
    high = 10.0 if name == "matrix_design" else 1.0  # transfers in [0, 10]
    return Action(torch.zeros(1, 0, dtype=torch.long), torch.tensor(high * np.asarray(a)[None]))


@pytest.mark.parametrize(("name", "opts"), GAMES)
def test_gym_agrees_with_batched_env(name: str, opts: dict[str, object]) -> None:
    """Three consecutive episodes: same observations, rewards, dones and objectives."""
    env = StackelbergGymEnv(name, **opts)
    batched = StackelbergPOMDP(core_from_game(name), 1, critic="plain", **opts)  # type: ignore[arg-type]
    obs, info = env.reset(seed=11)
    np_random, _ = seeding.np_random(11)
    gen = torch.Generator().manual_seed(int(np_random.integers(0, 2**62)))
    s = batched.reset(gen)
    rng = np.random.default_rng(3)
    for _episode in range(3):
        assert np.allclose(obs, s.obs[0].numpy(), atol=1e-7)
        committed = 0
        for k in range(env.horizon):
            a = _random_gym_action(env, rng)
            obs, r, term, trunc, info = env.step(a)
            s = batched.step(_independent_action(name, a, s.masks[0] if s.masks else
                                                 torch.ones(1, 1, dtype=torch.bool)), gen)
            assert np.allclose(obs, s.obs[0].numpy(), atol=1e-7)
            assert float(r) == pytest.approx(float(s.reward[0]), abs=1e-7)
            assert term == bool(s.done[0]) == (k == env.horizon - 1) and not trunc
            committed += int(info["committed"])
        assert info["objective"] == pytest.approx(float(s.info["objective"][0]), abs=1e-7)
        # every key after its first visit is committed: more steps than keys => overrides
        assert committed >= env.horizon - batched.core.n_keys
        obs, info = env.reset()


def test_hand_episode_simple_allocation_and_commitment() -> None:
    """m = 1: one message, leader commits to item 1 at its first step; the payoff is 1/3."""
    env = StackelbergGymEnv("simple_allocation:1", iterations=3, reward="exact")
    env.reset(seed=0)
    assert env.horizon == 3 * 1 + 3  # 3 MW iterations x 1 query, 3 types x 1 message exact
    total = 0.0
    for k in range(env.horizon):
        _obs, r, term, _, info = env.step(1 if k == 0 else 2)  # later proposals are overridden
        assert info["committed"] == (k > 0)
        total += float(r)
    assert term and total == pytest.approx(1 / 3, abs=1e-6)  # float32 rewards
    assert info["objective"] == pytest.approx(1 / 3, abs=1e-6)
    with pytest.raises(ValueError, match="reset"):
        env.step(0)


def test_reset_reproducible_and_bad_input() -> None:
    env = StackelbergGymEnv("mspm:PI:2", iterations=2)
    env.reset(seed=5)
    a = [env.step(np.array([1.0, 0.0, 0.3], dtype=np.float32))[1] for _ in range(env.horizon)]
    env.reset(seed=5)
    b = [env.step(np.array([1.0, 0.0, 0.3], dtype=np.float32))[1] for _ in range(env.horizon)]
    assert a == b
    with pytest.raises(ValueError, match="num_envs"):
        StackelbergGymEnv("mspm:PI:2", num_envs=2)
    env.reset(seed=0)
    with pytest.raises(ValueError, match="Box actions of shape"):
        env.step(np.zeros(2, dtype=np.float32))
