"""The "basic POMDP" ablation of the Stackelberg POMDP: response transitions hidden from PPO.

In the paper's ablation (Brero et al., *Stackelberg POMDP*, §6; reference §2.1) the response
phase is still executed — the leader acts on every query and is committed to those actions —
but its transitions never enter the PPO buffer. The PPO of :mod:`solvers._ppo` stores every
step it sees, so this wrapper plays the response-phase steps itself with the policy being
trained (stochastic actions from the same generator, through the same commitment cache) and
shows the learner only the reward-phase steps: an episode of the wrapper is the reward phase of
an episode of :class:`~solvers._stackelberg_env.StackelbergPOMDP`.
"""

from __future__ import annotations

import torch

from solvers._ppo_policy import ActorCritic
from solvers._rl_protocol import Action, ActionSpec, EnvStep
from solvers._stackelberg_env import StackelbergPOMDP

__all__ = ["HiddenResponseEnv"]


class HiddenResponseEnv:
    """A :class:`~solvers._rl_protocol.BatchedEnv` showing only the reward phase.

    Parameters
    ----------
    env : StackelbergPOMDP
        The full environment.
    policy : ActorCritic
        The network being trained; it acts (stochastically) in the hidden response phase.

    Raises
    ------
    TypeError
        For a wrong environment or policy type.
    """

    def __init__(self, env: StackelbergPOMDP, policy: ActorCritic) -> None:
        if not isinstance(env, StackelbergPOMDP):
            raise TypeError(f"expected a StackelbergPOMDP, got {type(env).__name__}")
        if not isinstance(policy, ActorCritic):
            raise TypeError(f"expected an ActorCritic, got {type(policy).__name__}")
        self.env, self.policy = env, policy
        self.horizon = env.n_reward_games * env.H

    @property
    def num_envs(self) -> int:
        """Number of rows ``E``."""
        return self.env.num_envs

    @property
    def obs_dim(self) -> int:
        """Length of the actor's observation."""
        return self.env.obs_dim

    @property
    def critic_obs_dim(self) -> int:
        """Length of the critic's observation."""
        return self.env.critic_obs_dim

    @property
    def action_spec(self) -> ActionSpec:
        """The leader's action space."""
        return self.env.action_spec

    def _play_response(self, step: EnvStep, generator: torch.Generator) -> EnvStep:
        while self.env.in_response:
            dev = next(self.policy.parameters()).device
            act = self.policy.act(step.obs.to(dev), [m.to(dev) for m in step.masks],
                                  deterministic=False, generator=generator)
            step = self.env.step(Action(act.categorical.cpu(), act.continuous.cpu()),
                                 generator)
        return step

    def reset(self, generator: torch.Generator) -> EnvStep:
        """Start new episodes and play their response phases; the first reward-phase step."""
        return self._play_response(self.env.reset(generator), generator)

    def step(self, action: Action, generator: torch.Generator) -> EnvStep:
        """One reward-phase step; at an episode end the next response phase is played too."""
        s = self.env.step(action, generator)
        if not bool(s.done.any()):
            return s
        nxt = self._play_response(s, generator)
        return EnvStep(obs=nxt.obs, critic_obs=nxt.critic_obs, masks=nxt.masks,
                       reward=s.reward, done=s.done, executed=s.executed, info=s.info)
