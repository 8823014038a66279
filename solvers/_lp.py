r"""Exact inner solver: the occupancy-measure linear program of a tabular MDP.

For a reward (objective coefficient) array :math:`c \in \mathbb{R}^{S \times A}` — in
mechanism design the AMA-transformed reward :math:`c(s,a) = \sum_i w_i r_i(s,a) + \lambda(s,a)`
— this module solves eq. (2) of Curry, Thoma et al. [1]_ (the plain LP of the occupancy
program in the authors' code, see [1]_, i.e. entropy weight :math:`\alpha = 0`), with a
discount factor :math:`\gamma` (1 for finite-horizon MDPs):

.. math::

    \max_{x \ge 0} \; \sum_{s,a} c(s,a)\, x(s,a)
    \quad \text{s.t.} \quad
    \sum_a x(s',a) = \mu_0(s') + \gamma \sum_{s,a} P(s' \mid s,a)\, x(s,a)
    \quad \forall s',

written ``M @ x.ravel() = mu0`` with ``M = mdp.flow_matrix()``. Its solution ``x`` is the
discounted, unnormalised state–action occupancy measure of an optimal policy (with
``gamma = 1`` on a finite-horizon MDP the total mass is the expected number of decisions), its
optimal value is the optimal expected (discounted) total reward, and the duals ``V`` of the flow
constraints solve the dual LP

.. math::

    \min_V \; \mu_0 \cdot V \quad \text{s.t.} \quad
    V(s) \ge c(s,a) + \gamma \sum_{s'} P(s' \mid s,a) V(s') \quad \forall s, a,

so they are the optimal state values (the Bellman optimality equation holds with equality at
every state the optimal policy visits). At states no optimal policy reaches, the dual is not
unique and ``V`` is only an upper bound on the optimal value.

Back ends: ``"highs"`` (``scipy.optimize.linprog``, the default), ``"cvxpy"`` (cvxpy with
HiGHS, or Clarabel if HiGHS is missing) and ``"mosek"`` (cvxpy with MOSEK, only with a
licence). The cvxpy problems are compiled once per MDP (:class:`OccupancyLP`) and re-solved
with a new reward parameter.

References
----------
.. [1] M. Curry, V. Thoma, D. Chakrabarti, S. McAleer, C. Kroer, T. Sandholm, N. He and
   S. Seuken, "Automated Design of Affine Maximizer Mechanisms in Dynamic Settings", AAAI 2024,
   eq. (2) (after E. Altman, *Constrained Markov Decision Processes*, 1999). Reference
   implementation: ``VnznzT/dynamicAMA``, ``lp_and_ama.jl``.
"""

from __future__ import annotations

import functools
import time
import warnings
import weakref
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import ArrayLike

from bilevel.models._mdp import TabularMDP
from bilevel.models.typing import FloatArray, IntArray
from bilevel.solvers._dp import check_reward
from bilevel.solvers._licence import mosek_licensed
from bilevel.solvers._result import InnerSolution, InnerSolveError, Status, worst_status

__all__ = ["LP_SOLVERS", "OccupancyLP", "solve_lp"]

LP_SOLVERS = ("highs", "cvxpy", "mosek")
"""Names accepted by the ``solver`` argument of :func:`solve_lp`."""

#: A state whose total occupancy is at most this is "unvisited" (policy -1).
VISITED_ATOL = 1e-12

# scipy.optimize.linprog status codes (see its documentation).
_LINPROG_STATUS = {
    0: Status.OPTIMAL,
    1: Status.MAX_STEPS_REACHED,
    2: Status.INFEASIBLE,
    3: Status.UNBOUNDED,
    4: Status.ERROR,
}


@functools.cache
def _cvxpy_status() -> dict[str, Status]:
    """cvxpy's status names -> :class:`Status` (cvxpy, slow to import, only on first use)."""
    import cvxpy as cp

    return {
        cp.OPTIMAL: Status.OPTIMAL,
        cp.OPTIMAL_INACCURATE: Status.OPTIMAL_INACCURATE,
        cp.INFEASIBLE: Status.INFEASIBLE,
        cp.INFEASIBLE_INACCURATE: Status.INFEASIBLE,
        cp.UNBOUNDED: Status.UNBOUNDED,
        cp.UNBOUNDED_INACCURATE: Status.UNBOUNDED,
        cp.USER_LIMIT: Status.MAX_STEPS_REACHED,
        cp.SOLVER_ERROR: Status.ERROR,
    }


# Statuses whose primal/dual point is kept; every other problem's entries are NaN.
_HAS_SOLUTION = (Status.OPTIMAL, Status.OPTIMAL_INACCURATE)


class _Solve(NamedTuple):
    """Raw outcome of one LP: flat occupancy (S * A,), objective, flow duals (S,)."""

    status: Status
    x: FloatArray | None = None
    fun: float = float("nan")
    duals: FloatArray | None = None
    nit: int = 0


# ---------------------------------------------------------------------- public API


def solve_lp(
    mdp: TabularMDP,
    reward: ArrayLike,
    *,
    solver: str = "highs",
    throw: bool = True,
    occupancy: bool = True,
) -> InnerSolution:
    """Solve the occupancy-measure LP of ``mdp`` for one reward array or a batch of them.

    Parameters
    ----------
    mdp : TabularMDP
        Structure of the decision process (transitions, ``mu0``, ``gamma``).
    reward : array_like of shape (S, A) or (B, S, A)
        Objective coefficients ``c(s, a)``, one array per problem. An (S, A) array is a batch
        of one.
    solver : {"highs", "cvxpy", "mosek"}, default "highs"
        ``"highs"``: ``scipy.optimize.linprog(method="highs")``, one call per problem.
        ``"cvxpy"``: a cvxpy problem compiled once per MDP, solved by HiGHS (Clarabel if
        HiGHS is not installed). ``"mosek"``: the same with MOSEK; needs a licence.
    throw : bool, default True
        Raise :class:`~bilevel.solvers.InnerSolveError` if any problem of the batch is not
        solved to optimality. With ``False`` the result is returned with ``success=False``.
    occupancy : bool, default True
        Whether to return the occupancy measures (``None`` otherwise, saving memory).

    Returns
    -------
    InnerSolution
        With ``fun`` and ``value`` of shape (B,) (the optimal objective; equal for this exact
        solver), ``occupancy`` of shape (B, S, A) (negative round-off clipped to 0),
        ``state_values`` of shape (B, S) (flow-constraint duals, see Notes), ``policy`` of
        shape (B, S), ``statuses`` of length B, ``nit`` (solver iterations, summed) and
        ``stats={"wall_time": seconds}``.

    Raises
    ------
    ValueError
        If ``reward`` has the wrong shape or is not finite, ``solver`` is unknown, or
        ``solver="mosek"`` without a MOSEK licence.
    InnerSolveError
        If ``throw`` and a problem is not solved to optimality; its ``result`` attribute holds
        the :class:`InnerSolution`.

    Notes
    -----
    * ``policy[b, s]`` is ``argmax_a x(s, a)``, a deterministic optimal action, for every
      state the solution visits (state occupancy ``> VISITED_ATOL = 1e-12``), and ``-1`` for
      unvisited states, where the LP says nothing about the optimal action (use the DP solver
      for a policy defined everywhere). Failed problems also get ``-1``.
    * ``state_values`` are the optimal values ``V(s)`` of the visited states (and of every
      state reachable under some policy, for the usual non-degenerate case); at states that no
      policy reaches they are any dual-feasible upper bound. They always satisfy dual
      feasibility ``V(s) >= c(s,a) + gamma * sum_s' P(s'|s,a) V(s')`` and
      ``mu0 @ V = fun``. (scipy's ``eqlin.marginals`` of the equivalent minimisation of
      ``-c @ x`` are ``-V``; this function flips the sign.)
    * Problems whose status is neither optimal nor optimal-inaccurate have NaN in ``fun``,
      ``value``, ``occupancy`` and ``state_values`` — never zeros.

    Examples
    --------
    Two decisions: in state 0 either action leads to state 1, after which the flow leaves.

    >>> import numpy as np
    >>> from bilevel.models._mdp import mdp_from_arrays
    >>> P = np.zeros((2, 2, 2)); P[0, :, 1] = 1.0
    >>> mdp = mdp_from_arrays(P, [1.0, 0.0], gamma=1.0)
    >>> sol = solve_lp(mdp, [[0.0, 1.0], [2.0, 0.5]])
    >>> sol.fun, sol.policy, sol.state_values
    (array([3.]), array([[1, 0]]), array([[3., 2.]]))
    """
    if solver not in LP_SOLVERS:
        raise ValueError(f"expected solver in {LP_SOLVERS}, got {solver!r}")
    if solver == "mosek" and not mosek_licensed():
        raise ValueError(
            "solver='mosek' requires a MOSEK licence; none was found. Use solver='highs'."
        )
    C = check_reward(mdp, reward)
    start = time.perf_counter()
    if solver == "highs":
        solves = _solve_highs(mdp, C)
    else:
        solves = [_occupancy_lp(mdp, solver).solve_one(c) for c in C]
    wall_time = time.perf_counter() - start
    return _assemble(mdp, C, solves, wall_time=wall_time, throw=throw, occupancy=occupancy)


class OccupancyLP:
    """The occupancy LP of one MDP, compiled once by cvxpy and re-solved per reward.

    The objective ``c @ x`` takes ``c`` as a ``cvxpy.Parameter``, so the canonicalisation is
    done once and each solve only passes new data to the solver. :func:`solve_lp` keeps one
    instance per (MDP, back end) for the lifetime of the MDP.

    Parameters
    ----------
    mdp : TabularMDP
        The decision process.
    solver : {"cvxpy", "mosek"}, default "cvxpy"
        ``"cvxpy"`` uses ``cp.HIGHS`` if installed, else ``cp.CLARABEL``; ``"mosek"`` uses
        ``cp.MOSEK``. The solver is always named explicitly: cvxpy would otherwise try MOSEK
        first whenever the package is importable, even without a licence.

    Attributes
    ----------
    problem : cvxpy.Problem
        ``maximize c @ x  s.t.  M @ x == mu0, x >= 0``.
    cvxpy_solver : str
        The cvxpy solver name passed to ``problem.solve``.

    Examples
    --------
    >>> import numpy as np
    >>> from bilevel.models._mdp import mdp_from_arrays
    >>> mdp = mdp_from_arrays(np.ones((1, 2, 1)), [1.0], gamma=0.5)
    >>> lp = OccupancyLP(mdp)
    >>> round(float(lp.solve_one(np.array([1.0, 3.0])).fun), 9)
    6.0
    """

    def __init__(self, mdp: TabularMDP, solver: str = "cvxpy") -> None:
        import cvxpy as cp  # imported on first use: ``import bilevel.solvers`` stays fast

        if solver == "cvxpy":
            installed = cp.installed_solvers()  # type: ignore[no-untyped-call]
            self.cvxpy_solver: str = cp.HIGHS if cp.HIGHS in installed else cp.CLARABEL
        elif solver == "mosek":
            self.cvxpy_solver = cp.MOSEK
        else:
            raise ValueError(f"expected solver in ('cvxpy', 'mosek'), got {solver!r}")
        S, A = mdp.shape
        self.shape = (S, A)
        self._c = cp.Parameter(S * A)
        self._x = cp.Variable(S * A, nonneg=True)
        M = cp.Constant(mdp.flow_matrix())  # sparse; wrapped so that `@` is cvxpy's
        self._flow = M @ self._x == np.asarray(mdp.mu0)
        self.problem = cp.Problem(cp.Maximize(self._c @ self._x), [self._flow])

    def solve_one(self, c: FloatArray) -> _Solve:
        """Solve for one objective ``c`` of shape (S, A) or (S * A,); raw, unvalidated."""
        import cvxpy as cp

        self._c.value = np.asarray(c, dtype=np.float64).ravel()
        try:
            with warnings.catch_warnings():
                # cvxpy warns "Solution may be inaccurate ..." on OPTIMAL_INACCURATE; that is
                # reported through the status instead.
                warnings.filterwarnings(
                    "ignore", message="Solution may be inaccurate", category=UserWarning
                )
                self.problem.solve(solver=self.cvxpy_solver)  # type: ignore[no-untyped-call]
        except cp.error.SolverError:
            return _Solve(Status.ERROR)
        status = _cvxpy_status().get(self.problem.status, Status.ERROR)
        nit = _as_int(getattr(self.problem.solver_stats, "num_iters", None))
        if status not in _HAS_SOLUTION:
            return _Solve(status, nit=nit)
        return _checked(
            status,
            x=self._x.value,
            fun=self.problem.value,
            duals=self._flow.dual_value,  # cvxpy's duals of a maximisation are +V already
            nit=nit,
        )


# ---------------------------------------------------------------------- back ends


def linprog(c: FloatArray, **kwargs: Any) -> Any:
    """``scipy.optimize.linprog``, imported on its first call (the import takes about 0.6 s).

    ``A_eq`` may be a sparse array (HiGHS accepts them; scipy-stubs types it as dense only).
    """
    from scipy.optimize import linprog as linprog_

    return linprog_(c, **kwargs)


def _solve_highs(mdp: TabularMDP, C: FloatArray) -> list[_Solve]:
    """``linprog(method="highs")`` on ``min -c @ x, M x = mu0, x >= 0`` for each ``c``."""
    M = mdp.flow_matrix()  # built once for the whole batch
    mu0 = np.asarray(mdp.mu0, dtype=np.float64)
    out: list[_Solve] = []
    for c in C.reshape(C.shape[0], -1):
        res = linprog(-c, A_eq=M, b_eq=mu0, bounds=(0, None), method="highs")
        status = _LINPROG_STATUS.get(int(res.status), Status.ERROR)
        nit = _as_int(getattr(res, "nit", None))
        if status not in _HAS_SOLUTION:
            out.append(_Solve(status, nit=nit))
            continue
        # linprog minimises -c @ x: its objective is -value and its marginals are
        # d(-value)/d(mu0) = -V.
        out.append(
            _checked(status, x=res.x, fun=-float(res.fun), duals=-res.eqlin.marginals, nit=nit)
        )
    return out


_CACHE: weakref.WeakKeyDictionary[TabularMDP, dict[str, OccupancyLP]] = weakref.WeakKeyDictionary()


def _occupancy_lp(mdp: TabularMDP, solver: str) -> OccupancyLP:
    """The cached :class:`OccupancyLP` of ``mdp`` for a cvxpy back end (dies with the MDP)."""
    per_mdp = _CACHE.setdefault(mdp, {})
    if solver not in per_mdp:
        per_mdp[solver] = OccupancyLP(mdp, solver)
    return per_mdp[solver]


# ---------------------------------------------------------------------- helpers


def _as_int(n: Any) -> int:
    """An iteration count reported by a solver, or 0 if it reports none."""
    try:
        return int(n)
    except (TypeError, ValueError):
        return 0


def _checked(status: Status, *, x: Any, fun: Any, duals: Any, nit: int) -> _Solve:
    """Package a solution, downgrading to NONFINITE if the solver returned NaN/inf/None."""
    if x is None or fun is None or duals is None:
        return _Solve(Status.ERROR, nit=nit)
    x_arr = np.asarray(x, dtype=np.float64).ravel()
    v_arr = np.asarray(duals, dtype=np.float64).ravel()
    f = float(fun)
    if not (np.all(np.isfinite(x_arr)) and np.all(np.isfinite(v_arr)) and np.isfinite(f)):
        return _Solve(Status.NONFINITE, nit=nit)
    return _Solve(status, x=x_arr, fun=f, duals=v_arr, nit=nit)


def _assemble(
    mdp: TabularMDP,
    C: FloatArray,
    solves: list[_Solve],
    *,
    wall_time: float,
    throw: bool,
    occupancy: bool,
) -> InnerSolution:
    """Stack per-problem outcomes into an :class:`InnerSolution` (NaN where a solve failed)."""
    B = C.shape[0]
    S, A = mdp.shape
    X = np.full((B, S * A), np.nan)
    fun = np.full(B, np.nan)
    V = np.full((B, S), np.nan)
    for b, r in enumerate(solves):
        if r.x is not None and r.duals is not None:
            X[b], fun[b], V[b] = r.x, r.fun, r.duals
    # Simplex/interior-point round-off can leave entries like -1e-17; occupancy is >= 0.
    X = np.maximum(X, 0.0).reshape(B, S, A)  # NaN propagates through np.maximum
    value: FloatArray = np.einsum("bsa,bsa->b", X, C)
    visited = X.sum(axis=2) > VISITED_ATOL  # False for NaN rows
    policy: IntArray = np.where(visited, X.argmax(axis=2), -1).astype(np.int64)
    statuses = tuple(r.status for r in solves)
    result = InnerSolution(
        status=worst_status(statuses),
        fun=fun,
        value=value,
        policy=policy,
        occupancy=X if occupancy else None,
        state_values=V,
        statuses=statuses,
        nit=sum(r.nit for r in solves),
        stats={"wall_time": wall_time},
    )
    if throw and not result.success:
        raise InnerSolveError(result)
    return result
