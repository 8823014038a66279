"""The registry of bandit-auction settings lists the built-ins and passes their checker."""

from __future__ import annotations

import pytest

from bilevel.models.dynamic import (
    BanditAuctionSetting,
    check_bandit_setting,
    list_bandit_settings,
    make_bandit_setting,
    register_bandit_setting,
)
from bilevel.models.dynamic._registry import BANDIT_SETTINGS


def test_registry_lists_the_built_ins() -> None:
    assert {s.name for s in list_bandit_settings()} == {"continuous", "discrete"}
    assert list_bandit_settings()[1].parameters["horizon"] == 3


@pytest.mark.parametrize("name", ["continuous", "discrete"])
def test_every_registered_setting_passes_its_checker(name: str) -> None:
    check_bandit_setting(make_bandit_setting(name), samples=500)
    check_bandit_setting(make_bandit_setting(name, n_buyers=2, n_goods=2), samples=500)


def test_unknown_names_and_parameters_fail_clearly() -> None:
    with pytest.raises(ValueError, match=r"expected a bandit-auction setting in \['continuous'"):
        make_bandit_setting("nope")
    with pytest.raises(ValueError, match=r"got unknown \['alpha'\]"):
        make_bandit_setting("discrete", alpha=1.0)


def test_a_user_setting_can_be_registered() -> None:
    def five_values(*, horizon: int = 2) -> BanditAuctionSetting:
        return BanditAuctionSetting(name="five", horizon=horizon, support=(1, 2, 3, 4, 5))

    register_bandit_setting("five", five_values, "five values")
    try:
        s = make_bandit_setting("five", horizon=4)
        assert (s.horizon, s.support, s.n_reports) == (4, (1.0, 2.0, 3.0, 4.0, 5.0), 5)
        check_bandit_setting(s, samples=100)
    finally:
        BANDIT_SETTINGS._specs.pop("five")
