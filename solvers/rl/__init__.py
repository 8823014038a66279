"""Batched reinforcement learning: PPO over the batched-environment protocol.

:class:`BatchedEnv` is the protocol every learned-mechanism decision process implements (``E``
episodes stepped in lockstep, plain tensors in and out); :func:`train_ppo` trains an
:class:`ActorCritic` on one. :mod:`bilevel.solvers.spm` and :mod:`bilevel.solvers.stackelberg`
provide the environments; the toy environments here (:class:`MaskedBandit`,
:class:`OverridingBandit`, :class:`TwoStepPricing`) have known optima and test the trainer.
"""

from bilevel.solvers.rl._kernels import discounted_returns, gae
from bilevel.solvers.rl._policy import ActorCritic, PolicyDistribution, load_weights
from bilevel.solvers.rl._ppo import (
    PPOBatch,
    PPOConfig,
    PPOResult,
    PPOUpdate,
    ppo_update,
    rollout_objective,
    train_ppo,
)
from bilevel.solvers.rl._protocol import Action, ActionSpec, BatchedEnv, EnvStep
from bilevel.solvers.rl._toys import MaskedBandit, OverridingBandit, TwoStepPricing

__all__ = [
    "Action",
    "ActionSpec",
    "ActorCritic",
    "BatchedEnv",
    "EnvStep",
    "MaskedBandit",
    "OverridingBandit",
    "PPOBatch",
    "PPOConfig",
    "PPOResult",
    "PPOUpdate",
    "PolicyDistribution",
    "TwoStepPricing",
    "discounted_returns",
    "gae",
    "load_weights",
    "ppo_update",
    "rollout_objective",
    "train_ppo",
]
