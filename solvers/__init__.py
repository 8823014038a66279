"""Inner solvers over arrays: exact occupancy LP, batched dynamic programming, and the
entropy-regularised occupancy program (fast batched torch solver with an implicit backward).

Solvers take an MDP structure (:class:`models.TabularMDP`) and reward arrays of shape
(S, A) or (K, S, A) and return an :class:`InnerSolution`; they never see mechanisms. Every
exact solver agrees with every other (tested).
"""

from solvers._dp import check_reward, occupancy_of_policy, policy_values, solve_dp, solve_values
from solvers._entropic import EntropicSolver, solve_entropic
from solvers._layers import CvxpyEntropicLayer, GradientAccuracyWarning
from solvers._licence import available_lp_solvers, mosek_licensed
from solvers._lp import solve_lp
from solvers._result import InnerSolution, InnerSolveError, Status
from solvers._rl_protocol import Action, ActionSpec, BatchedEnv, EnvStep
from solvers._soft import SoftBellmanSolver

__all__ = [
    "Action",
    "ActionSpec",
    "BatchedEnv",
    "CvxpyEntropicLayer",
    "EntropicSolver",
    "EnvStep",
    "GradientAccuracyWarning",
    "InnerSolution",
    "InnerSolveError",
    "SoftBellmanSolver",
    "Status",
    "available_lp_solvers",
    "check_reward",
    "mosek_licensed",
    "occupancy_of_policy",
    "policy_values",
    "solve_dp",
    "solve_entropic",
    "solve_lp",
    "solve_values",
]
