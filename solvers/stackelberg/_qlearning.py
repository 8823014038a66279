"""Tabular Q-learning followers, an alternative to multiplicative weights.

Brero et al., *Stackelberg POMDP*, §3, name multi-agent Q-learning among the response algorithms
the framework accommodates; the update, α, β and the one-shot target follow the authors' code.

Each follower ``i`` keeps a table ``Q_i[t_i, a]`` per own type and action, batched over ``B``
independent rows (leader episodes). In every game each follower picks an action for its type
ε-greedily with ``ε_t = exp(−β t)`` (``t`` = games played since the last reset), observes its
utility ``u_i`` and updates the taken entry

``Q_i[t_i, a_i] ← Q_i[t_i, a_i] + α (u_i − Q_i[t_i, a_i])``

(α = 0.15, β = 1e−5 by default). A game is one-shot for a follower, so the bootstrapped
next-state term is 0 and the authors' discount 0.95 plays no role; it is not a parameter.
The response is the argmax of ``Q`` per type (first index on ties). The critic features are the
Q-tables, each follower's block divided by its largest ``|Q|``, followed by ``ε_t``.

Examples
--------
One follower, one type, two actions paying 1 and 0: after enough games action 0 wins.

>>> ql = QLearningFollowers((1,), (2,), beta=0.05)
>>> gen = torch.Generator().manual_seed(0)
>>> types = torch.zeros(1, 1, dtype=torch.int64)
>>> for _ in range(200):
...     a = ql.act(types, gen)
...     ql.update(types, a, (a == 0).to(torch.float64))
>>> ql.response().strategies[0][0, 0].tolist()
[[1.0, 0.0]]
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from bilevel.solvers.stackelberg._no_regret import Response, _follower_shapes

__all__ = ["QLearningFollowers"]

Tensor = torch.Tensor


class QLearningFollowers:
    """Batched tabular ε-greedy Q-learning followers (one-shot games).

    Parameters
    ----------
    n_types, n_actions : sequence of int
        ``T_i`` and ``A_i`` per follower.
    batch : int, default 1
        Independent rows ``B``.
    alpha : float, default 0.15
        Learning rate in (0, 1].
    beta : float, default 1e-5
        Exploration decay: ``ε_t = exp(−β t)``.
    device : torch.device, optional

    Attributes
    ----------
    q : tuple of Tensor, each shape (B, T_i, A_i), float64
        The Q-tables (zeros after :meth:`reset`).
    n_games : int
        Games played since the last reset.

    Raises
    ------
    TypeError, ValueError
        For malformed counts or out-of-range ``alpha``/``beta``.
    """

    def __init__(
        self,
        n_types: Sequence[int],
        n_actions: Sequence[int],
        *,
        batch: int = 1,
        alpha: float = 0.15,
        beta: float = 1e-5,
        device: torch.device | str | None = None,
    ) -> None:
        self.n_types, self.n_actions = _follower_shapes(n_types, n_actions, batch)
        if not (isinstance(alpha, (int, float)) and 0 < alpha <= 1):
            raise ValueError(f"expected alpha in (0, 1], got {alpha!r}")
        if not (isinstance(beta, (int, float)) and math.isfinite(beta) and beta >= 0):
            raise ValueError(f"expected beta >= 0, got {beta!r}")
        self.batch = int(batch)
        self.alpha = float(alpha)
        self.beta = float(beta)
        self.device = torch.device("cpu") if device is None else torch.device(device)
        self.reset()

    def reset(self) -> None:
        """Zero every Q-table and the game counter."""
        self.q: tuple[Tensor, ...] = tuple(
            torch.zeros(self.batch, t, a, dtype=torch.float64, device=self.device)
            for t, a in zip(self.n_types, self.n_actions, strict=True)
        )
        self.n_games = 0

    @property
    def exploration_rate(self) -> float:
        """``ε_t = exp(−β t)``."""
        return math.exp(-self.beta * self.n_games)

    def _check(self, x: Tensor, name: str, hi: Sequence[int]) -> Tensor:
        x = torch.as_tensor(x, device=self.device)
        n = len(self.n_actions)
        if x.shape != (self.batch, n) or x.dtype != torch.int64:
            raise ValueError(
                f"expected {name} of shape ({self.batch}, {n}) int64, got {tuple(x.shape)} "
                f"{x.dtype}"
            )
        if bool(((x < 0) | (x >= torch.tensor(list(hi), device=self.device))).any()):
            raise ValueError(f"expected {name} in [0, {tuple(hi)}), got {x.tolist()}")
        return x

    def act(self, types: Tensor, generator: torch.Generator) -> Tensor:
        """ε-greedy actions for the rows' current types.

        Parameters
        ----------
        types : Tensor of shape (B, n), int64
        generator : torch.Generator

        Returns
        -------
        Tensor of shape (B, n), int64
        """
        types = self._check(types, "types", self.n_types)
        rows = torch.arange(self.batch, device=self.device)
        eps = self.exploration_rate
        out = []
        for i, q in enumerate(self.q):
            greedy = q[rows, types[:, i]].argmax(dim=-1)
            explore = torch.rand(self.batch, generator=generator, dtype=torch.float64) < eps
            rand = torch.randint(self.n_actions[i], (self.batch,), generator=generator)
            out.append(torch.where(explore.to(self.device), rand.to(self.device), greedy))
        return torch.stack(out, dim=1)

    def update(self, types: Tensor, actions: Tensor, utilities: Tensor) -> None:
        """Update the taken entries from one game per row.

        Parameters
        ----------
        types, actions : Tensor of shape (B, n), int64
        utilities : Tensor of shape (B, n)
            Each follower's utility in the game.

        Raises
        ------
        ValueError
            For wrong shapes or non-finite utilities.
        """
        types = self._check(types, "types", self.n_types)
        actions = self._check(actions, "actions", self.n_actions)
        u = torch.as_tensor(utilities, dtype=torch.float64, device=self.device)
        if u.shape != (self.batch, len(self.n_actions)):
            raise ValueError(
                f"expected utilities of shape ({self.batch}, {len(self.n_actions)}), got "
                f"{tuple(u.shape)}"
            )
        if not bool(torch.isfinite(u).all()):
            raise ValueError("expected finite utilities, got NaN or inf")
        rows = torch.arange(self.batch, device=self.device)
        new = []
        for i, q in enumerate(self.q):
            q = q.clone()
            old = q[rows, types[:, i], actions[:, i]]
            q[rows, types[:, i], actions[:, i]] = old + self.alpha * (u[:, i] - old)
            new.append(q)
        self.q = tuple(new)
        self.n_games += 1

    def response(self) -> Response:
        """Argmax of the Q-tables per type (deterministic; first index on ties)."""
        strategies = tuple(
            torch.nn.functional.one_hot(q.argmax(dim=-1), q.shape[-1]).to(torch.float64)[:, None]
            for q in self.q
        )
        ones = torch.ones(self.batch, 1, dtype=torch.float64, device=self.device)
        return Response(strategies, ones, "deterministic")

    def critic_features(self) -> Tensor:
        """Normalised Q-tables and the exploration rate, shape (B, Σ_i T_i A_i + 1)."""
        blocks = []
        for q in self.q:
            flat = q.reshape(self.batch, -1)
            scale = flat.abs().max(dim=1, keepdim=True).values
            blocks.append(flat / torch.where(scale > 0, scale, torch.ones_like(scale)))
        eps = torch.full((self.batch, 1), self.exploration_rate, dtype=torch.float64,
                         device=self.device)
        return torch.cat([*blocks, eps], dim=1)
