"""Simple allocation with ``m`` messages: one follower, one item of interest, a cheap-talk round.

Brero et al., *Stackelberg POMDP*, §5.1 (*Learning Stackelberg Equilibria*, §5.3). One follower
has a private type uniform over ``k`` items (``k = 3`` in the papers); it sends one of ``m``
messages; the leader observes the message and allocates one item.
Leader and follower both earn 1 if the item equals the type, else 0. The optimum is
``min(m, k) / k`` (1/3, 2/3, 1 for m = 1, 2, 3): the leader can distinguish at most ``m``
types.

Examples
--------
>>> g = simple_allocation_game(messages=2)
>>> follower, leader = g.payoffs([0, 1])     # message 0 -> item 0, message 1 -> item 1
>>> follower.shape, leader.shape            # (K, J, n), (K, J)
((3, 2, 1), (3, 2))
>>> leader.tolist()                         # rows: types 0, 1, 2; columns: messages
[[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]]
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bilevel.models.stackelberg._base import StackelbergGame, check_array, check_int, frozen
from bilevel.models.typing import FloatArray

__all__ = ["SimpleAllocationGame", "simple_allocation_game"]


@dataclass(frozen=True, eq=False)
class SimpleAllocationGame(StackelbergGame):
    """One follower with ``k`` uniform types sends one of ``m`` messages; the leader allocates.

    Parameters
    ----------
    n_messages : int
        Number of messages ``m >= 1``.
    n_items : int, default 3
        Number of items (= types) ``k >= 1``.
    name : str
    optimum : float or None

    Attributes
    ----------
    priors : tuple of one ndarray of shape (k,)
        Uniform.
    n_actions : tuple of one int
        ``(m,)``.
    """

    n_messages: int
    n_items: int = 3
    name: str = "simple_allocation"
    optimum: float | None = None
    priors: tuple[FloatArray, ...] = field(init=False)
    n_actions: tuple[int, ...] = field(init=False)

    def __post_init__(self) -> None:
        m = check_int(self.n_messages, "n_messages")
        k = check_int(self.n_items, "n_items")
        object.__setattr__(self, "priors", (frozen(np.full(k, 1.0 / k)),))
        object.__setattr__(self, "n_actions", (m,))

    def payoffs(self, items: Any) -> tuple[FloatArray, FloatArray]:
        """Payoff table of an allocation rule.

        Parameters
        ----------
        items : array_like of shape (..., m), int
            Item allocated after each message, in ``[0, k)``.

        Returns
        -------
        follower : ndarray of shape (..., k, m, 1)
        leader : ndarray of shape (..., k, m)
            Both ``1[items[msg] == type]`` per (type, message).

        Raises
        ------
        TypeError, ValueError
            For non-integer items, a wrong shape or items outside ``[0, k)``.
        """
        a = check_array(items, "items", (self.n_messages,), np.int64)
        if np.any((a < 0) | (a >= self.n_items)):
            raise ValueError(f"expected items in [0, {self.n_items}), got {a.tolist()}")
        types = np.arange(self.n_items)
        hit = (a[..., None, :] == types[:, None]).astype(np.float64)  # (..., k, m)
        return hit[..., None].copy(), hit

    def describe(self) -> str:
        """One line describing the game."""
        return f"simple allocation: {self.n_items} uniform types, {self.n_messages} messages"


def simple_allocation_game(*, messages: int = 1, n_items: int = 3) -> SimpleAllocationGame:
    """The simple allocation game of Brero et al., *Stackelberg POMDP*, §5.1.

    Parameters
    ----------
    messages : int, default 1
        Number of messages ``m``.
    n_items : int, default 3
        Number of items and types ``k``.

    Returns
    -------
    SimpleAllocationGame
        Named ``"simple_allocation:m"`` with optimum ``min(m, k) / k``.

    Examples
    --------
    >>> g = simple_allocation_game(messages=3)
    >>> g.name, g.n_types, g.optimum
    ('simple_allocation:3', (3,), 1.0)
    """
    m = check_int(messages, "messages")
    k = check_int(n_items, "n_items")
    name = f"simple_allocation:{m}" + (f":{k}" if k != 3 else "")
    return SimpleAllocationGame(n_messages=m, n_items=k, name=name, optimum=min(m, k) / k)
