"""Exact leader values of given leader policies, by enumeration over type profiles × actions.

A leader policy committed for a whole episode induces a Bayesian game among the followers,
described completely by its :class:`PayoffTable`: for every type profile ``k`` (probability
``p_k``) and joint action ``j``, the followers' utilities ``u[k, j, :]`` and the leader's reward
``L[k, j]``. Against a follower :class:`~bilevel.solvers.Response` with joint action distribution
``P(j | k)``, the exact expected leader objective is

``V = Σ_k p_k Σ_j P(j | k) L[k, j]``

(the reward phase of the Stackelberg POMDP in expectation). Tables come from the tabular leader
policies of :mod:`bilevel.models.stackelberg` (:func:`payoff_table`) or from any array source
(:meth:`PayoffTable.from_arrays`, e.g. a learned policy played over every profile), batched over
``B`` leader policies. The response to a fixed leader policy is computed here by running the
follower dynamics of :mod:`bilevel.solvers.stackelberg._no_regret` against the table
(:func:`run_dynamics`, :func:`respond`), or, for one follower, exactly as the strong-Stackelberg
best response (:func:`best_response`; ties broken in the leader's favour).

Examples
--------
Game 2 of the normal-form games with the leader mixing ``(1/4, 3/4, 0)``: the follower is
indifferent between columns 0 and 1, and the leader-favourable tie gives 27.5 / 30:

>>> from bilevel.models.stackelberg import make_game
>>> table = payoff_table(make_game("normal_form:game_2:randomized"), [0.25, 0.75, 0.0])
>>> round(float(leader_value(table, best_response(table))[0]), 4)
0.9167

Multiplicative weights against the pure commitment to row 0 learn column 0 (value 20 / 30):

>>> row0 = payoff_table(make_game("normal_form:game_2"), 0)
>>> mw = run_dynamics(row0, iterations=100, generator=torch.Generator().manual_seed(0))
>>> mw.response("deterministic").strategies[0][0, 0, 0].tolist()   # (B, S, T, A)[0, 0, 0]
[1.0, 0.0, 0.0]
>>> round(float(leader_value(row0, mw.response("deterministic"))[0]), 4)
0.6667
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from scipy.optimize import linprog

from bilevel.models.stackelberg import MSPMGame, NormalFormGame, StackelbergGame
from bilevel.models.typing import FloatArray
from bilevel.solvers.stackelberg._no_regret import (
    Flavour,
    MultiplicativeWeights,
    Response,
    ResponseKind,
)

__all__ = [
    "PayoffTable",
    "best_response",
    "best_standard_spm",
    "dominant_actions",
    "follower_values",
    "leader_value",
    "optimal_commitment",
    "payoff_table",
    "respond",
    "run_dynamics",
]

Tensor = torch.Tensor


def _grid(counts: Sequence[int]) -> Tensor:
    grids = torch.meshgrid(*[torch.arange(k) for k in counts], indexing="ij")
    return torch.stack([g.reshape(-1) for g in grids], dim=1)


@dataclass(frozen=True, eq=False)
class PayoffTable:
    """The Bayesian game a batch of committed leader policies induces among the followers.

    Parameters
    ----------
    follower : Tensor of shape (B, K, J, n), float64
        ``follower[b, k, j, i]``: utility of follower ``i`` at type profile ``k`` and joint
        action ``j`` under leader policy ``b``.
    leader : Tensor of shape (B, K, J), float64
        The leader's reward (objective) at ``(k, j)``.
    profile_probs : Tensor of shape (K,), float64
        Prior probability of each type profile (sums to 1).
    n_types, n_actions : tuple of int
        ``T_i`` and ``A_i`` per follower; ``K = Π T_i`` and ``J = Π A_i``, both indexed first
        follower most significant.

    Attributes
    ----------
    profiles : Tensor of shape (K, n), int64
        The type profiles in index order.

    Raises
    ------
    ValueError
        For inconsistent shapes, non-finite payoffs or a prior that is not a distribution.
    """

    follower: Tensor
    leader: Tensor
    profile_probs: Tensor
    n_types: tuple[int, ...]
    n_actions: tuple[int, ...]

    def __post_init__(self) -> None:
        n_types = tuple(int(t) for t in self.n_types)
        n_actions = tuple(int(a) for a in self.n_actions)
        if len(n_types) != len(n_actions) or not n_types or min(n_types + n_actions) < 1:
            raise ValueError(
                f"expected positive n_types and n_actions of one length, got {n_types} and "
                f"{n_actions}"
            )
        K, J, n = int(np.prod(n_types)), int(np.prod(n_actions)), len(n_types)
        F = torch.as_tensor(self.follower, dtype=torch.float64)
        L = torch.as_tensor(self.leader, dtype=torch.float64)
        p = torch.as_tensor(self.profile_probs, dtype=torch.float64)
        if F.ndim != 4 or F.shape[1:] != (K, J, n):
            raise ValueError(f"expected follower of shape (B, {K}, {J}, {n}), got {tuple(F.shape)}")
        if L.shape != F.shape[:3]:
            raise ValueError(
                f"expected leader of shape {tuple(F.shape[:3])}, got {tuple(L.shape)}"
            )
        if not (bool(torch.isfinite(F).all()) and bool(torch.isfinite(L).all())):
            raise ValueError("expected finite payoffs, got NaN or inf")
        if p.shape != (K,) or bool((p < 0).any()) or abs(float(p.sum()) - 1.0) > 1e-9:
            raise ValueError(f"expected profile_probs as a distribution of shape ({K},)")
        object.__setattr__(self, "follower", F)
        object.__setattr__(self, "leader", L)
        object.__setattr__(self, "profile_probs", p)
        object.__setattr__(self, "n_types", n_types)
        object.__setattr__(self, "n_actions", n_actions)

    @property
    def profiles(self) -> Tensor:
        """Type profiles, shape (K, n), int64, first follower most significant."""
        return _grid(self.n_types)

    @property
    def joint_actions(self) -> Tensor:
        """Joint actions, shape (J, n), int64, first follower most significant."""
        return _grid(self.n_actions)

    @property
    def batch_size(self) -> int:
        """Number of leader policies ``B``."""
        return int(self.follower.shape[0])

    @property
    def n_followers(self) -> int:
        """Number of followers ``n``."""
        return len(self.n_types)

    def type_marginals(self) -> tuple[Tensor, ...]:
        """Marginal prior of each follower's own type, each (T_i,)."""
        prof = self.profiles
        return tuple(
            torch.zeros(t, dtype=torch.float64).index_add_(0, prof[:, i], self.profile_probs)
            for i, t in enumerate(self.n_types)
        )

    @classmethod
    def from_arrays(
        cls,
        follower: Any,
        leader: Any,
        priors: Sequence[Any],
        n_actions: Sequence[int],
    ) -> PayoffTable:
        """Build a table from arrays and independent per-follower priors.

        Parameters
        ----------
        follower : array_like of shape (K, J, n) or (B, K, J, n)
        leader : array_like of shape (K, J) or (B, K, J)
        priors : sequence of n array_like, each shape (T_i,)
        n_actions : sequence of int

        Returns
        -------
        PayoffTable
        """
        ps = [torch.tensor(np.array(p, dtype=np.float64)) for p in priors]
        probs = torch.ones(1, dtype=torch.float64)
        for p in ps:
            probs = (probs[:, None] * p[None, :]).reshape(-1)
        F = torch.tensor(np.array(follower, dtype=np.float64))
        L = torch.tensor(np.array(leader, dtype=np.float64))
        if F.ndim == 3:
            F, L = F[None], L[None]
        return cls(F, L, probs, tuple(int(p.numel()) for p in ps), tuple(n_actions))


def payoff_table(game: StackelbergGame, *policy: Any, **policy_kwargs: Any) -> PayoffTable:
    """The payoff table of a tabular leader policy of a game of :mod:`bilevel.models.stackelberg`.

    Parameters
    ----------
    game : StackelbergGame
    *policy, **policy_kwargs
        Passed to ``game.payoffs`` (row / weights, transfers, items, or the MSPM
        ``first_agent, first_price, second_price``), with at most one leading batch axis.

    Returns
    -------
    PayoffTable
        ``B = 1`` for an unbatched policy.

    Raises
    ------
    TypeError
        If ``game`` is not a Stackelberg game.
    ValueError
        For a policy with more than one batch axis (and whatever ``game.payoffs`` raises).
    """
    if not isinstance(game, StackelbergGame):
        raise TypeError(f"expected a StackelbergGame, got {type(game).__name__}")
    F, L = game.payoffs(*policy, **policy_kwargs)
    F, L = np.asarray(F, dtype=np.float64), np.asarray(L, dtype=np.float64)
    if F.ndim == 3:
        F, L = F[None], L[None]
    if F.ndim != 4:
        raise ValueError(f"expected at most one batch axis in the policy, got table {F.shape}")
    _, probs = game.type_profiles()
    return PayoffTable(
        torch.from_numpy(F.copy()),
        torch.from_numpy(L.copy()),
        torch.tensor(probs),
        game.n_types,
        game.n_actions,
    )


def _check_pair(table: PayoffTable, response: Response) -> None:
    if not isinstance(table, PayoffTable):
        raise TypeError(f"expected a PayoffTable, got {type(table).__name__}")
    if not isinstance(response, Response):
        raise TypeError(f"expected a Response, got {type(response).__name__}")
    if response.n_types != table.n_types or response.n_actions != table.n_actions:
        raise ValueError(
            f"expected a response over types {table.n_types} and actions {table.n_actions}, "
            f"got {response.n_types} and {response.n_actions}"
        )
    if response.batch_size not in (1, table.batch_size):
        raise ValueError(
            f"expected a response of batch 1 or {table.batch_size}, got {response.batch_size}"
        )


def leader_value(table: PayoffTable, response: Response) -> Tensor:
    """Exact expected leader objective ``Σ_k p_k Σ_j P(j | k) L[k, j]``.

    Parameters
    ----------
    table : PayoffTable
        Batch ``B``.
    response : Response
        Batch ``B`` or 1 (broadcast).

    Returns
    -------
    Tensor of shape (B,), float64
    """
    _check_pair(table, response)
    P = response.joint_action_probs(table.profiles)  # (B or 1, K, J)
    return torch.einsum("k,bkj,bkj->b", table.profile_probs, P.expand_as(table.leader),
                        table.leader)


def follower_values(table: PayoffTable, response: Response) -> Tensor:
    """Exact ex-ante expected utility of every follower, shape (B, n), float64."""
    _check_pair(table, response)
    P = response.joint_action_probs(table.profiles).expand_as(table.leader)
    return torch.einsum("k,bkj,bkji->bi", table.profile_probs, P, table.follower)


def best_response(table: PayoffTable, tol: float = 1e-9) -> Response:
    """The strong-Stackelberg response of a single follower (ties to the leader).

    For each row and type, the follower's utility-maximising actions (within ``tol``) are
    found, and among them the one with the highest leader reward is chosen (first index on a
    remaining tie).

    Parameters
    ----------
    table : PayoffTable
        With one follower.
    tol : float, default 1e-9
        Indifference tolerance.

    Returns
    -------
    Response
        Deterministic, batch ``B``.

    Raises
    ------
    ValueError
        If the table has more than one follower.
    """
    if table.n_followers != 1:
        raise ValueError(f"expected a single-follower table, got {table.n_followers} followers")
    u = table.follower[..., 0]  # (B, T, A): profiles are the follower's types
    best = u.max(dim=-1, keepdim=True).values
    cand = u >= best - tol
    lead = torch.where(cand, table.leader, torch.full_like(table.leader, -torch.inf))
    return Response.pure([lead.argmax(dim=-1)], table.n_actions)


def dominant_actions(
    table: PayoffTable, *, strict: bool = False, tol: float = 1e-12
) -> tuple[Tensor, ...]:
    """Which actions are dominant for each follower and own type.

    Action ``a`` of follower ``i`` with type ``t_i`` is weakly dominant when
    ``u_i(t, (a, a_{−i})) >= u_i(t, (a', a_{−i})) − tol`` for every other action ``a'``, every
    other followers' types ``t_{−i}`` and actions ``a_{−i}``; strictly dominant with
    ``> + tol`` for every ``a' != a``. E.g. the matrix-design transfers make outcome (0, 1)
    dominant exactly when ``t2(1,1) − t2(1,0) >= 4/6`` (the "τ ≥ 4" of Brero et al.,
    *Learning Stackelberg Equilibria*, §5.2).

    Parameters
    ----------
    table : PayoffTable
    strict : bool, default False
    tol : float, default 1e-12

    Returns
    -------
    tuple of n Tensor, each shape (B, T_i, A_i), bool

    Examples
    --------
    >>> from bilevel.models.stackelberg import matrix_design_game
    >>> t = np.zeros((2, 2, 2)); t[0, 0, 0] = 1 / 6; t[1, 1, 1] = 4 / 6
    >>> d = dominant_actions(payoff_table(matrix_design_game(), t))
    >>> d[0][0, 0].tolist(), d[1][0, 0].tolist()
    ([True, False], [False, True])
    """
    B, n = table.batch_size, table.n_followers
    out = []
    for i in range(n):
        u = table.follower[..., i].reshape(B, *table.n_types, *table.n_actions)
        # Own type to axis 1, own action to the last axis; the rest flattened in between.
        u = u.movedim(1 + i, 1).movedim(1 + n + i, -1)
        u = u.reshape(B, table.n_types[i], -1, table.n_actions[i])  # (B, T_i, rest, A_i)
        diff = u[..., :, None] - u[..., None, :]  # (B, T_i, rest, a, a')
        eye = torch.eye(table.n_actions[i], dtype=torch.bool)
        ok = ((diff > tol) | eye) if strict else (diff >= -tol)
        out.append(ok.all(dim=-1).all(dim=2))
    return tuple(out)


def run_dynamics(
    table: PayoffTable,
    *,
    iterations: int,
    generator: torch.Generator,
    flavour: Flavour = "exact",
    epsilon: float | None = None,
    common_types: bool = True,
    learner: MultiplicativeWeights | None = None,
) -> MultiplicativeWeights:
    """Run multiplicative weights against a fixed leader policy (its payoff table).

    Each iteration draws a type profile from the prior (the same sequence for every row when
    ``common_types``, i.e. common random numbers) and applies one MW update of the chosen
    flavour with the queried games answered from the table.

    Parameters
    ----------
    table : PayoffTable
        Batch ``B``: one independent learner set per row.
    iterations : int
        Number of MW updates (>= 0).
    generator : torch.Generator
        Draws the type sequence (and the sampled flavour's reference actions).
    flavour : {"exact", "sampled"}, default "exact"
    epsilon : float, optional
        Default 0.1 (exact) or 0.01 (sampled).
    common_types : bool, default True
    learner : MultiplicativeWeights, optional
        Continue this learner instead of starting a fresh one.

    Returns
    -------
    MultiplicativeWeights
        After the updates (its :meth:`~MultiplicativeWeights.response` gives the response).
    """
    if isinstance(iterations, bool) or not isinstance(iterations, (int, np.integer)):
        raise TypeError(f"expected iterations as an int, got {type(iterations).__name__}")
    if iterations < 0:
        raise ValueError(f"expected iterations >= 0, got {iterations}")
    if not isinstance(generator, torch.Generator):
        raise TypeError(f"expected a torch.Generator, got {type(generator).__name__}")
    B = table.batch_size
    mw = learner or MultiplicativeWeights(
        table.n_types, table.n_actions, batch=B, flavour=flavour, epsilon=epsilon
    )
    if mw.batch != B or mw.n_types != table.n_types or mw.n_actions != table.n_actions:
        raise ValueError("expected a learner of the table's batch, types and actions")
    for _ in range(int(iterations)):
        if common_types:
            k = torch.multinomial(table.profile_probs, 1, generator=generator).expand(B)
        else:
            k = torch.multinomial(table.profile_probs, B, replacement=True, generator=generator)
        mw.update_from_table(table.follower, k, generator)
    return mw


def respond(
    table: PayoffTable,
    kind: ResponseKind = "last_mixed",
    *,
    iterations: int,
    generator: torch.Generator,
    flavour: Flavour = "exact",
    epsilon: float | None = None,
    common_types: bool = True,
) -> Response:
    """The followers' response to a fixed leader policy after ``iterations`` MW updates.

    Parameters are those of :func:`run_dynamics`, plus ``kind`` (``"last_mixed"``,
    ``"deterministic"`` or ``"empirical_average"``).

    Returns
    -------
    Response
    """
    mw = run_dynamics(
        table,
        iterations=iterations,
        generator=generator,
        flavour=flavour,
        epsilon=epsilon,
        common_types=common_types,
    )
    return mw.response(kind)


def optimal_commitment(game: NormalFormGame, tol: float = 1e-9) -> tuple[float, FloatArray, int]:
    """The leader's optimal commitment in a normal-form game (strong Stackelberg).

    Deterministic leader: the best row against the follower's best response (ties to the
    leader). Randomised leader: one LP per follower column ``c`` (Conitzer & Sandholm 2006),
    ``max_p p·L[:, c]`` subject to ``p·F[:, c] >= p·F[:, c']`` for every ``c'`` and ``p`` in the
    simplex; the best feasible LP wins.

    Parameters
    ----------
    game : NormalFormGame
    tol : float, default 1e-9
        Indifference tolerance of the pure case.

    Returns
    -------
    value : float
        Normalised leader value.
    mixture : ndarray of shape (R,)
        The optimal (one-hot in deterministic mode) row mixture.
    column : int
        The follower's response.

    Raises
    ------
    TypeError
        If ``game`` is not a :class:`~bilevel.models.stackelberg.NormalFormGame`.
    RuntimeError
        If every LP fails (cannot happen for finite payoffs: some column is a best response).

    Examples
    --------
    >>> from bilevel.models.stackelberg import normal_form_game
    >>> v, p, c = optimal_commitment(normal_form_game(game=2, randomized=True))
    >>> round(v, 4), np.round(p, 4).tolist(), c
    (0.9167, [0.25, 0.75, 0.0], 0)
    """
    if not isinstance(game, NormalFormGame):
        raise TypeError(f"expected a NormalFormGame, got {type(game).__name__}")
    L, F = game.leader, game.follower
    R, C = L.shape
    if not game.randomized:
        best = (-np.inf, 0, 0)
        for r in range(R):
            cand = np.flatnonzero(F[r] >= F[r].max() - tol)
            c = int(cand[np.argmax(L[r, cand])])
            if L[r, c] > best[0]:
                best = (float(L[r, c]), r, c)
        return best[0], np.eye(R)[best[1]], best[2]
    results: list[tuple[float, FloatArray, int]] = []
    for c in range(C):
        # Best-response constraints: p·(F[:, c'] − F[:, c]) <= 0 for every c' != c.
        others = [k for k in range(C) if k != c]
        A_ub = (F[:, others] - F[:, [c]]).T if others else None
        b_ub = np.zeros(len(others)) if others else None
        res = linprog(
            -L[:, c], A_ub=A_ub, b_ub=b_ub, A_eq=np.ones((1, R)), b_eq=[1.0],
            bounds=[(0.0, 1.0)] * R, method="highs",
        )
        if res.status == 0 and res.x is not None:
            p = np.clip(res.x, 0.0, 1.0)
            results.append((float(p @ L[:, c]), p / p.sum(), c))
    if not results:
        raise RuntimeError("expected at least one feasible follower column, got none")
    return max(results, key=lambda t: t[0])


def best_standard_spm(
    game: MSPMGame,
) -> tuple[float, tuple[Any, Any, Any]]:
    """The best message-blind SPM of an MSPM setting, by brute force.

    Enumerates the first agent and both prices over ``{0} ∪ midpoints of the sorted values ∪
    {1}`` (every distinct buying behaviour under either tie rule) for a leader that ignores the
    messages; the value does not depend on the followers' response.

    Parameters
    ----------
    game : MSPMGame

    Returns
    -------
    value : float
        Best welfare loss (``E[welfare] − E[max value]``).
    policy : tuple of three ndarray, each shape (M, M)
        ``(first_agent, first_price, second_price)`` attaining it (constant over messages).

    Examples
    --------
    >>> from bilevel.models.stackelberg import mspm_game
    >>> round(best_standard_spm(mspm_game(setting="PI"))[0], 4)
    -0.06
    """
    if not isinstance(game, MSPMGame):
        raise TypeError(f"expected an MSPMGame, got {type(game).__name__}")
    vals = np.unique(np.concatenate(game.values))
    grid = np.unique(np.concatenate([[0.0], (vals[1:] + vals[:-1]) / 2, [1.0]]).clip(0, 1))
    combos = [(f, a, b) for f in (0, 1) for a in grid for b in grid]
    M = game.n_messages
    arrs = [np.stack([np.full((M, M), c[i]) for c in combos]) for i in range(3)]
    table = payoff_table(game, arrs[0].astype(np.int64), arrs[1], arrs[2])
    babble = Response.pure([np.zeros(t, np.int64) for t in game.n_types], game.n_actions)
    values = leader_value(table, babble)
    k = int(values.argmax())
    return float(values[k]), (arrs[0][k].astype(np.int64), arrs[1][k], arrs[2][k])
