"""Stackelberg POMDPs: a leader trained against learning followers, and the exact checks.

:class:`StackelbergPOMDP` runs a response phase (no-regret :class:`MultiplicativeWeights` or
:class:`QLearningFollowers`) and a reward phase for ``E`` leader episodes at once, over the game
cores of :func:`core_from_game`; :class:`StackelbergGymEnv` runs one episode for other RL
libraries. The exact evaluators give the payoff table of a tabular leader policy
(:func:`payoff_table`), its value against a response (:func:`leader_value`), the optimal
commitment, and the Bayesian coarse-correlated-equilibrium gap with its certificate
(:func:`bcce_gap`, :func:`certified_response`).
"""

from bilevel.solvers.stackelberg._bcce import (
    BCCEResult,
    CertificationError,
    CertifiedResponse,
    bcce_gap,
    certified_response,
)
from bilevel.solvers.stackelberg._cores import (
    LeaderGameCore,
    MatrixDesignCore,
    MatrixGameCore,
    MessageSPMCore,
    SimpleAllocationCore,
    core_from_game,
)
from bilevel.solvers.stackelberg._exact import (
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
from bilevel.solvers.stackelberg._gym import StackelbergGymEnv, decode_actions, gym_action_space
from bilevel.solvers.stackelberg._no_regret import (
    MultiplicativeWeights,
    Response,
    expected_deviation_utilities,
    joint_index,
)
from bilevel.solvers.stackelberg._pomdp import Commitment, HiddenResponseEnv, StackelbergPOMDP
from bilevel.solvers.stackelberg._qlearning import QLearningFollowers

__all__ = [
    "BCCEResult",
    "CertificationError",
    "CertifiedResponse",
    "Commitment",
    "HiddenResponseEnv",
    "LeaderGameCore",
    "MatrixDesignCore",
    "MatrixGameCore",
    "MessageSPMCore",
    "MultiplicativeWeights",
    "PayoffTable",
    "QLearningFollowers",
    "Response",
    "SimpleAllocationCore",
    "StackelbergGymEnv",
    "StackelbergPOMDP",
    "bcce_gap",
    "best_response",
    "best_standard_spm",
    "certified_response",
    "core_from_game",
    "decode_actions",
    "dominant_actions",
    "expected_deviation_utilities",
    "follower_values",
    "gym_action_space",
    "joint_index",
    "leader_value",
    "optimal_commitment",
    "payoff_table",
    "respond",
    "run_dynamics",
]
