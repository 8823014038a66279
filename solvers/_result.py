"""The result type shared by every inner solver (scipy.optimize vocabulary, typed and frozen)."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

import numpy as np

from bilevel.models.typing import FloatArray, IntArray

__all__ = ["InnerSolution", "InnerSolveError", "Status"]


class Status(enum.Enum):
    """Outcome of an inner solve, with a human-readable message."""

    OPTIMAL = "optimal"
    OPTIMAL_INACCURATE = "optimal_inaccurate"
    INFEASIBLE = "infeasible"
    UNBOUNDED = "unbounded"
    MAX_STEPS_REACHED = "max_steps_reached"
    NONFINITE = "nonfinite"
    ERROR = "error"

    @property
    def message(self) -> str:
        """One sentence describing the status."""
        return _MESSAGES[self]

    @property
    def success(self) -> bool:
        """Whether a solution with this status may be used as optimal."""
        return self is Status.OPTIMAL


_MESSAGES = {
    Status.OPTIMAL: "Optimal solution found.",
    Status.OPTIMAL_INACCURATE: "Solution found but the solver reports reduced accuracy.",
    Status.INFEASIBLE: "The problem is infeasible.",
    Status.UNBOUNDED: "The problem is unbounded.",
    Status.MAX_STEPS_REACHED: "The iteration limit was reached before convergence.",
    Status.NONFINITE: "The solver produced NaN or inf.",
    Status.ERROR: "The solver failed.",
}


@dataclass(frozen=True, eq=False, repr=False)
class InnerSolution:
    """Solutions of a batch of B inner problems on one MDP with reward arrays (B, S, A).

    Attributes
    ----------
    message : str
        Human-readable outcome (the worst status of the batch).
    success : bool
        Whether every problem of the batch was solved to optimality.
    status : Status
        The worst status over the batch.
    fun : ndarray of shape (B,)
        Optimal objective value of each problem (equal to ``value`` for exact solvers; for
        regularised solvers it includes the regulariser).
    value : ndarray of shape (B,)
        ``sum(occupancy * reward)``: the (discounted) expected reward of the returned policy.
    policy : ndarray of shape (B, S) of int, or None
        Deterministic policy (action index per state); ``-1`` where a solver cannot tell (a
        state never visited by an LP solution). ``None`` for stochastic solutions.
    occupancy : ndarray of shape (B, S, A), or None
        Discounted state–action occupancy measure x; ``None`` if not requested.
    state_values : ndarray of shape (B, S), or None
        Optimal value of each state (the flow-constraint duals of the LP).
    statuses : tuple of Status
        Status of each problem, length B.
    nit : int
        Iterations (sweeps, policy-iteration rounds or solver iterations, summed).
    stats : dict of str to float
        Solver statistics (wall time, etc.).
    """

    status: Status
    fun: FloatArray
    value: FloatArray
    policy: IntArray | None
    occupancy: FloatArray | None
    state_values: FloatArray | None = None
    statuses: tuple[Status, ...] = ()
    nit: int = 0
    stats: dict[str, float] = field(default_factory=dict)
    detail: str = ""

    @property
    def success(self) -> bool:
        """Whether every problem of the batch was solved to optimality."""
        return self.status.success

    @property
    def message(self) -> str:
        """Human-readable outcome."""
        return self.status.message + (f" {self.detail}" if self.detail else "")

    @property
    def batch_size(self) -> int:
        """Number of problems B."""
        return int(self.value.shape[0])

    def __repr__(self) -> str:
        fun = np.array2string(self.fun, threshold=6, precision=6)
        return (
            f"InnerSolution(message={self.message!r}, success={self.success}, "
            f"status={self.status.value!r}, fun={fun}, nit={self.nit})"
        )


class InnerSolveError(RuntimeError):
    """Raised when an inner solve does not reach optimality (unless ``throw=False``).

    Attributes
    ----------
    result : InnerSolution
        The failed result, with its status and message.
    """

    def __init__(self, result: InnerSolution) -> None:
        bad = [i for i, s in enumerate(result.statuses) if not s.success][:5]
        where = f" (first failing problems in the batch: {bad})" if bad else ""
        super().__init__(f"inner solve failed with status {result.status.value!r}: "
                         f"{result.message}{where}")
        self.result = result


def worst_status(statuses: tuple[Status, ...]) -> Status:
    """The most severe status of a batch (OPTIMAL only if all are optimal)."""
    order = list(Status)
    return max(statuses, key=order.index) if statuses else Status.OPTIMAL
