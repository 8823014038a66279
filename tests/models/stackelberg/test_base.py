"""The Stackelberg games as data: every configured game conforms to StackelbergGame, type
samplers are seeded and match the priors, games are frozen."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bilevel.models.stackelberg import (
    MSPMGame,
    NormalFormGame,
    StackelbergGame,
    make_game,
    mspm_game,
)

CONFIGURED = [
    "normal_form:game_1",
    "normal_form:game_2:randomized",
    "normal_form:game_3",
    "normal_form:game_4:randomized",
    "matrix_design",
    "simple_allocation:1",
    "simple_allocation:3",
    "mspm:PI:2",
    "mspm:MSGSpace:3:2",
    "mspm:MSGSpace:6:3",
]


def random_policy(game: StackelbergGame, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    """A random valid tabular leader policy of ``game``."""
    if isinstance(game, NormalFormGame):
        if game.randomized:
            return (rng.uniform(size=game.n_rows),)
        return (np.array(rng.integers(game.n_rows)),)
    if isinstance(game, MSPMGame):
        M = game.n_messages
        return (rng.integers(2, size=(M, M)), rng.uniform(size=(M, M)), rng.uniform(size=(M, M)))
    if game.name.startswith("matrix_design"):
        return (rng.uniform(0, 10, size=(2, 2, 2)),)
    return (rng.integers(3, size=game.n_actions[0]),)


# ---------------------------------------------------------------------- conformance


@pytest.mark.parametrize("name", CONFIGURED)
def test_every_game_conforms(name: str) -> None:
    game = make_game(name)
    n = game.n_followers
    profiles, probs = game.type_profiles()
    assert profiles.shape == (game.n_profiles, n) and probs.shape == (game.n_profiles,)
    np.testing.assert_allclose(probs.sum(), 1.0, rtol=0, atol=1e-12)
    assert np.all(probs > 0)
    # Profile k is the C-order index of its types (first follower most significant).
    np.testing.assert_array_equal(
        np.ravel_multi_index(tuple(profiles.T), game.n_types), np.arange(game.n_profiles)
    )
    joint = game.joint_actions()
    assert joint.shape == (game.n_joint_actions, n)
    np.testing.assert_array_equal(
        np.ravel_multi_index(tuple(joint.T), game.n_actions), np.arange(game.n_joint_actions)
    )
    follower, leader = game.payoffs(*random_policy(game, np.random.default_rng(0)))
    assert follower.shape == (game.n_profiles, game.n_joint_actions, n)
    assert leader.shape == (game.n_profiles, game.n_joint_actions)
    assert np.all(np.isfinite(follower)) and np.all(np.isfinite(leader))
    assert game.describe()


@pytest.mark.parametrize("name", ["mspm:PI:2", "simple_allocation:2", "mspm:MSGSpace:4:2"])
def test_type_samplers_are_seeded_and_match_the_prior(name: str) -> None:
    game = make_game(name)
    a = game.sample_types(np.random.default_rng(1), 20_000)
    b = game.sample_types(np.random.default_rng(1), 20_000)
    np.testing.assert_array_equal(a, b)
    t = game.sample_types(torch.Generator().manual_seed(1), 20_000)
    t2 = game.sample_types(torch.Generator().manual_seed(1), 20_000)
    assert torch.equal(t, t2) and t.dtype == torch.int64 and t.shape == (20_000, game.n_followers)
    for draws in (a, t.numpy()):
        for i, p in enumerate(game.priors):
            freq = np.bincount(draws[:, i], minlength=p.size) / draws.shape[0]
            # 20 000 draws: standard error <= 0.0036; 5 se.
            np.testing.assert_allclose(freq, p, rtol=0, atol=0.018)
    assert game.sample_types(np.random.default_rng(0), 0).shape == (0, game.n_followers)


def test_sampler_rejects_other_sources() -> None:
    with pytest.raises(TypeError, match=r"numpy\.random\.Generator or a torch\.Generator"):
        make_game("mspm:PI:2").sample_types(0, 3)  # type: ignore[call-overload]


def test_games_are_frozen() -> None:
    g = mspm_game(setting="PI")
    with pytest.raises(AttributeError):
        g.n_messages = 3  # type: ignore[misc]
    with pytest.raises(ValueError, match="read-only"):
        g.values[0][0] = 5.0
