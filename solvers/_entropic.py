r"""Fast entropy-regularised inner solver: batched Newton on the smooth dual, implicit gradients.

The program
-----------
For a tabular MDP with flow matrix :math:`M \in \mathbb{R}^{S \times SA}`
(``M[s', (s, a)] = [s = s'] - \gamma P(s' \mid s, a)``, see
:meth:`bilevel.models.TabularMDP.flow_matrix`), initial distribution :math:`\mu_0`, reward
:math:`c \in \mathbb{R}^{S \times A}` and temperature :math:`\alpha > 0`, solve

.. math::

    \max_{x \ge 0} \; \sum_{s,a} c(s,a)\,x(s,a) - \alpha \sum_{s,a} x(s,a) \log x(s,a)
    \quad \text{s.t.} \quad M x = \mu_0 ,

the entropy-regularised occupancy-measure program of Curry et al. (2024), Appendix E, eq. (13),
with an entropy *bonus* :math:`+\alpha H(x)`, :math:`H = -\sum x\log x`, as in the authors'
code. Eq. (13) prints "+ α Σ ν log ν" inside the max, which would maximise a convex function;
the paper calls the program convex with a smooth solution map (§4, "Regularized linear
program"), which only the bonus sign gives, so we read the printed sign as a slip. The
objective is strictly concave, so the maximiser is unique.

The dual
--------
With multipliers :math:`v \in \mathbb{R}^S` on the flow constraints the dual is the smooth,
strictly convex (on these MDPs) function

.. math::

    D(v) = \mu_0^\top v + \alpha \sum_{s,a} \exp z(s,a), \qquad
    z = (c - M^\top v)/\alpha - 1 ,

with :math:`\nabla D = \mu_0 - M x`, :math:`\nabla^2 D = \alpha^{-1} M\,\mathrm{diag}(x)\,M^\top`
and primal :math:`x = \exp z > 0`. Strong duality gives ``fun`` :math:`= D(v^*)`. We minimise
:math:`D` by batched Newton steps with an Armijo backtracking line search (the decrease
:math:`D(v + t\,d) - D(v)` is computed with ``expm1`` so that it stays accurate as the steps
shrink; trial points with a logit above 700 are rejected so that nothing overflows); the
linear systems are solved by Cholesky after a symmetric (Jacobi) diagonal scaling, which keeps
the graded Hessians of small temperatures well conditioned. Iterations stop when the flow
residual :math:`\max |M x - \mu_0| \le \mathrm{tol}\cdot\max(1, \max|\mu_0|)`.

Newton on :math:`D` shrinks an overestimated :math:`x` by at most a factor :math:`e` per unit
step, so the line search also *extends* full steps while :math:`D` decreases. On acyclic MDPs
whose states are all reachable, the step is instead a Newton step on the scale-free equations
:math:`\log \sum_a x(s,a) = \log(\mu_0(s) + \gamma \sum P(s \mid \cdot) x)` (same solution;
the Jacobian rows are weighted averages of columns of :math:`M`, so occupancies spanning
hundreds of orders of magnitude at small :math:`\alpha` do not slow it down), backtracked on
the squared log residual, with the dual step as fallback. Typical counts: 2–6 iterations on the
layered environments, up to ~20 on the discounted gridworld, for :math:`\alpha \in [10^{-3}, 1]`.

Warm start
----------
At the optimum, :math:`\sum_a x(s,a) = d(s)` (the state occupancy), so
:math:`v(s) = \alpha \log\sum_a \exp(q(s,a)/\alpha - 1) - \alpha \log d(s)` with
:math:`q = c + \gamma P v`: a soft Bellman equation offset by the state entropy (this is why
plain soft value iteration, which has :math:`d \equiv 1`, is not the solution).
The warm start alternates this equation (one backward pass over the topological layers for
acyclic MDPs; soft policy iteration, a handful of batched linear solves, for discounted MDPs
with cycles) with the forward computation of :math:`d` under the implied softmax policy
(``warm_rounds`` rounds; the default 0, plain soft Bellman values, works best with the
log-domain Newton step, since the fixed-point iteration on :math:`d` can oscillate between
actions). On cyclic MDPs the default then subtracts :math:`\alpha \log d` of the soft-greedy
policy once, without re-solving: on the discounted gridworld this start and the policy
iteration together make a solve 2.0-2.4x faster than soft value iteration to convergence.

Trees
-----
When every state has either ``mu0 > 0`` and no parent, or ``mu0 = 0`` and a single parent pair
:math:`(s, a)`, and the relative subtree mass :math:`N(s) = 1 + \gamma \sum_{s'} P(s' \mid s,
a) N(s')` does not depend on :math:`a` (e.g. the sales and scheduling trees), the program
decomposes: a subtree entered with occupancy :math:`d` is worth
:math:`d\,W(s) - \alpha N(s)\, d \log d`, the optimal policy is a softmax of
:math:`Q = c + \kappa + \gamma P W` at temperature :math:`\alpha N(s)`,
:math:`W = \alpha N \log\sum_a \exp(Q/(\alpha N))`, and :math:`v = W - \alpha N (1 + \log d)`.
One backward and one forward pass give the exact optimum; the flow residual is still checked
(with the exact product :math:`M x`) and Newton takes over if it fails. The backward pass
differentiates this closed form (same VJP as below, no linear solve).

Gradients
---------
:meth:`EntropicSolver.__call__` is differentiable. Implicit differentiation of
:math:`x = \exp((c - M^\top v)/\alpha - 1)`, :math:`M x = \mu_0` gives the vector–Jacobian
product, for an upstream gradient :math:`g = \partial L/\partial x`,

.. math::

    \frac{\partial L}{\partial c}
    = \frac{1}{\alpha}\Big(X g - X M^\top (M X M^\top)^{-1} M X g\Big),
    \qquad X = \mathrm{diag}(x).

Outside trees, a set of states no two of which share a column of :math:`M` (e.g. the exit
layer of a deterministic layered MDP) has a diagonal block in :math:`M X M^\top`; it is
eliminated first and only the Schur complement on the other states is factorised.

References
----------
M. Curry, V. Thoma, D. Chakrabarti, S. McAleer, C. Kroer, T. Sandholm, N. He, S. Seuken.
"Automated design of affine maximizer mechanisms in dynamic settings", AAAI 2024 (see also
``docs/references.md``).
"""

from __future__ import annotations

import functools
import math
import time
from typing import Any, NamedTuple, cast

import numpy as np
import torch
from numpy.typing import ArrayLike

from bilevel.models._mdp import TabularMDP
from bilevel.solvers._dp import check_reward
from bilevel.solvers._result import InnerSolution, InnerSolveError, Status, worst_status

__all__ = ["EntropicSolver", "available_devices", "check_device", "solve_entropic"]

_ZMAX = 700.0  # largest logit ever exponentiated (exp(709.8) overflows float64)
_ARMIJO = 1e-4
_MAX_SOFT_PI = 50  # soft policy iterations of the warm start (typically 5-10)
_MAX_HALVINGS = 60
_MAX_LOG_HALVINGS = 30
_MAX_DOUBLINGS = 20
_RIDGES = (1e-14, 1e-10, 1e-6)  # tried in turn on the Jacobi-scaled Hessian


def available_devices() -> list[str]:
    """Torch device types usable in this process (``"cpu"`` always)."""
    out = ["cpu"]
    if torch.cuda.is_available():
        out += [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        out.append("mps")
    return out


def check_device(device: object) -> torch.device:
    """``device`` as a torch device, if it exists here; a one-line ``ValueError`` otherwise.

    Examples
    --------
    >>> check_device("cpu")
    device(type='cpu')
    """
    avail = available_devices()
    expected = f"expected a torch device available here ({', '.join(avail)})"
    if not isinstance(device, (str, torch.device)):
        raise ValueError(f"{expected}, got {device!r}")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise ValueError(f"{expected}, got {str(device)!r} (not a torch device name)") from None
    if dev.type == "cpu":
        return dev
    if dev.type == "cuda":
        if not torch.backends.cuda.is_built():  # type: ignore[no-untyped-call]
            raise ValueError(f"{expected}, got {str(device)!r} (torch was built without CUDA)")
        if not torch.cuda.is_available():
            raise ValueError(f"{expected}, got {str(device)!r} (no CUDA device is visible)")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(f"{expected}, got {str(device)!r} (no such CUDA device)")
        return dev
    if dev.type == "mps" and "mps" in avail:
        return dev
    raise ValueError(f"{expected}, got {str(device)!r} (not available in this torch build)")


def _check_alpha(alpha: object) -> float:
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float, np.floating, np.integer)):
        raise TypeError(f"expected alpha as a float, got {type(alpha).__name__}")
    a = float(alpha)
    if not (math.isfinite(a) and a > 0.0):
        raise ValueError(f"expected alpha > 0 (finite), got {alpha!r}")
    return a


def _reachable(mdp: TabularMDP) -> np.ndarray[Any, np.dtype[np.bool_]]:
    """States reachable from the support of ``mu0`` (boolean mask of shape (S,))."""
    A = mdp.n_actions
    adj = (mdp.P.tocsr() > 0).astype(np.int64)
    seen = np.asarray(mdp.mu0) > 0
    frontier = seen.copy()
    while frontier.any():
        rows = (np.flatnonzero(frontier)[:, None] * A + np.arange(A)).ravel()
        nxt = np.asarray(adj[rows].sum(axis=0)).ravel() > 0
        frontier = nxt & ~seen
        seen |= nxt
    return seen


class _Tree(NamedTuple):
    """Tables of the closed-form solution on tree MDPs (:meth:`EntropicSolver._build_tree`)."""

    kappa: torch.Tensor  # (S*A,) entropy terms log(gamma P) of the children, per pair
    H: torch.Tensor  # (S*A, S): H[(p, a), t] = 1 if (p, a) is on the path root -> t
    HT: torch.Tensor  # H^T, contiguous
    const: torch.Tensor  # (S,) log mu0(root) + sum of log(gamma P) along the path
    T: torch.Tensor  # (S, 1) effective temperatures alpha N(s)
    # per layer, leaves first: (state index, pair index, P[rows]^T or None, T (L, 1))
    layers: list[
        tuple[slice | torch.Tensor, slice | torch.Tensor, torch.Tensor | None, torch.Tensor]
    ]


def _as_index(
    idx: np.ndarray[Any, np.dtype[np.int64]], device: torch.device
) -> slice | torch.Tensor:
    """A slice if ``idx`` is a contiguous increasing range (views instead of gathers)."""
    if len(idx) and bool(np.array_equal(idx, np.arange(idx[0], idx[0] + len(idx)))):
        return slice(int(idx[0]), int(idx[0]) + len(idx))
    return torch.as_tensor(idx, device=device)


def _where(mask: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``torch.where`` with a (B,) mask broadcast over the trailing dimensions."""
    return torch.where(mask.view(-1, *([1] * (a.ndim - 1))), a, b)


class EntropicSolver:
    """Batched Newton solver of the entropy-regularised occupancy program on one MDP.

    Built once per ``(mdp, alpha, device)``; holds the dense flow matrix and transition array
    on ``device`` in float64. :meth:`solve` returns the primal and dual solutions of a batch of
    rewards; calling the solver returns the occupancy measures differentiably (implicit VJP).

    Parameters
    ----------
    mdp : TabularMDP
        The MDP structure (dense storage is O(S² A); intended for S up to a few thousand).
    alpha : float
        Temperature α > 0 of the entropy bonus.
    device : str or torch.device, optional
        Torch device (default CPU).
    tol : float, default 1e-10
        Stopping tolerance on ``max |M x - mu0|`` (relative to ``max(1, max |mu0|)``).
    max_iter : int, default 100
        Newton iteration limit.
    warm_rounds : int, default 0
        Rounds of state-occupancy correction in the warm start (0: plain soft Bellman values).

    Raises
    ------
    ValueError
        If ``alpha`` is not a finite float > 0, or ``tol``/``max_iter`` are out of range.

    Examples
    --------
    >>> import torch
    >>> from bilevel.models import make_env
    >>> env = make_env("sales", n_agents=2, n_items=2)
    >>> solver = EntropicSolver(env.mdp, alpha=0.1)
    >>> c = torch.zeros((1, *env.mdp.shape), dtype=torch.float64)
    >>> x, v, nit, converged = solver.solve(c)
    >>> bool(converged.all()), round(float(x.sum()), 9)  # two decision epochs
    (True, 2.0)
    """

    def __init__(
        self,
        mdp: TabularMDP,
        alpha: float,
        device: str | torch.device | None = None,
        *,
        tol: float = 1e-10,
        max_iter: int = 100,
        warm_rounds: int = 0,
    ) -> None:
        self.mdp = mdp
        self.alpha = _check_alpha(alpha)
        if not (math.isfinite(tol) and tol > 0):
            raise ValueError(f"expected tol > 0, got {tol!r}")
        if int(max_iter) < 0:
            raise ValueError(f"expected max_iter >= 0, got {max_iter!r}")
        self.tol = float(tol)
        self.max_iter = int(max_iter)
        self.warm_rounds = int(warm_rounds)
        self.device = check_device("cpu" if device is None else device)
        S, A = mdp.shape
        self.S, self.A, self.gamma = S, A, float(mdp.gamma)
        dt = torch.float64
        self.M = torch.as_tensor(mdp.flow_matrix().toarray(), dtype=dt, device=self.device)
        self.P = torch.as_tensor(mdp.P.toarray(), dtype=dt, device=self.device)  # (S*A, S)
        self.P3 = self.P.reshape(S, A, S)
        self.mu0 = torch.tensor(np.array(mdp.mu0), dtype=dt, device=self.device)
        self._thr_scale = max(1.0, float(np.abs(mdp.mu0).max()))
        succ = mdp.successor
        # deterministic MDPs: P^T X P is diagonal (the inflow), no S x S x SA product needed
        self._succ = (
            None if succ is None else torch.as_tensor(np.array(succ).ravel(), device=self.device)
        )
        self._M3 = self.M.reshape(S, S, A)
        self._MT = self.M.T.contiguous()
        # Newton on the log flow equations needs every state reachable (log inflow > -inf);
        # it is used for acyclic MDPs, where it converges in a few steps from the warm start.
        # Cyclic MDPs (and MDPs with unreachable states) use Newton on the dual directly.
        self._log_newton = mdp.layers is not None and bool(_reachable(mdp).all())
        self._eye = torch.eye(S, dtype=dt, device=self.device)
        if self._log_newton:
            self._build_log_tables(mdp)
        self._layers: list[tuple[torch.Tensor, torch.Tensor]] | None = None
        self._layer_PT: list[torch.Tensor] = []  # P[rows]^T per layer (warm start)
        if mdp.layers is not None:
            self._layers = [
                (
                    torch.as_tensor(layer, device=self.device),
                    torch.as_tensor(
                        (layer[:, None] * A + np.arange(A)).ravel(), device=self.device
                    ),
                )
                for layer in mdp.layers
            ]
            self._layer_PT = [self.P[rows].T.contiguous() for _, rows in self._layers]
        self._tree = self._build_tree(mdp) if self._log_newton else None
        self._schur = self._build_schur(mdp)

    def _build_tree(self, mdp: TabularMDP) -> _Tree | None:
        """Tables of the closed-form solution on tree MDPs (see :meth:`_tree_start`), or None.

        Applies when every state either has ``mu0 > 0`` and no parent pair, or ``mu0 = 0`` and
        exactly one parent pair ``(s, a)`` with ``P(. | s, a) > 0``, and the relative subtree
        mass ``N(s) = 1 + gamma sum_s' P(s' | s, a) N(s')`` does not depend on ``a``. Then the
        subtree value is ``d W(s) - alpha N(s) d log d`` for a state occupancy ``d``, the policy
        is a softmax at temperature ``alpha N(s)`` and one backward and one forward pass give
        the exact optimum.
        """
        assert mdp.layers is not None
        S, A, g = self.S, self.A, self.gamma
        mu0 = np.asarray(mdp.mu0, dtype=np.float64)
        if not g > 0.0 or bool((mu0 < 0).any()):
            return None
        PT = mdp.P.T.tocsr()
        PT.sum_duplicates()
        PT.eliminate_zeros()
        if bool((PT.data < 0).any()):
            return None
        parent = np.full(S, -1, dtype=np.int64)
        for t in range(S):
            lo, hi = PT.indptr[t], PT.indptr[t + 1]
            if mu0[t] > 0:
                if hi > lo:
                    return None
            elif hi - lo != 1:
                return None
            else:
                parent[t] = PT.indices[lo]
        P = mdp.P.toarray()  # (S*A, S)
        P3 = P.reshape(S, A, S)
        N = np.zeros(S)
        for layer in reversed(mdp.layers):
            Na = 1.0 + g * (P3[layer] @ N)  # (L, A)
            if not np.allclose(Na, Na[:, :1], rtol=1e-13, atol=0.0):
                return None
            N[layer] = Na[:, 0]
        with np.errstate(divide="ignore"):
            lgP = np.where(P > 0, np.log(g * np.where(P > 0, P, 1.0)), 0.0)
        kappa = -self.alpha * g * ((P * lgP) @ N)  # (S*A,)
        H = np.zeros((S * A, S))  # H[(p, a), t] = 1 if (p, a) is on the path root -> t
        const = np.zeros(S)  # log mu0(root) + sum of log(gamma P) along the path
        for t in range(S):
            u, hops = t, 0
            while parent[u] >= 0:
                pa = int(parent[u])
                H[pa, t] = 1.0
                const[t] += math.log(g * P[pa, u])
                u = pa // A
                hops += 1
                if hops > S:  # a cycle: not a tree
                    return None
            const[t] += math.log(mu0[u])
        dt, dev = torch.float64, self.device
        T = torch.as_tensor(self.alpha * N, dtype=dt, device=dev)[:, None]
        layers = []
        for layer in reversed(mdp.layers):
            layer = np.asarray(layer, dtype=np.int64)
            rows = (layer[:, None] * A + np.arange(A)).ravel()
            PrT = torch.as_tensor(P[rows].T, dtype=dt, device=dev).contiguous()
            layers.append(
                (
                    _as_index(layer, dev),
                    _as_index(rows, dev),
                    PrT if bool(PrT.any()) else None,
                    T[torch.as_tensor(layer, device=dev)].contiguous(),
                )
            )
        Ht = torch.as_tensor(H, dtype=dt, device=dev)
        return _Tree(
            kappa=torch.as_tensor(kappa, dtype=dt, device=dev),
            H=Ht,
            HT=Ht.T.contiguous(),
            const=torch.as_tensor(const, dtype=dt, device=dev),
            T=T,
            layers=layers,
        )

    def _build_schur(self, mdp: TabularMDP) -> tuple[torch.Tensor, ...] | None:
        """Split of the states for block elimination in ``M X M^T`` (backward), or None.

        A set ``I`` of states no two of which share a column of ``M`` (greedy independent set
        of the pattern graph of ``M M^T``, low degrees first) has a diagonal block of
        ``M X M^T`` for every ``x``; eliminating it leaves a Schur complement on the other
        states ``R`` (on trees: the inner layer(s) only). Used when ``I`` covers at least a
        quarter of the states. Returns ``(M_R, M_I, M_I**2, [M_R; M_I])``.
        """
        S = self.S
        pat = abs(mdp.flow_matrix()).tocsr()
        pat.data[:] = 1.0
        adj = (pat @ pat.T).tocsr()
        deg = np.diff(adj.indptr)
        picked = np.zeros(S, dtype=bool)
        blocked = np.zeros(S, dtype=bool)
        for t in np.argsort(deg, kind="stable"):
            if blocked[t]:
                continue
            picked[t] = True
            blocked[adj.indices[adj.indptr[t] : adj.indptr[t + 1]]] = True
        I_idx, R_idx = np.flatnonzero(picked), np.flatnonzero(~picked)
        if len(R_idx) == 0 or 4 * len(I_idx) < S:
            return None
        MR = self.M[torch.as_tensor(R_idx, device=self.device)].contiguous()
        MI = self.M[torch.as_tensor(I_idx, device=self.device)]
        Mp = torch.cat([MR, MI]).contiguous()
        return MR, (MI * MI).T.contiguous(), Mp, Mp.T.contiguous()

    def _implicit_vjp(self, xf: torch.Tensor, gf: torch.Tensor) -> torch.Tensor:
        """``(X g - X M^T (M X M^T)^-1 M X g) / alpha`` for x, g of shape (B, S*A)."""
        if self._tree is not None and bool((xf.amin(dim=1) >= 1e-280).all()):
            return self._tree_vjp(xf, gf)
        xg = xf * gf
        k_I = None if self._schur is None else xf @ self._schur[1]  # diagonal of K_II, (B, I)
        if self._schur is None or k_I is None or not bool((k_I.amin(dim=1) >= 1e-280).all()):
            u = self._spd_solve(self._gram(xf), self._flow(xg))  # (M X M^T)^-1 M X g
            return (xg - xf * (u @ self.M)) / self.alpha
        # block elimination of the diagonal block I of K = M X M^T (states permuted to [R, I])
        MR, _, Mp, MpT = self._schur
        nR = MR.shape[0]
        Y = (xf[:, None, :] * MR) @ MpT  # (B, R, S) = [K_RR, K_RI]
        K_RR, K_RI = Y[:, :, :nR], Y[:, :, nR:]
        b = xg @ MpT  # M X g, permuted
        b_R, b_I = b[:, :nR], b[:, nR:]
        K_RI_s = K_RI / k_I[:, None, :]
        schur = K_RR - K_RI_s @ K_RI.transpose(1, 2)
        u_R = self._spd_solve(schur, b_R - (K_RI_s @ b_I.unsqueeze(2)).squeeze(2))
        u_I = (b_I - (u_R.unsqueeze(1) @ K_RI).squeeze(1)) / k_I
        u = torch.cat([u_R, u_I], dim=1)
        return (xg - xf * (u @ Mp)) / self.alpha

    def _build_log_tables(self, mdp: TabularMDP) -> None:
        """Tables of the log-domain flow equations (see :meth:`_log_parts`).

        The inflow of state ``s`` is a log-sum-exp over its *parents*: the pairs ``(s', a)``
        with ``P(s | s', a) > 0`` plus a pseudo-column (index ``S*A``, logit 0) carrying
        ``log mu0(s)``. With in-degree at most ``D - 1`` these are gathered into (S, D) index
        and log-weight tables (padding: index ``S*A``, weight ``-inf``); the Jacobian rows are
        gathered likewise into ``R`` of shape (S, A + D, S). Large in-degrees use dense
        (S, S*A + 1) tables instead.
        """
        S, A, g, dt, dev = self.S, self.A, self.gamma, torch.float64, self.device
        SA = S * A
        PT = mdp.P.T.tocsr()  # (S, S*A): row s lists the parents of s
        PT.sum_duplicates()
        PT.eliminate_zeros()
        indeg = np.diff(PT.indptr)
        D = int(indeg.max(initial=0)) + 1
        mu0 = np.asarray(mdp.mu0, dtype=np.float64)
        MT = self.M.T  # (S*A, S)
        MT_ext = torch.cat([MT, torch.zeros(1, S, dtype=dt, device=dev)])  # (S*A + 1, S)
        self._MT_ext = MT_ext
        # z_ext = [c/alpha - 1, 0] + v @ negM  (negM = -[M, 0] / alpha)
        self._negM = -MT_ext.T / self.alpha
        with np.errstate(divide="ignore"):
            log_mu0 = np.log(mu0)
            self._sparse_in = D <= 2 * A + 2
            if self._sparse_in:
                par = np.full((S, D), SA, dtype=np.int64)
                lw = np.full((S, D), -np.inf)
                lw[:, 0] = log_mu0
                for t in range(S):
                    lo, hi = PT.indptr[t], PT.indptr[t + 1]
                    par[t, 1 : 1 + hi - lo] = PT.indices[lo:hi]
                    lw[t, 1 : 1 + hi - lo] = np.log(g * PT.data[lo:hi])
                self._par = torch.as_tensor(par, device=dev)
                self._lw = torch.as_tensor(lw, dtype=dt, device=dev)
                # J[b, s] = sum_a pi[b,s,a] M^T[(s,a)] - sum_d W[b,s,d] M^T_ext[par[s,d]]
                self._R = torch.cat(
                    [MT.reshape(S, A, S), -MT_ext[self._par.reshape(-1)].reshape(S, D, S)], dim=1
                ).contiguous()
            else:
                lw = np.concatenate([np.log(g * PT.toarray()), log_mu0[:, None]], axis=1)
                self._lw = torch.as_tensor(lw, dtype=dt, device=dev)  # (S, S*A + 1)

    def __repr__(self) -> str:
        return f"EntropicSolver({self.mdp!r}, alpha={self.alpha}, device={str(self.device)!r})"

    # ------------------------------------------------------------------ public API

    def solve(
        self, c: torch.Tensor, *, tol: float | None = None, max_iter: int | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, int, torch.Tensor]:
        """Solve a batch of programs (no autograd).

        Parameters
        ----------
        c : torch.Tensor of shape (B, S, A)
            Rewards (converted to float64 on the solver's device).
        tol, max_iter : optional
            Override the solver's defaults.

        Returns
        -------
        x : torch.Tensor of shape (B, S, A)
            Occupancy measures ``exp((c - M^T v)/alpha - 1)`` (NaN for non-finite rewards).
        v : torch.Tensor of shape (B, S)
            Dual variables (state values including the entropy offset).
        nit : int
            Number of batched Newton iterations performed.
        converged : torch.Tensor of shape (B,) of bool
            Whether each problem met the flow tolerance.
        """
        if c.ndim != 3 or tuple(c.shape[1:]) != (self.S, self.A):
            raise ValueError(
                f"expected c of shape (B, S, A) = (B, {self.S}, {self.A}), got {tuple(c.shape)}"
            )
        tol = self.tol if tol is None else float(tol)
        max_iter = self.max_iter if max_iter is None else int(max_iter)
        with torch.no_grad():
            cf = c.detach().to(device=self.device, dtype=torch.float64).reshape(c.shape[0], -1)
            finite = torch.isfinite(cf).all(dim=1)
            all_finite = bool(finite.all())
            if not all_finite:
                cf = torch.where(finite[:, None], cf, torch.zeros_like(cf))
            if self._tree is not None:
                v, x, nit, conv = self._solve_tree(cf, tol * self._thr_scale, max_iter)
            else:
                v = self._warm_start(cf)
                v, x, nit, conv = self._newton(cf, v, tol * self._thr_scale, max_iter)
            if all_finite:
                return x.reshape(c.shape[0], self.S, self.A), v, nit, conv
            nan = torch.full_like(x, math.nan)
            x = torch.where(finite[:, None], x, nan)
            v = torch.where(finite[:, None], v, torch.full_like(v, math.nan))
            conv = conv & finite
        return x.reshape(c.shape[0], self.S, self.A), v, nit, conv

    def __call__(self, c: torch.Tensor) -> torch.Tensor:
        """Differentiable occupancy measures ``x(c)``.

        Parameters
        ----------
        c : torch.Tensor of shape (B, S, A) or (S, A)

        Returns
        -------
        torch.Tensor of the same shape, float64
            The optimal occupancy measures; ``backward`` applies the implicit VJP (module
            docstring, "Gradients").

        Raises
        ------
        InnerSolveError
            If some problem of the batch does not converge.
        """
        squeeze = c.ndim == 2
        cb = c.unsqueeze(0) if squeeze else c
        cb = cb.to(device=self.device, dtype=torch.float64)
        x = cast(torch.Tensor, _EntropicFunction.apply(cb, self))  # type: ignore[no-untyped-call]
        return x.squeeze(0) if squeeze else x

    def objective(self, c: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Regularised objective ``sum(c x) - alpha sum(x log x)`` of shape (B,)."""
        cx = (c * x).sum(dim=(-2, -1))
        out: torch.Tensor = cx - self.alpha * torch.special.xlogy(x, x).sum(dim=(-2, -1))
        return out

    # ------------------------------------------------------------------ linear algebra

    def _flow(self, x: torch.Tensor) -> torch.Tensor:
        """``M x`` for x of shape (B, S*A) → (B, S)."""
        return x @ self._MT

    def _gram(self, x: torch.Tensor) -> torch.Tensor:
        """``M diag(x) M^T`` of shape (B, S, S) for x of shape (B, S*A)."""
        B, S, A, g = x.shape[0], self.S, self.A, self.gamma
        x3 = x.reshape(B, S, A)
        Y = torch.einsum("bsa,sat->bst", x3, self.P3)  # sum_a x(s,a) P(t|s,a)
        K = -g * (Y + Y.transpose(1, 2))
        diag = x3.sum(dim=2)
        if self._succ is not None:
            inflow = torch.zeros(B, S + 1, dtype=x.dtype, device=x.device)
            inflow.index_add_(1, self._succ, x)
            diag = diag + g * g * inflow[:, :S]
        else:
            K = K + g * g * torch.einsum("nt,bn,nu->btu", self.P, x, self.P)
        K.diagonal(dim1=1, dim2=2).add_(diag)
        return K

    @staticmethod
    def _spd_solve(K: torch.Tensor, rhs: torch.Tensor) -> torch.Tensor:
        """Solve ``K y = rhs`` for SPD K (B, S, S) by Jacobi-scaled Cholesky with a tiny ridge."""
        d = K.diagonal(dim1=1, dim2=2)
        floor = 1e-300 + 1e-30 * d.amax(dim=1, keepdim=True)
        s = d.clamp_min(0).maximum(floor).rsqrt()
        Ks = K * s[:, :, None] * s[:, None, :]
        eye = torch.eye(K.shape[1], dtype=K.dtype, device=K.device)
        rs = (rhs * s).unsqueeze(-1)
        L, info = torch.linalg.cholesky_ex(Ks + _RIDGES[0] * eye)
        if not bool(info.any()):  # common case: every item factorised with the smallest ridge
            return torch.cholesky_solve(rs, L).squeeze(-1) * s
        L = torch.empty_like(Ks)
        todo = torch.ones(K.shape[0], dtype=torch.bool, device=K.device)
        for ridge in _RIDGES:
            Lr, info = torch.linalg.cholesky_ex(Ks[todo] + ridge * eye)
            L[todo] = Lr
            idx = todo.nonzero().squeeze(1)
            todo[idx[info == 0]] = False
            if not todo.any():
                break
        y = torch.cholesky_solve((rhs * s).unsqueeze(-1), L).squeeze(-1)
        if todo.any():  # hopelessly singular: least squares (leaves NaN/inf visible if any)
            y[todo] = torch.linalg.lstsq(Ks[todo], (rhs * s)[todo].unsqueeze(-1)).solution[..., 0]
        out: torch.Tensor = y * s
        return out

    # ------------------------------------------------------------------ warm start

    def _soft_backup(self, cf: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """``q = c + gamma P v`` of shape (B, S*A)."""
        return cf + self.gamma * (v @ self.P.T)

    def _warm_start(self, cf: torch.Tensor) -> torch.Tensor:
        """Soft Bellman values offset by ``-alpha log d`` (module docstring), shape (B, S)."""
        B, S, A, al = cf.shape[0], self.S, self.A, self.alpha
        logd = torch.zeros(B, S, dtype=cf.dtype, device=cf.device)
        v = torch.zeros(B, S, dtype=cf.dtype, device=cf.device)
        # cyclic MDPs without correction rounds still take one cheap correction below
        correct = self._layers is None and self.warm_rounds == 0
        for rnd in range(self.warm_rounds + 1):
            if self._layers is not None:
                q = torch.empty_like(cf)
                for (states, rows), PrT in zip(
                    reversed(self._layers), reversed(self._layer_PT), strict=True
                ):
                    qL = torch.addmm(cf[:, rows], v, PrT, alpha=self.gamma)
                    q[:, rows] = qL
                    lse = torch.logsumexp(qL.view(B, -1, A) / al, dim=2) - 1.0
                    v[:, states] = al * (lse - logd[:, states])
            else:
                v = self._soft_policy_iteration(cf, v, logd)
                q = self._soft_backup(cf, v)
            if rnd == self.warm_rounds and not correct:
                break
            pi = torch.softmax(q.reshape(B, S, A) / al, dim=2)
            d = self._state_occupancy(pi)
            logd = torch.log(d.clamp_min(1e-300))
            if rnd == self.warm_rounds:
                # the dual is the soft value offset by -alpha log d (module docstring): offset
                # by the occupancy of the soft-greedy policy without re-solving, which cuts
                # the Newton iterations that follow on the discounted gridworld by ~25 %
                v = v - al * logd
        return v

    def _soft_policy_iteration(
        self, cf: torch.Tensor, v: torch.Tensor, logd: torch.Tensor
    ) -> torch.Tensor:
        """Solve ``v = alpha (logsumexp(q / alpha - 1) - log d)``, ``q = c + gamma P v`` (B, S).

        Soft policy iteration (Newton's method on this soft Bellman equation): evaluate the
        softmax policy of ``q`` exactly by one batched linear solve, repeat; it converges
        in a handful of iterations (soft value iteration, a gamma-contraction, needs hundreds
        at gamma = 0.9). ``I - gamma P_pi`` is invertible for the gamma < 1 that cyclic MDPs
        require; should a solve still fail or overflow, the whole batch falls back to value
        iteration.
        """
        B, S, A, al, g = cf.shape[0], self.S, self.A, self.alpha, self.gamma
        c3 = cf.reshape(B, S, A)
        for _ in range(_MAX_SOFT_PI):
            q = self._soft_backup(cf, v).reshape(B, S, A)
            logpi = torch.log_softmax(q / al, dim=2)
            pi = logpi.exp()
            r = (pi * (c3 - al * logpi - al)).sum(dim=2) - al * logd
            Ppi = torch.einsum("bsa,sat->bst", pi, self.P3)
            v_new, info = torch.linalg.solve_ex(self._eye - g * Ppi, r)
            bad = (info != 0) | ~torch.isfinite(v_new).all(dim=1)
            if bool(bad.any()):
                return self._soft_value_iteration(cf, v, logd)
            delta = float((v_new - v).abs().max()) if B else 0.0
            v = v_new
            if delta <= 1e-9 * al:
                break
        return v

    def _soft_value_iteration(
        self, cf: torch.Tensor, v: torch.Tensor, logd: torch.Tensor
    ) -> torch.Tensor:
        """The fixed point of :meth:`_soft_policy_iteration` by value iteration (B, S)."""
        B, S, A, al = cf.shape[0], self.S, self.A, self.alpha
        for _ in range(1000):
            q = self._soft_backup(cf, v)
            lse = torch.logsumexp(q.reshape(B, S, A) / al - 1.0, dim=2)
            v_new = al * (lse - logd)
            delta = float((v_new - v).abs().max()) if B else 0.0
            v = v_new
            if delta <= 1e-9 * al:
                break
        return v

    def _tree_start(self, cf: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Exact duals and log-occupancies on tree MDPs (see :meth:`_build_tree`).

        Backward over the layers: ``Q = c + kappa + gamma P W``, ``W(s) = T(s) logsumexp(Q/T)``
        with ``T = alpha N`` (``kappa`` collects the ``log(gamma P)`` terms of the children's
        entropy), ``log pi = Q/T - W/T``; forward (one product with the path matrix ``H``):
        ``log d = const + log pi H``; then ``v = W - T (1 + log d)``, the derivative of the
        subtree value in ``d``, and ``log x(s, a) = log d(s) + log pi(a | s)``. Returns
        ``(v, log x)`` of shapes (B, S) and (B, S*A).
        """
        tree = self._tree
        assert tree is not None
        B, S, A = cf.shape[0], self.S, self.A
        base = cf + tree.kappa
        W = torch.zeros(B, S, dtype=cf.dtype, device=cf.device)
        logpi = torch.empty_like(cf)
        for states, rows, PrT, TL in tree.layers:
            Q = (
                base[:, rows]
                if PrT is None
                else torch.addmm(base[:, rows], W, PrT, alpha=self.gamma)
            )
            Qs = Q.view(B, -1, A) / TL
            m = Qs.amax(dim=2, keepdim=True)
            lse = torch.log(torch.exp(Qs - m).sum(dim=2, keepdim=True)).add_(m)  # (B, L, 1)
            W[:, states] = (lse * TL).squeeze(2)
            logpi[:, rows] = (Qs - lse).view(B, -1)
        logd = torch.addmm(tree.const, logpi, tree.H)
        v = W - tree.T.squeeze(1) * (1.0 + logd)
        logx = (logpi.view(B, S, A) + logd.unsqueeze(2)).view(B, -1)
        return v, logx

    def _solve_tree(
        self, cf: torch.Tensor, thr: float, max_iter: int
    ) -> tuple[torch.Tensor, torch.Tensor, int, torch.Tensor]:
        """Closed-form solution, checked on the flow residual; Newton only if that fails."""
        v, logx = self._tree_start(cf)
        x = torch.exp(logx)
        r = torch.addmm(self.mu0, x, self._MT, alpha=-1.0)
        conv = r.abs().amax(dim=1) <= thr
        if bool(conv.all()):
            return v, x, 0, conv
        return self._newton(cf, v, thr, max_iter)

    def _tree_vjp(self, xf: torch.Tensor, gf: torch.Tensor) -> torch.Tensor:
        """VJP of the closed form of :meth:`_tree_start` (equal to the implicit VJP).

        With ``Gamma(s, a)`` the sum of ``x g`` over the subtree of ``(s, a)`` (itself included)
        and ``l(s, a) = (Gamma(s, a)/x(s, a) - sum_b Gamma(s, b)/d(s)) / T(s)`` (the adjoint of
        ``log pi``, divided by x), ``dL/dc = x (l + sum_{p on the path root -> s} l(p))``.
        Needs ``x > 0`` (the caller checks it).
        """
        tree = self._tree
        assert tree is not None
        B, S, A = xf.shape[0], self.S, self.A
        x3 = xf.view(B, S, A)
        xg = xf * gf
        below = (xg.view(B, S, A).sum(dim=2) @ tree.HT).view(B, S, A)  # strictly below (s, a)
        rel = below / x3 + gf.view(B, S, A)  # Gamma / x
        d = x3.sum(dim=2, keepdim=True)
        lox = (rel - (rel * x3).sum(dim=2, keepdim=True) / d) / tree.T  # (B, S, A)
        acc = lox.view(B, -1) @ tree.H  # (B, S): sum over the path root -> s
        out: torch.Tensor = (x3 * (lox + acc.unsqueeze(2))).view(B, -1)
        return out

    def _state_occupancy(self, pi: torch.Tensor) -> torch.Tensor:
        """Discounted state occupancy of stochastic policies ``pi`` (B, S, A) → (B, S)."""
        B, S = pi.shape[:2]
        if self._layers is not None:
            inflow = self.mu0.expand(B, S).clone()
            d = torch.empty_like(inflow)
            for states, rows in self._layers:
                d[:, states] = inflow[:, states]
                xL = (inflow[:, states, None] * pi[:, states, :]).reshape(B, -1)
                inflow = inflow + self.gamma * (xL @ self.P[rows])
            return d
        Ppi = torch.einsum("bsa,sat->bst", pi, self.P3)
        eye = torch.eye(S, dtype=pi.dtype, device=pi.device)
        lhs = eye - self.gamma * Ppi.transpose(1, 2)
        occ: torch.Tensor = torch.linalg.solve(lhs, self.mu0.expand(B, S))
        return occ

    # ------------------------------------------------------------------ Newton

    def _logits(self, cf: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return (cf - v @ self.M) / self.alpha - 1.0

    def _newton(
        self, cf: torch.Tensor, v: torch.Tensor, thr: float, max_iter: int
    ) -> tuple[torch.Tensor, torch.Tensor, int, torch.Tensor]:
        if self._log_newton:
            return self._newton_log(cf, v, thr, max_iter)
        z = self._logits(cf, v)
        usable = torch.isfinite(z).all(dim=1) & (z.amax(dim=1) <= _ZMAX)
        z = torch.where(usable[:, None], z, torch.zeros_like(z))
        x = torch.exp(z)
        r = self.mu0 - self._flow(x)  # gradient of D
        conv = usable & (r.abs().amax(dim=1) <= thr)
        active = usable & ~conv
        nit = 0
        B = cf.shape[0]
        while nit < max_iter:
            n_active = int(active.sum())
            if n_active == 0:
                break
            nit += 1
            if n_active == B:  # common early on: the whole batch, no gathering
                dv, t, moved = self._dual_step(z, x, r)
                v = v + torch.where(moved, t, torch.zeros_like(t))[:, None] * dv
                z = self._logits(cf, v)
                x = torch.exp(z)
                r = self.mu0 - self._flow(x)
                conv = r.abs().amax(dim=1) <= thr
                active = ~conv & moved & torch.isfinite(r).all(dim=1)
                continue
            idx = active.nonzero().squeeze(1)
            ca, va, za, xa, ra = cf[idx], v[idx], z[idx], x[idx], r[idx]
            dv, t, moved = self._dual_step(za, xa, ra)
            t = torch.where(moved, t, torch.zeros_like(t))
            v[idx] = va + t[:, None] * dv
            z[idx] = self._logits(ca, v[idx])
            x[idx] = torch.exp(z[idx])
            r[idx] = self.mu0 - self._flow(x[idx])
            done = r[idx].abs().amax(dim=1) <= thr
            conv[idx] = done
            # stalled items (no acceptable step, e.g. at rounding level) stop here
            active[idx] = ~done & moved & torch.isfinite(r[idx]).all(dim=1)
        return v, x, nit, conv

    # ------------------------------------------------------------------ log-domain Newton

    def _log_parts(self, ca: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Log-domain flow quantities at duals ``v`` (B, S).

        ``ca`` (B, S*A + 1) holds ``[c/alpha - 1, 0]``. Returns ``(z, eo, so, ei, si, G)``:
        the extended logits z (B, S*A + 1) (last column 0: the ``mu0`` pseudo-parent), the
        shifted exponentials of the outflow ``eo`` (B, S, A) and of the inflow terms ``ei``
        (B, S, D) with their sums, and the residual ``G = log outflow - log inflow`` (B, S).
        """
        B, S, A = v.shape[0], self.S, self.A
        z = torch.addmm(ca, v, self._negM)
        zs = z[:, : S * A].view(B, S, A)
        mo = zs.amax(dim=2, keepdim=True)
        eo = torch.exp(zs - mo)
        so = eo.sum(dim=2)
        zin = z[:, self._par] + self._lw if self._sparse_in else z[:, None, :] + self._lw
        mi = zin.amax(dim=2, keepdim=True)
        ei = torch.exp(zin - mi)
        si = ei.sum(dim=2)
        G = (mo - mi).squeeze(2) + torch.log(so / si)
        return z, eo, so, ei, si, G

    def _log_jacobian(
        self, eo: torch.Tensor, so: torch.Tensor, ei: torch.Tensor, si: torch.Tensor
    ) -> torch.Tensor:
        """``-alpha dG/dv`` (B, S, S): rows are averages of columns of M (policy, inflow shares)."""
        pi = eo / so[..., None]
        W = ei / si[..., None]
        if self._sparse_in:
            Q = torch.cat([pi, W], dim=2).transpose(0, 1)  # (S, B, A + D)
            return torch.bmm(Q, self._R).transpose(0, 1)
        S, A = self.S, self.A
        out: torch.Tensor = (
            torch.einsum("bsa,sau->bsu", pi, self.M.T.reshape(S, A, S)) - W @ self._MT_ext
        )
        return out

    @staticmethod
    def _log_accept(
        trial: tuple[torch.Tensor, ...], ok: torch.Tensor, m0: torch.Tensor, t: torch.Tensor
    ) -> torch.Tensor:
        G1 = trial[5]
        m1 = (G1 * G1).sum(dim=1)
        fine = trial[0].amax(dim=1) <= _ZMAX
        out: torch.Tensor = ok & fine & torch.isfinite(m1) & (m1 <= (1.0 - 2e-4 * t) * m0)
        return out

    def _log_step(
        self, ca: torch.Tensor, v: torch.Tensor, st: tuple[torch.Tensor, ...]
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, ...], torch.Tensor]:
        """Newton step on ``log(outflow) = log(mu0 + gamma inflow)`` (scale-free equations).

        The Jacobian rows are averages of columns of ``M`` (weights: the softmax policy for
        the outflow, the inflow shares for the inflow), hence well scaled whatever the
        magnitudes of x; backtracking on the merit ``|G|^2``. Items without an acceptable
        step take a dual Newton step instead. Returns the new duals, their
        :meth:`_log_parts` and whether each item moved.
        """
        al, SA = self.alpha, self.S * self.A
        z, eo, so, ei, si, G = st
        J = self._log_jacobian(eo, so, ei, si)
        dv, info = torch.linalg.solve_ex(J, al * G)
        m0 = (G * G).sum(dim=1)
        ok = (info == 0) & torch.isfinite(dv).all(dim=1)
        dv = torch.where(ok[:, None], dv, torch.zeros_like(dv))
        t = torch.ones_like(m0)
        vt = v + dv
        trial = self._log_parts(ca, vt)
        accepted = self._log_accept(trial, ok, m0, t)
        if not bool((accepted | ~ok).all()):  # backtrack (rare)
            for _ in range(_MAX_LOG_HALVINGS - 1):
                t = torch.where(accepted, t, 0.5 * t)
                v2 = v + t[:, None] * dv
                tr2 = self._log_parts(ca, v2)
                new = ~accepted & self._log_accept(tr2, ok, m0, t)
                trial = tuple(_where(new, a, b) for a, b in zip(tr2, trial, strict=True))
                vt = _where(new, v2, vt)
                accepted |= new
                if bool((accepted | ~ok).all()):
                    break
        if not bool(accepted.all()):  # fallback: dual Newton step
            rest = (~accepted).nonzero().squeeze(1)
            zr = z[rest, :SA]
            xr = torch.exp(zr)
            dv2, t2, ok2 = self._dual_step(zr, xr, self.mu0 - self._flow(xr))
            v2 = v[rest] + torch.where(ok2, t2, torch.zeros_like(t2))[:, None] * dv2
            tr2 = self._log_parts(ca[rest], v2)
            vt = vt.index_put((rest,), v2)
            trial = tuple(a.index_put((rest,), b) for a, b in zip(trial, tr2, strict=True))
            accepted = accepted.index_put((rest,), ok2)
        return vt, trial, accepted

    def _newton_log(
        self, cf: torch.Tensor, v: torch.Tensor, thr: float, max_iter: int
    ) -> tuple[torch.Tensor, torch.Tensor, int, torch.Tensor]:
        """Newton on the log flow equations (acyclic MDPs with all states reachable)."""
        B, SA = cf.shape[0], self.S * self.A
        ca = torch.zeros(B, SA + 1, dtype=cf.dtype, device=cf.device)
        torch.sub(cf / self.alpha, 1.0, out=ca[:, :SA])
        st = self._log_parts(ca, v)
        z = st[0][:, :SA]
        usable = torch.isfinite(z).all(dim=1) & (z.amax(dim=1) <= _ZMAX)
        x = torch.where(usable[:, None], torch.exp(z), torch.ones_like(z))
        r = torch.addmm(self.mu0, x, self._MT, alpha=-1.0)
        conv = usable & (r.abs().amax(dim=1) <= thr)
        active = usable & ~conv
        nit = 0
        while nit < max_iter:
            n_active = int(active.sum())
            if n_active == 0:
                break
            nit += 1
            if n_active == B:  # common case: the whole batch, no gathering
                v, st, moved = self._log_step(ca, v, st)
                x = torch.exp(st[0][:, :SA])
                r = torch.addmm(self.mu0, x, self._MT, alpha=-1.0)
                conv = r.abs().amax(dim=1) <= thr
                active = ~conv & moved & torch.isfinite(r).all(dim=1)
                continue
            idx = active.nonzero().squeeze(1)
            va, sta, moved = self._log_step(ca[idx], v[idx], tuple(a[idx] for a in st))
            xa = torch.exp(sta[0][:, :SA])
            ra = torch.addmm(self.mu0, xa, self._MT, alpha=-1.0)
            done = ra.abs().amax(dim=1) <= thr
            v[idx], x[idx], conv[idx] = va, xa, done
            for a, b in zip(st, sta, strict=True):
                a[idx] = b
            active[idx] = ~done & moved & torch.isfinite(ra).all(dim=1)
        return v, x, nit, conv

    def _dual_step(
        self, z: torch.Tensor, x: torch.Tensor, r: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Newton step on the dual D with Armijo backtracking, extended while D decreases."""
        al = self.alpha
        dv = -self._spd_solve(self._gram(x), al * r)  # Hessian = K / alpha
        dz = -(dv @ self.M) / al
        slope = (r * dv).sum(dim=1)  # directional derivative, < 0
        mu_dv = dv @ self.mu0
        # largest step keeping every logit <= _ZMAX
        room = torch.where(dz > 0, (_ZMAX - z) / dz, torch.full_like(dz, math.inf)).amin(dim=1)

        def decrease(t: torch.Tensor) -> torch.Tensor:
            # D(v + t dv) - D(v), accurate for small steps: alpha * x * expm1(t dz)
            tdz = t[:, None] * dz
            term = torch.where(
                tdz < 1.0, x * torch.expm1(tdz.clamp(max=1.0)), torch.exp(z + tdz) - x
            )
            out: torch.Tensor = t * mu_dv + al * term.sum(dim=1)
            return torch.where(t <= room, out, torch.full_like(out, math.inf))

        t = room.clamp(max=1.0)
        accepted = torch.zeros_like(slope, dtype=torch.bool)
        diff = torch.zeros_like(slope)
        for _ in range(_MAX_HALVINGS):
            d_t = decrease(t)
            ok = ~accepted & torch.isfinite(d_t) & (d_t <= _ARMIJO * t * slope)
            diff = torch.where(ok, d_t, diff)
            accepted |= ok
            if bool(accepted.all()):
                break
            t = torch.where(accepted, t, 0.5 * t)
        # Newton on exp() shrinks an overestimated x by at most a factor e per unit step:
        # extend full steps while D keeps decreasing (cheap, and it removes that slow phase)
        grow = accepted & (t == 1.0)
        for _ in range(_MAX_DOUBLINGS):
            if not bool(grow.any()):
                break
            d2 = decrease(2.0 * t)
            better = grow & torch.isfinite(d2) & (d2 < diff)
            t = torch.where(better, 2.0 * t, t)
            diff = torch.where(better, d2, diff)
            grow = better
        return dv, t, accepted


class _EntropicFunction(torch.autograd.Function):
    """``c (B, S, A) -> x (B, S, A)`` with the implicit-function VJP of the module docstring."""

    @staticmethod
    def forward(ctx: Any, c: torch.Tensor, solver: EntropicSolver) -> torch.Tensor:
        x, v, nit, conv = solver.solve(c)
        if not bool(conv.all()):
            raise InnerSolveError(_result(solver, c.detach(), x, v, nit, conv, 0.0))
        ctx.solver = solver
        ctx.save_for_backward(x)
        return x

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, g: torch.Tensor) -> tuple[torch.Tensor, None]:
        solver: EntropicSolver = ctx.solver
        (x,) = ctx.saved_tensors
        B = x.shape[0]
        grad = solver._implicit_vjp(x.reshape(B, -1), g.reshape(B, -1).to(x))
        return grad.reshape(x.shape), None


# ---------------------------------------------------------------------- numpy front door


@functools.lru_cache(maxsize=16)
def _cached_solver(mdp: TabularMDP, alpha: float, device: str) -> EntropicSolver:
    return EntropicSolver(mdp, alpha, device=device)


def _result(
    solver: EntropicSolver,
    c: torch.Tensor,
    x: torch.Tensor,
    v: torch.Tensor,
    nit: int,
    conv: torch.Tensor,
    start: float,
) -> InnerSolution:
    fun = solver.objective(c, x).cpu().numpy()
    value = (c * x).sum(dim=(-2, -1)).cpu().numpy()
    finite = torch.isfinite(x).all(dim=(1, 2)).cpu().numpy() & np.isfinite(fun)
    statuses = tuple(
        Status.OPTIMAL if ok else Status.MAX_STEPS_REACHED if fin else Status.NONFINITE
        for ok, fin in zip(conv.cpu().numpy(), finite, strict=True)
    )
    resid = (solver.mu0 - solver._flow(x.reshape(x.shape[0], -1))).abs()
    max_resid = float(resid.max()) if resid.numel() else 0.0
    return InnerSolution(
        status=worst_status(statuses),
        fun=fun,
        value=value,
        policy=None,
        occupancy=x.cpu().numpy(),
        state_values=v.cpu().numpy(),
        statuses=statuses,
        nit=nit,
        stats={
            "wall_time": time.perf_counter() - start if start else 0.0,
            "max_flow_residual": max_resid,
            "alpha": solver.alpha,
        },
    )


def solve_entropic(
    mdp: TabularMDP,
    reward: ArrayLike,
    alpha: float,
    *,
    tol: float = 1e-10,
    max_iter: int = 100,
    throw: bool = True,
    device: str | None = None,
) -> InnerSolution:
    """Solve a batch of entropy-regularised occupancy programs (numpy in, numpy out).

    Parameters
    ----------
    mdp : TabularMDP
        The MDP structure.
    reward : array_like of shape (S, A) or (K, S, A)
        Reward arrays c (for an AMA: ``sum_i w_i r_i + b``).
    alpha : float
        Temperature α > 0 of the entropy bonus ``-alpha * sum(x log x)``.
    tol : float, default 1e-10
        Tolerance on the flow residual ``max |M x - mu0|``.
    max_iter : int, default 100
        Newton iteration limit.
    throw : bool, default True
        Raise :class:`InnerSolveError` if a problem is not solved; with ``False`` the result
        carries per-problem statuses (``MAX_STEPS_REACHED``, ``NONFINITE``).
    device : str, optional
        Torch device for the computation (default CPU).

    Returns
    -------
    InnerSolution
        ``fun`` (K,): regularised optimum ``sum(c x) - alpha sum(x log x)``; ``value`` (K,):
        ``sum(c x)``; ``occupancy`` (K, S, A); ``state_values`` (K, S): the duals v;
        ``policy`` None (the solution is stochastic).

    Raises
    ------
    ValueError
        If ``alpha`` is not a finite float > 0 or ``reward`` has the wrong shape or non-finite
        entries.
    InnerSolveError
        If ``throw`` and some problem did not converge.

    Examples
    --------
    >>> import numpy as np
    >>> from bilevel.models import make_env
    >>> env = make_env("sales", n_agents=3, n_items=2)
    >>> c = env.rewards(np.array([[0.9, 0.5, 0.2]])).sum(axis=1)
    >>> sol = solve_entropic(env.mdp, c, alpha=1e-3)
    >>> sol.success, round(float(sol.value[0]), 3)   # close to the LP optimum 1.4
    (True, 1.4)
    """
    start = time.perf_counter()
    a = _check_alpha(alpha)
    c_np = check_reward(mdp, reward)
    solver = _cached_solver(mdp, a, str(torch.device("cpu" if device is None else device)))
    c = torch.as_tensor(c_np, dtype=torch.float64, device=solver.device)
    x, v, nit, conv = solver.solve(c, tol=tol, max_iter=max_iter)
    result = _result(solver, c, x, v, nit, conv, start)
    if throw and not result.success:
        raise InnerSolveError(result)
    return result
