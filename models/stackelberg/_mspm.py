"""Message sequential price mechanisms (MSPM): two bidders, one item, a messaging round.

Brero et al., *Stackelberg POMDP*, §5.2 and Appendix F (*Learning Stackelberg Equilibria*,
§5.4). Followers A0 and A1 privately know their values and each sends a message in
``{0, ..., M-1}``. The leader then runs a sequential price mechanism on the message profile: it
visits one agent at a price; that agent buys iff its value exceeds the price (strictly, unless
``buy_on_tie``); if the item is unsold it visits the other agent at a second price. Every agent
is visited (fixed horizon 2), so a deterministic leader is the table, over message profiles
``(μ0, μ1)``, of (first agent, first price, second price). A buyer earns ``v − p``; the leader
earns ``welfare − max(v_A0, v_A1)`` (the welfare-loss trick, ≤ 0).

Settings:

* ``"PI"`` (prophet-inequality example of Agrawal, Sethuraman & Zhang 2020 with ε = 0.2, scaled
  by 1/2.5; *Learning Stackelberg Equilibria*, §5.4): A0 has value 0.2 w.p. 0.8 and 1.0 w.p.
  0.2; A1 has 0 w.p. 0.5 and 0.4 w.p. 0.5. ``E[max] = 0.44``; best standard SPM loss ``−0.06``
  (the SPM of that section's footnote 10); best MSPM loss 0 (a second-price-like rule; the
  section's 2-message mechanism is also efficient).
* ``"MSGSpace"`` with ``k`` types: both agents iid uniform on ``linspace(0, 1, k)``
  (*Stackelberg POMDP*, §5.2). Best standard SPM losses −1/18, −1/24, −1/20, −2/45 for
  k = 3, 4, 5, 6 (brute force over visiting order and threshold prices, checked in the tests);
  best 2-message MSPM loss 0 for k ≤ 5 (the optimal mechanisms of Appendix H, Tables 3–5).

Examples
--------
>>> g = mspm_game(setting="PI", messages=2)
>>> g.n_types, g.n_actions, round(g.expected_max, 4)
((2, 2), (2, 2), 0.44)
>>> first = np.ones((2, 2), dtype=np.int64)       # visit A1 first whatever the messages
>>> follower, leader = g.payoffs(first, np.full((2, 2), 0.2), np.zeros((2, 2)))
>>> follower.shape, leader.shape                  # (K, J, n), (K, J)
((4, 4, 2), (4, 4))
>>> round(float(g.prior_mean(leader)[0]), 4)      # the best standard SPM
-0.06
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bilevel.models.stackelberg._base import (
    StackelbergGame,
    check_array,
    check_int,
    check_prior,
    frozen,
)
from bilevel.models.typing import FloatArray

__all__ = ["MSPMGame", "mspm_game"]

_PI_VALUES = ((0.2, 1.0), (0.0, 0.4))
_PI_PRIORS = ((0.8, 0.2), (0.5, 0.5))

# Best standard SPM welfare loss, by setting (brute force over order and threshold prices).
_SPM_OPTIMA: dict[tuple[str, int], float] = {
    ("PI", 2): -0.06,
    ("MSGSpace", 2): 0.0,
    ("MSGSpace", 3): -1.0 / 18.0,
    ("MSGSpace", 4): -1.0 / 24.0,
    ("MSGSpace", 5): -1.0 / 20.0,
    ("MSGSpace", 6): -2.0 / 45.0,
}
# Best known MSPM loss with >= 2 messages (0 = efficient; k = 6 not proven, omitted).
_MSPM_OPTIMA: dict[tuple[str, int], float] = {
    ("PI", 2): 0.0,
    ("MSGSpace", 2): 0.0,
    ("MSGSpace", 3): 0.0,
    ("MSGSpace", 4): 0.0,
    ("MSGSpace", 5): 0.0,
}


@dataclass(frozen=True, eq=False)
class MSPMGame(StackelbergGame):
    """Two followers with private values, one item, a message round before an SPM.

    Parameters
    ----------
    values : sequence of two ndarray, each shape (T_i,)
        Value of each type of each follower (normalised to at most 1).
    priors : sequence of two ndarray, each shape (T_i,)
        Independent type priors (positive entries).
    n_messages : int
        Number of messages ``M >= 1`` per follower.
    buy_on_tie : bool, default False
        Whether a visited agent buys at zero surplus (``v − p ≥ 0``); default: only when
        ``v − p > 0``.
    setting : str
        ``"PI"``, ``"MSGSpace"`` or ``"custom"``.
    name : str
    optimum : float or None
        Best known MSPM welfare loss.
    spm_optimum : float or None
        Best standard (message-blind) SPM welfare loss.

    Raises
    ------
    ValueError
        For a wrong number of followers, mismatched value/prior lengths, non-finite values or
        non-probability priors.
    """

    values: tuple[FloatArray, ...]
    priors: tuple[FloatArray, ...]
    n_messages: int
    buy_on_tie: bool = False
    setting: str = "custom"
    name: str = "mspm"
    optimum: float | None = None
    spm_optimum: float | None = None
    n_actions: tuple[int, ...] = field(init=False)

    def __post_init__(self) -> None:
        if len(self.values) != 2 or len(self.priors) != 2:
            raise ValueError(
                f"expected values and priors of 2 followers, got {len(self.values)} and "
                f"{len(self.priors)}"
            )
        values = tuple(frozen(v) for v in self.values)
        priors = tuple(check_prior(p, f"prior of follower {i}") for i, p in enumerate(self.priors))
        for i, (v, p) in enumerate(zip(values, priors, strict=True)):
            if v.ndim != 1 or v.shape != p.shape:
                raise ValueError(
                    f"expected one value per type of follower {i}, got values of shape "
                    f"{v.shape} and a prior of shape {p.shape}"
                )
            if not np.all(np.isfinite(v)):
                raise ValueError(f"expected finite values of follower {i}, got {v.tolist()}")
        m = check_int(self.n_messages, "n_messages")
        if not isinstance(self.buy_on_tie, bool):
            raise TypeError(f"expected buy_on_tie as a bool, got {type(self.buy_on_tie).__name__}")
        object.__setattr__(self, "values", values)
        object.__setattr__(self, "priors", priors)
        object.__setattr__(self, "n_actions", (m, m))

    @property
    def expected_max(self) -> float:
        """``E[max(v_A0, v_A1)]`` under the prior (the efficient welfare)."""
        profiles, probs = self.type_profiles()
        v = self.profile_values(profiles)
        return float(probs @ v.max(axis=1))

    def profile_values(self, profiles: Any) -> FloatArray:
        """Values of both followers for type profiles, shape (K, 2) from (K, 2) int."""
        t = check_array(profiles, "profiles", (2,), np.int64)
        return np.stack([self.values[0][t[..., 0]], self.values[1][t[..., 1]]], axis=-1)

    def prior_mean(self, table: Any) -> FloatArray:
        """Prior mean over type profiles of a (..., K, J) table, shape (..., J)."""
        _, probs = self.type_profiles()
        out: FloatArray = np.einsum("k,...kj->...j", probs, np.asarray(table, dtype=np.float64))
        return out

    def payoffs(
        self, first_agent: Any, first_price: Any, second_price: Any
    ) -> tuple[FloatArray, FloatArray]:
        """Payoff table of a deterministic (tabular) MSPM leader.

        Parameters
        ----------
        first_agent : array_like of shape (..., M, M), int
            Agent (0 or 1) visited first after messages ``(μ0, μ1)``.
        first_price : array_like of shape (..., M, M)
            Price posted to the first agent, in ``[0, 1]``.
        second_price : array_like of shape (..., M, M)
            Price posted to the other agent if the item is unsold, in ``[0, 1]``.

        Returns
        -------
        follower : ndarray of shape (..., K, M*M, 2)
            Each follower's utility ``v − p`` if it buys, else 0, per (type profile, message
            profile, follower).
        leader : ndarray of shape (..., K, M*M)
            ``welfare − max value`` per (type profile, message profile).

        Raises
        ------
        TypeError, ValueError
            For wrong shapes, agents outside {0, 1} or prices outside ``[0, 1]``.
        """
        M = self.n_messages
        f = check_array(first_agent, "first_agent", (M, M), np.int64)
        p1 = check_array(first_price, "first_price", (M, M), np.float64)
        p2 = check_array(second_price, "second_price", (M, M), np.float64)
        if np.any((f < 0) | (f > 1)):
            raise ValueError(f"expected first_agent in {{0, 1}}, got {f.tolist()}")
        for name, p in (("first_price", p1), ("second_price", p2)):
            if np.any((p < 0) | (p > 1)):
                raise ValueError(f"expected {name} in [0, 1], got {p.tolist()}")
        f, p1, p2 = np.broadcast_arrays(f, p1, p2)
        batch = f.shape[:-2]
        # (..., 1, J) policy against (K, 1) values.
        f = f.reshape(*batch, 1, M * M)
        p1 = p1.reshape(*batch, 1, M * M)
        p2 = p2.reshape(*batch, 1, M * M)
        profiles, _ = self.type_profiles()
        v = self.profile_values(profiles)  # (K, 2)
        v0, v1 = v[:, 0:1], v[:, 1:2]  # (K, 1)
        v_first = np.where(f == 0, v0, v1)
        v_second = np.where(f == 0, v1, v0)
        sold1 = self._buys(v_first, p1)
        sold2 = ~sold1 & self._buys(v_second, p2)
        u_first = np.where(sold1, v_first - p1, 0.0)
        u_second = np.where(sold2, v_second - p2, 0.0)
        u0 = np.where(f == 0, u_first, u_second)
        u1 = np.where(f == 0, u_second, u_first)
        welfare = np.where(sold1, v_first, 0.0) + np.where(sold2, v_second, 0.0)
        leader = welfare - np.maximum(v0, v1)
        return np.stack([u0, u1], axis=-1), leader

    def _buys(self, value: FloatArray, price: FloatArray) -> Any:
        """Whether an agent of ``value`` buys at ``price`` (the tie rule)."""
        return value - price >= 0 if self.buy_on_tie else value - price > 0

    def describe(self) -> str:
        """One line describing the game."""
        return (
            f"message SPM ({self.setting}): 2 bidders with {self.n_types} types, one item, "
            f"{self.n_messages} messages"
        )


def mspm_game(
    *,
    setting: str = "PI",
    messages: int = 2,
    types: int | None = None,
    buy_on_tie: bool = False,
    values: Sequence[Any] | None = None,
    priors: Sequence[Any] | None = None,
) -> MSPMGame:
    """A message SPM setting (Brero et al., *Stackelberg POMDP*, §5.2).

    Parameters
    ----------
    setting : {"PI", "MSGSpace", "custom"}, default "PI"
        The Agrawal et al. prophet-inequality example, iid uniform values on
        ``linspace(0, 1, types)``, or explicit ``values`` and ``priors``.
    messages : int, default 2
        Messages per follower ``M``.
    types : int or None
        Number of types ``k >= 2`` for ``"MSGSpace"`` (default 3); must be None otherwise.
    buy_on_tie : bool, default False
        Buyer tie rule (default: buy iff ``v − p > 0``).
    values, priors : sequence of two array_like, optional
        Only for ``setting="custom"``.

    Returns
    -------
    MSPMGame
        Named ``"mspm:PI:M"`` or ``"mspm:MSGSpace:k:M"``, with the known optima.

    Raises
    ------
    ValueError
        For an unknown setting or inconsistent arguments.

    Examples
    --------
    >>> g = mspm_game(setting="MSGSpace", types=3, messages=2)
    >>> g.name, g.values[0].tolist(), round(g.spm_optimum, 4)
    ('mspm:MSGSpace:3:2', [0.0, 0.5, 1.0], -0.0556)
    """
    m = check_int(messages, "messages")
    if not isinstance(setting, str) or setting not in ("PI", "MSGSpace", "custom"):
        raise ValueError(f"expected setting in ('PI', 'MSGSpace', 'custom'), got {setting!r}")
    if setting != "custom" and (values is not None or priors is not None):
        raise ValueError(f"expected values and priors only with setting='custom', got {setting!r}")
    if setting == "PI":
        if types is not None:
            raise ValueError(f"expected types=None for setting 'PI', got {types!r}")
        key: tuple[str, int] = ("PI", 2)
        vals: Sequence[Any] = _PI_VALUES
        pri: Sequence[Any] = _PI_PRIORS
        name = f"mspm:PI:{m}"
    elif setting == "MSGSpace":
        k = check_int(3 if types is None else types, "types", 2)
        key = ("MSGSpace", k)
        grid = np.linspace(0.0, 1.0, k)
        vals = (grid, grid)
        pri = (np.full(k, 1.0 / k), np.full(k, 1.0 / k))
        name = f"mspm:MSGSpace:{k}:{m}"
    else:
        if values is None or priors is None or types is not None:
            raise ValueError("expected values and priors (and no types) for setting 'custom'")
        key = ("custom", 0)
        vals, pri = values, priors
        name = f"mspm:custom:{m}"
    spm = _SPM_OPTIMA.get(key)
    best = _MSPM_OPTIMA.get(key) if m >= 2 else spm
    return MSPMGame(
        values=tuple(np.asarray(v, dtype=np.float64) for v in vals),
        priors=tuple(np.asarray(p, dtype=np.float64) for p in pri),
        n_messages=m,
        buy_on_tie=buy_on_tie,
        setting=setting,
        name=name,
        optimum=best,
        spm_optimum=spm,
    )
