"""``DeviatorGymEnv``: one bandit-auction episode of the deviating buyer behind gymnasium.

It runs :class:`DeviatorEnv` with one row (float64, no auto-reset), for RL libraries that step
one episode at a time. Observation: a Box ``[0, 1]^(1 + 2m + 2nm)`` (see
:mod:`bilevel.solvers.dynamic._env`). Action: a Box ``[-1, 1]^m`` scaled to the residual
``Δ = c · a`` (continuous types; 0 is truthful; the normalised box gymnasium recommends) or
``Discrete(|V|^m)`` report vectors (discrete types). Reward: the learner's
period utility. Every episode terminates after ``T`` steps.
"""

from __future__ import annotations

from typing import Any, SupportsFloat

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces

from bilevel.models.dynamic import BanditAuctionSetting, Mechanism
from bilevel.solvers.dynamic._env import DeviatorEnv
from bilevel.solvers.rl._protocol import Action

__all__ = ["DeviatorGymEnv"]

ObsType = np.ndarray
ActType = Any


class DeviatorGymEnv(gym.Env[ObsType, ActType]):
    """A single-episode gymnasium environment of one deviating buyer.

    Parameters
    ----------
    setting : BanditAuctionSetting
    mechanism : Mechanism
        Frozen mechanism (see :class:`DeviatorEnv`).
    agent : int, optional
        The learning buyer; the others report truthfully.
    residual_bound : float, optional
        ``c`` of the continuous residual box.

    Notes
    -----
    ``reset(options={"values": array (n, m)})`` starts from given values. ``info`` carries
    ``"revenue"`` and ``"welfare"`` of the period and, at the end, ``"episode_utility"``.

    Examples
    --------
    >>> from bilevel.models.dynamic import make_bandit_setting, posted_price
    >>> s = make_bandit_setting("discrete", horizon=2)
    >>> env = DeviatorGymEnv(s, posted_price(s, 1.5))
    >>> obs, info = env.reset(seed=0, options={"values": [[1.0]]})
    >>> obs, r, terminated, truncated, info = env.step(1)     # report 2 while worth 1
    >>> r, terminated
    (-0.5, False)
    """

    metadata: dict[str, Any] = {"render_modes": []}  # noqa: RUF012 - gymnasium's convention

    def __init__(
        self,
        setting: BanditAuctionSetting,
        mechanism: Mechanism,
        *,
        agent: int = 0,
        residual_bound: float = 6.0,
    ) -> None:
        super().__init__()
        self.env = DeviatorEnv(
            setting, mechanism, agent=agent, num_envs=1, residual_bound=residual_bound,
            auto_reset=False, dtype=torch.float64,
        )
        self.setting = setting
        dim = self.env.obs_dim
        self.observation_space = spaces.Box(0.0, 1.0, shape=(dim,), dtype=np.float32)
        if setting.discrete:
            self.action_space: spaces.Space[Any] = spaces.Discrete(setting.n_reports)
        else:
            self.action_space = spaces.Box(-1.0, 1.0, shape=(setting.n_goods,), dtype=np.float32)
        self._torch_gen: torch.Generator | None = None
        self._active = False

    def _obs(self, obs: torch.Tensor) -> ObsType:
        return np.clip(obs[0].numpy().astype(np.float32), 0.0, 1.0)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[ObsType, dict[str, Any]]:
        """Start an episode on a fresh draw (or on ``options["values"]``).

        Parameters
        ----------
        seed : int, optional
        options : dict, optional
            ``{"values": array-like (n, m)}`` fixes the initial values.

        Returns
        -------
        obs : ndarray, shape (obs_dim,), float32
        info : dict
        """
        super().reset(seed=seed)
        if seed is not None or self._torch_gen is None:
            self._torch_gen = torch.Generator().manual_seed(
                int(self.np_random.integers(0, 2**62))
            )
        first = self.env.reset(self._torch_gen)
        if options is not None and "values" in options:
            n, m = self.setting.n_buyers, self.setting.n_goods
            values = torch.as_tensor(np.asarray(options["values"], dtype=np.float64))
            if tuple(values.shape) != (n, m):
                raise ValueError(f"expected values of shape ({n}, {m}), got {tuple(values.shape)}")
            self.env.process.reset(1, self._torch_gen, values=values.unsqueeze(0))
            first = self.env._observe(
                torch.zeros(1, dtype=torch.float64), torch.zeros(1, dtype=torch.bool), {}
            )
        self._active = True
        return self._obs(first.obs), {}

    def step(self, action: ActType) -> tuple[ObsType, SupportsFloat, bool, bool, dict[str, Any]]:
        """Play one period with the learner's action.

        Parameters
        ----------
        action : int (discrete types) or ndarray, shape (m,) in [-1, 1] (continuous types:
            the residual is ``residual_bound`` times it)

        Returns
        -------
        obs, reward, terminated, truncated, info
        """
        if not self._active or self._torch_gen is None:
            raise ValueError("expected reset() before step() (the episode has ended)")
        m = self.setting.n_goods
        if self.setting.discrete:
            k = int(np.asarray(action).reshape(-1)[0])
            act = Action(torch.tensor([[k]]), torch.zeros(1, 0, dtype=torch.float64))
        else:
            a = np.asarray(action, dtype=np.float64).reshape(-1)
            if a.shape != (m,):
                raise ValueError(f"expected an action of shape ({m},), got {a.shape}")
            a = np.clip(a, -1.0, 1.0) * self.env.residual_bound
            act = Action(torch.zeros(1, 0, dtype=torch.int64), torch.as_tensor(a).reshape(1, m))
        out = self.env.step(act, self._torch_gen)
        terminated = bool(out.done[0])
        info: dict[str, Any] = {
            "revenue": float(out.info["revenue"][0]),
            "welfare": float(out.info["welfare"][0]),
        }
        if terminated:
            info["episode_utility"] = float(out.info["episode_utility"][0])
            self._active = False
        return self._obs(out.obs), float(out.reward[0]), terminated, False, info
