"""Tabular Markov decision processes as validated, frozen data.

A :class:`TabularMDP` holds only the *structure* of a decision process: enumerated states with
human-readable labels, action names, a sparse transition matrix, an initial distribution and a
discount factor. Rewards are not part of it: in mechanism design they depend on the agents'
private types and are produced per type profile by an environment (see
:class:`bilevel.models.Environment`).

Transitions are stored as a sparse matrix ``P`` of shape ``(S * A, S)`` whose row ``s * A + a``
holds ``P(. | s, a)``. A row may sum to 1, or to 0 where the flow leaves the system (the last
decision of a finite-horizon environment). The occupancy-measure flow constraints of the AMA
paper (eq. 2) are then ``sum_a x(s', a) = mu0(s') + gamma * sum_{s,a} P(s' | s, a) x(s, a)``.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp
from numpy.typing import ArrayLike

from bilevel.models.typing import FloatArray, IntArray

__all__ = ["TabularMDP", "check_mdp", "mdp_from_arrays", "mdp_from_successors"]

_ATOL = 1e-9
_UNSET = object()


@dataclass(frozen=True, eq=False)
class TabularMDP:
    """Structure of a tabular MDP (states, actions, transitions, initial distribution, discount).

    Build one with :func:`mdp_from_arrays` or :func:`mdp_from_successors`; direct construction
    validates the fields with :func:`check_mdp`.

    Parameters
    ----------
    states : tuple of hashable
        State labels, length S. Their order defines the row index of occupancy measures and
        boosts.
    actions : tuple of str
        Action names, length A.
    P : scipy.sparse.csr_array of shape (S * A, S)
        ``P[s * A + a, s']`` is the probability of moving to ``s'`` after action ``a`` in ``s``.
        Rows sum to 1, or to 0 where the flow leaves the system.
    mu0 : ndarray of shape (S,)
        Initial state distribution.
    gamma : float
        Discount factor in (0, 1]; 1 is allowed only when the MDP is acyclic.

    Attributes
    ----------
    layers : tuple of ndarray of int, or None
        For acyclic MDPs, the states grouped by their longest distance from a source, in
        topological order (every transition goes from a layer to a strictly later one). ``None``
        when the transition graph has a cycle.
    successor : ndarray of shape (S, A) of int, or None
        For deterministic MDPs (every row holds at most one nonzero, equal to 1), the index of
        the next state, or ``S`` where the flow leaves. ``None`` for stochastic MDPs.
    """

    states: tuple[Hashable, ...]
    actions: tuple[str, ...]
    P: sp.csr_array
    mu0: FloatArray
    gamma: float
    layers: tuple[IntArray, ...] | None = field(init=False)
    successor: IntArray | None = field(init=False)

    def __post_init__(self) -> None:
        check_mdp(self)
        P = self.P
        P.sort_indices()
        object.__setattr__(self, "layers", _topological_layers(P, self.n_states, self.n_actions))
        object.__setattr__(self, "successor", _deterministic_successor(P, self.n_states))
        self.mu0.setflags(write=False)

    # ------------------------------------------------------------------ sizes and views
    @property
    def n_states(self) -> int:
        """Number of states S."""
        return len(self.states)

    @property
    def n_actions(self) -> int:
        """Number of actions A."""
        return len(self.actions)

    @property
    def shape(self) -> tuple[int, int]:
        """``(S, A)``, the shape of a reward, boost or occupancy array."""
        return (self.n_states, self.n_actions)

    @property
    def is_layered(self) -> bool:
        """Whether the transition graph is acyclic (finite horizon)."""
        return self.layers is not None

    @property
    def is_deterministic(self) -> bool:
        """Whether every (state, action) leads to at most one state with probability 1."""
        return self.successor is not None

    @property
    def horizon(self) -> int | None:
        """Number of layers of an acyclic MDP (its longest path in decisions), else ``None``."""
        return None if self.layers is None else len(self.layers)

    def state_index(self, label: Hashable) -> int:
        """Index of the state with the given label.

        Raises
        ------
        KeyError
            If no state has that label.
        """
        index = self._index_of_label
        if label not in index:
            raise KeyError(f"expected a state label of this MDP, got {label!r}")
        return index[label]

    @property
    def _index_of_label(self) -> dict[Hashable, int]:
        cache: dict[Hashable, int] | None = self.__dict__.get("_label_index")
        if cache is None:
            cache = {s: i for i, s in enumerate(self.states)}
            object.__setattr__(self, "_label_index", cache)
        return cache

    def dense_P(self) -> FloatArray:  # noqa: N802 - P is the paper's name
        """Transitions as a dense array of shape (S, A, S) (for small MDPs and tests)."""
        return np.asarray(self.P.toarray(), dtype=np.float64).reshape(
            self.n_states, self.n_actions, self.n_states
        )

    def flow_matrix(self) -> sp.csr_array:
        """The flow-constraint matrix ``M`` of shape (S, S * A).

        ``M[s', s * A + a] = [s = s'] - gamma * P(s' | s, a)``, so the occupancy constraints
        read ``M @ x.ravel() = mu0``.
        """
        S, A = self.shape
        rows = np.repeat(np.arange(S), A)
        inflow = _coo_to_csr(np.ones(S * A), rows, np.arange(S * A), (S, S * A))
        out: sp.csr_array = sp.csr_array(inflow - self.gamma * self.P.T.tocsr())
        return out

    def __repr__(self) -> str:
        kind = "layered" if self.is_layered else "discounted"
        return (
            f"TabularMDP(n_states={self.n_states}, n_actions={self.n_actions}, "
            f"gamma={self.gamma}, {kind}, "
            f"{'deterministic' if self.is_deterministic else 'stochastic'})"
        )


# ---------------------------------------------------------------------- validation


def check_mdp(mdp: TabularMDP) -> None:
    """Validate a :class:`TabularMDP`, raising ``ValueError`` with "expected ..., got ...".

    Checks: ``P`` has shape (S * A, S) with finite, non-negative entries and rows summing to 1
    or 0; ``mu0`` is a probability distribution over the S states; ``gamma`` is in (0, 1];
    labels are unique; there is at least one state and one action. (``gamma = 1`` on a cyclic
    MDP is rejected when the MDP is constructed, once its layers are known.)

    Parameters
    ----------
    mdp : TabularMDP
        The MDP to check.

    Raises
    ------
    ValueError
        On the first violated condition.
    TypeError
        If a field has the wrong type.
    """
    S, A = len(mdp.states), len(mdp.actions)
    if S == 0:
        raise ValueError("expected at least one state, got 0")
    if A == 0:
        raise ValueError("expected at least one action, got 0")
    if len(set(mdp.states)) != S:
        raise ValueError("expected unique state labels, got duplicates")
    if len(set(mdp.actions)) != A:
        raise ValueError("expected unique action names, got duplicates")
    if not sp.issparse(mdp.P):
        raise TypeError(f"expected P as a scipy.sparse array, got {type(mdp.P).__name__}")
    if mdp.P.shape != (S * A, S):
        raise ValueError(f"expected P of shape (S * A, S) = ({S * A}, {S}), got {mdp.P.shape}")
    data = np.asarray(mdp.P.data, dtype=np.float64)
    if not np.all(np.isfinite(data)):
        raise ValueError("expected finite transition probabilities, got NaN or inf")
    if data.size and data.min() < 0:
        raise ValueError(f"expected non-negative transition probabilities, got {data.min()}")
    row_sums = np.asarray(mdp.P.sum(axis=1)).ravel()
    bad = ~(np.isclose(row_sums, 1.0, atol=_ATOL) | np.isclose(row_sums, 0.0, atol=_ATOL))
    if bad.any():
        k = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"expected every transition row P(. | s, a) to sum to 1 (or 0 where flow leaves), "
            f"got {float(row_sums[k])!r} for state {mdp.states[k // A]!r}, action "
            f"{mdp.actions[k % A]!r}"
        )
    mu0: Any = mdp.mu0
    if not isinstance(mu0, np.ndarray) or mu0.shape != (S,):
        shape = getattr(mu0, "shape", type(mu0).__name__)
        raise ValueError(f"expected mu0 of shape (S,) = ({S},), got {shape}")
    if not np.all(np.isfinite(mu0)) or mu0.min() < 0 or not np.isclose(mu0.sum(), 1.0, atol=_ATOL):
        raise ValueError(
            f"expected mu0 to be a probability distribution (non-negative, summing to 1), "
            f"got sum {mu0.sum()!r} and minimum {mu0.min()!r}"
        )
    gamma = mdp.gamma
    if isinstance(gamma, bool) or not isinstance(gamma, (int, float)):
        raise TypeError(f"expected gamma as a float, got {type(gamma).__name__}")
    if not (0.0 < float(gamma) <= 1.0):
        raise ValueError(f"expected gamma in (0, 1], got {gamma!r}")
    if gamma == 1.0:
        layers = mdp.__dict__.get("layers", _UNSET)
        if layers is _UNSET:
            layers = _topological_layers(mdp.P.tocsr(), S, A)
        if layers is None:
            raise ValueError(
                "expected gamma < 1 for an MDP whose transition graph has a cycle (gamma = 1 is "
                "only allowed for acyclic, finite-horizon MDPs), got gamma = 1.0"
            )


# ---------------------------------------------------------------------- builders


def mdp_from_arrays(
    P: ArrayLike | sp.sparray,
    mu0: ArrayLike,
    gamma: float,
    *,
    states: Sequence[Hashable] | None = None,
    actions: Sequence[str] | None = None,
) -> TabularMDP:
    """Build a :class:`TabularMDP` from a transition array.

    Parameters
    ----------
    P : array_like of shape (S, A, S), or sparse array of shape (S * A, S)
        Transition probabilities ``P[s, a, s']``. Rows may sum to 0 where the flow leaves.
    mu0 : array_like of shape (S,)
        Initial state distribution.
    gamma : float
        Discount factor in (0, 1]; 1 only for acyclic MDPs.
    states : sequence of hashable, optional
        State labels; defaults to ``0 .. S-1``.
    actions : sequence of str, optional
        Action names; defaults to ``"a0" .. "a{A-1}"``.

    Returns
    -------
    TabularMDP

    Raises
    ------
    ValueError
        If the arrays are malformed (see :func:`check_mdp`).

    Examples
    --------
    >>> import numpy as np
    >>> P = np.zeros((2, 2, 2)); P[0, :, 1] = 1.0  # from state 0 go to 1; flow leaves state 1
    >>> mdp_from_arrays(P, [1.0, 0.0], gamma=1.0)
    TabularMDP(n_states=2, n_actions=2, gamma=1.0, layered, deterministic)
    """
    P_csr: sp.csr_array
    if isinstance(P, (sp.sparray, sp.spmatrix)):
        Psp: Any = P  # scipy-stubs types the sparse base class without shape/conversions
        shape = tuple(Psp.shape)
        if len(shape) != 2 or shape[1] == 0 or shape[0] % shape[1]:
            raise ValueError(f"expected sparse P of shape (S * A, S), got {shape}")
        P_csr = sp.csr_array(Psp.tocsr().astype(np.float64))
        S = int(shape[1])
        A = int(shape[0]) // S
    else:
        P_arr = np.asarray(P, dtype=np.float64)
        if P_arr.ndim != 3 or P_arr.shape[0] != P_arr.shape[2]:
            raise ValueError(f"expected P of shape (S, A, S), got {P_arr.shape}")
        S, A = P_arr.shape[0], P_arr.shape[1]
        if not np.all(np.isfinite(P_arr)):
            raise ValueError("expected finite transition probabilities, got NaN or inf")
        P_csr = sp.csr_array(P_arr.reshape(S * A, S))
    mu0_arr = np.array(mu0, dtype=np.float64)
    labels: tuple[Hashable, ...] = tuple(range(S)) if states is None else tuple(states)
    names = tuple(f"a{a}" for a in range(A)) if actions is None else tuple(actions)
    if len(labels) != S:
        raise ValueError(f"expected {S} state labels, got {len(labels)}")
    if len(names) != A:
        raise ValueError(f"expected {A} action names, got {len(names)}")
    return TabularMDP(labels, names, P_csr, mu0_arr, float(gamma))


def mdp_from_successors(
    start: Hashable,
    successors: Callable[[Any, int], Iterable[tuple[Hashable, float]]],
    actions: Sequence[str],
    gamma: float,
    *,
    initial: Sequence[tuple[Hashable, float]] | None = None,
    sort_states: bool = False,
    max_states: int = 1_000_000,
) -> TabularMDP:
    """Build a :class:`TabularMDP` by breadth-first enumeration from a successor function.

    Parameters
    ----------
    start : hashable
        The start state; ``mu0`` is a point mass on it unless ``initial`` is given.
    successors : callable ``(state, action_index) -> iterable of (next_state, probability)``
        The transition kernel. An empty iterable means the flow leaves after this action.
        Probabilities of repeated next states are added.
    actions : sequence of str
        Action names; action indices passed to ``successors`` are ``0 .. A-1``.
    gamma : float
        Discount factor in (0, 1]; 1 only for acyclic MDPs.
    initial : sequence of (state, probability), optional
        An initial distribution over several start states (replaces the point mass).
    sort_states : bool, default False
        Order states by sorting their labels (they must be mutually comparable) instead of by
        discovery order (breadth first, actions ascending).
    max_states : int, default 1000000
        Stop with a ``ValueError`` once more states than this are reached (an infinite or
        very large state space would otherwise run until memory runs out).

    Returns
    -------
    TabularMDP

    Raises
    ------
    ValueError
        If there are no actions, or more than ``max_states`` states.

    Examples
    --------
    >>> def succ(t, a):  # a two-step chain: states 0 and 1, then the flow leaves
    ...     return [(t + 1, 1.0)] if t == 0 else []
    >>> mdp_from_successors(0, succ, ["stay", "go"], gamma=1.0).n_states
    2
    """
    names = tuple(actions)
    A = len(names)
    if A == 0:
        raise ValueError("expected at least one action, got 0")
    if isinstance(max_states, bool) or not isinstance(max_states, (int, np.integer)) or (
        max_states < 1
    ):
        raise ValueError(f"expected max_states as an int >= 1, got {max_states!r}")
    init = [(start, 1.0)] if initial is None else [(s, float(p)) for s, p in initial]
    order: list[Hashable] = []
    seen: set[Hashable] = set()
    queue: deque[Hashable] = deque()
    for s, _ in init:
        if s not in seen:
            seen.add(s)
            order.append(s)
            queue.append(s)
    edges: list[tuple[Hashable, int, Hashable, float]] = []
    while queue:
        s = queue.popleft()
        for a in range(A):
            for s2, p in successors(s, a):
                edges.append((s, a, s2, float(p)))
                if s2 not in seen:
                    if len(order) >= max_states:
                        raise ValueError(
                            f"expected at most max_states = {max_states} states, but the "
                            f"successor function reaches more (state {repr(s2)[:60]} is number "
                            f"{len(order) + 1}; an infinite chain?); pass a larger max_states "
                            "if the state space is finite"
                        )
                    seen.add(s2)
                    order.append(s2)
                    queue.append(s2)
    if sort_states:
        order = sorted(order)  # type: ignore[type-var]
    index = {s: i for i, s in enumerate(order)}
    S = len(order)
    rows = np.fromiter((index[s] * A + a for s, a, _, _ in edges), dtype=np.int64, count=len(edges))
    cols = np.fromiter((index[s2] for _, _, s2, _ in edges), dtype=np.int64, count=len(edges))
    vals = np.fromiter((p for *_, p in edges), dtype=np.float64, count=len(edges))
    P = _coo_to_csr(vals, rows, cols, (S * A, S))
    mu0 = np.zeros(S)
    for s, p in init:
        mu0[index[s]] += p
    return TabularMDP(tuple(order), names, P, mu0, float(gamma))


# ---------------------------------------------------------------------- structure


def _topological_layers(P: sp.csr_array, S: int, A: int) -> tuple[IntArray, ...] | None:
    """Group states by longest distance from a source; ``None`` if the graph has a cycle."""
    coo = P.tocoo()
    src = coo.row // A
    dst = coo.col
    keep = coo.data > 0
    adj = _coo_to_csr(np.ones(int(keep.sum())), src[keep], dst[keep], (S, S))
    adj.sum_duplicates()
    if adj.diagonal().any():
        return None
    indeg = np.asarray((adj > 0).sum(axis=0)).ravel().astype(np.int64)
    depth = np.zeros(S, dtype=np.int64)
    frontier = np.flatnonzero(indeg == 0)
    visited = 0
    indptr, indices = adj.indptr, adj.indices
    while frontier.size:
        visited += frontier.size
        nxt: list[int] = []
        for s in frontier:
            for s2 in indices[indptr[s] : indptr[s + 1]]:
                depth[s2] = max(depth[s2], depth[s] + 1)
                indeg[s2] -= 1
                if indeg[s2] == 0:
                    nxt.append(int(s2))
        frontier = np.array(nxt, dtype=np.int64)
    if visited < S:
        return None
    return tuple(np.flatnonzero(depth == d) for d in range(int(depth.max()) + 1))


def _deterministic_successor(P: sp.csr_array, S: int) -> IntArray | None:
    """Successor table of shape (S, A) (``S`` = flow leaves) if ``P`` is deterministic."""
    counts = np.diff(P.indptr)
    if counts.max(initial=0) > 1:
        return None
    nz = counts == 1
    data = P.data
    if not np.allclose(data, 1.0, atol=_ATOL):
        return None
    flat = np.full(P.shape[0], S, dtype=np.int64)
    flat[nz] = P.indices[P.indptr[:-1][nz]]
    succ: IntArray = flat.reshape(S, -1)
    succ.setflags(write=False)
    return succ


def _coo_to_csr(
    data: FloatArray, rows: np.ndarray[Any, Any], cols: np.ndarray[Any, Any], shape: tuple[int, int]
) -> sp.csr_array:
    """Sparse CSR array from COO triplets (duplicates summed)."""
    out = sp.coo_array((data, (rows, cols)), shape=shape).tocsr()
    out.sum_duplicates()
    return out
