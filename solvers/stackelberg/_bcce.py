"""Bayesian coarse-correlated-equilibrium (B-CCE) gap, exactly by enumeration, and certification.

For a leader policy (its :class:`~bilevel.solvers.PayoffTable`) and a follower
:class:`~bilevel.solvers.Response` (a mixture over snapshots ``s`` of product strategies ``σ^s``),
the gap of follower ``i`` with type ``t_i`` is (Brero et al., *Learning Stackelberg
Equilibria*, Definitions 2-3; *Stackelberg POMDP*, Appendix D, Definition D.1)

``gap_i(t_i) = max_{a'} E[u_i(t, (a', a_{−i}))  | t_i] − E[u_i(t, a) | t_i]``

where both expectations run over the other followers' types drawn from the **true prior**
conditioned on ``t_i`` (``P(t) / P_i(t_i)``; no uniform-prior shortcut), over the snapshot index,
over the others' mixed actions and, in the second term, over the follower's own recommended
action. Everything is enumerated exactly. The reported gap is ``max(0, max_{i, t_i} gap_i(t_i))``
and the response is *certified* when it is at most the threshold (default 0.05). A gap of 0
means a B-CCE (for a product response: a Bayes-Nash equilibrium).

:func:`certified_response` reproduces the selection of SP-B's ``CertifiedMWResponse``: after a
prefix of MW updates it tries ``last_mixed``, ``deterministic`` and ``empirical_average`` in that
order, and while none passes it continues one update at a time, checking after each.

Examples
--------
Truth-telling in simple allocation with 3 messages and the identity rule is an equilibrium;
sending message 0 whatever the type is not (types 1 and 2 lose 1 each):

>>> from bilevel.models.stackelberg import make_game
>>> from bilevel.solvers.stackelberg._exact import payoff_table
>>> table = payoff_table(make_game("simple_allocation:3"), [0, 1, 2])
>>> bcce_gap(table, Response.pure([[0, 1, 2]], (3,))).max_gap.tolist()
[0.0]
>>> r = bcce_gap(table, Response.pure([[0, 0, 0]], (3,)))
>>> r.gaps[0].tolist(), r.certified.tolist()
([[0.0, 1.0, 1.0]], [False])
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from bilevel.solvers.stackelberg._exact import PayoffTable, _check_pair, run_dynamics
from bilevel.solvers.stackelberg._no_regret import (
    RESPONSE_KINDS,
    Flavour,
    MultiplicativeWeights,
    Response,
    ResponseKind,
)

__all__ = [
    "BCCEResult",
    "CertificationError",
    "CertifiedResponse",
    "bcce_gap",
    "certified_response",
]

Tensor = torch.Tensor
DEFAULT_THRESHOLD = 0.05


@dataclass(frozen=True, eq=False)
class BCCEResult:
    """B-CCE gaps of a batch of (leader policy, follower response) pairs.

    Attributes
    ----------
    gaps : tuple of Tensor, each shape (B, T_i), float64
        ``gap_i(t_i)`` per follower and own type (may be negative for snapshot mixtures;
        0 for a type of zero prior probability).
    best_deviation : tuple of Tensor, each shape (B, T_i), int64
        The fixed action ``a'`` attaining the maximum.
    max_gap : Tensor of shape (B,), float64
        ``max(0, max_{i, t_i} gap_i(t_i))``.
    certified : Tensor of shape (B,), bool
        ``max_gap <= threshold``.
    threshold : float
    """

    gaps: tuple[Tensor, ...]
    best_deviation: tuple[Tensor, ...]
    max_gap: Tensor
    certified: Tensor
    threshold: float

    @property
    def all_certified(self) -> bool:
        """Whether every row is certified."""
        return bool(self.certified.all())


def _check_threshold(threshold: float) -> float:
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)):
        raise TypeError(f"expected threshold as a float, got {type(threshold).__name__}")
    if not (np.isfinite(threshold) and threshold >= 0):
        raise ValueError(f"expected threshold >= 0, got {threshold}")
    return float(threshold)


def bcce_gap(
    table: PayoffTable, response: Response, *, threshold: float = DEFAULT_THRESHOLD
) -> BCCEResult:
    """Exact B-CCE gap of a follower response under a leader policy.

    Parameters
    ----------
    table : PayoffTable
        Batch ``B``.
    response : Response
        Batch ``B`` or 1 (broadcast).
    threshold : float, default 0.05
        Certification threshold.

    Returns
    -------
    BCCEResult

    Raises
    ------
    TypeError, ValueError
        For mismatched table and response or a negative threshold.
    """
    _check_pair(table, response)
    thr = _check_threshold(threshold)
    B, n = table.batch_size, table.n_followers
    prof = table.profiles  # (K, n)
    p = table.profile_probs  # (K,)
    P = response.joint_action_probs(prof).expand_as(table.leader)  # (B, K, J)
    marg = table.type_marginals()
    gaps, devs = [], []
    for i in range(n):
        u = table.follower[..., i]  # (B, K, J)
        rec = (P * u).sum(-1)  # (B, K)
        others = response.joint_action_probs(prof, exclude=i).expand_as(u)
        dev = (others * u).reshape(B, -1, *table.n_actions)  # (B, K, A_1, ..., A_n)
        axes = [2 + j for j in range(n) if j != i]
        dev = dev.sum(dim=axes) if axes else dev  # (B, K, A_i)
        # Condition on the own type: weight p_k / P_i(t_i) over the profiles with that type.
        Ti = table.n_types[i]
        onehot = torch.nn.functional.one_hot(prof[:, i], Ti).to(torch.float64)  # (K, T_i)
        safe = torch.where(marg[i] > 0, marg[i], torch.ones_like(marg[i]))
        cond = p[:, None] * onehot / safe[None, :]  # (K, T_i)
        dev_t = torch.einsum("kt,bka->bta", cond, dev)
        rec_t = torch.einsum("kt,bk->bt", cond, rec)
        best, arg = dev_t.max(dim=-1)
        g = torch.where(marg[i][None, :] > 0, best - rec_t, torch.zeros_like(rec_t))
        gaps.append(g)
        devs.append(arg)
    worst = torch.stack([g.max(dim=1).values for g in gaps], dim=1).max(dim=1).values
    max_gap = worst.clamp_min(0.0)
    return BCCEResult(tuple(gaps), tuple(devs), max_gap, max_gap <= thr, thr)


class CertificationError(RuntimeError):
    """No candidate response was certified within the allowed extra MW updates.

    Attributes
    ----------
    result : CertifiedResponse
        The state at give-up (``certified`` False in the failing rows).
    """

    def __init__(self, message: str, result: CertifiedResponse) -> None:
        super().__init__(message)
        self.result = result


@dataclass(frozen=True, eq=False)
class CertifiedResponse:
    """The selected response of each row and its certificate.

    Attributes
    ----------
    response : Response
        Batch ``B``; rows whose selections have different snapshot counts are padded with
        zero-weight snapshots.
    gap : BCCEResult
        The certificate of :attr:`response`.
    kinds : tuple of str
        The kind selected in each row (the last tried kind where none passed).
    iterations : Tensor of shape (B,), int64
        MW updates run before each row's selection.
    certified : Tensor of shape (B,), bool
    """

    response: Response
    gap: BCCEResult
    kinds: tuple[str, ...]
    iterations: Tensor
    certified: Tensor


def _concat_rows(rows: Sequence[Response]) -> Response:
    """Stack batch-1 responses, padding snapshots with zero weight."""
    S = max(int(r.snapshot_weights.shape[1]) for r in rows)
    n = len(rows[0].strategies)
    strategies = []
    for i in range(n):
        parts = []
        for r in rows:
            s = r.strategies[i]
            pad = S - s.shape[1]
            if pad:
                fill = torch.full((1, pad, *s.shape[2:]), 1.0 / s.shape[-1], dtype=s.dtype)
                s = torch.cat([s, fill], dim=1)
            parts.append(s)
        strategies.append(torch.cat(parts, dim=0))
    weights = torch.cat(
        [
            torch.nn.functional.pad(r.snapshot_weights, (0, S - r.snapshot_weights.shape[1]))
            for r in rows
        ],
        dim=0,
    )
    kinds = {r.kind for r in rows}
    return Response(tuple(strategies), weights, kinds.pop() if len(kinds) == 1 else "custom")


def certified_response(
    table: PayoffTable,
    *,
    prefix_iterations: int,
    generator: torch.Generator,
    flavour: Flavour = "exact",
    epsilon: float | None = None,
    threshold: float = DEFAULT_THRESHOLD,
    candidates: Sequence[ResponseKind] = ("last_mixed", "deterministic", "empirical_average"),
    max_extra: int = 10_000,
    common_types: bool = True,
    throw: bool = True,
) -> CertifiedResponse:
    """Run MW against a fixed leader policy and select the first certified response.

    After ``prefix_iterations`` updates the ``candidates`` are checked in order; the first with
    a B-CCE gap ``<= threshold`` is selected. Rows without one continue one update at a time,
    checking after each, for at most ``max_extra`` updates.

    Parameters
    ----------
    table : PayoffTable
        Batch ``B``.
    prefix_iterations : int
        Updates before the first check (the response prefix, in whole MW iterations).
    generator : torch.Generator
        Type sequence (and reference actions of the sampled flavour).
    flavour, epsilon, common_types
        As in :func:`~bilevel.solvers.run_dynamics`.
    threshold : float, default 0.05
    candidates : sequence of str, default ("last_mixed", "deterministic", "empirical_average")
    max_extra : int, default 10000
    throw : bool, default True
        Raise :class:`CertificationError` when some row is not certified; otherwise return it
        with ``certified`` False in that row.

    Returns
    -------
    CertifiedResponse

    Raises
    ------
    CertificationError
        If ``throw`` and some row was not certified within ``max_extra`` extra updates.
    ValueError
        For an unknown candidate kind or negative budgets.
    """
    thr = _check_threshold(threshold)
    if not candidates or any(c not in RESPONSE_KINDS for c in candidates):
        raise ValueError(f"expected candidates among {RESPONSE_KINDS}, got {tuple(candidates)}")
    if isinstance(max_extra, bool) or not isinstance(max_extra, (int, np.integer)):
        raise TypeError(f"expected max_extra as an int, got {type(max_extra).__name__}")
    if max_extra < 0:
        raise ValueError(f"expected max_extra >= 0, got {max_extra}")
    B = table.batch_size
    mw: MultiplicativeWeights = run_dynamics(
        table,
        iterations=prefix_iterations,
        generator=generator,
        flavour=flavour,
        epsilon=epsilon,
        common_types=common_types,
    )
    selected: list[Response | None] = [None] * B
    kinds: list[str] = [candidates[-1]] * B
    its = torch.zeros(B, dtype=torch.int64)
    for extra in range(int(max_extra) + 1):
        if extra:
            run_dynamics(table, iterations=1, generator=generator, common_types=common_types,
                         learner=mw)
        pending = [b for b in range(B) if selected[b] is None]
        if not pending:
            break
        for kind in candidates:
            if kind == "empirical_average" and mw.n_updates == 0:
                continue
            resp = mw.response(kind)
            ok = bcce_gap(table, resp, threshold=thr).certified
            for b in pending:
                if selected[b] is None and bool(ok[b]):
                    selected[b], kinds[b], its[b] = resp.row(b), kind, mw.n_updates
        if all(s is not None for s in selected):
            break
    fallback = mw.response(
        candidates[-1] if (candidates[-1] != "empirical_average" or mw.n_updates) else
        "last_mixed"
    )
    rows = [s if s is not None else fallback.row(b) for b, s in enumerate(selected)]
    for b, s in enumerate(selected):
        if s is None:
            its[b] = mw.n_updates
    response = _concat_rows(rows)
    gap = bcce_gap(table, response, threshold=thr)
    result = CertifiedResponse(response, gap, tuple(kinds), its, gap.certified.clone())
    if throw and not gap.all_certified:
        bad = [b for b in range(B) if not bool(gap.certified[b])]
        raise CertificationError(
            f"expected a certified response (B-CCE gap <= {thr}) within {max_extra} extra MW "
            f"updates, got none in rows {bad} (max gaps {gap.max_gap[bad].tolist()})",
            result,
        )
    return result
