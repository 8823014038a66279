"""The contract between batched decision processes and the RL solvers (PPO).

Every learned mechanism in bilevel — sequential price mechanisms (SPM) and Stackelberg POMDP leaders
— is trained on a *batched* environment: ``E`` independent episodes stepped in lockstep as torch
tensors. Environments live in :mod:`bilevel.models` (SPM) or are composed in :mod:`bilevel.solvers`
(Stackelberg POMDP, whose response phase runs follower dynamics); the learner only sees this
protocol.

Actions are a tuple of categorical heads (each with a legality mask, e.g. "which remaining agent
to visit next", or a discrete price grid) plus one box-bounded continuous head (e.g. one price per
item type). Either part may be empty.

Episodes end at different steps; an environment resets finished rows itself (auto-reset), so the
observation returned with ``done[e] = True`` is the *first* observation of row ``e``'s next
episode. Rewards are those of the action just taken.

An environment may override the action the learner proposed — a Stackelberg leader is committed
to the action it took earlier in the same episode for the same observation — and then reports
what was actually executed in :attr:`EnvStep.executed`; the learner must store and score that
action, not its proposal.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import torch

__all__ = ["Action", "ActionSpec", "BatchedEnv", "EnvStep"]

Tensor = torch.Tensor


@dataclass(frozen=True)
class ActionSpec:
    """Shape of the action space.

    Parameters
    ----------
    categorical : tuple of int
        Number of choices of each categorical head, in order (``()``: none).
    continuous : int
        Dimension of the continuous head (0: none).
    low, high : float
        Bounds of every continuous coordinate; the environment clips into ``[low, high]``.
    """

    categorical: tuple[int, ...] = ()
    continuous: int = 0
    low: float = 0.0
    high: float = 1.0

    def __post_init__(self) -> None:
        if any(int(k) < 1 for k in self.categorical):
            raise ValueError(f"expected categorical head sizes >= 1, got {self.categorical}")
        if self.continuous < 0:
            raise ValueError(f"expected continuous >= 0, got {self.continuous}")
        if not self.low < self.high:
            raise ValueError(f"expected low < high, got low={self.low}, high={self.high}")
        if not self.categorical and self.continuous == 0:
            raise ValueError("expected at least one categorical head or a continuous head")


@dataclass(frozen=True)
class Action:
    """A batch of actions.

    Attributes
    ----------
    categorical : Tensor, shape (E, len(spec.categorical)), int64
        Chosen index of each categorical head (an empty second axis when there is none).
    continuous : Tensor, shape (E, spec.continuous), float
        Continuous coordinates (an empty second axis when there is none).
    """

    categorical: Tensor
    continuous: Tensor


@dataclass(frozen=True)
class EnvStep:
    """What a batched environment returns from ``reset`` and ``step``.

    Attributes
    ----------
    obs : Tensor, shape (E, obs_dim), float
        The policy's observation.
    critic_obs : Tensor, shape (E, critic_obs_dim), float
        The critic's input; privileged information for a centralized critic (follower
        weights, phase flags, private types), or equal to ``obs``.
    masks : tuple of Tensor, each shape (E, k_h), bool
        Legal choices of each categorical head (True = allowed); at least one per row.
    reward : Tensor, shape (E,), float
        Reward of the action just taken (zeros after ``reset``).
    done : Tensor, shape (E,), bool
        Whether the action just taken ended the row's episode (the row has been reset).
    executed : Action or None
        The actions actually executed when the environment overrode the proposal (commitment);
        None when the proposals were executed as given.
    info : dict of str to Tensor
        Extra per-row diagnostics, e.g. ``"objective"`` (E,) at episode ends.
    """

    obs: Tensor
    critic_obs: Tensor
    masks: tuple[Tensor, ...]
    reward: Tensor
    done: Tensor
    executed: Action | None = None
    info: dict[str, Tensor] = field(default_factory=dict)


@runtime_checkable
class BatchedEnv(Protocol):
    """``E`` episodes stepped in lockstep; see the module docstring for the semantics."""

    @property
    def num_envs(self) -> int:
        """Number of rows ``E``."""
        ...

    @property
    def obs_dim(self) -> int:
        """Length of one observation."""
        ...

    @property
    def critic_obs_dim(self) -> int:
        """Length of one critic observation."""
        ...

    @property
    def action_spec(self) -> ActionSpec:
        """The action space."""
        ...

    def reset(self, generator: torch.Generator) -> EnvStep:
        """Start a new episode in every row (types drawn with ``generator``)."""
        ...

    def step(self, action: Action, generator: torch.Generator) -> EnvStep:
        """Apply one action per row; finished rows are reset with ``generator``."""
        ...
