"""``DeviatorEnv``: one learning buyer against a frozen dynamic mechanism, as a ``BatchedEnv``.

A thin adapter over :class:`bilevel.models.dynamic.BanditAuctionProcess` for the RL stack of
:mod:`bilevel.solvers.rl`: buyer ``agent`` is the learner, every other buyer reports truthfully,
and the mechanism is any callable ``mechanism(history (E, τ+1, n, m), cumulative (E, n, m)) ->
(allocation (E, n+1, m), payments (E, n))`` (``bilevel.models.dynamic.Mechanism``). Training a
deviator against it estimates the agent's gain from lying (a lower bound on its exploitability
term; the paper's deviating agents, Appendix D.4).

Observation (all in [0, 1]; the paper's private observation plus the public outcome history)
    ``[τ/(T-1), own values (m), own last report (m), last allocation (n m), cumulative
    allocation / T (n m)]``, length ``1 + 2 m + 2 n m``. Values and reports are mapped from the
    type range ``[lo, hi]`` to [0, 1]; τ/(T-1) is 0 when T = 1; the last report is 0 at τ = 0.
    ``critic="state"`` appends every buyer's current values (``n m``, the hidden types) for a
    centralised critic.
Action
    Continuous types: a residual ``Δ ∈ [-c, c]^m`` (``c = residual_bound``, default 6) in logit
    space, ``report = lo + (hi - lo) · sigmoid(logit((v - lo)/(hi - lo)) + Δ)`` with ``v``
    clamped 1e-6 inside the box; ``Δ = 0`` reports the truth exactly, so a Gaussian policy whose
    mean starts at the box centre is truthful at initialisation. Discrete types: one categorical
    head over the ``|V|^m`` report vectors (``BanditAuctionSetting.report_grid`` order; all
    legal); :meth:`DeviatorEnv.truthful_action` gives the truthful index.
Reward
    The learner's period utility ``Σ_j v_ij a_ij - p_i`` (undiscounted: give the learner the
    setting's ``gamma``). Every episode lasts ``T`` steps and all rows end together; they are
    then reset with the step's generator.
Info (every step)
    ``"revenue"``, ``"welfare"`` (E,) of the period; at episode ends also ``"episode_utility"``
    (the learner's discounted utility) and ``"episode_revenue"`` (E,), NaN elsewhere.

Examples
--------
>>> import torch
>>> from bilevel.models.dynamic import make_bandit_setting, posted_price
>>> from bilevel.solvers.rl import Action
>>> s = make_bandit_setting("continuous", horizon=3)
>>> env = DeviatorEnv(s, posted_price(s, 2.4), num_envs=4)
>>> g = torch.Generator().manual_seed(0)
>>> first = env.reset(g)
>>> first.obs.shape, env.action_spec
(torch.Size([4, 5]), ActionSpec(categorical=(), continuous=1, low=-6.0, high=6.0))
>>> out = env.step(env.truthful_action(), g)    # Δ = 0: the truth
>>> out.reward.shape, bool(out.done.any())
(torch.Size([4]), False)
"""

from __future__ import annotations

import torch

from bilevel.models.dynamic import BanditAuctionProcess, BanditAuctionSetting, Mechanism
from bilevel.solvers.rl._protocol import Action, ActionSpec, EnvStep

__all__ = ["CRITICS", "DeviatorEnv", "deviator_obs_dim"]

Tensor = torch.Tensor

#: Critic inputs: the policy's observation, or it plus every buyer's hidden values.
CRITICS = ("obs", "state")

#: Reports are kept this far inside the continuous box before the logit.
_REPORT_EPS = 1e-6


def deviator_obs_dim(n: int, m: int) -> int:
    """Length of one :class:`DeviatorEnv` observation, ``1 + 2 m + 2 n m``.

    Parameters
    ----------
    n, m : int
        Buyers and goods.

    Returns
    -------
    int

    Examples
    --------
    >>> deviator_obs_dim(2, 2)
    13
    """
    return 1 + 2 * m + 2 * n * m


class DeviatorEnv:
    """``num_envs`` bandit-auction episodes with one learning buyer, implementing ``BatchedEnv``.

    Parameters
    ----------
    setting : BanditAuctionSetting
    mechanism : Mechanism
        Frozen: ``(history (E, τ+1, n, m), cumulative (E, n, m)) -> (allocation (E, n+1, m),
        payments (E, n))``; allocation row 0 is the null buyer.
    agent : int, optional
        The learning buyer (default 0); the others report truthfully.
    num_envs : int, optional
        Rows ``E``.
    residual_bound : float, optional
        ``c`` of the continuous residual box ``[-c, c]`` (default 6).
    critic : {"obs", "state"}, optional
    auto_reset : bool, optional
        Reset all rows when their episode ends (default, the ``BatchedEnv`` contract); with
        False the last observation is the terminal one and :meth:`step` raises until
        :meth:`reset`.
    validate : bool, optional
        Check the mechanism's outputs every step (shapes, ranges, column sums).
    device : torch.device or str, optional
    dtype : torch.dtype, optional
        Dtype of observations and rewards (the process itself runs in float64).

    Raises
    ------
    ValueError, TypeError
        For a bad agent, size, bound or critic.
    """

    def __init__(
        self,
        setting: BanditAuctionSetting,
        mechanism: Mechanism,
        *,
        agent: int = 0,
        num_envs: int = 1024,
        residual_bound: float = 6.0,
        critic: str = "obs",
        auto_reset: bool = True,
        validate: bool = True,
        device: torch.device | str | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        if not isinstance(setting, BanditAuctionSetting):
            raise TypeError(f"expected a BanditAuctionSetting, got {type(setting).__name__}")
        if not callable(mechanism):
            raise TypeError(f"expected a callable mechanism, got {type(mechanism).__name__}")
        n, m = setting.n_buyers, setting.n_goods
        if isinstance(agent, bool) or not isinstance(agent, int) or not 0 <= agent < n:
            raise ValueError(f"expected agent as an int in [0, {n}), got {agent!r}")
        if isinstance(num_envs, bool) or not isinstance(num_envs, int) or num_envs < 1:
            raise ValueError(f"expected num_envs as an int >= 1, got {num_envs!r}")
        ok = isinstance(residual_bound, (int, float)) and not isinstance(residual_bound, bool)
        c = float(residual_bound) if ok else float("nan")
        if not 0.0 < c < float("inf"):
            raise ValueError(
                f"expected residual_bound as a finite float > 0, got {residual_bound!r}"
            )
        if critic not in CRITICS:
            raise ValueError(f"expected critic in {CRITICS}, got {critic!r}")
        if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
            raise TypeError(f"expected a floating dtype, got {dtype}")
        self.setting = setting
        self.mechanism = mechanism
        self.agent = agent
        self.residual_bound = c
        self.critic = critic
        self.auto_reset = bool(auto_reset)
        self.validate = bool(validate)
        self.dtype = dtype
        self.process = BanditAuctionProcess(setting, device=device, dtype=torch.float64)
        dev = self.process.device
        self._num_envs = num_envs
        self._obs_dim = deviator_obs_dim(n, m)
        self._critic_dim = self._obs_dim + (n * m if critic == "state" else 0)
        if setting.discrete:
            self._grid = setting.report_grid(device=dev)  # (|V|^m, m)
            self._spec = ActionSpec(categorical=(setting.n_reports,))
            self._masks: tuple[Tensor, ...] = (
                torch.ones(num_envs, setting.n_reports, dtype=torch.bool, device=dev),
            )
        else:
            self._grid = torch.zeros(0, m, dtype=torch.float64, device=dev)
            self._spec = ActionSpec(continuous=m, low=-c, high=c)
            self._masks = ()
        lo, hi = setting.bounds
        self._lo, self._span = lo, (hi - lo) if hi > lo else 1.0
        self._started = False

    # ------------------------------------------------------------------ protocol properties

    @property
    def num_envs(self) -> int:
        """Number of rows ``E``."""
        return self._num_envs

    @property
    def obs_dim(self) -> int:
        """Length of one observation, ``1 + 2 m + 2 n m``."""
        return self._obs_dim

    @property
    def critic_obs_dim(self) -> int:
        """Length of one critic observation (``+ n m`` with ``critic="state"``)."""
        return self._critic_dim

    @property
    def action_spec(self) -> ActionSpec:
        """A residual box ``[-c, c]^m`` (continuous) or one head of ``|V|^m`` (discrete)."""
        return self._spec

    # ------------------------------------------------------------------ actions

    def reports_of(self, action: Action) -> Tensor:
        """The learner's reports an action makes at the current values.

        Parameters
        ----------
        action : Action

        Returns
        -------
        Tensor, shape (E, m), float64
        """
        s, p = self.setting, self.process
        E, m = self._num_envs, s.n_goods
        if s.discrete:
            if action.categorical.shape != (E, 1):
                raise ValueError(
                    f"expected categorical actions of shape ({E}, 1), "
                    f"got {tuple(action.categorical.shape)}"
                )
            k = action.categorical[:, 0].to(device=p.device, dtype=torch.int64)
            if bool(((k < 0) | (k >= s.n_reports)).any()):
                raise ValueError(f"expected report indices in [0, {s.n_reports}), got {k.tolist()}")
            return self._grid[k]
        if action.continuous.shape != (E, m):
            raise ValueError(
                f"expected continuous actions of shape ({E}, {m}), "
                f"got {tuple(action.continuous.shape)}"
            )
        delta = action.continuous.to(device=p.device, dtype=torch.float64)
        if not bool(torch.isfinite(delta).all()):
            raise ValueError("expected finite residuals, got NaN or inf")
        delta = delta.clamp(-self.residual_bound, self.residual_bound)
        v = p.values[:, self.agent]
        lo, span = self._lo, self._span
        star = ((v - lo) / span).clamp(_REPORT_EPS / span, 1.0 - _REPORT_EPS / span)
        moved = lo + span * torch.sigmoid(torch.log(star) - torch.log1p(-star) + delta)
        return torch.where(delta == 0, v, moved.clamp(lo, lo + span))

    def truthful_action(self) -> Action:
        """The action that reports the learner's current values.

        Returns
        -------
        Action
            Zero residuals (continuous) or the index of the true report vector (discrete).
        """
        s, p = self.setting, self.process
        E, m, dev = self._num_envs, s.n_goods, p.device
        if s.discrete:
            K = len(s.support)
            idx = torch.searchsorted(
                s.support_tensor(device=dev), p.values[:, self.agent].contiguous()
            )
            weights = torch.tensor([K ** (m - 1 - j) for j in range(m)], device=dev)
            k = (idx * weights).sum(dim=1, keepdim=True)
            return Action(k, torch.zeros(E, 0, dtype=self.dtype, device=dev))
        return Action(
            torch.zeros(E, 0, dtype=torch.int64, device=dev),
            torch.zeros(E, m, dtype=self.dtype, device=dev),
        )

    # ------------------------------------------------------------------ observations

    def _observe(self, reward: Tensor, done: Tensor, info: dict[str, Tensor]) -> EnvStep:
        p, s, i = self.process, self.setting, self.agent
        E, T = self._num_envs, s.horizon
        tau = 0.0 if T == 1 else min(p.tau, T - 1) / (T - 1)
        own = (p.values[:, i] - self._lo) / self._span
        last = (
            (p.reports[:, p.tau - 1, i] - self._lo) / self._span
            if p.tau > 0
            else torch.zeros_like(own)
        )
        parts = [
            torch.full((E, 1), tau, dtype=torch.float64, device=p.device),
            own,
            last,
            p.last_allocation[:, 1:].reshape(E, -1),
            p.experience.reshape(E, -1) / T,
        ]
        obs = torch.cat(parts, dim=1).clamp(0.0, 1.0).to(self.dtype)
        if self.critic == "state":
            hidden = ((p.values - self._lo) / self._span).reshape(E, -1).to(self.dtype)
            critic = torch.cat([obs, hidden], dim=1)
        else:
            critic = obs
        return EnvStep(obs, critic, self._masks, reward.to(self.dtype), done, None, info)

    # ------------------------------------------------------------------ protocol methods

    def reset(self, generator: torch.Generator) -> EnvStep:
        """Start a new episode in every row.

        Parameters
        ----------
        generator : torch.Generator
            Draws the initial values (row ``r`` depends on the seed and ``r`` only).

        Returns
        -------
        EnvStep
            Zero rewards, no row done.
        """
        self.process.reset(self._num_envs, generator)
        self._started = True
        E, dev = self._num_envs, self.process.device
        zeros = torch.zeros(E, dtype=torch.float64, device=dev)
        return self._observe(zeros, torch.zeros(E, dtype=torch.bool, device=dev), {})

    def step(self, action: Action, generator: torch.Generator) -> EnvStep:
        """Play one period: the learner's reports from ``action``, the others truthful.

        Parameters
        ----------
        action : Action
            Residuals (continuous) or report indices (discrete).
        generator : torch.Generator
            Draws the realised allocations and the value moves (and the next episode's
            values when the episode ends).

        Returns
        -------
        EnvStep
            On the last period ``done`` is True in every row, and (with ``auto_reset``) the
            observation is the next episode's first.

        Raises
        ------
        ValueError
            Before :meth:`reset`, after a finished episode without ``auto_reset``, for actions
            of the wrong shape, or for mechanism outputs the process rejects.
        """
        if not self._started:
            raise ValueError("expected reset() before step()")
        p = self.process
        if p.finished:
            raise ValueError("expected reset() after the episode ended (auto_reset=False)")
        own = self.reports_of(action)
        reports = p.values.clone()
        reports[:, self.agent] = own
        allocation, payments = self.mechanism(p.history_with(reports), p.experience)
        out = p.step(reports, allocation, payments, generator, validate=self.validate)
        info = {"revenue": out.revenue.to(self.dtype), "welfare": out.welfare.to(self.dtype)}
        done = out.done
        if p.tau >= p.T:
            info["episode_utility"] = p.total_utility[:, self.agent].to(self.dtype)
            info["episode_revenue"] = p.total_revenue.to(self.dtype)
            if self.auto_reset:
                p.reset(self._num_envs, generator)
        else:
            nan = torch.full((self._num_envs,), torch.nan, dtype=self.dtype, device=p.device)
            info["episode_utility"] = nan
            info["episode_revenue"] = nan.clone()
        return self._observe(out.utility[:, self.agent], done, info)
