"""The Stackelberg games as data: registry, conformance, exact priors and payoff arithmetic.

Known answers are hand-worked from reference §2.2 (entries, priors, normalisations) and §3.1.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bilevel.models.stackelberg import (
    MSPMGame,
    NormalFormGame,
    StackelbergGame,
    list_games,
    make_game,
    matrix_design_game,
    mspm_game,
    normal_form_game,
    simple_allocation_game,
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


# ---------------------------------------------------------------------- registry


def test_registry_lists_the_four_families() -> None:
    assert [s.name for s in list_games()] == [
        "matrix_design",
        "mspm",
        "normal_form",
        "simple_allocation",
    ]
    assert list_games()[1].parameters["messages"] == 2


@pytest.mark.parametrize(
    ("colon", "kwargs"),
    [
        ("normal_form:game_2:randomized", {"game": 2, "randomized": True}),
        ("normal_form:game_4", {"game": 4}),
        ("simple_allocation:2", {"messages": 2}),
        ("mspm:PI:2", {"setting": "PI", "messages": 2}),
        ("mspm:PI:2:2", {"setting": "PI", "messages": 2}),
        ("mspm:MSGSpace:4:2", {"setting": "MSGSpace", "types": 4, "messages": 2}),
    ],
)
def test_colon_names_equal_keyword_construction(colon: str, kwargs: dict[str, object]) -> None:
    a = make_game(colon)
    b = make_game(colon.split(":")[0], **kwargs)
    assert a.name == b.name
    assert a.n_types == b.n_types and a.n_actions == b.n_actions
    for pa, pb in zip(a.priors, b.priors, strict=True):
        np.testing.assert_array_equal(pa, pb)


@pytest.mark.parametrize(
    ("name", "params", "match"),
    [
        ("poker", {}, "expected a game in"),
        ("normal_form", {"gamee": 1}, "unknown"),
        ("normal_form:game_9", {}, "expected game in"),
        ("normal_form:game_x", {}, "expected a game name like"),
        ("normal_form:game_1:mixed", {}, "expected a game name like"),
        ("mspm:PI:3:2", {}, "expected a game name like"),
        ("mspm:Other:2", {}, "expected a game name like"),
        ("simple_allocation:0", {}, "messages >= 1"),
    ],
)
def test_bad_names_raise(name: str, params: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        make_game(name, **params)


def test_bad_name_type_raises() -> None:
    with pytest.raises(TypeError, match="expected the game name as a str"):
        make_game(3)  # type: ignore[arg-type]


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


# ---------------------------------------------------------------------- normal form


def test_normal_form_entries_and_normalisation() -> None:
    g2 = normal_form_game(game=2)
    # Reference §2.2.1, game_2 "Maintain", divided by 30.
    np.testing.assert_allclose(
        g2.leader * 30, [[20, 0, 0], [30, 10, 0], [0, 0, 5]], rtol=0, atol=1e-12
    )
    np.testing.assert_allclose(
        g2.follower * 30, [[15, 0, 0], [0, 5, 0], [0, 0, 10]], rtol=0, atol=1e-12
    )
    g3 = normal_form_game(game=3)
    np.testing.assert_allclose(g3.leader * 3, [[1, 3], [0, 2]], rtol=0, atol=1e-12)
    np.testing.assert_allclose(g3.follower * 3, [[1, 0], [0, 1]], rtol=0, atol=1e-12)
    assert normal_form_game(game=1).normalisation == 30.0
    assert normal_form_game(game=4).normalisation == 3.0


def test_randomised_leader_mixture() -> None:
    g = normal_form_game(game=2, randomized=True)
    np.testing.assert_allclose(g.mixture([0.2, 0.6, 0.0]), [0.25, 0.75, 0.0], atol=1e-15)
    np.testing.assert_allclose(g.mixture([0.0, 0.0, 0.0]), [1 / 3] * 3, atol=1e-15)
    follower, leader = g.payoffs([[1.0, 0.0, 0.0], [0.25, 0.75, 0.0]])  # a batch of two
    assert follower.shape == (2, 1, 3, 1)
    # Hand-worked: mixture (1/4, 3/4, 0) gives the follower 15/4 on columns 0 and 1.
    np.testing.assert_allclose(follower[1, 0, :, 0] * 30, [3.75, 3.75, 0.0], atol=1e-12)
    np.testing.assert_allclose(leader[1, 0] * 30, [27.5, 7.5, 0.0], atol=1e-12)


def test_normal_form_bad_input() -> None:
    det, rnd = normal_form_game(game=2), normal_form_game(game=2, randomized=True)
    with pytest.raises(ValueError, match=r"expected leader rows in \[0, 3\)"):
        det.payoffs(3)
    with pytest.raises(TypeError, match="expected leader rows as integers"):
        det.payoffs(0.5)
    with pytest.raises(ValueError, match=r"expected leader weights in \[0, 1\]"):
        rnd.payoffs([1.5, 0.0, 0.0])
    with pytest.raises(ValueError, match=r"shape \(\.\.\., 3\)"):
        rnd.payoffs([0.5, 0.5])
    with pytest.raises(ValueError, match="one shape"):
        NormalFormGame(np.zeros((2, 2)), np.zeros((2, 3)), 1.0)
    with pytest.raises(ValueError, match="positive normalisation"):
        NormalFormGame(np.zeros((2, 2)), np.zeros((2, 2)), 0.0)
    with pytest.raises(TypeError, match="randomized as a bool"):
        normal_form_game(game=1, randomized=1)  # type: ignore[arg-type]


# ---------------------------------------------------------------------- matrix design


def test_matrix_design_welfare_and_transfers() -> None:
    g = matrix_design_game()
    # Reference §2.2.2: welfare (0,0) 1.0, (0,1) 1.667, (1,0) 1.667, (1,1) 0.667.
    np.testing.assert_allclose(g.welfare.ravel(), [1.0, 10 / 6, 10 / 6, 4 / 6], atol=1e-12)
    t = np.zeros((2, 2, 2))
    t[1, 1, 1] = 0.5
    follower, leader = g.payoffs(t)
    np.testing.assert_allclose(follower[0, :, 1] * 6, [3, 4, 6, 2 + 3], atol=1e-12)
    np.testing.assert_allclose(follower[0, :, 0] * 6, [3, 6, 4, 2], atol=1e-12)
    np.testing.assert_allclose(leader[0], g.welfare.ravel(), atol=1e-12)  # transfers are free
    with pytest.raises(ValueError, match=r"transfers in \[0, 10.0\]"):
        g.payoffs(np.full((2, 2, 2), 11.0))
    with pytest.raises(ValueError, match=r"shape \(\.\.\., 2, 2, 2\)"):
        g.payoffs(np.zeros((4, 3)))
    with pytest.raises(ValueError, match="positive transfer bound"):
        matrix_design_game(high=0.0)


# ---------------------------------------------------------------------- simple allocation


def test_simple_allocation_payoffs_and_bad_input() -> None:
    g = simple_allocation_game(messages=3)
    np.testing.assert_allclose(g.priors[0], [1 / 3] * 3, atol=1e-15)
    follower, leader = g.payoffs([2, 2, 0])
    np.testing.assert_array_equal(leader, [[0, 0, 1], [0, 0, 0], [1, 1, 0]])
    np.testing.assert_array_equal(follower[..., 0], leader)
    with pytest.raises(ValueError, match=r"items in \[0, 3\)"):
        g.payoffs([0, 1, 3])
    with pytest.raises(TypeError, match="items as integers"):
        g.payoffs([0.0, 1.0, 2.0])
    with pytest.raises(ValueError, match=r"shape \(\.\.\., 3\)"):
        g.payoffs([0, 1])


# ---------------------------------------------------------------------- MSPM


def test_mspm_settings_priors_and_expected_max() -> None:
    pi = mspm_game(setting="PI", messages=2)
    np.testing.assert_allclose(pi.values[0], [0.2, 1.0], atol=0)
    np.testing.assert_allclose(pi.values[1], [0.0, 0.4], atol=0)
    np.testing.assert_allclose(pi.priors[0], [0.8, 0.2], atol=0)
    np.testing.assert_allclose(pi.priors[1], [0.5, 0.5], atol=0)
    np.testing.assert_allclose(pi.expected_max, 0.44, rtol=0, atol=1e-12)
    # Reference §3.1: E[max] for MSGSpace k = 3..6.
    for k, em in ((3, 13 / 18), (4, 17 / 24), (5, 7 / 10), (6, 25 / 36)):
        g = mspm_game(setting="MSGSpace", types=k)
        np.testing.assert_allclose(g.values[1], np.linspace(0, 1, k), atol=0)
        np.testing.assert_allclose(g.expected_max, em, rtol=0, atol=1e-12)
    assert pi.optimum == 0.0 and pi.spm_optimum == -0.06
    assert mspm_game(setting="MSGSpace", types=6).optimum is None


def test_mspm_one_game_by_hand() -> None:
    g = mspm_game(setting="PI", messages=2)
    # A1 first at 0.2, then A0 at 0.3, whatever the messages.
    follower, leader = g.payoffs(np.ones((2, 2), int), np.full((2, 2), 0.2), np.full((2, 2), 0.3))
    # Profile (v0 = 1.0, v1 = 0.4) is k = 3: A1 buys at 0.2, welfare 0.4, loss 0.4 - 1.0.
    np.testing.assert_allclose(follower[3, 0], [0.0, 0.2], atol=1e-12)
    np.testing.assert_allclose(leader[3, 0], -0.6, atol=1e-12)
    # Profile (v0 = 1.0, v1 = 0) is k = 2: A1 does not buy, A0 buys at 0.3.
    np.testing.assert_allclose(follower[2, 0], [0.7, 0.0], atol=1e-12)
    np.testing.assert_allclose(leader[2, 0], 0.0, atol=1e-12)
    # Profile (v0 = 0.2, v1 = 0) is k = 0: nobody buys (0.2 < 0.3): loss 0.2.
    np.testing.assert_allclose(leader[0, 0], -0.2, atol=1e-12)


def test_mspm_buyer_tie_rule() -> None:
    # A1 first at price 0.4 = its high value: buys only under buy_on_tie.
    args = (np.ones((2, 2), int), np.full((2, 2), 0.4), np.zeros((2, 2)))
    strict = mspm_game(setting="PI").payoffs(*args)[1]
    tie = mspm_game(setting="PI", buy_on_tie=True).payoffs(*args)[1]
    # Profile (0.2, 0.4), k = 1: strict -> A0 buys at 0 (welfare 0.2); tie -> A1 (welfare 0.4).
    np.testing.assert_allclose([strict[1, 0], tie[1, 0]], [-0.2, 0.0], atol=1e-12)


def test_mspm_bad_input() -> None:
    g = mspm_game(setting="PI")
    ones = np.ones((2, 2))
    with pytest.raises(ValueError, match=r"first_agent in \{0, 1\}"):
        g.payoffs(np.full((2, 2), 2), ones * 0.1, ones * 0.1)
    with pytest.raises(ValueError, match=r"first_price in \[0, 1\]"):
        g.payoffs(np.zeros((2, 2), int), ones * 1.5, ones * 0.1)
    with pytest.raises(ValueError, match=r"second_price in \[0, 1\]"):
        g.payoffs(np.zeros((2, 2), int), ones * 0.5, -ones)
    with pytest.raises(TypeError, match="first_agent as integers"):
        g.payoffs(ones * 0.0, ones * 0.1, ones * 0.1)
    with pytest.raises(ValueError, match="types=None for setting 'PI'"):
        mspm_game(setting="PI", types=3)
    with pytest.raises(ValueError, match="types >= 2"):
        mspm_game(setting="MSGSpace", types=1)
    with pytest.raises(ValueError, match="expected setting in"):
        mspm_game(setting="pi")
    with pytest.raises(ValueError, match="values and priors"):
        mspm_game(setting="custom")
    with pytest.raises(ValueError, match="probability vector"):
        mspm_game(setting="custom", values=([0, 1], [0, 1]), priors=([0.5, 0.6], [0.5, 0.5]))
    with pytest.raises(ValueError, match="one value per type"):
        mspm_game(setting="custom", values=([0, 1, 2], [0, 1]), priors=([0.5, 0.5], [0.5, 0.5]))
    custom = mspm_game(setting="custom", values=([0, 1], [0, 1]), priors=([0.5, 0.5], [0.5, 0.5]))
    assert custom.name == "mspm:custom:2" and custom.optimum is None
