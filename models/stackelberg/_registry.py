"""Registry of the Stackelberg games: ``make_game("mspm", setting="PI", messages=2)``.

The games are an instance of the generic :class:`bilevel.models.Registry`; the functions here
are thin wrappers of it. Names may also be given in the colon form of the authors' code
(Brero et al., *Stackelberg POMDP*): ``"normal_form:game_2:randomized"``,
``"simple_allocation:3"``, ``"mspm:PI:2"``, ``"mspm:MSGSpace:3:2"``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

from bilevel.models._registry import Registry, Spec
from bilevel.models.stackelberg._base import StackelbergGame

__all__ = ["GameSpec", "list_games", "make_game", "register_game"]


class GameSpec(Spec[StackelbergGame]):
    """A registered game constructor (see :class:`bilevel.models._registry.Spec`)."""


#: The registry of games (:func:`make_game`); names hold no ':' (that is the colon form).
GAMES: Registry[StackelbergGame] = Registry(
    "a game", returns=StackelbergGame, spec_type=GameSpec, forbidden=":"
)


def register_game(
    name: str, builder: Callable[..., StackelbergGame], description: str = ""
) -> None:
    """Register a game constructor under ``name`` (replacing any previous one).

    Parameters
    ----------
    name : str
        Non-empty, without ``":"``.
    builder : callable (**params) -> StackelbergGame
    description : str, optional

    Raises
    ------
    ValueError
        For an empty name or one containing ``":"``.
    TypeError
        If ``builder`` is not callable.
    """
    GAMES.register(name, builder, description)


def list_games() -> list[GameSpec]:
    """All registered games, sorted by name."""
    return cast("list[GameSpec]", GAMES.list())


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
        ``"mspm"``) or its colon form (``"normal_form:game_2:randomized"``,
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
    if ":" not in name:
        return GAMES.make(name, **params)
    base, parsed = _parse_colon(name)
    return GAMES.make(base, **{**parsed, **params})
