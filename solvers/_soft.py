r"""Causal-entropy regularisation: soft Bellman (soft value iteration) inner solver.

A *different* regulariser from the occupancy entropy of the AMA paper (eq. 13): it maximises

.. math:: \sum_{s,a} c(s, a)\, x(s, a) + \alpha \sum_s d(s)\, H(\pi(\cdot \mid s)),

the discounted *causal* (policy) entropy, where ``d(s) = sum_a x(s, a)`` and
``x(s, a) = d(s) pi(a | s)``. Its solution is the soft-Bellman policy

.. math:: Q(s, a) = c(s, a) + \gamma \sum_{s'} P(s' \mid s, a) V(s'), \quad
          V(s) = \alpha \log \sum_a e^{Q(s, a) / \alpha}, \quad
          \pi(a \mid s) = e^{(Q(s, a) - V(s)) / \alpha}.

The occupancy entropy additionally rewards spreading mass over *states*
(``-sum d log d``), so the two programs have different solutions for the same α; both converge
to the LP optimum as α → 0. For layered MDPs the recursion is exact in one backward pass (one
step per layer); for discounted MDPs with cycles it is iterated to a fixed point (a
γ-contraction). Gradients come from torch autograd through the recursion (exact for layered
MDPs; for cyclic ones, through the iterations run, whose truncation error is below ``tol``).
"""

from __future__ import annotations

import numpy as np
import torch

from bilevel.models._mdp import TabularMDP
from bilevel.solvers._result import InnerSolution, InnerSolveError, Status

__all__ = ["SoftBellmanSolver"]


class SoftBellmanSolver:
    """Differentiable batched soft-Bellman solver (causal-entropy regulariser).

    Parameters
    ----------
    mdp : TabularMDP
    alpha : float
        Temperature α > 0.
    device : str, optional
        Torch device (default CPU).
    tol : float, default 1e-12
        Fixed-point tolerance of soft value iteration (cyclic MDPs only).
    max_iter : int, default 10000
        Iteration limit of soft value iteration (cyclic MDPs only).

    Examples
    --------
    >>> from bilevel.models import make_env
    >>> env = make_env("sales", n_agents=2, n_items=2)
    >>> c = torch.zeros(1, *env.mdp.shape, dtype=torch.float64)
    >>> x = SoftBellmanSolver(env.mdp, 0.1)(c)   # uniform policy when rewards are equal
    >>> round(float(x[0, 0, 0]), 6)
    0.333333
    """

    def __init__(
        self,
        mdp: TabularMDP,
        alpha: float,
        device: str | None = None,
        *,
        tol: float = 1e-12,
        max_iter: int = 10_000,
    ) -> None:
        if isinstance(alpha, bool) or not isinstance(alpha, (int, float)):
            raise TypeError(f"expected alpha as a float, got {type(alpha).__name__}")
        if not (np.isfinite(alpha) and alpha > 0):
            raise ValueError(f"expected alpha > 0 (finite), got {alpha!r}")
        self.mdp = mdp
        self.alpha = float(alpha)
        self.device = torch.device(device or "cpu")
        self.tol = tol
        self.max_iter = max_iter
        S, A = mdp.shape
        self.S, self.A = S, A
        self.gamma = mdp.gamma
        self.P = torch.tensor(mdp.dense_P(), device=self.device)  # (S, A, S)
        self.mu0 = torch.tensor(np.array(mdp.mu0), device=self.device)
        self.layers = None if mdp.layers is None else [
            torch.tensor(layer, device=self.device) for layer in mdp.layers
        ]

    def __call__(self, c: torch.Tensor) -> torch.Tensor:
        """Occupancy measure of the soft-Bellman policy, differentiable in ``c``.

        Parameters
        ----------
        c : Tensor of shape (B, S, A) or (S, A), float64

        Returns
        -------
        Tensor of shape (B, S, A) (or (S, A))

        Raises
        ------
        ValueError
            For a wrong shape or non-finite rewards.
        InnerSolveError
            If soft value iteration does not converge.
        """
        squeeze = c.dim() == 2
        if squeeze:
            c = c[None]
        if c.dim() != 3 or tuple(c.shape[1:]) != (self.S, self.A):
            raise ValueError(
                f"expected reward of shape (S, A) = ({self.S}, {self.A}) or (B, S, A), "
                f"got {tuple(c.shape)}"
            )
        if not bool(torch.isfinite(c).all()):
            raise ValueError("expected finite rewards, got NaN or inf")
        pi = self._policy(c)
        x = self._occupancy(pi)
        return x[0] if squeeze else x

    def _policy(self, c: torch.Tensor) -> torch.Tensor:
        B = c.shape[0]
        al, g = self.alpha, self.gamma
        if self.layers is not None:
            V = torch.zeros(B, self.S, dtype=c.dtype, device=c.device)
            Q = torch.empty_like(c)
            for layer in reversed(self.layers):
                ql = c[:, layer] + g * torch.einsum("lat,bt->bla", self.P[layer], V)
                Q = Q.index_copy(1, layer, ql)
                V = V.index_copy(1, layer, al * torch.logsumexp(ql / al, dim=2))
            return torch.softmax(Q / al, dim=2)
        V = torch.zeros(B, self.S, dtype=c.dtype, device=c.device)
        for _ in range(self.max_iter):
            Q = c + g * torch.einsum("sat,bt->bsa", self.P, V)
            V_new = al * torch.logsumexp(Q / al, dim=2)
            gap = float((V_new - V).detach().abs().max())
            V = V_new
            if gap <= self.tol * (1 - g):
                return torch.softmax(Q / al, dim=2)
        status = Status.MAX_STEPS_REACHED
        nan = np.full(B, np.nan)
        raise InnerSolveError(
            InnerSolution(status, nan, nan, None, None, statuses=(status,) * B, nit=self.max_iter)
        )

    def _occupancy(self, pi: torch.Tensor) -> torch.Tensor:
        B = pi.shape[0]
        g = self.gamma
        if self.layers is not None:
            d = self.mu0.expand(B, self.S).clone()
            x = torch.zeros_like(pi)
            for layer in self.layers:
                xl = d[:, layer, None] * pi[:, layer]
                x = x.index_copy(1, layer, xl)
                d = d + g * torch.einsum("bla,lat->bt", xl, self.P[layer])
            return x
        P_pi = torch.einsum("bsa,sat->bst", pi, self.P)
        eye = torch.eye(self.S, dtype=pi.dtype, device=pi.device)
        d = torch.linalg.solve(eye - g * P_pi.transpose(1, 2), self.mu0.expand(B, self.S))
        occ: torch.Tensor = d[..., None] * pi
        return occ
