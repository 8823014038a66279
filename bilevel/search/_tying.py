"""Low-dimensional boost parameterisations tied by the MDP's structure.

A *tying* partitions the state–action pairs into groups that share one boost: the boosts are
``b = (T @ theta).reshape(S, A)`` for a 0/1 group matrix ``T`` of shape ``(S * A, d)``. A coarse
tying searches a space of a few parameters in which the good mechanisms of structured
environments lie (Myerson's optimal sale of identical items gives every selling action to agent
``i`` the same boost, whatever the state: it is a point of the ``"action"`` tying), and a finer
tying represents every coarser one exactly, so a search can refine coarse to fine.

Kinds, coarsest first:

* ``"action"``: one boost per action label (``d = A``);
* ``"layer_action"``: one boost per (depth, action), the depth of a state being its
  breadth-first distance from the initial distribution (``d = depth count × A``);
* ``"state_action"``: every pair its own boost (``d = S·A``; the identity).
"""

from __future__ import annotations

from collections import deque
from typing import Any

import numpy as np

from bilevel.models import TabularMDP
from bilevel.models.typing import FloatArray

__all__ = ["TYINGS", "lift", "state_depths", "tying_matrix"]

TYINGS = ("action", "layer_action", "state_action")

IntArray = np.ndarray[Any, np.dtype[np.int64]]


def state_depths(mdp: TabularMDP) -> IntArray:
    """Breadth-first distance of each state from the support of the initial distribution.

    Parameters
    ----------
    mdp : TabularMDP

    Returns
    -------
    ndarray of int, shape (S,)
        0 for initial states; states never reached get one more than the largest depth.
    """
    S, A = mdp.shape
    coo = mdp.P.tocoo()
    keep = coo.data > 0
    src = np.asarray(coo.row[keep] // A, dtype=np.int64)
    dst = np.asarray(coo.col[keep], dtype=np.int64)
    order = np.argsort(src, kind="stable")
    src, dst = src[order], dst[order]
    starts = np.searchsorted(src, np.arange(S + 1))
    depth = np.full(S, -1, dtype=np.int64)
    queue: deque[int] = deque()
    for s0 in np.flatnonzero(mdp.mu0 > 0):
        depth[s0] = 0
        queue.append(int(s0))
    while queue:
        s = queue.popleft()
        for s2 in dst[starts[s] : starts[s + 1]]:
            if depth[s2] < 0:
                depth[s2] = depth[s] + 1
                queue.append(int(s2))
    depth[depth < 0] = depth.max() + 1
    return depth


def tying_matrix(mdp: TabularMDP, kind: str) -> FloatArray:
    """The 0/1 group matrix of a tying.

    Parameters
    ----------
    mdp : TabularMDP
    kind : {"action", "layer_action", "state_action"}

    Returns
    -------
    ndarray of shape (S * A, d)
        Row ``s * A + a`` has a single 1, in the column of the group of ``(s, a)``; every column
        has at least one 1.

    Raises
    ------
    ValueError
        If ``kind`` is unknown.

    Examples
    --------
    >>> from bilevel.models import make_env
    >>> mdp = make_env("sales", n_agents=2, n_items=2).mdp  # S = 4, A = 3
    >>> [tying_matrix(mdp, k).shape for k in TYINGS]
    [(12, 3), (12, 6), (12, 12)]
    """
    S, A = mdp.shape
    if kind == "action":
        group = np.tile(np.arange(A), S)
    elif kind == "layer_action":
        _, depth = np.unique(state_depths(mdp), return_inverse=True)
        group = (depth[:, None] * A + np.arange(A)[None, :]).ravel()
    elif kind == "state_action":
        group = np.arange(S * A)
    else:
        raise ValueError(f"expected a tying in {TYINGS!r}, got {kind!r}")
    _, group = np.unique(group, return_inverse=True)
    T = np.zeros((S * A, int(group.max()) + 1))
    T[np.arange(S * A), group] = 1.0
    return T


def lift(T: FloatArray, boosts: FloatArray) -> FloatArray:
    """Parameters of tying ``T`` closest (least squares) to ``boosts``: the group means.

    Exact (``T @ lift(T, b) == b``) whenever ``b`` is constant on ``T``'s groups, e.g. when
    ``b`` comes from a coarser tying.

    Parameters
    ----------
    T : ndarray of shape (S * A, d)
    boosts : ndarray of shape (S, A)

    Returns
    -------
    ndarray of shape (d,)
    """
    theta: FloatArray = (T.T @ np.ravel(boosts)) / T.sum(axis=0)
    return theta
