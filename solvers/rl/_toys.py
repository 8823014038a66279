"""Tiny batched environments with known optima, for testing and demonstrating :func:`train_ppo`.

* :class:`MaskedBandit` — a one-step contextual bandit whose best-paying arm is always illegal.
* :class:`TwoStepPricing` — pick a door, then a price in [0, 1]; the best price depends on the
  door (history matters) and the critic sees a privileged extra feature.
* :class:`OverridingBandit` — the environment overrides one arm's proposal and reports the
  executed action in ``EnvStep.executed``.

All implement :class:`~bilevel.solvers.rl.BatchedEnv` with plain torch tensors.
"""

from __future__ import annotations

import torch

from bilevel.solvers.rl._protocol import Action, ActionSpec, EnvStep

__all__ = ["MaskedBandit", "OverridingBandit", "TwoStepPricing"]

Tensor = torch.Tensor


class _Rows:
    """``E`` lockstep rows (the batch of a toy environment)."""

    def __init__(self, num_envs: int) -> None:
        if num_envs < 1:
            raise ValueError(f"expected num_envs >= 1, got {num_envs}")
        self._E = num_envs

    @property
    def num_envs(self) -> int:
        """Number of rows ``E``."""
        return self._E


class MaskedBandit(_Rows):
    """One-step contextual bandit with 4 arms; arm 3 pays the most but is always masked.

    The context ``c`` is 0 or 1 with equal probability (observation: one-hot ``c``); arm
    rewards are ``[0, 0.5, 1, 2]`` for ``c = 0`` and ``[1, 0.5, 0, 2]`` for ``c = 1``. The best
    legal policy plays arm 2 in context 0 and arm 0 in context 1 and earns 1.

    Parameters
    ----------
    num_envs : int
        Number of rows ``E``.
    """

    REWARDS = torch.tensor([[0.0, 0.5, 1.0, 2.0], [1.0, 0.5, 0.0, 2.0]])

    def __init__(self, num_envs: int) -> None:
        super().__init__(num_envs)
        self._ctx = torch.zeros(num_envs, dtype=torch.long)

    @property
    def obs_dim(self) -> int:
        """One-hot context, 2."""
        return 2

    @property
    def critic_obs_dim(self) -> int:
        """Same as :attr:`obs_dim`."""
        return 2

    @property
    def action_spec(self) -> ActionSpec:
        """One categorical head with 4 choices."""
        return ActionSpec(categorical=(4,))

    def _obs(self, reward: Tensor, done: Tensor) -> EnvStep:
        obs = torch.nn.functional.one_hot(self._ctx, 2).float()
        mask = torch.ones((self._E, 4), dtype=torch.bool)
        mask[:, 3] = False
        return EnvStep(obs, obs, (mask,), reward, done, info={"objective": reward})

    def reset(self, generator: torch.Generator) -> EnvStep:
        """Draw fresh contexts."""
        self._ctx = torch.randint(0, 2, (self._E,), generator=generator)
        return self._obs(torch.zeros(self._E), torch.zeros(self._E, dtype=torch.bool))

    def step(self, action: Action, generator: torch.Generator) -> EnvStep:
        """Pay the chosen arm; every episode ends and the next context is drawn."""
        reward = self.REWARDS[self._ctx, action.categorical[:, 0]]
        self._ctx = torch.randint(0, 2, (self._E,), generator=generator)
        return self._obs(reward, torch.ones(self._E, dtype=torch.bool))


class TwoStepPricing(_Rows):
    """Two steps: choose door 0 or 1, then post a price ``p`` in [0, 1].

    The final reward is ``1 − 4 (p − 0.3)²`` behind door 0 and ``0.8 − 4 (p − 0.7)²`` behind
    door 1 (intermediate reward 0), so the optimum is door 0 then ``p = 0.3`` with value 1.
    The observation is ``[step-2 flag, one-hot door]``; the critic additionally sees a constant
    feature (different critic dimension). The price head is ignored at step 1 and the door
    head at step 2.

    Parameters
    ----------
    num_envs : int
        Number of rows ``E``.
    """

    def __init__(self, num_envs: int) -> None:
        super().__init__(num_envs)
        self._t = torch.zeros(num_envs, dtype=torch.long)
        self._door = torch.zeros(num_envs, dtype=torch.long)

    @property
    def obs_dim(self) -> int:
        """``[step-2 flag, door 0, door 1]``."""
        return 3

    @property
    def critic_obs_dim(self) -> int:
        """The observation plus a constant 1."""
        return 4

    @property
    def action_spec(self) -> ActionSpec:
        """A door head with 2 choices and one price in [0, 1]."""
        return ActionSpec(categorical=(2,), continuous=1, low=0.0, high=1.0)

    def _obs(self, reward: Tensor, done: Tensor, objective: Tensor) -> EnvStep:
        second = (self._t == 1).float()
        door = torch.nn.functional.one_hot(self._door, 2).float() * second[:, None]
        obs = torch.cat([second[:, None], door], dim=1)
        cobs = torch.cat([obs, torch.ones(self._E, 1)], dim=1)
        mask = torch.ones((self._E, 2), dtype=torch.bool)
        return EnvStep(obs, cobs, (mask,), reward, done, info={"objective": objective})

    def reset(self, generator: torch.Generator) -> EnvStep:
        """Start every row at step 1."""
        self._t = torch.zeros(self._E, dtype=torch.long)
        self._door = torch.zeros(self._E, dtype=torch.long)
        z = torch.zeros(self._E)
        return self._obs(z, torch.zeros(self._E, dtype=torch.bool), z)

    def step(self, action: Action, generator: torch.Generator) -> EnvStep:
        """Record the door at step 1; pay at step 2 and restart the row."""
        first = self._t == 0
        p = action.continuous[:, 0].clamp(0.0, 1.0)
        pay = torch.where(self._door == 0, 1.0 - 4 * (p - 0.3) ** 2, 0.8 - 4 * (p - 0.7) ** 2)
        reward = torch.where(first, torch.zeros_like(pay), pay)
        self._door = torch.where(first, action.categorical[:, 0], torch.zeros_like(self._door))
        done = ~first
        self._t = torch.where(first, torch.ones_like(self._t), torch.zeros_like(self._t))
        return self._obs(reward, done, reward)


class OverridingBandit(_Rows):
    """One-step bandit with 3 arms where the environment executes arm 1 when arm 0 is proposed.

    Executed arm 1 pays 1 and arm 2 pays 0. A learner that credits what was *executed* puts all
    its mass on arm 1; one that wrongly credits its proposals splits it between arms 0 and 1.
    The observation is a constant 1.

    Parameters
    ----------
    num_envs : int
        Number of rows ``E``.
    """

    @property
    def obs_dim(self) -> int:
        """A constant 1."""
        return 1

    @property
    def critic_obs_dim(self) -> int:
        """A constant 1."""
        return 1

    @property
    def action_spec(self) -> ActionSpec:
        """One categorical head with 3 choices."""
        return ActionSpec(categorical=(3,))

    def _obs(self, reward: Tensor, done: Tensor, executed: Action | None) -> EnvStep:
        obs = torch.ones(self._E, 1)
        mask = torch.ones((self._E, 3), dtype=torch.bool)
        return EnvStep(obs, obs, (mask,), reward, done, executed, {"objective": reward})

    def reset(self, generator: torch.Generator) -> EnvStep:
        """Nothing to draw."""
        return self._obs(torch.zeros(self._E), torch.zeros(self._E, dtype=torch.bool), None)

    def step(self, action: Action, generator: torch.Generator) -> EnvStep:
        """Execute (arm 0 → arm 1), pay, and end every episode."""
        arm = action.categorical[:, 0]
        executed = torch.where(arm == 0, torch.ones_like(arm), arm)
        reward = (executed == 1).float()
        ex = Action(categorical=executed[:, None], continuous=action.continuous)
        return self._obs(reward, torch.ones(self._E, dtype=torch.bool), ex)
