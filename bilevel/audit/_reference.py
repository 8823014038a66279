"""Reference mechanisms that are not incentive compatible: pay-your-bid / first price.

They serve as known answers for the exploitability audit (two bidders with values ``U[0, 1]``:
ex-post exploitability 1/3, Bayes 1/6) and as examples of :class:`DirectMechanism`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bilevel.models import Environment
from bilevel.models.typing import FloatArray

__all__ = ["FirstPrice", "first_price", "pay_your_bid"]


@dataclass(frozen=True)
class FirstPrice:
    """Single-item first-price (pay-your-bid) auction on a one-state environment.

    The item goes to the highest bid, ties split equally (a lottery: fractional occupancy), and
    the winner pays its bid. With a "skip" action (``A = n + 1``, action 0 keeps the item, action
    ``i + 1`` gives it to agent i, as in ``sales`` with one item) the item is sold only if the
    highest bid is > 0; with ``A = n`` (action i gives it to agent i) it is always sold.

    Parameters
    ----------
    skip : bool
        Whether action 0 keeps the item.
    """

    skip: bool

    def outcome(self, env: Environment, reports: FloatArray) -> tuple[FloatArray, FloatArray]:
        """Allocation (K, 1, A) and payments (K, n) for bids of shape (K, n)."""
        bids = np.asarray(reports, dtype=np.float64)
        K, n = bids.shape
        top = bids.max(axis=1, keepdims=True)
        win = (bids == top).astype(np.float64)
        if self.skip:
            win *= top > 0
        share = win / np.maximum(win.sum(axis=1, keepdims=True), 1.0)  # (K, n)
        x = np.zeros((K, 1, n + int(self.skip)))
        x[:, 0, int(self.skip):] = share
        if self.skip:
            x[:, 0, 0] = 1.0 - share.sum(axis=1)
        return x, share * bids


def first_price(env: Environment) -> FirstPrice:
    """The first-price auction of a single-item environment, as a :class:`DirectMechanism`.

    Parameters
    ----------
    env : Environment
        One state, scalar values (type shape ``(n,)``) and actions either ``(skip, agent1, ...,
        agentn)`` (``sales`` with ``n_items=1``) or ``(agent1, ..., agentn)`` (e.g. a
        :func:`bilevel.models.custom_env`); agent i's reward is its value times its winning
        probability.

    Returns
    -------
    FirstPrice

    Raises
    ------
    ValueError
        For an environment of another layout.

    Examples
    --------
    >>> from bilevel import make_env
    >>> env = make_env("sales", n_agents=2, n_items=1)
    >>> x, p = first_price(env).outcome(env, np.array([[0.3, 0.7]]))
    >>> x.tolist(), p.tolist()
    ([[[0.0, 0.0, 1.0]]], [[0.0, 0.7]])
    """
    n = env.n_agents
    S, A = env.mdp.shape
    if S != 1 or env.type_shape != (n,) or A not in (n, n + 1):
        raise ValueError(
            f"expected a single-item environment (1 state, type shape ({n},), {n} or {n + 1} "
            f"actions), got {S} states, type shape {env.type_shape} and {A} actions"
        )
    return FirstPrice(skip=n < A)


def pay_your_bid(env: Environment) -> FirstPrice:
    """Pay-your-bid: the same single-item first-price auction as :func:`first_price`."""
    return first_price(env)
