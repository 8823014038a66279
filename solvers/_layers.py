r"""Reference entropy-regularised inner solver: a cvxpylayers layer with an exact backward.

For a reward array :math:`c \in \mathbb{R}^{S \times A}` and an entropy weight
:math:`\alpha > 0` this module solves the regularised occupancy program of Curry et al. (2024),
Appendix E, eq. (13), with the entropy-bonus sign of the authors' code (``lp_and_ama.jl``; see
:class:`bilevel.solvers.EntropicSolver` for the sign)

.. math::

    \max_{x \ge 0} \; \sum_{s,a} c(s,a)\, x(s,a) - \alpha \sum_{s,a} x(s,a) \log x(s,a)
    \quad \text{s.t.} \quad M x = \mu_0,

with ``M = mdp.flow_matrix()``, as an exponential-cone program compiled once by cvxpy
(``cp.sum(cp.entr(x))``, ``c`` a DPP parameter, :math:`\alpha` fixed per layer) and wrapped
in :class:`cvxpylayers.torch.CvxpyLayer`. It is the slow, independent *reference* for the
fast solver :class:`bilevel.solvers.EntropicSolver`.

Gradients
---------
Implicit differentiation of the optimality conditions
:math:`x = \exp((c - M^\top v)/\alpha - 1)`, :math:`M x = \mu_0` gives, for an upstream
gradient :math:`g = \partial L / \partial x` and :math:`X = \operatorname{diag}(x^*)`,

.. math::

    \frac{\partial L}{\partial c}
    = \frac{1}{\alpha}\Big(X g - X M^\top (M X M^\top)^{-1} M X g\Big).

**The known defect.** cvxpylayers 1.2.0 differentiates through diffcp (its only CPU back
end; ``solver=cp.CLARABEL`` is not a cvxpylayers back end, Clarabel and SCS are reached through
diffcp's ``solve_method``). The forward solution is right but diffcp's VJPs are wrong for
small :math:`\alpha`. Measured here (cvxpylayers 1.2.0, diffcp 1.1.9, Clarabel 0.11.1, SCS
3.3.1): maximum over 4 random profiles of the norm-wise relative VJP error
:math:`\lVert \hat{\jmath} - \jmath \rVert / \lVert \jmath \rVert` against the closed form
above evaluated at a machine-precision optimum (Clarabel followed by Newton on the dual, flow
residual < 1e-13), random :math:`g`, rewards
``env.rewards(env.sample_types(rng, 4)).sum(axis=1) + U[0, 1]``:

==============================================  ======  =======  =======  ========
configuration                                   α = 1   α = 0.5  α = 0.1  α = 0.01
==============================================  ======  =======  =======  ========
sales n=3 m=2, diffcp lsqr, Clarabel 1e-12      6.7e-7  9.7e-7   2.0e1    1.3e8
sales n=5 m=3, diffcp lsqr, Clarabel 1e-12      2.6e-4  1.8e-4   1.3e1    1.6e3
scheduling n=2 T=4, diffcp lsqr, Clarabel       4.5e-6  2.6e-6   6.0e1    4.7e15
gridworld 3×3, diffcp lsqr, Clarabel 1e-12      1.1e-6  9.7e-7   2.2e1    6.6e11
sales n=5 m=3, diffcp dense, Clarabel 1e-12     9.9e-6  1.1e-6   2.0e2    2.6e4
gridworld 3×3, diffcp dense, Clarabel 1e-12     3.0e-8  3.1e-8   2.2e1    2.7e12
sales n=5 m=3, diffcp lsqr, SCS eps 1e-10       4.5e-4  1.9e-4   7.0      1.8e3
sales n=5 m=3, diffcp LPGD τ=1e-6, Clarabel     9.3e-4  1.0e-4   3.1e-4   2.0e-1
scheduling n=2 T=4, diffcp LPGD τ=1e-6          8.3e-4  1.3e-1   2.2e-3   1.4e5
sales n=3 m=2, diffcp lsqr, Clarabel dflt       2.5e-5  —        2.1e2    2.3e8
closed form at raw Clarabel x (sales 3/2)       4.8e-7  —        4.1e-7   7.3e-5
**exact (default)**, sales 3/2, sched, grid     2e-15   —        1e-13    see below
==============================================  ======  =======  =======  ========

Exact mode against the closed form in 50-digit arithmetic at the same x: ≤ 2e-15 at
α = 1, ≤ 1e-13 at α = 0.1; at α = 0.01, 1e-15 to 2e-8 relative whenever the VJP is not
itself negligible. Its absolute error is ≲ 1e-15 · ‖x ⊙ g‖ / α (float64 cancellation between
the two terms of the formula; the SVD projector below loses up to 10× less than solving with
``M X M^T``), so the relative error exceeds 1e-5 only where ‖∂L/∂c‖ < 1e-10 · ‖x ⊙ g‖ / α
— measured at α = 0.01 on 2 of 12 (gridworld, scheduling) nearly deterministic optima, where
the VJP is 2e-12 and 1e-16 of its terms (relative errors 2e-4 and 2.5, absolute ~1e-13).

(The ``cp.ExpCone(t, x, 1)`` formulation gives the same numbers as ``cp.entr``.) No diffcp
configuration — tighter tolerances, SCS or Clarabel, dense/lsqr/LPGD derivative modes — is
accurate below :math:`\alpha = 0.5`, and none reaches 1e-5 on every instance even at
:math:`\alpha = 1`. Even the exact formula evaluated at the raw interior-point solution is off
by ~1e-4 at :math:`\alpha = 0.01` (an objective gap :math:`\varepsilon` only bounds the
solution error by :math:`O(\sqrt{\varepsilon})`, and the formula scales errors by
:math:`1/\alpha`).

**The default, ``gradient_mode="exact"``.** The cvxpylayers layer is used for the forward
solve only (no diffcp derivative), its flow duals :math:`v` are refined by a few Newton steps
on the smooth dual :math:`\alpha \sum \exp((c - M^\top v)/\alpha - 1) + \mu_0 \cdot v` (so that
:math:`x = \exp(\dots)` is strictly positive and satisfies the flow constraints to
``FLOW_TOL = 1e-11``), and the backward applies the closed form above (least squares on
:math:`M X M^\top`, robust to states of negligible occupancy). The flow residual is a complete
optimality certificate: for :math:`x = x(v)` the duality gap equals
:math:`v \cdot (\mu_0 - M x)`. A solve that does not reach ``FLOW_TOL`` raises
:class:`~bilevel.solvers.InnerSolveError`.

``gradient_mode="diffcp"`` keeps cvxpylayers' own differentiation (diffcp lsqr, tight
Clarabel tolerances) for comparison; it emits :class:`GradientAccuracyWarning` when the layer is
built — "wrong by orders of magnitude" below ``DIFFCP_MIN_ALPHA = 0.5``, "approximate, up to
~3e-4 relative" above.

Solvers: ``"clarabel"`` (default) or ``"scs"`` through diffcp. MOSEK is not a cvxpylayers 1.2
back end and is refused. cvxpy is never left to choose a solver.
"""

from __future__ import annotations

import time
import warnings
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, cast

import cvxpy as cp
import numpy as np
import scipy.sparse as sp
import torch
from cvxpylayers.torch.cvxpylayer import CvxpyLayer

from bilevel.models._mdp import TabularMDP
from bilevel.models.typing import FloatArray
from bilevel.solvers._result import InnerSolution, InnerSolveError, Status, worst_status

__all__ = [
    "DIFFCP_MIN_ALPHA",
    "FLOW_TOL",
    "GRADIENT_MODES",
    "LAYER_SOLVERS",
    "CvxpyEntropicLayer",
    "GradientAccuracyWarning",
]

GRADIENT_MODES = ("exact", "diffcp")
"""Values accepted by ``gradient_mode``."""

LAYER_SOLVERS = ("clarabel", "scs")
"""Values accepted by ``solver`` (diffcp's ``solve_method``)."""

#: Below this entropy weight diffcp's VJPs were measured wrong by factors 10 to 1e15.
DIFFCP_MIN_ALPHA = 0.5

#: Maximum flow residual ``max |M x - mu0|`` of an accepted solution (exact mode).
FLOW_TOL = 1e-11

#: Maximum flow residual / negativity of an accepted raw interior-point solution (diffcp mode).
RAW_TOL = 1e-7

_NEWTON_MAX_ITER = 50

_SOLVER_ARGS: dict[str, dict[str, Any]] = {
    # Start points for the Newton refinement (exact mode).
    "clarabel": {"solve_method": "Clarabel", "tol_gap_abs": 1e-10, "tol_gap_rel": 1e-10,
                 "tol_feas": 1e-10},
    "scs": {"solve_method": "SCS", "eps": 1e-8, "max_iters": 100_000},
}
_DIFFCP_SOLVER_ARGS: dict[str, dict[str, Any]] = {
    # The tightest settings measured (table in the module docstring).
    "clarabel": {"solve_method": "Clarabel", "tol_gap_abs": 1e-12, "tol_gap_rel": 1e-12,
                 "tol_feas": 1e-12, "tol_ktratio": 1e-10},
    "scs": {"solve_method": "SCS", "eps": 1e-10, "max_iters": 200_000},
}


class GradientAccuracyWarning(UserWarning):
    """The gradients of a layer are known to be inaccurate in this configuration."""


# ---------------------------------------------------------------------- compiled problems


@dataclass(frozen=True, eq=False)
class _Compiled:
    """One cvxpy problem compiled into a cvxpylayers layer, plus the numpy data it encodes."""

    layer: CvxpyLayer
    M: sp.csr_array  # (S, S*A)
    MT: sp.csr_array  # (S*A, S)
    mu0: FloatArray  # (S,)


_CACHE: weakref.WeakKeyDictionary[TabularMDP, dict[float, _Compiled]] = (
    weakref.WeakKeyDictionary()
)


def _compiled(mdp: TabularMDP, alpha: float) -> _Compiled:
    """The cached compiled layer of ``(mdp, alpha)`` (built once; dies with the MDP)."""
    per_mdp = _CACHE.setdefault(mdp, {})
    if alpha not in per_mdp:
        S, A = mdp.shape
        c = cp.Parameter(S * A)
        x = cp.Variable(S * A)
        M = mdp.flow_matrix()
        mu0 = np.asarray(mdp.mu0, dtype=np.float64)
        flow = cp.Constant(M) @ x == mu0
        entropy = cp.sum(cp.entr(x))  # type: ignore[attr-defined]  # untyped re-exports
        problem = cp.Problem(cp.Maximize(c @ x + alpha * entropy), [flow])
        layer = CvxpyLayer(problem, parameters=[c], variables=[x, flow.dual_variables[0]])
        per_mdp[alpha] = _Compiled(layer, M, sp.csr_array(M.T.tocsr()), mu0)
    return per_mdp[alpha]


@contextmanager
def _quiet_solver() -> Iterator[None]:
    """Silence known third-party noise; outcomes are checked by the flow certificate."""
    with warnings.catch_warnings():
        # diffcp converts torch tensors with np.array(tensor) (numpy 2 deprecation).
        warnings.filterwarnings("ignore", message="__array__ implementation",
                                category=DeprecationWarning)
        # diffcp's SCS path warns on inaccurate solves; the residual check decides.
        warnings.filterwarnings("ignore", message="Solved/Inaccurate", category=UserWarning)
        yield


# ---------------------------------------------------------------------- the layer


class CvxpyEntropicLayer:
    """Batched, differentiable solver of the entropy-regularised occupancy program (slow, exact).

    Parameters
    ----------
    mdp : TabularMDP
        Structure of the decision process.
    alpha : float
        Entropy weight, finite and > 0.
    solver : {"clarabel", "scs"}, optional
        diffcp ``solve_method`` used by the cvxpylayers forward solve. Default ``"clarabel"``.
        ``"mosek"`` is refused (not a cvxpylayers 1.2 back end).
    gradient_mode : {"exact", "diffcp"}, default "exact"
        ``"exact"``: forward by the layer, Newton refinement on the dual, backward by the
        closed-form implicit derivative (absolute error ≲ 1e-15 ‖x ⊙ g‖ / alpha, see the
        module docstring). ``"diffcp"``: cvxpylayers' own differentiation; warns with
        :class:`GradientAccuracyWarning` (wrong by orders of magnitude below
        ``DIFFCP_MIN_ALPHA``).

    Attributes
    ----------
    cvxpy_layer : cvxpylayers.torch.CvxpyLayer
        The compiled layer, shared by every instance with the same ``(mdp, alpha)``.
    shape : tuple of int
        ``(S, A)``.

    Raises
    ------
    ValueError
        If ``alpha`` is not a finite number > 0, or ``solver`` / ``gradient_mode`` is unknown.

    Examples
    --------
    >>> import numpy as np, torch
    >>> from bilevel.models._mdp import mdp_from_arrays
    >>> mdp = mdp_from_arrays(np.zeros((1, 2, 1)), [1.0], gamma=1.0)  # one decision
    >>> layer = CvxpyEntropicLayer(mdp, alpha=1.0)
    >>> x = layer(torch.tensor([[[0.0, np.log(3.0)]]], dtype=torch.float64))
    >>> np.round(x.numpy(), 6)  # softmax of c / alpha
    array([[[0.25, 0.75]]])
    """

    def __init__(
        self,
        mdp: TabularMDP,
        alpha: float,
        *,
        solver: str | None = None,
        gradient_mode: str = "exact",
    ) -> None:
        if isinstance(alpha, bool) or not isinstance(alpha, (int, float, np.floating)):
            raise ValueError(f"expected alpha as a float > 0, got {type(alpha).__name__}")
        if not (np.isfinite(alpha) and alpha > 0):
            raise ValueError(f"expected alpha > 0 (finite), got {alpha!r}")
        solver = "clarabel" if solver is None else solver.lower()
        if solver == "mosek":
            raise ValueError(
                "solver='mosek' is not available: cvxpylayers 1.2 solves through diffcp "
                "(Clarabel or SCS), not MOSEK; use solver='clarabel'"
            )
        if solver not in LAYER_SOLVERS:
            raise ValueError(f"expected solver in {LAYER_SOLVERS}, got {solver!r}")
        if gradient_mode not in GRADIENT_MODES:
            raise ValueError(f"expected gradient_mode in {GRADIENT_MODES}, got {gradient_mode!r}")
        self.mdp = mdp
        self.alpha = float(alpha)
        self.solver = solver
        self.gradient_mode = gradient_mode
        self.shape: tuple[int, int] = mdp.shape
        self._compiled = _compiled(mdp, self.alpha)
        if gradient_mode == "diffcp":
            if self.alpha < DIFFCP_MIN_ALPHA:
                msg = (f"gradient_mode='diffcp' at alpha={self.alpha} < {DIFFCP_MIN_ALPHA}: "
                       "diffcp's gradients were measured wrong by factors 10 to 1e15 here; "
                       "use gradient_mode='exact'")
            else:
                msg = (f"gradient_mode='diffcp' at alpha={self.alpha}: diffcp's gradients are "
                       "approximate (measured relative errors up to ~3e-4); use "
                       "gradient_mode='exact' for accurate gradients")
            warnings.warn(msg, GradientAccuracyWarning, stacklevel=2)

    @property
    def cvxpy_layer(self) -> CvxpyLayer:
        """The compiled :class:`cvxpylayers.torch.CvxpyLayer` (shared per ``(mdp, alpha)``)."""
        return self._compiled.layer

    def __repr__(self) -> str:
        return (f"CvxpyEntropicLayer({self.mdp!r}, alpha={self.alpha}, solver={self.solver!r}, "
                f"gradient_mode={self.gradient_mode!r})")

    # ------------------------------------------------------------------ public API
    def __call__(self, c: torch.Tensor) -> torch.Tensor:
        """Solve for a batch of rewards; differentiable with respect to ``c``.

        Parameters
        ----------
        c : torch.Tensor of shape (B, S, A) or (S, A), float64, finite
            Rewards (objective coefficients). Any device; solved on the CPU.

        Returns
        -------
        torch.Tensor of shape (B, S, A) or (S, A), float64
            The optimal occupancy measures ``x >= 0`` (same leading shape and device as
            ``c``), with ``max |M x - mu0| <= FLOW_TOL`` (exact mode) or ``<= RAW_TOL``
            (diffcp mode).

        Raises
        ------
        ValueError
            If ``c`` is not a float64 tensor of shape (B, S, A) or (S, A) with B >= 1, or
            contains NaN or inf.
        InnerSolveError
            If a problem of the batch is not solved to the certified accuracy; its
            ``result`` holds the :class:`InnerSolution` (NaN rows for failed problems).
        """
        flat, unbatched = self._check(c)
        if self.gradient_mode == "exact":
            x = cast(torch.Tensor, _ExactEntropic.apply(flat.cpu(), self))  # type: ignore[no-untyped-call]
        else:
            x = cast(torch.Tensor, _QuietDiffcp.apply(flat.cpu(), self))  # type: ignore[no-untyped-call]
        S, A = self.shape
        out = x.reshape(-1, S, A).to(c.device)
        return out[0] if unbatched else out

    def solve(self, c: torch.Tensor) -> InnerSolution:
        """Solve without gradients and return an :class:`InnerSolution`.

        Parameters
        ----------
        c : torch.Tensor of shape (B, S, A) or (S, A), float64
            Rewards.

        Returns
        -------
        InnerSolution
            ``fun`` the regularised optimum ``c·x + alpha·H(x)`` (B,), ``value`` = ``c·x``
            (B,), ``occupancy`` (B, S, A), ``state_values`` the flow duals (B, S) (exact
            mode; NaN in diffcp mode), ``policy=None`` (stochastic).

        Raises
        ------
        ValueError, InnerSolveError
            As :meth:`__call__`.
        """
        flat, _ = self._check(c)
        with torch.no_grad():
            C = flat.cpu().numpy()
            if self.gradient_mode == "exact":
                X, V = self._solve_exact(C)
            else:
                X = self._diffcp_forward(flat.cpu()).numpy()
                V = np.full((C.shape[0], self.shape[0]), np.nan)
        return self._result(C, X, V, [Status.OPTIMAL] * C.shape[0], nit=0, wall=0.0)

    # ------------------------------------------------------------------ internals
    def _check(self, c: Any) -> tuple[torch.Tensor, bool]:
        """Validate ``c``; return it as (B, S*A) and whether it was unbatched."""
        if not isinstance(c, torch.Tensor):
            raise ValueError(f"expected c as a torch.Tensor, got {type(c).__name__}")
        if c.dtype != torch.float64:
            raise ValueError(f"expected c of dtype torch.float64, got {c.dtype}")
        S, A = self.shape
        unbatched = c.dim() == 2
        if c.shape[-2:] != (S, A) or c.dim() not in (2, 3) or (c.dim() == 3 and c.shape[0] == 0):
            raise ValueError(
                f"expected c of shape (B, S, A) = (B, {S}, {A}) with B >= 1 or (S, A), "
                f"got {tuple(c.shape)}"
            )
        if not bool(torch.isfinite(c).all()):
            raise ValueError("expected finite rewards c, got NaN or inf")
        return c.reshape(-1, S * A), unbatched

    def _raw_solve(self, C: torch.Tensor, solver_args: dict[str, Any]) -> tuple[Any, Any]:
        """Call the cvxpylayers layer; convert solver exceptions to InnerSolveError."""
        try:
            with _quiet_solver():
                x, v = self.cvxpy_layer(C, solver_args=solver_args)
        except Exception as err:  # diffcp raises SolverError, RuntimeError, ...
            B = C.shape[0]
            raise InnerSolveError(
                self._result(C.detach().numpy(), np.full((B, *self.shape), np.nan),
                             np.full((B, self.shape[0]), np.nan), [Status.ERROR] * B, nit=0,
                             wall=0.0, detail=f"{type(err).__name__}: {err}")
            ) from err
        return x, v

    def _solve_exact(self, C: FloatArray) -> tuple[FloatArray, FloatArray]:
        """Forward solve + Newton refinement; (B, S*A) rewards -> x (B, S*A), v (B, S)."""
        start = time.perf_counter()
        with torch.no_grad():
            x_raw, v_raw = self._raw_solve(torch.from_numpy(C), _SOLVER_ARGS[self.solver])
        V0 = v_raw.numpy()
        comp = self._compiled
        B = C.shape[0]
        X = np.full_like(C, np.nan)
        V = np.full((B, self.shape[0]), np.nan)
        statuses: list[Status] = []
        nit = 0
        worst = 0.0
        for b in range(B):
            if not (np.all(np.isfinite(V0[b])) and np.all(np.isfinite(x_raw[b].numpy()))):
                statuses.append(Status.NONFINITE)
                continue
            x, v, res, it = _newton_refine(comp.M, comp.MT, comp.mu0, C[b], self.alpha, V0[b])
            nit += it
            worst = max(worst, res)
            if res <= FLOW_TOL:
                X[b], V[b] = x, v
                statuses.append(Status.OPTIMAL)
            else:
                statuses.append(Status.NONFINITE if not np.isfinite(res)
                                else Status.MAX_STEPS_REACHED)
        if not all(s is Status.OPTIMAL for s in statuses):
            raise InnerSolveError(self._result(
                C, X, V, statuses, nit=nit, wall=time.perf_counter() - start,
                detail=f"Worst flow residual {worst:.2e} > FLOW_TOL = {FLOW_TOL:.0e}."))
        return X, V

    def _diffcp_forward(self, C: torch.Tensor) -> torch.Tensor:
        """cvxpylayers forward and backward (diffcp); raw solution checked against RAW_TOL."""
        x, _ = self._raw_solve(C, _DIFFCP_SOLVER_ARGS[self.solver])
        X = x.detach().numpy()
        res = np.abs(X @ self._compiled.MT - self._compiled.mu0).max(axis=1)
        ok = np.isfinite(res) & (res <= RAW_TOL) & (X.min(axis=1, initial=0.0) >= -RAW_TOL)
        if not ok.all():
            statuses = [Status.OPTIMAL if k else Status.ERROR for k in ok]
            X_bad = np.where(ok[:, None], X, np.nan)
            raise InnerSolveError(self._result(
                C.detach().numpy(), X_bad, np.full((X.shape[0], self.shape[0]), np.nan),
                statuses, nit=0, wall=0.0,
                detail=f"Worst flow residual {np.nanmax(res):.2e} (RAW_TOL = {RAW_TOL:.0e})."))
        out: torch.Tensor = x.clamp_min(0.0)  # interior-point round-off of order -1e-14
        return out

    def _result(
        self,
        C: FloatArray,
        X: FloatArray,
        V: FloatArray,
        statuses: list[Status],
        *,
        nit: int,
        wall: float,
        detail: str = "",
    ) -> InnerSolution:
        """Package flat (B, S*A) rewards and solutions as an InnerSolution."""
        B = C.shape[0]
        S, A = self.shape
        Xf = X.reshape(B, S * A)
        value = np.einsum("bi,bi->b", Xf, C)
        with np.errstate(divide="ignore", invalid="ignore"):
            xlogx = np.where(Xf > 0, Xf * np.log(np.where(Xf > 0, Xf, 1.0)), 0.0)
        xlogx = np.where(np.isnan(Xf), np.nan, xlogx)
        fun = value - self.alpha * xlogx.sum(axis=1)
        st = tuple(statuses)
        return InnerSolution(
            status=worst_status(st),
            fun=fun,
            value=value,
            policy=None,
            occupancy=Xf.reshape(B, S, A),
            state_values=V,
            statuses=st,
            nit=nit,
            stats={"wall_time": wall},
            detail=detail,
        )


# ---------------------------------------------------------------------- exact backward


class _ExactEntropic(torch.autograd.Function):
    """x*(c) by the layer + Newton refinement; VJP by the closed-form implicit derivative."""

    @staticmethod
    def forward(C: torch.Tensor, layer: CvxpyEntropicLayer) -> torch.Tensor:
        X, _ = layer._solve_exact(C.detach().numpy())
        return torch.from_numpy(X)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: torch.Tensor) -> None:
        ctx.layer = inputs[1]
        ctx.save_for_backward(output)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, grad_x: torch.Tensor) -> tuple[torch.Tensor, None]:
        (x,) = ctx.saved_tensors
        layer: CvxpyEntropicLayer = ctx.layer
        comp = layer._compiled
        G = _implicit_vjp(comp.M, comp.MT, x.numpy(), grad_x.numpy(), layer.alpha)
        return torch.from_numpy(G), None


class _QuietDiffcp(torch.autograd.Function):
    """cvxpylayers' own forward and backward, with its numpy-2 deprecation noise silenced."""

    @staticmethod
    def forward(ctx: Any, C: torch.Tensor, layer: CvxpyEntropicLayer) -> torch.Tensor:
        with torch.enable_grad():
            inner = C.detach().requires_grad_(True)
            x = layer._diffcp_forward(inner)
        ctx.inner, ctx.x = inner, x
        return x.detach()

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, grad_x: torch.Tensor) -> tuple[torch.Tensor, None]:
        with _quiet_solver():
            (grad_c,) = torch.autograd.grad(ctx.x, ctx.inner, grad_x)
        return grad_c, None


def _gram(M: sp.csr_array, x: FloatArray) -> FloatArray:
    """``M diag(x) M^T`` as a dense (S, S) array."""
    K: FloatArray = np.asarray((M.multiply(x[None, :]) @ M.T).toarray(), dtype=np.float64)
    return K


def _lstsq(K: FloatArray, r: FloatArray) -> FloatArray:
    """Minimum-norm least-squares solution of ``K y = r`` (K symmetric PSD, maybe singular)."""
    y: FloatArray = np.asarray(np.linalg.lstsq(K, r, rcond=None)[0], dtype=np.float64)
    return y


def _implicit_vjp(
    M: sp.csr_array, MT: sp.csr_array, X: FloatArray, G: FloatArray, alpha: float
) -> FloatArray:
    r"""Closed-form VJP ``(X g - X M^T (M X M^T)^+ M X g) / alpha`` per row.

    Computed as ``X^(1/2) (I - U U^T) X^(1/2) g / alpha`` with ``U`` an orthonormal basis (SVD)
    of the range of ``X^(1/2) M^T``, which avoids forming the graded, nearly singular
    ``M X M^T`` (states of negligible occupancy); directions with singular values below
    ``1e-14`` of the largest are dropped (they only carry occupancies below ~1e-28).

    Parameters
    ----------
    M, MT : sparse arrays of shape (S, S*A) and (S*A, S)
        Flow matrix and its transpose.
    X, G : ndarray of shape (B, S*A)
        Optimal occupancies (>= 0) and upstream gradients.
    alpha : float
        Entropy weight.

    Returns
    -------
    ndarray of shape (B, S*A)
        ``dL/dc``.
    """
    out = np.empty_like(G)
    MT_dense = MT.toarray()
    for b in range(X.shape[0]):
        root = np.sqrt(X[b])
        U, sv, _ = np.linalg.svd(root[:, None] * MT_dense, full_matrices=False)
        U = U[:, sv > sv[0] * 1e-14] if sv.size and sv[0] > 0 else U[:, :0]
        h = root * G[b]
        out[b] = root * (h - U @ (U.T @ h)) / alpha
    return out


def _newton_refine(
    M: sp.csr_array,
    MT: sp.csr_array,
    mu0: FloatArray,
    c: FloatArray,
    alpha: float,
    v: FloatArray,
) -> tuple[FloatArray, FloatArray, float, int]:
    r"""Newton's method on the dual ``D(v) = alpha sum exp((c - M^T v)/alpha - 1) + mu0 . v``.

    Parameters
    ----------
    M, MT : sparse arrays of shape (S, S*A) and (S*A, S)
        Flow matrix and its transpose.
    mu0 : ndarray of shape (S,)
        Initial distribution.
    c : ndarray of shape (S*A,)
        Rewards.
    alpha : float
        Entropy weight.
    v : ndarray of shape (S,)
        Starting duals (the interior-point solver's flow duals).

    Returns
    -------
    x : ndarray of shape (S*A,)
        ``exp((c - M^T v)/alpha - 1)`` at the final ``v`` (the primal optimum when converged).
    v : ndarray of shape (S,)
        Final duals.
    residual : float
        ``max |M x - mu0|`` (inf if the exponentials overflowed).
    iterations : int
        Newton steps taken.
    """

    def evaluate(v: FloatArray) -> tuple[float, FloatArray, FloatArray]:
        with np.errstate(over="ignore"):
            x = np.exp((c - MT @ v) / alpha - 1.0)
        r = mu0 - M @ x
        return float(alpha * x.sum() + mu0 @ v), x, r

    f, x, r = evaluate(v)
    res = float(np.abs(r).max()) if np.all(np.isfinite(x)) else float("inf")
    it = 0
    while res > FLOW_TOL * 1e-2 and it < _NEWTON_MAX_ITER and np.isfinite(res):
        it += 1
        d = _lstsq(_gram(M, x) / alpha, -r)  # H d = -grad, grad = mu0 - M x
        slope = float(r @ d)
        t = 1.0
        while t > 1e-12:
            f_new, x_new, r_new = evaluate(v + t * d)
            res_new = float(np.abs(r_new).max()) if np.all(np.isfinite(x_new)) else np.inf
            if np.isfinite(f_new) and (f_new <= f + 1e-4 * t * slope or res_new < res):
                break
            t *= 0.5
        else:
            break  # no progress possible in floating point
        v, f, x, r, res = v + t * d, f_new, x_new, r_new, res_new
    return x, v, res, it
