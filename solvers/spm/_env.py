"""``SPMBatchedEnv``: the SPM decision process as a :class:`bilevel.solvers.rl.BatchedEnv`.

A thin adapter over :class:`bilevel.models.spm.SPMProcess`: it samples value profiles (or uses fixed
per-row profiles), resets finished rows itself, turns the learner's action into (agent, prices)
and the final outcome into the reward.

Action
    Head 0 is categorical over the ``n`` agents, masked to the remaining agents. Prices are a
    continuous head of ``d`` coordinates clipped to ``[0, 1]`` (``price_grid=None``) or, with a
    price grid, ``d`` further categorical heads (head ``1 + j`` picks type ``j``'s price from its
    grid; all choices legal).

Reward
    0 until the episode ends; then ``objective - OPT(v)`` (``reward="welfare_loss"``, the paper's
    variance reduction, for welfare and revenue) or the objective itself
    (``reward="objective"``, required for max-min fairness).

Info (every step)
    ``"objective"`` (E,): the finished episode's objective where ``done``, NaN elsewhere;
    ``"optimum"`` (E,): its OPT(v) where ``done``, NaN elsewhere;
    ``"length"`` (E,): its number of steps where ``done``, 0 elsewhere.

Examples
--------
>>> import torch
>>> from bilevel.models.spm import make_spm_setting
>>> from bilevel.solvers.rl._protocol import Action
>>> env = SPMBatchedEnv(
...     make_spm_setting("proposition1"),
...     statistic="price_allocation",   # or "none" (ASP), "agents_left" (PSP), ...
...     objective=None,                 # the setting's ("welfare")
...     reward="welfare_loss",          # or "objective"
...     num_envs=4,
...     price_grid=None,                # continuous prices; "auto", an int, or explicit grids
...     critic="obs",                   # or "state" (adds the private values for the critic)
...     device="cpu",
...     dtype=torch.float32,
... )
>>> g = torch.Generator().manual_seed(0)
>>> first = env.reset(g)
>>> first.obs.shape, env.action_spec
(torch.Size([4, 7]), ActionSpec(categorical=(2,), continuous=1, low=0.0, high=1.0))
>>> agent = first.masks[0].to(torch.int64).argmax(dim=1)
>>> out = env.step(Action(agent.unsqueeze(1), torch.full((4, 1), 2 / 3)), g)
>>> bool((out.reward[~out.done] == 0).all())   # reward only when an episode ends
True
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from bilevel.models.spm import SPMProcess, SPMSetting, observation_dim
from bilevel.models.spm._grid import default_price_grid
from bilevel.solvers.rl._protocol import Action, ActionSpec, EnvStep

__all__ = ["REWARDS", "SPMBatchedEnv", "resolve_price_grid"]

Tensor = torch.Tensor

#: Reward modes.
REWARDS = ("welfare_loss", "objective")

PriceGrid = None | str | int | Sequence[float] | Sequence[Sequence[float]]


def resolve_price_grid(
    setting: SPMSetting, price_grid: PriceGrid
) -> tuple[tuple[float, ...], ...] | None:
    """Turn a ``price_grid`` argument into one sorted grid per item type (None: continuous).

    Parameters
    ----------
    setting : SPMSetting
    price_grid : None, "auto", int, sequence of float, or sequence of d sequences of float
        None: continuous prices. "auto": :func:`bilevel.models.spm.default_price_grid`. An int
        ``G``: ``G`` equally spaced prices in [0, 1] for every type. A sequence of floats: that
        grid for every type. A sequence of ``d`` sequences: one grid per type.

    Returns
    -------
    tuple of d tuples of float, or None
    """
    d = setting.n_types
    if price_grid is None:
        return None
    if isinstance(price_grid, str):
        if price_grid != "auto":
            raise ValueError(
                f"expected price_grid None, 'auto', an int or grids, got {price_grid!r}"
            )
        return default_price_grid(setting)
    if isinstance(price_grid, bool):
        raise TypeError("expected price_grid None, 'auto', an int or grids, got a bool")
    if isinstance(price_grid, int):
        if price_grid < 2:
            raise ValueError(f"expected a price grid of at least 2 points, got {price_grid}")
        return tuple(
            tuple(i / (price_grid - 1) for i in range(price_grid)) for _ in range(d)
        )
    items: list[object] = list(price_grid)
    grids: list[list[float]] = []
    if items and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in items):
        grids = [[float(x) for x in items if isinstance(x, (int, float))]] * d
    elif len(items) == d and all(isinstance(x, Sequence) for x in items):
        grids = [[float(y) for y in x] for x in items if isinstance(x, Sequence)]
    else:
        raise ValueError(
            f"expected price_grid as a sequence of prices or {d} sequences, got {price_grid!r}"
        )
    out = []
    for grid in grids:
        if not grid or any(not 0.0 <= p <= 1.0 for p in grid):
            raise ValueError(f"expected non-empty grids of prices in [0, 1], got {grid}")
        out.append(tuple(sorted(set(grid))))
    return tuple(out)


class SPMBatchedEnv:
    """``num_envs`` SPM episodes in lockstep, implementing ``BatchedEnv``.

    Parameters
    ----------
    setting : SPMSetting
    statistic : str, optional
        Observation statistic (``bilevel.models.spm.STATISTICS``); default ``"price_allocation"``.
    objective : {"welfare", "revenue", "maxmin"}, optional
        Default: the setting's.
    reward : {"welfare_loss", "objective"}, optional
        See the module docstring; ``"welfare_loss"`` is rejected for max-min fairness.
    num_envs : int, optional
        Rows ``E``; ignored when ``values`` is given.
    price_grid : see :func:`resolve_price_grid`, optional
    critic : {"obs", "state"}, optional
        Critic input: the observation, or the full history statistic plus the private values
        (shape ``n + d + 3 n d``); the actor always sees only ``statistic``.
    tie : {"strict", "weak"}, optional
        Buyer tie rule.
    horizon : {"early", "full"}, optional
        End episodes when units run out, or always after ``n`` steps (fixed-length episodes).
    values : Tensor, shape (E, n, d), optional
        Fixed value profile of each row (every episode of row ``e`` uses ``values[e]``).
    validate : bool, optional
        Check in every step that each row visits a remaining agent (raises ValueError
        otherwise); costs one host synchronisation per step.
    device : torch.device or str, optional
    dtype : torch.dtype, optional
    """

    def __init__(
        self,
        setting: SPMSetting,
        *,
        statistic: str = "price_allocation",
        objective: str | None = None,
        reward: str = "welfare_loss",
        num_envs: int = 1024,
        price_grid: PriceGrid = None,
        critic: str = "obs",
        tie: str = "strict",
        horizon: str = "early",
        values: Tensor | None = None,
        validate: bool = True,
        device: torch.device | str | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        self.validate = bool(validate)
        self.process = SPMProcess(
            setting, objective=objective, tie=tie, horizon=horizon, device=device, dtype=dtype
        )
        self.setting = setting
        n, d = setting.n_agents, setting.n_types
        self.statistic = statistic
        self._obs_dim = observation_dim(statistic, n, d)
        if reward not in REWARDS:
            raise ValueError(f"expected reward in {REWARDS}, got {reward!r}")
        if reward == "welfare_loss" and self.process.objective_name == "maxmin":
            raise ValueError(
                "expected reward='objective' for the max-min objective (the welfare-loss "
                "baseline is defined for welfare and revenue), got reward='welfare_loss'"
            )
        self.reward_mode = reward
        if critic not in ("obs", "state"):
            raise ValueError(f"expected critic in ('obs', 'state'), got {critic!r}")
        self.critic = critic
        self._critic_dim = self._obs_dim if critic == "obs" else n + d + 3 * n * d
        if values is not None:
            self.fixed_values: Tensor | None = self.process._check_values(values)
            num_envs = int(self.fixed_values.shape[0])
        else:
            self.fixed_values = None
        if isinstance(num_envs, bool) or not isinstance(num_envs, int) or num_envs < 1:
            raise ValueError(f"expected num_envs as an int >= 1, got {num_envs!r}")
        self._num_envs = num_envs
        self.price_grid = resolve_price_grid(setting, price_grid)
        dev = self.process.device
        if self.price_grid is None:
            self._grids: list[Tensor] = []
            self._spec = ActionSpec(categorical=(n,), continuous=d)
        else:
            self._grids = [torch.tensor(g, dtype=dtype, device=dev) for g in self.price_grid]
            self._spec = ActionSpec(categorical=(n, *(len(g) for g in self.price_grid)))
        self._grid_masks = tuple(
            torch.ones(num_envs, len(g), dtype=torch.bool, device=dev) for g in self._grids
        )
        self._started = False

    # ------------------------------------------------------------------ protocol properties

    @property
    def num_envs(self) -> int:
        """Number of rows ``E``."""
        return self._num_envs

    @property
    def obs_dim(self) -> int:
        """Length of one observation."""
        return self._obs_dim

    @property
    def critic_obs_dim(self) -> int:
        """Length of one critic observation."""
        return self._critic_dim

    @property
    def action_spec(self) -> ActionSpec:
        """Agent head, then a continuous price head or one categorical head per type."""
        return self._spec

    # ------------------------------------------------------------------ helpers

    def _draw(self, num: int, generator: torch.Generator, rows: Tensor | None) -> Tensor:
        if self.fixed_values is not None:
            return self.fixed_values if rows is None else self.fixed_values[rows]
        return self.setting.sample(num, generator)

    def _observe(self, reward: Tensor, done: Tensor, info: dict[str, Tensor]) -> EnvStep:
        p = self.process
        obs = p.observation(self.statistic)
        if self.critic == "obs":
            critic = obs
        else:
            critic = torch.cat(
                [p.observation("price_allocation"), p.values.reshape(p.num_rows, -1)], dim=1
            )
        masks = (p.agent_mask(), *self._grid_masks)
        return EnvStep(obs, critic, masks, reward, done, None, info)

    def agents_of(self, action: Action) -> Tensor:
        """The agents an action visits.

        Parameters
        ----------
        action : Action

        Returns
        -------
        Tensor, shape (E,), int64
        """
        return action.categorical[:, 0]

    def prices_of(self, action: Action) -> Tensor:
        """The prices an action posts.

        Parameters
        ----------
        action : Action

        Returns
        -------
        Tensor, shape (E, d)
        """
        if self.price_grid is None:
            return action.continuous.to(self.process.dtype).clamp(0.0, 1.0)
        idx = action.categorical[:, 1:]
        return torch.stack([g[idx[:, j]] for j, g in enumerate(self._grids)], dim=1)

    # ------------------------------------------------------------------ protocol methods

    def reset(self, generator: torch.Generator) -> EnvStep:
        """Start a new episode in every row.

        Parameters
        ----------
        generator : torch.Generator
            Draws the value profiles (unused with fixed ``values``).

        Returns
        -------
        EnvStep
            Zero rewards, no row done.
        """
        self.process.reset(self._draw(self._num_envs, generator, None))
        self._started = True
        E, dev = self._num_envs, self.process.device
        zeros = torch.zeros(E, dtype=self.process.dtype, device=dev)
        return self._observe(zeros, torch.zeros(E, dtype=torch.bool, device=dev), {})

    def step(self, action: Action, generator: torch.Generator) -> EnvStep:
        """Visit one agent per row; finished rows are reset with ``generator``.

        Parameters
        ----------
        action : Action
            ``categorical[:, 0]`` the agent (must be remaining), then the price heads.
        generator : torch.Generator

        Returns
        -------
        EnvStep
            ``done[e]`` rows carry their final reward and the next episode's first observation.
        """
        if not self._started:
            raise ValueError("expected reset() before step()")
        E = self._num_envs
        if action.categorical.shape != (E, len(self._spec.categorical)):
            raise ValueError(
                f"expected categorical actions of shape ({E}, {len(self._spec.categorical)}), "
                f"got {tuple(action.categorical.shape)}"
            )
        if action.continuous.shape != (E, self._spec.continuous):
            raise ValueError(
                f"expected continuous actions of shape ({E}, {self._spec.continuous}), "
                f"got {tuple(action.continuous.shape)}"
            )
        p = self.process
        done = p.step(action.categorical[:, 0], self.prices_of(action), validate=self.validate)
        objective = p.objective()
        nan = torch.full_like(objective, torch.nan)
        final = objective - p.optimum if self.reward_mode == "welfare_loss" else objective
        reward = torch.where(done, final, torch.zeros_like(final))
        info = {
            "objective": torch.where(done, objective, nan),
            "optimum": torch.where(done, p.optimum, nan),
            "length": torch.where(done, p.steps, torch.zeros_like(p.steps)),
        }
        if bool(done.any()):
            n_done = int(done.sum())
            p.reset_rows(done, self._draw(n_done, generator, done))
        return self._observe(reward, done, info)
