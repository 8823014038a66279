"""Registry of named bandit-auction settings: ``make_bandit_setting("discrete", horizon=5)``.

The settings are an instance of the generic :class:`bilevel.models.Registry`; the functions here
are thin wrappers of it. Built in: ``"discrete"`` (Table 2, left: values in {1, 2, 3}, uniform
prior, ``α = ½ × experience`` counting the current allocation) and ``"continuous"`` (Table 2,
right: values in [0, 5], ``N(2.5, 0.1²)`` prior, logit random walk with ``σ_no = 0.01``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

from bilevel.models._registry import Registry, Spec
from bilevel.models.dynamic._setting import BanditAuctionSetting

__all__ = [
    "BanditSettingSpec",
    "continuous",
    "discrete",
    "list_bandit_settings",
    "make_bandit_setting",
    "register_bandit_setting",
]

Costs = float | tuple[tuple[float, ...], ...]


class BanditSettingSpec(Spec[BanditAuctionSetting]):
    """A registered bandit-auction constructor (see :class:`bilevel.models._registry.Spec`)."""


#: The registry of bandit-auction settings (:func:`make_bandit_setting`).
BANDIT_SETTINGS: Registry[BanditAuctionSetting] = Registry(
    "a bandit-auction setting", returns=BanditAuctionSetting, spec_type=BanditSettingSpec
)


def discrete(
    *,
    n_buyers: int = 1,
    n_goods: int = 1,
    horizon: int = 3,
    gamma: float = 1.0,
    allocation: str = "realized",
    costs: Costs = 0.0,
    experience_includes_current: bool = True,
) -> BanditAuctionSetting:
    """Discrete types (the paper's Table 2, left): ``V = {1, 2, 3}``, uniform ``v_0``.

    Parameters
    ----------
    n_buyers, n_goods, horizon : int
    gamma : float
    allocation : {"realized", "expected"}
    costs : float or (n, m) nested sequence
    experience_includes_current : bool
        Table 2's indexing (the first consumption has ``α = 1/2``) is True.

    Returns
    -------
    BanditAuctionSetting
    """
    return BanditAuctionSetting(
        name="discrete", n_buyers=n_buyers, n_goods=n_goods, horizon=horizon, gamma=gamma,
        types="discrete", allocation=allocation, costs=costs,
        experience_includes_current=experience_includes_current,
        description="bandit auction, values {1, 2, 3} learned by consumption",
    )


def continuous(
    *,
    n_buyers: int = 1,
    n_goods: int = 1,
    horizon: int = 3,
    gamma: float = 1.0,
    allocation: str = "realized",
    costs: Costs = 0.0,
    experience_includes_current: bool = False,
) -> BanditAuctionSetting:
    """Continuous types (the paper's Table 2, right): ``[0, 5]``, ``v_0 ~ N(2.5, 0.1²)``.

    Parameters
    ----------
    n_buyers, n_goods, horizon : int
    gamma : float
    allocation : {"realized", "expected"}
    costs : float or (n, m) nested sequence
    experience_includes_current : bool
        Table 2's indexing (the first consumption has ``α = 0``, ``σ = 1``) is False.

    Returns
    -------
    BanditAuctionSetting
    """
    return BanditAuctionSetting(
        name="continuous", n_buyers=n_buyers, n_goods=n_goods, horizon=horizon, gamma=gamma,
        types="continuous", allocation=allocation, costs=costs,
        experience_includes_current=experience_includes_current,
        description="bandit auction, values in [0, 5], logit random walk",
    )


def register_bandit_setting(
    name: str, builder: Callable[..., BanditAuctionSetting], description: str = ""
) -> None:
    """Register a bandit-auction constructor under ``name`` (replacing any previous one).

    Parameters
    ----------
    name : str
        Non-empty.
    builder : callable (**params) -> BanditAuctionSetting
    description : str, optional

    Raises
    ------
    ValueError
        For an empty name.
    TypeError
        If ``builder`` is not callable.
    """
    BANDIT_SETTINGS.register(name, builder, description)


def list_bandit_settings() -> list[BanditSettingSpec]:
    """All registered bandit-auction settings, sorted by name.

    Returns
    -------
    list of BanditSettingSpec
    """
    return cast("list[BanditSettingSpec]", BANDIT_SETTINGS.list())


def make_bandit_setting(name: str, **params: Any) -> BanditAuctionSetting:
    """Build a registered bandit-auction setting.

    Parameters
    ----------
    name : str
        One of ``[s.name for s in list_bandit_settings()]``.
    **params
        The constructor's keyword arguments.

    Returns
    -------
    BanditAuctionSetting

    Raises
    ------
    ValueError
        For an unknown name or parameter.

    Examples
    --------
    >>> make_bandit_setting("discrete", n_buyers=2, horizon=4).horizon
    4
    >>> make_bandit_setting("sealed")
    Traceback (most recent call last):
    ...
    ValueError: expected a bandit-auction setting in ['continuous', 'discrete'], got 'sealed'
    """
    return BANDIT_SETTINGS.make(name, **params)
