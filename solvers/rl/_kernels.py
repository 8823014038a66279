"""Advantage and return kernels of PPO: generalised advantage estimation and discounted returns.

Both kernels run one reverse scan over the ``T`` time steps of a rollout, vectorised over the ``E``
environment rows (no Python loop over rows). Their conventions follow the batched environment
contract (:mod:`bilevel.solvers.rl._protocol`): ``dones[t, e]`` says that the action taken at step
``t`` ended row ``e``'s episode, so nothing is bootstrapped across it; the value after the last step
is ``last_value`` (the value of the observation returned by the last ``step``).

References
----------
Schulman, Moritz, Levine, Jordan, Abbeel (2016), *High-dimensional continuous control using
generalized advantage estimation*, eq. (16).
"""

from __future__ import annotations

import torch

__all__ = ["discounted_returns", "gae"]

Tensor = torch.Tensor


def _check(rewards: Tensor, dones: Tensor, last_value: Tensor, gamma: float) -> None:
    if rewards.ndim != 2:
        raise ValueError(f"expected rewards of shape (T, E), got {tuple(rewards.shape)}")
    if dones.shape != rewards.shape:
        raise ValueError(
            f"expected dones of shape {tuple(rewards.shape)}, got {tuple(dones.shape)}"
        )
    if last_value.shape != rewards.shape[1:]:
        raise ValueError(
            f"expected last_value of shape {tuple(rewards.shape[1:])}, "
            f"got {tuple(last_value.shape)}"
        )
    if not 0.0 <= gamma <= 1.0:
        raise ValueError(f"expected gamma in [0, 1], got {gamma}")


def gae(
    rewards: Tensor,
    values: Tensor,
    dones: Tensor,
    last_value: Tensor,
    gamma: float,
    lam: float,
) -> tuple[Tensor, Tensor]:
    r"""Generalised advantage estimates and the matching value targets.

    ``δ_t = r_t + γ (1 − d_t) V_{t+1} − V_t`` and ``A_t = δ_t + γ λ (1 − d_t) A_{t+1}``, with
    ``V_T = last_value`` and ``A_T = 0``; the value targets are ``A_t + V_t``.

    Parameters
    ----------
    rewards : Tensor, shape (T, E)
        Reward of the action taken at each step.
    values : Tensor, shape (T, E)
        Critic's value of the state in which each action was taken.
    dones : Tensor, shape (T, E), bool
        Whether the action at step ``t`` ended the episode.
    last_value : Tensor, shape (E,)
        Critic's value of the state after the last step.
    gamma, lam : float
        Discount and GAE parameter, both in [0, 1].

    Returns
    -------
    advantages, returns : Tensor, shape (T, E)

    Raises
    ------
    ValueError
        On mismatched shapes or out-of-range ``gamma``/``lam``.

    Examples
    --------
    >>> r = torch.tensor([[0.0], [1.0]]); v = torch.tensor([[0.5], [0.5]])
    >>> d = torch.tensor([[False], [True]])
    >>> adv, ret = gae(r, v, d, torch.zeros(1), gamma=1.0, lam=1.0)
    >>> adv.squeeze(1).tolist(), ret.squeeze(1).tolist()
    ([0.5, 0.5], [1.0, 1.0])
    """
    _check(rewards, dones, last_value, gamma)
    if values.shape != rewards.shape:
        raise ValueError(
            f"expected values of shape {tuple(rewards.shape)}, got {tuple(values.shape)}"
        )
    if not 0.0 <= lam <= 1.0:
        raise ValueError(f"expected lam in [0, 1], got {lam}")
    T = rewards.shape[0]
    notdone = (~dones.bool()).to(rewards.dtype)
    next_values = torch.cat([values[1:], last_value.unsqueeze(0)], dim=0)
    deltas = rewards + gamma * notdone * next_values - values
    decay = gamma * lam * notdone
    advantages = torch.empty_like(rewards)
    running = torch.zeros_like(last_value, dtype=rewards.dtype)
    for t in range(T - 1, -1, -1):  # reverse scan over time, vectorised over rows
        running = deltas[t] + decay[t] * running
        advantages[t] = running
    return advantages, advantages + values


def discounted_returns(
    rewards: Tensor, dones: Tensor, last_value: Tensor, gamma: float
) -> Tensor:
    """Discounted returns ``G_t = r_t + γ (1 − d_t) G_{t+1}``, bootstrapped with ``last_value``.

    Equal to the value targets of :func:`gae` with ``lam = 1``.

    Parameters
    ----------
    rewards : Tensor, shape (T, E)
    dones : Tensor, shape (T, E), bool
        Whether the action at step ``t`` ended the episode.
    last_value : Tensor, shape (E,)
        Value of the state after the last step (``G_T``).
    gamma : float
        Discount in [0, 1].

    Returns
    -------
    Tensor, shape (T, E)

    Examples
    --------
    >>> r = torch.tensor([[1.0], [2.0], [4.0]]); d = torch.tensor([[False], [True], [False]])
    >>> discounted_returns(r, d, torch.tensor([8.0]), gamma=0.5).squeeze(1).tolist()
    [2.0, 2.0, 8.0]
    """
    _check(rewards, dones, last_value, gamma)
    notdone = (~dones.bool()).to(rewards.dtype)
    out = torch.empty_like(rewards)
    running = last_value.to(rewards.dtype)
    for t in range(rewards.shape[0] - 1, -1, -1):
        running = rewards[t] + gamma * notdone[t] * running
        out[t] = running
    return out
