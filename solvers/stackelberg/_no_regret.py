"""Multiplicative-weights followers and the response objects they hand to the leader.

Each follower ``i`` keeps one weight row per own type ``t_i`` over its ``A_i`` actions (Brero et
al., *Stackelberg POMDP*, Appendix E, Algorithm 2; the two flavours below are the authors' code
revisions SP-A and SP-B, ``docs/references.md``). One MW *iteration* freezes a type profile
``t`` (drawn by the caller), queries some joint actions (games played against the leader's
committed policy), and updates every follower's row for its own type:

``w_i[t_i][a] ← w_i[t_i][a] · (1 + ε)^{U_i(a)}``

with two flavours of the utility ``U_i(a)``:

* ``"sampled"`` (SP-A, ``ε = 0.01``): one reference joint action ``a^ref`` is sampled from the
  current strategies; for each follower ``i`` in order and each own action ``a`` the game
  ``(a, a^ref_{−i})`` is played, so an iteration costs ``Σ_i A_i`` games and
  ``U_i(a) = u_i(a, a^ref_{−i})``. Weights start at 1 and are never normalised.
* ``"exact"`` (SP-B, ``ε = 0.1``): every joint action is played (``Π_i A_i`` games) and
  ``U_i(a) = Σ_{a_{−i}} u_i(a, a_{−i}) Π_{j≠i} σ_j[t_j](a_j)`` is the exact expectation under
  the pre-update strategies; rows are renormalised after each update (uniform start).

Weights are stored as logarithms in float64 (``log w += U · log(1 + ε)``), which is the same
update without overflow; the public code's reset-to-uniform on a non-finite row is replaced by an
error on non-finite utilities (never a silent answer).

A :class:`Response` is what the leader is evaluated against: a finite mixture of product
strategies sharing a snapshot index (so followers stay correlated through it), batched over
``B`` independent leader episodes. ``MultiplicativeWeights.response(kind)`` builds the three
candidates of SP-B's certification: ``"last_mixed"`` (current strategies), ``"deterministic"``
(their argmax per type, first index on ties) and ``"empirical_average"`` (uniform mixture of
the strategies after each update).

Examples
--------
Follower 0 of a 2-follower, 2-action coordination game with no types; ``utilities[b, j, i]`` is
follower ``i``'s utility at joint action ``j`` (``(0,0), (0,1), (1,0), (1,1)``):

>>> mw = MultiplicativeWeights((1, 1), (2, 2), flavour="exact")
>>> types = torch.zeros(1, 2, dtype=torch.int64)
>>> u = torch.tensor([[[1.0, 1.0], [0.0, 0.0], [0.0, 0.0], [0.5, 0.5]]], dtype=torch.float64)
>>> for _ in range(50):
...     mw.update(types, u)
>>> mw.response("deterministic").strategies[0][0, 0].tolist()   # (S, T, A) of row 0
[[1.0, 0.0]]

The sampled flavour asks which games to play first:

>>> mw = MultiplicativeWeights((1, 1), (2, 2), flavour="sampled")
>>> q = mw.queries(types, torch.Generator().manual_seed(0))
>>> q.shape                                   # (B, Σ A_i, n)
torch.Size([1, 4, 2])
>>> mw.update(types, u[:, (2 * q[..., 0] + q[..., 1])[0]])
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch

__all__ = [
    "MultiplicativeWeights",
    "Response",
    "expected_deviation_utilities",
    "joint_index",
]

Tensor = torch.Tensor
Flavour = Literal["sampled", "exact"]
ResponseKind = Literal["last_mixed", "deterministic", "empirical_average"]

DEFAULT_EPSILON: dict[str, float] = {"sampled": 0.01, "exact": 0.1}
RESPONSE_KINDS: tuple[str, ...] = ("last_mixed", "deterministic", "empirical_average")


def _follower_shapes(
    n_types: Sequence[int], n_actions: Sequence[int], batch: object
) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Validated per-follower type and action counts, and a batch size >= 1."""
    types, actions = _counts(n_types, "n_types"), _counts(n_actions, "n_actions")
    if len(types) != len(actions):
        raise ValueError(
            f"expected one type count per follower, got {len(types)} type counts "
            f"and {len(actions)} action counts"
        )
    if isinstance(batch, bool) or not isinstance(batch, (int, np.integer)) or batch < 1:
        raise ValueError(f"expected batch as an int >= 1, got {batch!r}")
    return types, actions


def _counts(x: Any, name: str) -> tuple[int, ...]:
    """Validate a tuple of positive ints."""
    try:
        t = tuple(x)
    except TypeError:
        raise TypeError(f"expected {name} as a sequence of ints, got {type(x).__name__}") from None
    if not t or any(isinstance(k, bool) or not isinstance(k, (int, np.integer)) for k in t):
        raise TypeError(f"expected {name} as a non-empty sequence of ints, got {x!r}")
    if any(k < 1 for k in t):
        raise ValueError(f"expected {name} >= 1, got {t}")
    return tuple(int(k) for k in t)


def joint_index(actions: Tensor, n_actions: Sequence[int]) -> Tensor:
    """Mixed-radix index of joint actions, first follower most significant.

    Parameters
    ----------
    actions : Tensor of shape (..., n), int64
    n_actions : sequence of int
        ``A_i`` per follower.

    Returns
    -------
    Tensor of shape (...,), int64

    Examples
    --------
    >>> joint_index(torch.tensor([[1, 0], [1, 1]]), (2, 2)).tolist()
    [2, 3]
    """
    idx = torch.zeros(actions.shape[:-1], dtype=torch.int64, device=actions.device)
    for i, k in enumerate(n_actions):
        idx = idx * k + actions[..., i]
    return idx


def _all_joint(n_actions: Sequence[int], device: torch.device | None = None) -> Tensor:
    """Every joint action, shape (J, n), first follower most significant."""
    grids = torch.meshgrid(*[torch.arange(k, device=device) for k in n_actions], indexing="ij")
    return torch.stack([g.reshape(-1) for g in grids], dim=1)


def expected_deviation_utilities(
    utilities: Tensor, strategies: Sequence[Tensor], n_actions: Sequence[int]
) -> tuple[Tensor, ...]:
    """Exact expected utility of every own action against the others' mixed actions.

    ``U_i(a) = Σ_{a_{−i}} u_i(a, a_{−i}) Π_{j≠i} σ_j(a_j)`` (the exact MW flavour's kernel).

    Parameters
    ----------
    utilities : Tensor of shape (B, J, n)
        ``utilities[b, j, i]``: follower ``i``'s utility at joint action ``j``.
    strategies : sequence of n Tensor, each shape (B, A_i)
        Each follower's mixed action (for its current type).
    n_actions : sequence of int

    Returns
    -------
    tuple of n Tensor, each shape (B, A_i)

    Examples
    --------
    >>> u = torch.tensor([[[1.0, 0.0], [0.0, 2.0], [3.0, 0.0], [0.0, 4.0]]])
    >>> s = [torch.tensor([[0.5, 0.5]]), torch.tensor([[0.25, 0.75]])]
    >>> [x.tolist() for x in expected_deviation_utilities(u, s, (2, 2))]
    [[[0.25, 0.75]], [[0.0, 3.0]]]
    """
    B, n = utilities.shape[0], len(n_actions)
    out = []
    for i in range(n):
        x = utilities[..., i].reshape(B, *n_actions)
        for j in range(n):
            if j != i:
                shape = [B] + [1] * n
                shape[1 + j] = n_actions[j]
                x = x * strategies[j].reshape(shape)
        axes = [1 + j for j in range(n) if j != i]
        out.append(x.sum(dim=axes) if axes else x)
    return tuple(out)


@dataclass(frozen=True, eq=False)
class Response:
    """A batch of follower responses: finite mixtures of product strategies.

    The joint action distribution of row ``b`` given type profile ``t`` is
    ``P(a | t) = Σ_s w[b, s] Π_i σ_i[b, s, t_i, a_i]``.

    Parameters
    ----------
    strategies : tuple of n Tensor, each shape (B, S, T_i, A_i), float64
        Snapshot ``s`` of follower ``i``'s mixed strategy per own type (rows sum to 1).
    snapshot_weights : Tensor of shape (B, S), float64
        Probability of each snapshot index (sums to 1 per row).
    kind : str
        ``"last_mixed"``, ``"deterministic"``, ``"empirical_average"`` or ``"custom"``.

    Raises
    ------
    ValueError
        For inconsistent shapes, negative entries or rows that do not sum to 1.

    Examples
    --------
    >>> r = Response.pure([[0, 1, 1]], (2,))       # one follower, 3 types, 2 actions
    >>> r.joint_action_probs(torch.tensor([[0], [1], [2]]))[0].tolist()
    [[1.0, 0.0], [0.0, 1.0], [0.0, 1.0]]
    """

    strategies: tuple[Tensor, ...]
    snapshot_weights: Tensor
    kind: str = "custom"

    def __post_init__(self) -> None:
        if not self.strategies:
            raise ValueError("expected at least one follower strategy, got none")
        w = torch.as_tensor(self.snapshot_weights, dtype=torch.float64)
        if w.ndim != 2:
            raise ValueError(f"expected snapshot_weights of shape (B, S), got {tuple(w.shape)}")
        B, S = w.shape
        strategies = []
        for i, s in enumerate(self.strategies):
            s = torch.as_tensor(s, dtype=torch.float64)
            if s.ndim != 4 or s.shape[:2] != (B, S):
                raise ValueError(
                    f"expected strategies[{i}] of shape ({B}, {S}, T_i, A_i), got "
                    f"{tuple(s.shape)}"
                )
            if not bool(torch.isfinite(s).all()) or bool((s < 0).any()):
                raise ValueError(f"expected strategies[{i}] to be finite and >= 0")
            if not torch.allclose(s.sum(-1), torch.ones((), dtype=s.dtype), atol=1e-9):
                raise ValueError(f"expected rows of strategies[{i}] to sum to 1")
            strategies.append(s)
        if bool((w < 0).any()) or not torch.allclose(
            w.sum(-1), torch.ones((), dtype=w.dtype), atol=1e-9
        ):
            raise ValueError("expected snapshot_weights >= 0 summing to 1 per row")
        object.__setattr__(self, "strategies", tuple(strategies))
        object.__setattr__(self, "snapshot_weights", w)

    @property
    def batch_size(self) -> int:
        """Number of rows ``B``."""
        return int(self.snapshot_weights.shape[0])

    @property
    def n_types(self) -> tuple[int, ...]:
        """``T_i`` per follower."""
        return tuple(int(s.shape[2]) for s in self.strategies)

    @property
    def n_actions(self) -> tuple[int, ...]:
        """``A_i`` per follower."""
        return tuple(int(s.shape[3]) for s in self.strategies)

    def joint_action_probs(self, profiles: Tensor, exclude: int | None = None) -> Tensor:
        """Joint action distribution per type profile.

        Parameters
        ----------
        profiles : Tensor of shape (K, n), int64
            Type profiles.
        exclude : int, optional
            A follower whose factor is replaced by 1: the result is then
            ``Σ_s w_s Π_{l≠i} σ_l^s(a_l)``, the others' distribution (within the snapshot
            mixture) repeated over the excluded follower's actions; used for deviations.

        Returns
        -------
        Tensor of shape (B, K, J), float64
            ``P(joint action j | profile k)``, joint actions first follower most significant.
        """
        profiles = torch.as_tensor(profiles, dtype=torch.int64)
        n = len(self.strategies)
        if profiles.ndim != 2 or profiles.shape[1] != n:
            raise ValueError(f"expected profiles of shape (K, {n}), got {tuple(profiles.shape)}")
        B, S = self.snapshot_weights.shape
        K = profiles.shape[0]
        joint: Tensor | None = None
        for i, s in enumerate(self.strategies):
            si = s[:, :, profiles[:, i], :]  # (B, S, K, A_i)
            if i == exclude:
                si = torch.ones_like(si)
            joint = si if joint is None else (joint[..., None] * si[..., None, :]).reshape(
                B, S, K, -1
            )
        assert joint is not None  # n >= 1 is validated in __post_init__
        return torch.einsum("bs,bskj->bkj", self.snapshot_weights, joint)

    def row(self, b: int) -> Response:
        """The response of row ``b`` alone (batch size 1)."""
        return Response(
            tuple(s[b : b + 1] for s in self.strategies), self.snapshot_weights[b : b + 1],
            self.kind,
        )

    @classmethod
    def pure(cls, actions: Sequence[Any], n_actions: Sequence[int]) -> Response:
        """A deterministic response: one action per follower and type.

        Parameters
        ----------
        actions : sequence of n array_like, each shape (T_i,) or (B, T_i), int
            Action of follower ``i`` for each own type.
        n_actions : sequence of int
            ``A_i`` per follower.

        Returns
        -------
        Response
            ``kind="deterministic"``, one snapshot.
        """
        counts = _counts(n_actions, "n_actions")
        if len(actions) != len(counts):
            raise ValueError(f"expected actions of {len(counts)} followers, got {len(actions)}")
        strategies = []
        for i, (a, k) in enumerate(zip(actions, counts, strict=True)):
            t = a.detach().clone() if isinstance(a, Tensor) else torch.tensor(np.array(a))
            if t.dtype.is_floating_point or t.dtype == torch.bool or t.ndim not in (1, 2):
                raise TypeError(
                    f"expected actions[{i}] as ints of shape (T_i,) or (B, T_i), got "
                    f"{t.dtype} of shape {tuple(t.shape)}"
                )
            if bool(((t < 0) | (t >= k)).any()):
                raise ValueError(f"expected actions[{i}] in [0, {k}), got {t.tolist()}")
            t = t.reshape(-1, t.shape[-1]) if t.ndim == 2 else t[None]
            strategies.append(torch.nn.functional.one_hot(t, k).to(torch.float64)[:, None])
        return cls._stack(strategies, "deterministic")

    @classmethod
    def mixed(cls, probabilities: Sequence[Any]) -> Response:
        """A product response of mixed strategies.

        Parameters
        ----------
        probabilities : sequence of n array_like, each shape (T_i, A_i) or (B, T_i, A_i)

        Returns
        -------
        Response
            ``kind="last_mixed"``, one snapshot.
        """
        strategies = []
        for i, p in enumerate(probabilities):
            t = (
                p.detach().to(torch.float64).clone()
                if isinstance(p, Tensor)
                else torch.tensor(np.array(p, dtype=np.float64))
            )
            if t.ndim not in (2, 3):
                raise ValueError(
                    f"expected probabilities[{i}] of shape (T_i, A_i) or (B, T_i, A_i), got "
                    f"{tuple(t.shape)}"
                )
            strategies.append((t if t.ndim == 3 else t[None])[:, None])
        return cls._stack(strategies, "last_mixed")

    @classmethod
    def _stack(cls, strategies: list[Tensor], kind: str) -> Response:
        B = max(s.shape[0] for s in strategies)
        if any(s.shape[0] not in (1, B) for s in strategies):
            raise ValueError(
                f"expected one batch size (or 1) across followers, got "
                f"{[int(s.shape[0]) for s in strategies]}"
            )
        strategies = [s.expand(B, *s.shape[1:]).clone() for s in strategies]
        return cls(tuple(strategies), torch.ones(B, 1, dtype=torch.float64), kind)


class MultiplicativeWeights:
    """Batched multiplicative-weights followers (one independent learner set per row).

    Parameters
    ----------
    n_types : sequence of int
        ``T_i`` per follower (1 when a follower has no private type).
    n_actions : sequence of int
        ``A_i`` per follower.
    batch : int, default 1
        Number of independent rows ``B`` (leader episodes).
    flavour : {"exact", "sampled"}, default "exact"
        The update of the module docstring.
    epsilon : float, optional
        Learning rate; default 0.1 (exact) or 0.01 (sampled).
    record_history : bool, default True
        Keep the strategies after each update (needed for ``"empirical_average"``).
    device : torch.device, optional

    Attributes
    ----------
    log_weights : tuple of Tensor, each shape (B, T_i, A_i), float64
        Logarithms of the weights.
    n_updates : int
        :meth:`update` calls since the last full :meth:`reset`.
    row_updates : Tensor of shape (B,), int64
        Updates applied to each row since its last reset.

    Notes
    -----
    Rows may be reset (``reset(rows)``) and updated (``update(..., active=rows)``) separately,
    for environments whose rows leave the response phase at different times; the empirical
    average of a row only uses the snapshots of its own updates since its own reset.

    Raises
    ------
    TypeError, ValueError
        For malformed counts, an unknown flavour or a non-positive epsilon.
    """

    def __init__(
        self,
        n_types: Sequence[int],
        n_actions: Sequence[int],
        *,
        batch: int = 1,
        flavour: Flavour = "exact",
        epsilon: float | None = None,
        record_history: bool = True,
        device: torch.device | str | None = None,
    ) -> None:
        self.n_types, self.n_actions = _follower_shapes(n_types, n_actions, batch)
        if flavour not in DEFAULT_EPSILON:
            raise ValueError(f"expected flavour in {tuple(DEFAULT_EPSILON)}, got {flavour!r}")
        eps = DEFAULT_EPSILON[flavour] if epsilon is None else epsilon
        if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not (
            math.isfinite(eps) and eps > 0
        ):
            raise ValueError(f"expected epsilon > 0, got {epsilon!r}")
        self.batch = int(batch)
        self.flavour: Flavour = flavour
        self.epsilon = float(eps)
        self.record_history = bool(record_history)
        self.device = torch.device("cpu") if device is None else torch.device(device)
        self._log_step = math.log1p(self.epsilon)
        self._joint = _all_joint(self.n_actions, self.device)
        self.reset()

    # ------------------------------------------------------------------ state

    def reset(self, rows: Tensor | None = None) -> None:
        """Restart rows: uniform weights (``w = 1``, or ``1/A_i`` in the exact flavour).

        Parameters
        ----------
        rows : Tensor of shape (B,), bool, optional
            The rows to restart (default: all, which also clears the snapshot history).
        """
        fresh = tuple(
            torch.full(
                (self.batch, t, a),
                -math.log(a) if self.flavour == "exact" else 0.0,
                dtype=torch.float64,
                device=self.device,
            )
            for t, a in zip(self.n_types, self.n_actions, strict=True)
        )
        if rows is None:
            self.log_weights: tuple[Tensor, ...] = fresh
            self.n_updates = 0
            self.row_updates = torch.zeros(self.batch, dtype=torch.int64, device=self.device)
            # Snapshot buffers, grown by doubling: strategies (B, cap, T_i, A_i), active (B, cap).
            self._n_hist = 0
            self._hist: tuple[Tensor, ...] = tuple(
                torch.empty(self.batch, 0, t, a, dtype=torch.float64, device=self.device)
                for t, a in zip(self.n_types, self.n_actions, strict=True)
            )
            self._hist_active = torch.empty(self.batch, 0, dtype=torch.bool, device=self.device)
            self._start = torch.zeros(self.batch, dtype=torch.int64, device=self.device)
            self._reference: Tensor | None = None
            return
        mask = self._check_rows(rows)
        self.log_weights = tuple(
            torch.where(mask[:, None, None], f, lw)
            for f, lw in zip(fresh, self.log_weights, strict=True)
        )
        self.row_updates = torch.where(mask, 0, self.row_updates)
        self._start = torch.where(mask, self._n_hist, self._start)

    def _check_rows(self, rows: Tensor) -> Tensor:
        mask = torch.as_tensor(rows, device=self.device)
        if mask.shape != (self.batch,) or mask.dtype != torch.bool:
            raise ValueError(
                f"expected a row mask of shape ({self.batch},) bool, got {tuple(mask.shape)} "
                f"{mask.dtype}"
            )
        return mask

    @property
    def n_followers(self) -> int:
        """Number of followers ``n``."""
        return len(self.n_actions)

    @property
    def n_queries(self) -> int:
        """Games per iteration: ``Σ A_i`` (sampled) or ``Π A_i`` (exact)."""
        if self.flavour == "sampled":
            return sum(self.n_actions)
        return int(np.prod(self.n_actions))

    def strategies(self) -> tuple[Tensor, ...]:
        """Current mixed strategies (normalised weights), each (B, T_i, A_i)."""
        return tuple(torch.softmax(lw, dim=-1) for lw in self.log_weights)

    def weights(self) -> tuple[Tensor, ...]:
        """The weights as the authors' code stores them, each (B, T_i, A_i).

        Unnormalised ``(1 + ε)^{cumulative U}`` in the sampled flavour, probability rows in the
        exact flavour.
        """
        return tuple(torch.exp(lw) for lw in self.log_weights)

    def critic_features(self) -> Tensor:
        """Every weight, each follower's block divided by its largest weight.

        Returns
        -------
        Tensor of shape (B, Σ_i T_i A_i), float64, entries in (0, 1]
        """
        blocks = []
        for lw in self.log_weights:
            m = lw.reshape(self.batch, -1).max(dim=1).values
            blocks.append(torch.exp(lw.reshape(self.batch, -1) - m[:, None]))
        return torch.cat(blocks, dim=1)

    # ------------------------------------------------------------------ iteration

    def _check_types(self, types: Tensor) -> Tensor:
        types = torch.as_tensor(types, device=self.device)
        if types.shape != (self.batch, self.n_followers) or types.dtype != torch.int64:
            raise ValueError(
                f"expected types of shape ({self.batch}, {self.n_followers}) int64, got "
                f"{tuple(types.shape)} {types.dtype}"
            )
        hi = torch.tensor(self.n_types, device=self.device)
        if bool(((types < 0) | (types >= hi)).any()):
            raise ValueError(f"expected types in [0, {self.n_types}), got {types.tolist()}")
        return types

    def _own_rows(self, types: Tensor) -> tuple[Tensor, ...]:
        """Each follower's current strategy for its own type, each (B, A_i)."""
        rows = torch.arange(self.batch, device=self.device)
        return tuple(s[rows, types[:, i]] for i, s in enumerate(self.strategies()))

    def queries(self, types: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """The joint actions to play in this iteration.

        Parameters
        ----------
        types : Tensor of shape (B, n), int64
            The frozen type profile of each row.
        generator : torch.Generator, optional
            Draws the sampled flavour's reference joint action (required there).

        Returns
        -------
        Tensor of shape (B, Q, n), int64
            Sampled: for follower ``i`` in order and own action ``a``, the sampled joint
            action ``a^ref`` with ``a_i = a`` (``Q = Σ A_i``). Exact: every joint action, first
            follower most significant (``Q = Π A_i``).
        """
        types = self._check_types(types)
        if self.flavour == "exact":
            return self._joint.expand(self.batch, -1, -1).clone()
        if generator is None:
            raise ValueError("expected a torch.Generator for the sampled flavour, got None")
        own = self._own_rows(types)
        ref = torch.stack(
            [torch.multinomial(p, 1, generator=generator)[:, 0] for p in own], dim=1
        )  # (B, n)
        self._reference = ref
        out = []
        for i, k in enumerate(self.n_actions):
            q = ref[:, None, :].repeat(1, k, 1)
            q[:, :, i] = torch.arange(k, device=self.device)
            out.append(q)
        return torch.cat(out, dim=1)

    def update(self, types: Tensor, utilities: Tensor, active: Tensor | None = None) -> None:
        """Apply one MW iteration from the utilities of the queried games.

        Parameters
        ----------
        types : Tensor of shape (B, n), int64
            The frozen type profile (the one passed to :meth:`queries`).
        utilities : Tensor of shape (B, Q, n)
            ``utilities[b, q, i]``: follower ``i``'s utility in query ``q`` of row ``b``
            (see :meth:`queries`; in the sampled flavour only the deviating follower's entry
            is used).
        active : Tensor of shape (B,), bool, optional
            Rows to update (default: all); the others keep their weights and record no
            snapshot.

        Raises
        ------
        ValueError
            For wrong shapes, non-finite utilities, or a sampled update without queries.
        """
        types = self._check_types(types)
        u = torch.as_tensor(utilities, dtype=torch.float64, device=self.device)
        Q, n = self.n_queries, self.n_followers
        if u.shape != (self.batch, Q, n):
            raise ValueError(
                f"expected utilities of shape ({self.batch}, {Q}, {n}), got {tuple(u.shape)}"
            )
        if not bool(torch.isfinite(u).all()):
            raise ValueError("expected finite utilities, got NaN or inf")
        if self.flavour == "exact":
            U = expected_deviation_utilities(u, self._own_rows(types), self.n_actions)
        else:
            if self._reference is None:
                raise ValueError("expected queries() before update() in the sampled flavour")
            offsets = np.cumsum((0, *self.n_actions))
            U = tuple(u[:, offsets[i] : offsets[i + 1], i] for i in range(n))
            self._reference = None
        act = (
            torch.ones(self.batch, dtype=torch.bool, device=self.device)
            if active is None
            else self._check_rows(active)
        )
        rows = torch.arange(self.batch, device=self.device)
        new = []
        for i, lw in enumerate(self.log_weights):
            lw = lw.clone()
            old = lw[rows, types[:, i]]
            row = old + self._log_step * U[i]
            if self.flavour == "exact":
                row = row - torch.logsumexp(row, dim=-1, keepdim=True)
            lw[rows, types[:, i]] = torch.where(act[:, None], row, old)
            new.append(lw)
        self.log_weights = tuple(new)
        self.n_updates += 1
        self.row_updates = self.row_updates + act.to(torch.int64)
        if self.record_history:
            self._record(self.strategies(), act)

    def _record(self, strategies: tuple[Tensor, ...], active: Tensor) -> None:
        """Append one snapshot to the history buffers (amortised O(1))."""
        used, cap = self._n_hist, self._hist_active.shape[1]
        if used == cap:
            new = max(16, 2 * cap)
            self._hist = tuple(
                torch.cat([h, h.new_zeros(self.batch, new - cap, *h.shape[2:])], dim=1)
                for h in self._hist
            )
            self._hist_active = torch.cat(
                [self._hist_active, torch.zeros(self.batch, new - cap, dtype=torch.bool,
                                                device=self.device)],
                dim=1,
            )
        for h, st in zip(self._hist, strategies, strict=True):
            h[:, used] = st
        self._hist_active[:, used] = active
        self._n_hist = used + 1

    def update_from_table(
        self, follower: Tensor, profile: Tensor, generator: torch.Generator | None = None
    ) -> None:
        """One full iteration against a payoff table (queries answered by lookup).

        Parameters
        ----------
        follower : Tensor of shape (B, K, J, n)
            Follower utilities per (type profile, joint action); see
            :class:`bilevel.solvers.PayoffTable`.
        profile : Tensor of shape (B,), int64
            Index of the frozen type profile of each row (first follower most significant).
        generator : torch.Generator, optional
            Required by the sampled flavour.
        """
        profile = torch.as_tensor(profile, dtype=torch.int64, device=self.device)
        types = torch.stack(
            [
                (profile // int(np.prod(self.n_types[i + 1 :]))) % self.n_types[i]
                for i in range(self.n_followers)
            ],
            dim=1,
        )
        q = self.queries(types, generator)
        j = joint_index(q, self.n_actions)  # (B, Q)
        rows = torch.arange(self.batch, device=self.device)[:, None]
        self.update(types, follower[rows, profile[:, None], j])

    # ------------------------------------------------------------------ responses

    def response(self, kind: ResponseKind = "last_mixed") -> Response:
        """The followers' response after the updates so far.

        Parameters
        ----------
        kind : {"last_mixed", "deterministic", "empirical_average"}

        Returns
        -------
        Response

        Raises
        ------
        ValueError
            For an unknown kind, or ``"empirical_average"`` without recorded updates.
        """
        if kind == "last_mixed":
            return Response(
                tuple(s[:, None] for s in self.strategies()),
                torch.ones(self.batch, 1, dtype=torch.float64, device=self.device),
                kind,
            )
        if kind == "deterministic":
            strategies = tuple(
                torch.nn.functional.one_hot(lw.argmax(dim=-1), lw.shape[-1]).to(torch.float64)[
                    :, None
                ]
                for lw in self.log_weights
            )
            ones = torch.ones(self.batch, 1, dtype=torch.float64, device=self.device)
            return Response(strategies, ones, kind)
        if kind == "empirical_average":
            H = self._n_hist
            idx = torch.arange(H, device=self.device)
            # (B, H): snapshots of each row's own updates since its reset
            valid = self._hist_active[:, :H] & (idx >= self._start[:, None])
            counts = valid.sum(dim=1)
            if H == 0 or bool((counts == 0).any()):
                raise ValueError(
                    "expected at least one recorded update per row for 'empirical_average', "
                    "got none (record_history=False, no update yet, or a row just reset)"
                )
            S = int(counts.max())
            # Move each row's valid snapshots to the front (stable), keep the first S.
            order = torch.argsort((~valid).to(torch.int8), dim=1, stable=True)[:, :S]
            keep = torch.gather(valid, 1, order)  # (B, S)
            snaps: list[Tensor] = []
            for i in range(self.n_followers):
                hist = self._hist[i][:, :H]  # (B, H, T, A)
                g = hist[torch.arange(self.batch, device=self.device)[:, None], order]
                uniform = torch.full_like(g, 1.0 / g.shape[-1])
                snaps.append(torch.where(keep[..., None, None], g, uniform))
            w = keep.to(torch.float64) / counts[:, None].to(torch.float64)
            return Response(tuple(snaps), w, kind)
        raise ValueError(f"expected kind in {RESPONSE_KINDS}, got {kind!r}")
