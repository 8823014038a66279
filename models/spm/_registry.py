"""Registry of named SPM settings: ``make_spm_setting("correlated", delta=0.5)``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bilevel.models._registry import Spec
from bilevel.models.spm._setting import SPMSetting

__all__ = ["SPMSettingSpec", "list_spm_settings", "make_spm_setting", "register_spm_setting"]


class SPMSettingSpec(Spec[SPMSetting]):
    """A registered SPM setting constructor (see :class:`bilevel.models._registry.Spec`)."""


_REGISTRY: dict[str, SPMSettingSpec] = {}


def register_spm_setting(
    name: str, builder: Callable[..., SPMSetting], description: str = ""
) -> None:
    """Register an SPM setting constructor under ``name`` (replacing any previous one).

    Parameters
    ----------
    name : str
    builder : callable (**params) -> SPMSetting
    description : str, optional
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"expected a non-empty setting name, got {name!r}")
    if not callable(builder):
        raise TypeError(f"expected a callable builder, got {type(builder).__name__}")
    _REGISTRY[name] = SPMSettingSpec(name, builder, description)


def list_spm_settings() -> list[SPMSettingSpec]:
    """All registered SPM settings, sorted by name.

    Returns
    -------
    list of SPMSettingSpec
    """
    return [_REGISTRY[k] for k in sorted(_REGISTRY)]


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

    Examples
    --------
    >>> make_spm_setting("inventory", n_agents=4, n_items=2).units
    (2,)
    """
    if name not in _REGISTRY:
        raise ValueError(f"expected an SPM setting in {sorted(_REGISTRY)}, got {name!r}")
    spec = _REGISTRY[name]
    known = spec.parameters
    unknown = sorted(set(params) - set(known))
    if unknown:
        raise ValueError(
            f"expected parameters of {name!r} among {sorted(known)}, got unknown {unknown}"
        )
    return spec.builder(**params)
