"""Normal-form Stackelberg games: a leader commits to a row (or a mixture), one follower answers.

Four bimatrix games, entries ``[leader, follower]``: Escape and Maintain (games 1 and 2; Brero
et al., *Stackelberg POMDP*, Appendix G.1, after Zhang et al. 2019) and the two small games 3
and 4 of the authors' code. Every payoff is divided by the largest entry of the whole payoff
tensor (30 for games 1 and 2, 3 for games 3 and 4; the papers plot rewards in [0, 1]). The
follower has no private type (one type) and observes nothing; the leader's observation is a
constant. In randomised mode the leader's action is a weight vector ``w`` in ``[0, 1]^R``,
turned into the mixture ``w / Σw`` (uniform when ``Σw = 0``), and every payoff is the exact
expectation over that mixture.

Known optima (leader payoff / normalisation; games 1 and 2 as in Appendix G.1, 11/12 being the
supremum of the paper's ``27.5 − 10ε``; all checked by brute force in the tests):

====== ============== ==============================================
game   pure           mixed (strong Stackelberg)
====== ============== ==============================================
1      1.0            1.0
2      2/3            11/12 at p = (1/4, 3/4, 0)
3      2/3            5/6 at (1/2, 1/2)
4      1/3            1/3
====== ============== ==============================================

Examples
--------
>>> g = normal_form_game(game=2, randomized=True)
>>> follower, leader = g.payoffs([0.25, 0.75, 0.0])
>>> follower.shape, leader.shape            # (K, J, n), (K, J)
((1, 3, 1), (1, 3))
>>> round(float(leader[0, 0]), 4)          # follower plays column 0
0.9167
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bilevel.models.stackelberg._base import StackelbergGame, check_array, check_int, frozen
from bilevel.models.typing import FloatArray

__all__ = ["NORMAL_FORM_GAMES", "NormalFormGame", "normal_form_game"]

# Raw [leader, follower] entries per (row, column); games 1-2: Stackelberg POMDP, App. G.1.
NORMAL_FORM_GAMES: dict[int, tuple[tuple[tuple[tuple[float, float], ...], ...], float]] = {
    1: (
        (((15, 15), (10, 10), (0, 0)), ((10, 10), (10, 10), (0, 0)), ((0, 0), (0, 0), (30, 30))),
        30.0,
    ),
    2: (
        (((20, 15), (0, 0), (0, 0)), ((30, 0), (10, 5), (0, 0)), ((0, 0), (0, 0), (5, 10))),
        30.0,
    ),
    3: ((((1, 1), (3, 0)), ((0, 0), (2, 1))), 3.0),
    4: ((((3, 2), (1, 3)), ((2, 0), (0, 1))), 3.0),
}

_OPTIMA = {  # (pure, mixed) leader values, see the module docstring
    1: (1.0, 1.0),
    2: (2.0 / 3.0, 27.5 / 30.0),
    3: (2.0 / 3.0, 2.5 / 3.0),
    4: (1.0 / 3.0, 1.0 / 3.0),
}


@dataclass(frozen=True, eq=False)
class NormalFormGame(StackelbergGame):
    """A bimatrix Stackelberg game with one follower.

    Parameters
    ----------
    raw_leader, raw_follower : ndarray of shape (R, C)
        Raw payoffs of the leader (rows) and the follower (columns).
    normalisation : float
        Divisor of every payoff (the largest raw entry in the built-in games).
    randomized : bool, default False
        Whether the leader commits to a mixture over rows (weights in ``[0, 1]^R``) instead
        of a single row.
    name : str
    optimum : float or None
        Best leader value (normalised), if known.

    Attributes
    ----------
    leader, follower : ndarray of shape (R, C)
        Normalised payoffs.
    priors : tuple of one ndarray of shape (1,)
        The follower has a single type.
    n_actions : tuple of one int
        ``(C,)``.

    Raises
    ------
    ValueError
        If the payoff arrays differ in shape, are not 2-D, are non-finite, or the
        normalisation is not positive.
    """

    raw_leader: FloatArray
    raw_follower: FloatArray
    normalisation: float
    randomized: bool = False
    name: str = "normal_form"
    optimum: float | None = None
    priors: tuple[FloatArray, ...] = field(init=False)
    n_actions: tuple[int, ...] = field(init=False)

    def __post_init__(self) -> None:
        L = frozen(self.raw_leader)
        F = frozen(self.raw_follower)
        if L.ndim != 2 or F.shape != L.shape or L.size == 0:
            raise ValueError(
                f"expected leader and follower payoffs of one shape (R, C), got {L.shape} "
                f"and {F.shape}"
            )
        if not (np.all(np.isfinite(L)) and np.all(np.isfinite(F))):
            raise ValueError("expected finite payoffs, got non-finite entries")
        if not (np.isfinite(self.normalisation) and self.normalisation > 0):
            raise ValueError(f"expected a positive normalisation, got {self.normalisation}")
        if not isinstance(self.randomized, bool):
            raise TypeError(f"expected randomized as a bool, got {type(self.randomized).__name__}")
        object.__setattr__(self, "raw_leader", L)
        object.__setattr__(self, "raw_follower", F)
        object.__setattr__(self, "priors", (frozen([1.0]),))
        object.__setattr__(self, "n_actions", (int(L.shape[1]),))

    @property
    def leader(self) -> FloatArray:
        """Normalised leader payoffs, shape (R, C)."""
        return frozen(self.raw_leader / self.normalisation)

    @property
    def follower(self) -> FloatArray:
        """Normalised follower payoffs, shape (R, C)."""
        return frozen(self.raw_follower / self.normalisation)

    @property
    def n_rows(self) -> int:
        """Number of leader rows ``R``."""
        return int(self.raw_leader.shape[0])

    def mixture(self, leader: Any) -> FloatArray:
        """The leader's mixture over rows for a policy.

        Parameters
        ----------
        leader : array_like
            Deterministic mode: row indices of shape (...,), int. Randomised mode: weights of
            shape (..., R) in ``[0, 1]``, normalised to ``w / Σw`` (uniform when ``Σw = 0``).

        Returns
        -------
        ndarray of shape (..., R)

        Raises
        ------
        TypeError, ValueError
            For rows that are not integers in ``[0, R)`` or weights outside ``[0, 1]``.
        """
        R = self.n_rows
        if not self.randomized:
            rows = check_array(leader, "leader rows", (), np.int64)
            if np.any((rows < 0) | (rows >= R)):
                raise ValueError(f"expected leader rows in [0, {R}), got {rows.tolist()}")
            eye: FloatArray = np.eye(R)[rows]
            return eye
        w = check_array(leader, "leader weights", (R,), np.float64)
        if np.any((w < 0) | (w > 1)):
            raise ValueError(f"expected leader weights in [0, 1], got {w.tolist()}")
        s = w.sum(axis=-1, keepdims=True)
        uniform = np.full_like(w, 1.0 / R)
        out: FloatArray = np.where(s > 0, w / np.where(s > 0, s, 1.0), uniform)
        return out

    def payoffs(self, leader: Any) -> tuple[FloatArray, FloatArray]:
        """Payoff table of a leader policy (exact expectation over its mixture).

        Parameters
        ----------
        leader : array_like
            See :meth:`mixture`; any leading batch axes ``...`` are kept.

        Returns
        -------
        follower : ndarray of shape (..., 1, C, 1)
            Follower utility per (type profile, column, follower).
        leader : ndarray of shape (..., 1, C)
            Leader reward per (type profile, column).
        """
        mix = self.mixture(leader)
        fol = mix @ self.follower  # (..., C)
        lead = mix @ self.leader
        return fol[..., None, :, None], lead[..., None, :]

    def describe(self) -> str:
        """One line describing the game."""
        mode = "randomised" if self.randomized else "deterministic"
        R, C = self.raw_leader.shape
        return f"normal-form {R}x{C} Stackelberg game, {mode} leader"


def normal_form_game(*, game: int = 1, randomized: bool = False) -> NormalFormGame:
    """One of the four normal-form games (see the module docstring).

    Parameters
    ----------
    game : {1, 2, 3, 4}, default 1
        1 "Escape", 2 "Maintain" (Zhang et al.), 3 (Conitzer 2017), 4.
    randomized : bool, default False
        Leader commits to a mixture over rows.

    Returns
    -------
    NormalFormGame
        Named ``"normal_form:game_k"`` (plus ``":randomized"``), with the known optimum.

    Raises
    ------
    ValueError
        For an unknown game number.

    Examples
    --------
    >>> g = normal_form_game(game=1)
    >>> g.name, g.n_actions, g.optimum
    ('normal_form:game_1', (3,), 1.0)
    """
    k = check_int(game, "game")
    if k not in NORMAL_FORM_GAMES:
        raise ValueError(f"expected game in {sorted(NORMAL_FORM_GAMES)}, got {k}")
    if not isinstance(randomized, bool):
        raise TypeError(f"expected randomized as a bool, got {type(randomized).__name__}")
    entries, norm = NORMAL_FORM_GAMES[k]
    arr = np.array(entries, dtype=np.float64)  # (R, C, 2)
    name = f"normal_form:game_{k}" + (":randomized" if randomized else "")
    return NormalFormGame(
        raw_leader=arr[..., 0],
        raw_follower=arr[..., 1],
        normalisation=norm,
        randomized=randomized,
        name=name,
        optimum=_OPTIMA[k][1 if randomized else 0],
    )
