"""Message SPMs as games: settings, priors, one game by hand, the buyer tie rule, bad input."""

from __future__ import annotations

import numpy as np
import pytest

from bilevel.models.stackelberg import (
    mspm_game,
)


def test_mspm_settings_priors_and_expected_max() -> None:
    pi = mspm_game(setting="PI", messages=2)
    np.testing.assert_allclose(pi.values[0], [0.2, 1.0], atol=0)
    np.testing.assert_allclose(pi.values[1], [0.0, 0.4], atol=0)
    np.testing.assert_allclose(pi.priors[0], [0.8, 0.2], atol=0)
    np.testing.assert_allclose(pi.priors[1], [0.5, 0.5], atol=0)
    np.testing.assert_allclose(pi.expected_max, 0.44, rtol=0, atol=1e-12)
    # E[max] of two agents with k types uniform on {0, 1/(k-1), ..., 1} (Brero et al.,
    # Stackelberg POMDP, §5.2), k = 3..6.
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
