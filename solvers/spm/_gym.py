"""``SPMGymEnv``: one SPM episode at a time behind the gymnasium API, for other RL libraries.

It runs the same :class:`bilevel.models.spm.SPMProcess` with one row. The action is the paper's
encoding (Brero et al. (2021), "Experimental Results": n agent scores, then the prices), as a
Box ``[0, 1]^(n + d)`` whose first ``n`` coordinates are agent scores (the highest-scoring
*remaining* agent is visited, so no action is invalid) and whose last ``d`` are the prices of
the item types. Reward 0 until the episode ends, then the
objective minus the episode's optimal welfare (``reward="welfare_loss"``) or the objective.
"""

from __future__ import annotations

from typing import Any, SupportsFloat

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces

from bilevel.models.spm._process import SPMProcess, observation_dim
from bilevel.models.spm._setting import SPMSetting

__all__ = ["SPMGymEnv"]

ObsType = np.ndarray
ActType = np.ndarray


class SPMGymEnv(gym.Env[ObsType, ActType]):
    """A single-episode gymnasium environment of the SPM decision process.

    Parameters
    ----------
    setting : SPMSetting
    statistic : str, optional
        Observation statistic (``bilevel.models.spm.STATISTICS``); default ``"price_allocation"``.
    objective : {"welfare", "revenue", "maxmin"}, optional
        Default: the setting's.
    reward : {"welfare_loss", "objective"}, optional
        ``"welfare_loss"`` is rejected for max-min fairness.
    tie : {"strict", "weak"}, optional
    horizon : {"early", "full"}, optional
        End episodes when units run out, or always after ``n`` steps.

    Notes
    -----
    ``reset(options={"values": array (n, d)})`` runs the episode on a given value profile.
    ``info`` carries ``"agent_mask"`` (n,) and, at the end, ``"objective"`` and ``"optimum"``.

    Examples
    --------
    >>> from bilevel.models.spm import make_spm_setting
    >>> env = SPMGymEnv(make_spm_setting("proposition1"))
    >>> obs, info = env.reset(seed=0, options={"values": [[1.0], [1 / 3]]})
    >>> obs, r, terminated, truncated, info = env.step(np.array([1.0, 0.0, 0.5]))
    >>> terminated, r, info["objective"]
    (True, 0.0, 1.0)
    """

    metadata: dict[str, Any] = {"render_modes": []}  # noqa: RUF012 - gymnasium's convention

    def __init__(
        self,
        setting: SPMSetting,
        *,
        statistic: str = "price_allocation",
        objective: str | None = None,
        reward: str = "welfare_loss",
        tie: str = "strict",
        horizon: str = "early",
    ) -> None:
        super().__init__()
        self.process = SPMProcess(
            setting, objective=objective, tie=tie, horizon=horizon, dtype=torch.float64
        )
        if reward not in ("welfare_loss", "objective"):
            raise ValueError(f"expected reward in ('welfare_loss', 'objective'), got {reward!r}")
        if reward == "welfare_loss" and self.process.objective_name == "maxmin":
            raise ValueError(
                "expected reward='objective' for the max-min objective, got 'welfare_loss'"
            )
        self.setting = setting
        self.statistic = statistic
        self.reward_mode = reward
        n, d = setting.n_agents, setting.n_types
        dim = observation_dim(statistic, n, d)
        self.observation_space = spaces.Box(0.0, 1.0, shape=(dim,), dtype=np.float32)
        self.action_space = spaces.Box(0.0, 1.0, shape=(n + d,), dtype=np.float32)
        self._torch_gen: torch.Generator | None = None
        self._active = False

    def _obs(self) -> ObsType:
        obs = self.process.observation(self.statistic)[0].numpy().astype(np.float32)
        return np.clip(obs, 0.0, 1.0)

    def _info(self) -> dict[str, Any]:
        return {"agent_mask": self.process.agent_mask()[0].numpy().copy()}

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[ObsType, dict[str, Any]]:
        """Start an episode on a fresh draw (or on ``options["values"]``).

        Parameters
        ----------
        seed : int, optional
        options : dict, optional
            ``{"values": array-like (n, d)}`` fixes the value profile.

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
        n, d = self.setting.n_agents, self.setting.n_types
        if options is not None and "values" in options:
            values = torch.as_tensor(np.asarray(options["values"], dtype=np.float64))
            if tuple(values.shape) != (n, d):
                raise ValueError(f"expected values of shape ({n}, {d}), got {tuple(values.shape)}")
            values = values.unsqueeze(0)
        else:
            values = self.setting.sample(1, self._torch_gen)
        self.process.reset(values)
        self._active = True
        return self._obs(), self._info()

    def step(self, action: ActType) -> tuple[ObsType, SupportsFloat, bool, bool, dict[str, Any]]:
        """Visit the highest-scoring remaining agent at the action's prices.

        Parameters
        ----------
        action : ndarray, shape (n + d,)
            Agent scores, then prices (clipped to [0, 1]).

        Returns
        -------
        obs, reward, terminated, truncated, info
        """
        if not self._active:
            raise ValueError("expected reset() before step() (the episode has ended)")
        n, d = self.setting.n_agents, self.setting.n_types
        a = np.asarray(action, dtype=np.float64).reshape(-1)
        if a.shape != (n + d,):
            raise ValueError(f"expected an action of shape ({n + d},), got {a.shape}")
        p = self.process
        scores = torch.as_tensor(a[:n]).masked_fill(~p.agents_left[0], -torch.inf)
        agent = scores.argmax().reshape(1)
        prices = torch.as_tensor(np.clip(a[n:], 0.0, 1.0)).reshape(1, d)
        ended = bool(p.step(agent, prices)[0])
        reward = 0.0
        info = self._info()
        if ended:
            obj = float(p.objective()[0])
            opt = float(p.optimum[0])
            reward = obj - opt if self.reward_mode == "welfare_loss" else obj
            info.update(objective=obj, optimum=opt)
            self._active = False
        return self._obs(), reward, ended, False, info
