"""Registry of named environments: ``make_env("sales", n_agents=3, n_items=2)``."""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from bilevel.models._env import Environment

__all__ = ["EnvSpec", "Spec", "list_envs", "make_env", "register_env"]


T = TypeVar("T")


@dataclass(frozen=True)
class Spec(Generic[T]):
    """A registered constructor.

    Attributes
    ----------
    name : str
        Registry name.
    builder : callable returning T
        Keyword-only constructor.
    description : str
        One line for listings.
    """

    name: str
    builder: Callable[..., T]
    description: str

    @property
    def parameters(self) -> dict[str, Any]:
        """Constructor parameters with their defaults (None where there is no default)."""
        sig = inspect.signature(self.builder)
        return {
            k: (None if p.default is inspect.Parameter.empty else p.default)
            for k, p in sig.parameters.items()
        }


class EnvSpec(Spec[Environment]):
    """A registered environment constructor (see :class:`bilevel.models._registry.Spec`)."""


_REGISTRY: dict[str, EnvSpec] = {}


def register_env(name: str, builder: Callable[..., Environment], description: str = "") -> None:
    """Register an environment constructor under ``name`` (replacing any previous one)."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"expected a non-empty environment name, got {name!r}")
    _REGISTRY[name] = EnvSpec(name, builder, description)


def list_envs() -> list[EnvSpec]:
    """All registered environments, sorted by name."""
    return [_REGISTRY[k] for k in sorted(_REGISTRY)]


def make_env(name: str, **kwargs: Any) -> Environment:
    """Build a registered environment.

    Parameters
    ----------
    name : str
        One of ``[spec.name for spec in list_envs()]``: ``"sales"``, ``"scheduling"``,
        ``"gridworld"``, ``"matching"``.
    **kwargs
        The constructor's keyword arguments (see each environment's docstring).

    Returns
    -------
    Environment

    Raises
    ------
    ValueError
        For an unknown name or an unknown parameter.

    Examples
    --------
    >>> env = make_env("sales", n_agents=3, n_items=2, dist="uniform")
    >>> env.mdp.shape
    (5, 4)
    """
    if name not in _REGISTRY:
        raise ValueError(f"expected an environment name in {sorted(_REGISTRY)}, got {name!r}")
    spec = _REGISTRY[name]
    allowed = spec.parameters
    unknown = sorted(set(kwargs) - set(allowed))
    if unknown:
        raise ValueError(
            f"expected parameters of {name!r} among {sorted(allowed)}, got unknown {unknown}"
        )
    env = spec.builder(**kwargs)
    if not isinstance(env, Environment):
        raise TypeError(
            f"expected the builder of {name!r} to return an Environment, got {type(env).__name__}"
        )
    return dataclasses.replace(env, origin=(name, dict(kwargs)))
