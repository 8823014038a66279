"""Registry of named SPM settings: ``make_spm_setting("correlated", delta=0.5)``.

The settings are an instance of the generic :class:`bilevel.models.Registry`; the functions
here are thin wrappers of it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

from bilevel.models._registry import Registry, Spec
from bilevel.models.spm._setting import SPMSetting

__all__ = ["SPMSettingSpec", "list_spm_settings", "make_spm_setting", "register_spm_setting"]


class SPMSettingSpec(Spec[SPMSetting]):
    """A registered SPM setting constructor (see :class:`bilevel.models._registry.Spec`)."""


#: The registry of SPM settings (:func:`make_spm_setting`).
SPM_SETTINGS: Registry[SPMSetting] = Registry(
    "an SPM setting", returns=SPMSetting, spec_type=SPMSettingSpec
)


def register_spm_setting(
    name: str, builder: Callable[..., SPMSetting], description: str = ""
) -> None:
    """Register an SPM setting constructor under ``name`` (replacing any previous one).

    Parameters
    ----------
    name : str
        Non-empty.
    builder : callable (**params) -> SPMSetting
    description : str, optional

    Raises
    ------
    ValueError
        For an empty name.
    TypeError
        If ``builder`` is not callable.
    """
    SPM_SETTINGS.register(name, builder, description)


def list_spm_settings() -> list[SPMSettingSpec]:
    """All registered SPM settings, sorted by name.

    Returns
    -------
    list of SPMSettingSpec
    """
    return cast("list[SPMSettingSpec]", SPM_SETTINGS.list())


def make_spm_setting(name: str, **params: Any) -> SPMSetting:
    """Build a registered SPM setting.

    Parameters
    ----------
    name : str
        One of ``[s.name for s in list_spm_settings()]``.
    **params
        The constructor's keyword arguments (see each setting's docstring).

    Returns
    -------
    SPMSetting

    Raises
    ------
    ValueError
        For an unknown name or parameter.
    TypeError
        If the name is not a str or the builder does not return an SPMSetting.

    Examples
    --------
    >>> make_spm_setting("inventory", n_agents=4, n_items=2).units
    (2,)
    """
    return SPM_SETTINGS.make(name, **params)
