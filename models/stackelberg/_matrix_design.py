"""Matrix design game: the leader pays transfers so that two followers reach a good outcome.

The matrix design game of Brero et al., *Stackelberg POMDP*, Appendix G.2 (after Monderer &
Tennenholtz 2003; also *Learning Stackelberg Equilibria*, §5.2). Two followers without private
types play the 2×2 game below (entries ``[u1, u2]``; normalisation 6, transfer box and welfare
reward as in the authors' code)::

    (0,0): [3,3]   (0,1): [6,4]
    (1,0): [4,6]   (1,1): [2,2]

The leader observes the joint action and pays transfers ``t_i(a)`` in ``[0, high]`` (normalised
units, default ``high = 10``) that cost it nothing; follower ``i`` receives
``u_i(a)/6 + t_i(a)`` and the leader earns the normalised welfare ``(u1(a) + u2(a))/6``. The
transfer vector has one entry per follower (the public code's unused third entry is dropped).

The best leader value is ``10/6`` at outcome (0,1) or (1,0). Making (0,1) dominant needs
``t1(0,0) − t1(1,0) ≥ 1/6`` and ``t2(1,1) − t2(1,0) ≥ 4/6`` (the "τ ≥ 4" of *Learning
Stackelberg Equilibria*, §5.2, in raw units); off-path transfers cost nothing.

Examples
--------
>>> g = matrix_design_game()
>>> t = np.zeros((2, 2, 2)); t[1, 1, 1] = 4 / 6   # tau = 4 raw on follower 2 at (1, 1)
>>> follower, leader = g.payoffs(t)
>>> follower.shape, leader.shape                  # (K, J, n), (K, J)
((1, 4, 2), (1, 4))
>>> np.round(leader[0] * 6, 6).tolist()           # raw welfare of (0,0), (0,1), (1,0), (1,1)
[6.0, 10.0, 10.0, 4.0]
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bilevel.models.stackelberg._base import StackelbergGame, check_array, frozen
from bilevel.models.typing import FloatArray

__all__ = ["MATRIX_DESIGN_PAYOFFS", "MatrixDesignGame", "matrix_design_game"]

# Raw u[a1, a2, i]; Brero et al., Stackelberg POMDP, Appendix G.2 (Figure 5, no transfers).
MATRIX_DESIGN_PAYOFFS = (((3.0, 3.0), (6.0, 4.0)), ((4.0, 6.0), (2.0, 2.0)))


@dataclass(frozen=True, eq=False)
class MatrixDesignGame(StackelbergGame):
    """Two followers play a bimatrix game; the leader adds costless transfers.

    Parameters
    ----------
    raw_payoffs : ndarray of shape (A1, A2, 2)
        Raw follower payoffs ``u[a1, a2, i]``.
    normalisation : float
        Divisor of the raw payoffs (6 in the papers' game).
    high : float, default 10.0
        Upper bound of every transfer (normalised units).
    name : str
    optimum : float or None
        Best leader value per game (normalised welfare), if known.

    Attributes
    ----------
    payoffs_normalised : ndarray of shape (A1, A2, 2)
    priors : tuple of two ndarray of shape (1,)
        Neither follower has a private type.
    n_actions : tuple of int
        ``(A1, A2)``.

    Raises
    ------
    ValueError
        For a wrong payoff shape, non-finite payoffs or a non-positive normalisation or bound.
    """

    raw_payoffs: FloatArray
    normalisation: float = 6.0
    high: float = 10.0
    name: str = "matrix_design"
    optimum: float | None = None
    priors: tuple[FloatArray, ...] = field(init=False)
    n_actions: tuple[int, ...] = field(init=False)

    def __post_init__(self) -> None:
        U = frozen(self.raw_payoffs)
        if U.ndim != 3 or U.shape[2] != 2 or U.size == 0:
            raise ValueError(f"expected raw_payoffs of shape (A1, A2, 2), got {U.shape}")
        if not np.all(np.isfinite(U)):
            raise ValueError("expected finite payoffs, got non-finite entries")
        if not (np.isfinite(self.normalisation) and self.normalisation > 0):
            raise ValueError(f"expected a positive normalisation, got {self.normalisation}")
        if not (np.isfinite(self.high) and self.high > 0):
            raise ValueError(f"expected a positive transfer bound high, got {self.high}")
        object.__setattr__(self, "raw_payoffs", U)
        object.__setattr__(self, "priors", (frozen([1.0]), frozen([1.0])))
        object.__setattr__(self, "n_actions", (int(U.shape[0]), int(U.shape[1])))

    @property
    def payoffs_normalised(self) -> FloatArray:
        """Normalised follower payoffs ``u[a1, a2, i] / normalisation``."""
        return frozen(self.raw_payoffs / self.normalisation)

    @property
    def welfare(self) -> FloatArray:
        """Normalised welfare (the leader's reward) per outcome, shape (A1, A2)."""
        return frozen(self.payoffs_normalised.sum(axis=-1))

    def payoffs(self, transfers: Any) -> tuple[FloatArray, FloatArray]:
        """Payoff table of a transfer policy.

        Parameters
        ----------
        transfers : array_like of shape (..., A1, A2, 2)
            ``transfers[..., a1, a2, i]`` is paid to follower ``i`` at outcome ``(a1, a2)``,
            in ``[0, high]``.

        Returns
        -------
        follower : ndarray of shape (..., 1, A1*A2, 2)
            ``u_i(a)/6 + t_i(a)`` per (type profile, joint action, follower).
        leader : ndarray of shape (..., 1, A1*A2)
            Normalised welfare per (type profile, joint action).

        Raises
        ------
        ValueError
            For a wrong shape or transfers outside ``[0, high]``.
        """
        A1, A2 = self.n_actions
        t = check_array(transfers, "transfers", (A1, A2, 2), np.float64)
        if np.any((t < 0) | (t > self.high)):
            raise ValueError(f"expected transfers in [0, {self.high}], got {t.tolist()}")
        batch = t.shape[:-3]
        fol = (self.payoffs_normalised + t).reshape(*batch, 1, A1 * A2, 2)
        lead = np.broadcast_to(self.welfare.reshape(1, A1 * A2), (*batch, 1, A1 * A2)).copy()
        return fol, lead

    def describe(self) -> str:
        """One line describing the game."""
        return "matrix design: two followers, costless leader transfers, welfare objective"


def matrix_design_game(*, high: float = 10.0) -> MatrixDesignGame:
    """The matrix design game of Brero et al., *Stackelberg POMDP*, Appendix G.2.

    Parameters
    ----------
    high : float, default 10.0
        Upper bound of each transfer (normalised units).

    Returns
    -------
    MatrixDesignGame
        With the known optimum ``10/6``.

    Examples
    --------
    >>> g = matrix_design_game()
    >>> g.n_actions, round(g.optimum, 4)
    ((2, 2), 1.6667)
    """
    if isinstance(high, bool) or not isinstance(high, (int, float, np.integer, np.floating)):
        raise TypeError(f"expected high as a float, got {type(high).__name__}")
    return MatrixDesignGame(
        raw_payoffs=np.array(MATRIX_DESIGN_PAYOFFS),
        normalisation=6.0,
        high=float(high),
        name="matrix_design",
        optimum=10.0 / 6.0,
    )
