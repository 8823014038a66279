"""Learned deviators: PPO buyers that start truthful and learn to exploit a frozen mechanism.

The paper's deviating agents (its Appendix D.4) are a truthful prototype plus a residual that
is zero at initialisation, so training starts at truthful reporting and any gain found is a
gain from lying. Here:

* continuous types — the :class:`DeviatorEnv` action is already the residual ``Δ`` in logit
  space (``Δ = 0`` is the truth); the policy is an :class:`ActorCritic` whose mean head is
  zeroed, so its mean is exactly 0 at initialisation;
* discrete types — :class:`TruthfulPrior` adds ``k · e(truth)`` (``k = softplus(κ)``, learnable)
  to the categorical head's logits, the truthful report decoded from the observation's own
  values, and zeroes the head's residual; its mode is the truth at initialisation for every
  ``k > 0``, with probability ``e^k / (e^k + |V|^m − 1)``.

:func:`train_deviator` trains one with :func:`bilevel.solvers.rl.train_ppo` (unchanged) and
:func:`deviation_gain` scores a policy against truthful reporting on common random numbers: the
two runs share every type and allocation draw (the process's draws are counter-based on the
generator's salts), so the paired difference has a small standard error.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from bilevel.models.dynamic import BanditAuctionSetting, Mechanism
from bilevel.models.typing import FloatArray
from bilevel.solvers.dynamic._env import DeviatorEnv
from bilevel.solvers.rl._policy import ActorCritic, PolicyDistribution
from bilevel.solvers.rl._ppo import PPOConfig, PPOResult, train_ppo
from bilevel.solvers.rl._protocol import ActionSpec

__all__ = ["DeviationGain", "TruthfulPrior", "deviation_gain", "deviator_policy", "train_deviator"]

Tensor = torch.Tensor
_NEG = -1e9


def _inverse_softplus(k: float) -> float:
    return k + math.log(-math.expm1(-k))


def _zero_head(net: ActorCritic, start: int, stop: int) -> None:
    last = net.actor[-1]
    if not isinstance(last, nn.Linear):  # pragma: no cover - ActorCritic's layout
        raise TypeError("expected the actor to end in a Linear layer")
    with torch.no_grad():
        last.weight[start:stop] = 0.0
        last.bias[start:stop] = 0.0


class TruthfulPrior(ActorCritic):
    """A categorical deviator whose logits are ``k · e(truth) + residual`` (discrete types).

    Parameters
    ----------
    obs_dim, critic_obs_dim : int
        As in :class:`ActorCritic` (the :class:`DeviatorEnv` layout: the own values are
        observation entries ``1 .. m``, scaled to [0, 1] over the support's range).
    action_spec : ActionSpec
        One categorical head of ``|V|^m`` reports.
    support : sequence of float
        The value support ``V``.
    n_goods : int
        ``m``.
    strength : float, default 2.0
        Initial prototype strength ``k > 0``.
    hidden, activation, generator, dtype
        As in :class:`ActorCritic`.

    Examples
    --------
    >>> from bilevel.models.dynamic import make_bandit_setting, posted_price
    >>> s = make_bandit_setting("discrete", horizon=3)
    >>> env = DeviatorEnv(s, posted_price(s, 1.5), num_envs=4)
    >>> net = TruthfulPrior(env.obs_dim, env.critic_obs_dim, env.action_spec,
    ...                     support=s.support, n_goods=1, strength=10.0)
    >>> step = env.reset(torch.Generator().manual_seed(0))
    >>> a = net.act(step.obs, step.masks)
    >>> bool(torch.equal(a.categorical, env.truthful_action().categorical))
    True
    """

    _positions: Tensor
    _weights: Tensor

    def __init__(
        self,
        obs_dim: int,
        critic_obs_dim: int,
        action_spec: ActionSpec,
        *,
        support: Sequence[float],
        n_goods: int,
        strength: float = 2.0,
        hidden: Sequence[int] = (64, 64),
        activation: str = "tanh",
        generator: torch.Generator | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        sup = [float(v) for v in support]
        K, m = len(sup), int(n_goods)
        if action_spec.categorical != (K**m,) or action_spec.continuous:
            raise ValueError(
                f"expected one categorical head of |V|^m = {K**m} reports, got {action_spec}"
            )
        if not (isinstance(strength, (int, float)) and math.isfinite(strength) and strength > 0):
            raise ValueError(f"expected strength as a finite float > 0, got {strength!r}")
        super().__init__(obs_dim, critic_obs_dim, action_spec, hidden, activation,
                         generator=generator, dtype=dtype)
        lo, hi = sup[0], sup[-1]
        span = hi - lo if hi > lo else 1.0
        self.n_goods = m
        self.strength = float(strength)
        self.register_buffer("_positions", torch.tensor([(v - lo) / span for v in sup],
                                                        dtype=dtype))
        self.register_buffer("_weights", torch.tensor([K ** (m - 1 - j) for j in range(m)]))
        self.kappa = nn.Parameter(torch.tensor(_inverse_softplus(float(strength)), dtype=dtype))
        _zero_head(self, 0, K**m)

    def truthful_index(self, obs: Tensor) -> Tensor:
        """The truthful report index decoded from observations, shape (E,), int64."""
        own = obs[:, 1 : 1 + self.n_goods].to(self._positions.dtype)  # (E, m)
        digit = (own.unsqueeze(-1) - self._positions).abs().argmin(dim=-1)  # (E, m)
        idx: Tensor = (digit * self._weights).sum(dim=1)
        return idx

    def distribution(self, obs: Tensor, masks: Sequence[Tensor]) -> PolicyDistribution:
        """Logits ``k · e(truth) + residual`` of the one head, masked and normalised."""
        if len(masks) != 1:
            raise ValueError(f"expected 1 mask, got {len(masks)}")
        raw = self.actor(obs.to(self.dtype))
        k = nn.functional.softplus(self.kappa)
        onehot = nn.functional.one_hot(self.truthful_index(obs), raw.shape[1]).to(raw.dtype)
        logits = raw + k * onehot
        masked = torch.where(masks[0], logits, torch.full_like(logits, _NEG))
        empty = raw.new_zeros(raw.shape[0], 0)
        return PolicyDistribution((torch.log_softmax(masked, dim=1),), empty, self.log_std,
                                  self.action_spec)


def deviator_policy(
    env: DeviatorEnv,
    config: PPOConfig,
    generator: torch.Generator,
    *,
    strength: float = 2.0,
) -> ActorCritic:
    """A truthful-at-initialisation deviator for ``env`` (see the module docstring).

    Parameters
    ----------
    env : DeviatorEnv
    config : PPOConfig
        Hidden widths, activation, ``init_std`` (continuous) and dtype.
    generator : torch.Generator
        Initial weights.
    strength : float, default 2.0
        Discrete prototype strength ``k``.

    Returns
    -------
    ActorCritic
        Discrete: a :class:`TruthfulPrior`; continuous: an :class:`ActorCritic` with the mean
        head zeroed (mean residual exactly 0).
    """
    dtype = getattr(torch, config.dtype)
    if env.setting.discrete:
        return TruthfulPrior(env.obs_dim, env.critic_obs_dim, env.action_spec,
                             support=env.setting.support, n_goods=env.setting.n_goods,
                             strength=strength, hidden=config.hidden,
                             activation=config.activation, generator=generator, dtype=dtype)
    net = ActorCritic(env.obs_dim, env.critic_obs_dim, env.action_spec, config.hidden,
                      config.activation, config.init_std, generator=generator, dtype=dtype)
    _zero_head(net, 0, env.action_spec.continuous)
    return net


def train_deviator(
    setting: BanditAuctionSetting,
    mechanism: Mechanism,
    config: PPOConfig,
    generator: torch.Generator,
    *,
    agent: int = 0,
    strength: float = 2.0,
    critic: str = "state",
    max_seconds: float | None = None,
) -> PPOResult:
    """Train a truthful-init PPO deviator for buyer ``agent`` against a frozen mechanism.

    Parameters
    ----------
    setting : BanditAuctionSetting
    mechanism : Mechanism
    config : PPOConfig
        Its ``num_envs`` rows of :class:`DeviatorEnv`; give it the setting's ``gamma``.
    generator : torch.Generator
        The only source of randomness.
    agent : int, default 0
    strength : float, default 2.0
        Discrete prototype strength.
    critic : {"obs", "state"}, default "state"
        Centralised critic (it also sees the hidden values).
    max_seconds : float, optional
        Wall-clock cap of training.

    Returns
    -------
    PPOResult
    """
    env = DeviatorEnv(setting, mechanism, agent=agent, num_envs=config.num_envs, critic=critic,
                      validate=False, device=config.device)
    policy = deviator_policy(env, config, generator, strength=strength)
    return train_ppo(env, config, generator, policy=policy, max_seconds=max_seconds)


@dataclass(frozen=True)
class DeviationGain:
    """A policy's utility against truthful reporting on common random numbers.

    Attributes
    ----------
    gain : float
        Mean of ``deviating − truthful`` discounted utility.
    se : float
        Its standard error (paired).
    deviating, truthful : float
        The two means.
    episodes : int
    """

    gain: float
    se: float
    deviating: float
    truthful: float
    episodes: int


@torch.no_grad()
def _episode_utilities(
    env: DeviatorEnv, policy: ActorCritic | None, generator: torch.Generator
) -> Tensor:
    step = env.reset(generator)
    info = step.info
    for _ in range(env.setting.horizon):
        if policy is None:
            action = env.truthful_action()
        else:
            with torch.no_grad():
                action = policy.act(step.obs.to(policy.dtype), step.masks)
        step = env.step(action, generator)
        info = step.info
    out: Tensor = info["episode_utility"].to(torch.float64)
    return out


def deviation_gain(
    setting: BanditAuctionSetting,
    mechanism: Mechanism,
    policy: ActorCritic,
    *,
    agent: int = 0,
    episodes: int = 65_536,
    num_envs: int = 4096,
    seed: int = 0,
    critic: str = "state",
) -> DeviationGain:
    """Score a deviator's greedy policy against truthful reports, paired.

    Parameters
    ----------
    setting : BanditAuctionSetting
    mechanism : Mechanism
    policy : ActorCritic
        The deviator (its greedy action per observation).
    agent : int, default 0
    episodes : int, default 65536
        Rounded up to whole batches of ``num_envs``.
    num_envs : int, default 4096
    seed : int, default 0
        Batch ``b`` draws from ``torch.Generator().manual_seed(seed * 1_000_003 + b)`` in both
        runs.
    critic : {"obs", "state"}, default "state"
        The critic layout the policy was trained with.

    Returns
    -------
    DeviationGain
    """
    if isinstance(episodes, bool) or not isinstance(episodes, int) or episodes < 1:
        raise ValueError(f"expected episodes as an int >= 1, got {episodes!r}")
    E = min(int(num_envs), episodes)
    batches = -(-episodes // E)
    dev_env = DeviatorEnv(setting, mechanism, agent=agent, num_envs=E, critic=critic,
                          auto_reset=False, validate=False, dtype=torch.float64)
    tru_env = DeviatorEnv(setting, mechanism, agent=agent, num_envs=E, critic=critic,
                          auto_reset=False, validate=False, dtype=torch.float64)
    policy = policy.to("cpu")
    dev_parts: list[FloatArray] = []
    tru_parts: list[FloatArray] = []
    for b in range(batches):
        s = seed * 1_000_003 + b
        dev_parts.append(_episode_utilities(dev_env, policy,
                                            torch.Generator().manual_seed(s)).numpy())
        tru_parts.append(_episode_utilities(tru_env, None,
                                            torch.Generator().manual_seed(s)).numpy())
    dev, tru = np.concatenate(dev_parts), np.concatenate(tru_parts)
    diff = dev - tru
    N = diff.size
    se = float(diff.std(ddof=1) / math.sqrt(N)) if N > 1 else float("nan")
    return DeviationGain(float(diff.mean()), se, float(dev.mean()), float(tru.mean()), N)
