"""Inner solvers over arrays: exact occupancy LP, batched dynamic programming, and the
entropy-regularised occupancy program (fast batched torch solver with an implicit backward).

Solvers take an MDP structure (:class:`models.TabularMDP`) and reward arrays of shape
(S, A) or (K, S, A) and return an :class:`InnerSolution`; they never see mechanisms. Every
exact solver agrees with every other (tested).
"""

from solvers._bcce import (
    BCCEResult,
    CertificationError,
    CertifiedResponse,
    bcce_gap,
    certified_response,
)
from solvers._dp import check_reward, occupancy_of_policy, policy_values, solve_dp, solve_values
from solvers._entropic import EntropicSolver, solve_entropic
from solvers._layers import CvxpyEntropicLayer, GradientAccuracyWarning
from solvers._licence import available_lp_solvers, mosek_licensed
from solvers._lp import solve_lp
from solvers._no_regret import (
    MultiplicativeWeights,
    Response,
    expected_deviation_utilities,
    joint_index,
)
from solvers._ppo import PPOConfig, PPOResult, PPOUpdate, rollout_objective, train_ppo
from solvers._ppo_kernels import discounted_returns, gae
from solvers._ppo_policy import ActorCritic, PolicyDistribution
from solvers._qlearning import QLearningFollowers
from solvers._result import InnerSolution, InnerSolveError, Status
from solvers._rl_protocol import Action, ActionSpec, BatchedEnv, EnvStep
from solvers._soft import SoftBellmanSolver
from solvers._spm_dp import (
    best_asp_value,
    best_psp_value,
    best_spm_value,
    exchangeable_static_value,
)
from solvers._spm_env import SPMBatchedEnv
from solvers._spm_exact import (
    SPMPolicy,
    evaluate_mechanism,
    expected_optimum,
    rsd_value,
    static_mechanism,
)
from solvers._spm_result import SPMValue
from solvers._spm_summary import spm_reference_values
from solvers._stackelberg_basic import HiddenResponseEnv
from solvers._stackelberg_env import Commitment, StackelbergPOMDP
from solvers._stackelberg_exact import (
    PayoffTable,
    best_response,
    best_standard_spm,
    dominant_actions,
    follower_values,
    leader_value,
    optimal_commitment,
    payoff_table,
    respond,
    run_dynamics,
)
from solvers._stackelberg_games import (
    LeaderGameCore,
    MatrixDesignCore,
    MatrixGameCore,
    MessageSPMCore,
    SimpleAllocationCore,
    core_from_game,
)
from solvers._stackelberg_gym import StackelbergGymEnv, decode_actions, gym_action_space

__all__ = [
    "Action",
    "ActionSpec",
    "ActorCritic",
    "BCCEResult",
    "BatchedEnv",
    "CertificationError",
    "CertifiedResponse",
    "Commitment",
    "CvxpyEntropicLayer",
    "EntropicSolver",
    "EnvStep",
    "GradientAccuracyWarning",
    "HiddenResponseEnv",
    "InnerSolution",
    "InnerSolveError",
    "LeaderGameCore",
    "MatrixDesignCore",
    "MatrixGameCore",
    "MessageSPMCore",
    "MultiplicativeWeights",
    "PPOConfig",
    "PPOResult",
    "PPOUpdate",
    "PayoffTable",
    "PolicyDistribution",
    "QLearningFollowers",
    "Response",
    "SPMBatchedEnv",
    "SPMPolicy",
    "SPMValue",
    "SimpleAllocationCore",
    "SoftBellmanSolver",
    "StackelbergGymEnv",
    "StackelbergPOMDP",
    "Status",
    "available_lp_solvers",
    "bcce_gap",
    "best_asp_value",
    "best_psp_value",
    "best_response",
    "best_spm_value",
    "best_standard_spm",
    "certified_response",
    "check_reward",
    "core_from_game",
    "decode_actions",
    "discounted_returns",
    "dominant_actions",
    "evaluate_mechanism",
    "exchangeable_static_value",
    "expected_deviation_utilities",
    "expected_optimum",
    "follower_values",
    "gae",
    "gym_action_space",
    "joint_index",
    "leader_value",
    "mosek_licensed",
    "occupancy_of_policy",
    "optimal_commitment",
    "payoff_table",
    "policy_values",
    "respond",
    "rollout_objective",
    "rsd_value",
    "run_dynamics",
    "solve_dp",
    "solve_entropic",
    "solve_lp",
    "solve_values",
    "spm_reference_values",
    "static_mechanism",
    "train_ppo",
]
