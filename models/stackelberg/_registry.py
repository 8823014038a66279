"""Registry of the Stackelberg games: ``make_game("mspm", setting="PI", messages=2)``.

Names may also be given in the reference's colon form (``"normal_form:game_2:randomized"``,
``"simple_allocation:3"``, ``"mspm:PI:2"``, ``"mspm:MSGSpace:3:2"``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bilevel.models._registry import Spec
from bilevel.models.stackelberg._base import StackelbergGame

__all__ = ["GameSpec", "list_games", "make_game", "register_game"]


class GameSpec(Spec[StackelbergGame]):
    """A registered game constructor (see :class:`bilevel.models._registry.Spec`)."""


_REGISTRY: dict[str, GameSpec] = {}


def register_game(
    name: str, builder: Callable[..., StackelbergGame], description: str = ""
) -> None:
    """Register a game constructor under ``name`` (replacing any previous one)."""
    if not isinstance(name, str) or not name or ":" in name:
        raise ValueError(f"expected a non-empty game name without ':', got {name!r}")
    _REGISTRY[name] = GameSpec(name, builder, description)


def list_games() -> list[GameSpec]:
    """All registered games, sorted by name."""
    return [_REGISTRY[k] for k in sorted(_REGISTRY)]


def _parse_colon(name: str) -> tuple[str, dict[str, Any]]:
    """Split ``"base:part:..."`` into the base name and constructor parameters."""
    base, *parts = name.split(":")
    err = ValueError(f"expected a game name like those of list_games(), got {name!r}")
    try:
        if base == "normal_form" and 1 <= len(parts) <= 2 and parts[0].startswith("game_"):
            if len(parts) == 2 and parts[1] != "randomized":
                raise err
            return base, {"game": int(parts[0][5:]), "randomized": len(parts) == 2}
        if base == "simple_allocation" and len(parts) == 1:
            return base, {"messages": int(parts[0])}
        if base == "mspm" and parts and parts[0] == "PI" and len(parts) in (2, 3):
            if len(parts) == 3 and int(parts[1]) != 2:
                raise err
            return base, {"setting": "PI", "messages": int(parts[-1])}
        if base == "mspm" and len(parts) == 3 and parts[0] == "MSGSpace":
            return base, {"setting": "MSGSpace", "types": int(parts[1]), "messages": int(parts[2])}
    except ValueError as exc:
        raise err from exc
    raise err


def make_game(name: str, **params: Any) -> StackelbergGame:
    """Build a registered game.

    Parameters
    ----------
    name : str
        A registered name (``"normal_form"``, ``"matrix_design"``, ``"simple_allocation"``,
        ``"mspm"``) or the colon form of reference §2.2 (``"normal_form:game_2:randomized"``,
        ``"simple_allocation:3"``, ``"mspm:PI:2"``, ``"mspm:MSGSpace:3:2"``).
    **params
        The constructor's keyword arguments (they override those of a colon name).

    Returns
    -------
    StackelbergGame

    Raises
    ------
    ValueError
        For an unknown name or an unknown parameter.

    Examples
    --------
    >>> make_game("simple_allocation", messages=2).name
    'simple_allocation:2'
    >>> make_game("mspm:MSGSpace:4:2").n_types
    (4, 4)
    """
    if not isinstance(name, str):
        raise TypeError(f"expected the game name as a str, got {type(name).__name__}")
    base, parsed = (name, {}) if ":" not in name else _parse_colon(name)
    if base not in _REGISTRY:
        raise ValueError(f"expected a game in {sorted(_REGISTRY)}, got {name!r}")
    spec = _REGISTRY[base]
    known = spec.parameters
    unknown = sorted(set(params) - set(known))
    if unknown:
        raise ValueError(
            f"expected parameters of {base!r} among {sorted(known)}, got unknown {unknown}"
        )
    return spec.builder(**{**parsed, **params})
