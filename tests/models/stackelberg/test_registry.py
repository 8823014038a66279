"""The registry of Stackelberg games: the four families, colon names, bad names."""

from __future__ import annotations

import numpy as np
import pytest

from bilevel.models.stackelberg import (
    list_games,
    make_game,
)


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
