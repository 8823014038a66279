"""Min–max training of a mechanism network against learned deviating buyers.

The design problem of the dynamic mechanism-design paper (its Theorem 3.1): for a profit target
``δ`` minimise over the mechanism's parameters ``θ``

    f(θ, π; δ) = |v(θ) − δ|_κ + α ψ(θ, π) + β Σ_i |h_i(θ)|_κ

while the deviators ``π`` maximise ``ψ``, the summed gain of each buyer's deviator over truthful
reporting (the others truthful); ``v`` is the truthful revenue, ``h_i`` buyer i's individual-
rationality shortfall and ``|z|_κ = sqrt(z² + κ²) − κ`` a smooth absolute value. One
:meth:`MinMaxTrainer.step`:

1. updates every deviator by ``deviator_updates`` PPO updates
   (:func:`bilevel.solvers.rl.ppo_update`, its own Adam kept across steps) on fresh episodes
   against the current mechanism — ascent on ψ; every ``deviator_reset`` steps the deviators
   restart from truthful reporting, so that they keep exploring the lies the moving mechanism
   opens up;
2. samples ``batch`` truthful episodes and, replaying the same random stream (common random
   numbers), per buyer ``batch`` episodes in which that buyer's deviator reports;
3. takes one Adam step on ``θ`` down an unbiased estimate of ``∇_θ f`` (ψ̂_i enters as
   ``max(ψ̂_i, 0)``: truthful reporting is always available to the buyer).

Gradient of an expected discounted sum with realised (drawn, public) allocations: the period's
flow is linear in the mechanism's outputs, so ``E[flow_τ | history] = Σ_j v_ij x_ij − p_i``
(or the revenue ``Σ_i p_i − Σ c x``) is differentiated pathwise; the future depends on ``θ``
through the drawn winners, which adds the score term ``(G_{>τ} − b_τ) ∇ log x_{winner_τ}`` with
``G_{>τ}`` the discounted later flows and ``b_τ`` their batch mean (a baseline). With one period
the estimate is purely pathwise. The deviators' reports do not depend on ``θ`` given their
observations, which the score term covers.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from bilevel.models.dynamic import BanditAuctionSetting
from bilevel.solvers.dynamic._deviators import deviator_policy
from bilevel.solvers.dynamic._env import DeviatorEnv
from bilevel.solvers.rl import Action, ActorCritic, PPOBatch, PPOConfig, gae, ppo_update

__all__ = ["IR_NOTIONS", "MinMaxConfig", "MinMaxStats", "MinMaxTrainer", "smooth_abs"]

Tensor = torch.Tensor

#: How the individual-rationality shortfall ``h_i`` is measured.
IR_NOTIONS = ("interim", "ex_ante")

_IR_BINS = 16  # interim IR of continuous types: equal-count bins of the initial value


def smooth_abs(z: Tensor, kappa: float) -> Tensor:
    """``sqrt(z² + κ²) − κ``: a smooth under-approximation of ``|z|`` (off by at most κ)."""
    return torch.sqrt(z * z + kappa * kappa) - kappa


@dataclass(frozen=True)
class MinMaxConfig:
    """Hyperparameters of :class:`MinMaxTrainer` (validated on construction).

    Examples
    --------
    >>> MinMaxConfig(delta=1.3).alpha
    1.0
    """

    delta: float
    """Profit target δ."""
    alpha: float = 1.0
    """Weight of the exploitability estimate ψ̂."""
    beta: float = 1.0
    """Weight of the IR loss."""
    kappa: float = 1e-3
    """Smoothing of the absolute values."""
    batch: int = 256
    """Episodes per player per step."""
    lr_mechanism: float = 1e-3
    """Adam step size of the mechanism."""
    lr_deviator: float = 3e-3
    """Adam step size of the deviators (two timescales: faster than the mechanism)."""
    deviator_updates: int = 2
    """PPO updates per deviator and step, each on fresh episodes."""
    ir: str = "interim"
    """"interim": ``h_i = E_{t_i0}[min(0, U_i | t_i0)]`` (discrete: per initial value; continuous:
    16 equal-count bins); "ex_ante": ``h_i = min(0, U_i)``."""
    strength: float = 2.0
    """Discrete deviators' initial prototype strength (see :func:`deviator_policy`)."""
    deviator_reset: int = 100
    """Every this many steps each deviator restarts from truthful reporting (0: never). A
    deviator that has converged on one lie stops exploring and misses the lies the moving
    mechanism opens up; a fresh one finds them again within a few dozen steps."""
    psi_policy: str = "stochastic"
    """Which deviator plays the episodes of the mechanism's ψ̂: "stochastic" (the PPO policy, as
    in the paper's ψ(θ, π_w)) or "greedy" (its mode: the single best lie it found)."""
    max_grad_norm: float = 1.0
    """Gradient-norm clip of the mechanism step."""
    ppo: PPOConfig = field(default_factory=lambda: PPOConfig(
        num_envs=256, num_steps=1, num_minibatches=1, update_epochs=2, gae_lambda=1.0,
        ent_coef=0.01, anneal_lr=False, learning_rate=3e-3))
    """Deviator PPO settings (``update_epochs``, ``num_minibatches``, clipping, entropy,
    hidden widths; ``num_envs``/``num_steps``/``learning_rate`` are replaced by ``batch``, the
    horizon and ``lr_deviator``)."""

    def __post_init__(self) -> None:
        for name in ("delta", "alpha", "beta", "kappa", "lr_mechanism", "lr_deviator",
                     "strength", "max_grad_norm"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise ValueError(f"expected {name} as a finite float, got {v!r}")
        for name in ("alpha", "beta"):
            if getattr(self, name) < 0:
                raise ValueError(f"expected {name} >= 0, got {getattr(self, name)}")
        for name in ("kappa", "lr_mechanism", "lr_deviator", "strength", "max_grad_norm"):
            if getattr(self, name) <= 0:
                raise ValueError(f"expected {name} > 0, got {getattr(self, name)}")
        if (isinstance(self.deviator_reset, bool) or not isinstance(self.deviator_reset, int)
                or self.deviator_reset < 0):
            raise ValueError(f"expected deviator_reset as an int >= 0, got {self.deviator_reset!r}")
        for name in ("batch", "deviator_updates"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"expected {name} as an int >= 1, got {v!r}")
        if self.psi_policy not in ("stochastic", "greedy"):
            raise ValueError(
                f"expected psi_policy 'stochastic' or 'greedy', got {self.psi_policy!r}"
            )
        if self.ir not in IR_NOTIONS:
            raise ValueError(f"expected ir in {IR_NOTIONS}, got {self.ir!r}")
        if not isinstance(self.ppo, PPOConfig):
            raise TypeError(f"expected ppo as a PPOConfig, got {type(self.ppo).__name__}")


@dataclass(frozen=True)
class MinMaxStats:
    """What one step (or one evaluation) measured: floats, on the step's own episodes.

    Attributes
    ----------
    revenue : float
        Truthful revenue v̂.
    gains : tuple of float
        Per buyer, its deviator's utility minus its truthful utility (ψ̂_i, may be < 0).
    exploitability : float
        ψ̂ = Σ_i max(ψ̂_i, 0).
    ir_loss : float
        Σ_i |h_i|.
    profit_loss : float
        |v̂ − δ|.
    objective : float
        f = |v̂ − δ| + α ψ̂ + β Σ_i |h_i| (unsmoothed).
    welfare : float
        Truthful welfare.
    """

    revenue: float
    gains: tuple[float, ...]
    exploitability: float
    ir_loss: float
    profit_loss: float
    objective: float
    welfare: float

    def to_dict(self) -> dict[str, Any]:
        """Plain floats."""
        return {"revenue": self.revenue, "gains": list(self.gains),
                "exploitability": self.exploitability, "ir_loss": self.ir_loss,
                "profit_loss": self.profit_loss, "objective": self.objective,
                "welfare": self.welfare}


class _Recorder:
    """The mechanism as the deviator env sees it: outputs detached, the graph kept aside."""

    def __init__(self, mechanism: nn.Module) -> None:
        self.mechanism = mechanism
        self.outputs: list[tuple[Tensor, Tensor]] = []
        self.grad = True
        self.types: Tensor | None = None  # the true values, for a type_stream="true" network
        self.sees_types = getattr(mechanism, "type_stream", "none") == "true"

    def __call__(self, history: Tensor, cumulative: Tensor) -> tuple[Tensor, Tensor]:
        args: tuple[Tensor, ...] = (history, cumulative)
        if self.sees_types and self.types is not None:
            args = (history, cumulative, self.types)
        if self.grad:
            x, p = self.mechanism(*args)
        else:
            with torch.no_grad():
                x, p = self.mechanism(*args)
        self.outputs.append((x, p))
        return x.detach(), p.detach()


@dataclass
class _Episodes:
    """One batch of episodes: surrogates (E,) with graph, realised values (E,) without."""

    utility: Tensor  # (E, n) surrogate of each buyer's discounted utility
    revenue: Tensor  # (E,) surrogate of the discounted revenue
    utility_value: Tensor  # (E, n) realised expected-flow sums (no graph)
    revenue_value: Tensor  # (E,)
    welfare_value: Tensor  # (E,)
    initial: Tensor  # (E, n, m) initial values
    ppo: PPOBatch | None = None


class MinMaxTrainer:
    """Alternating min–max training of ``mechanism`` against one PPO deviator per buyer.

    Parameters
    ----------
    setting : BanditAuctionSetting
        Realised allocations (the gradient estimator's score term needs drawn winners).
    mechanism : torch.nn.Module
        A ``bilevel.models.dynamic.Mechanism`` with parameters (e.g. ``MechanismNet``); trained
        in place.
    config : MinMaxConfig
    generator : torch.Generator
        The only source of randomness (episodes, deviator weights and actions, minibatches).

    Raises
    ------
    ValueError, TypeError
        For a setting with expected allocations, a mechanism without parameters, or bad types.
    """

    def __init__(
        self,
        setting: BanditAuctionSetting,
        mechanism: nn.Module,
        config: MinMaxConfig,
        generator: torch.Generator,
    ) -> None:
        if not isinstance(setting, BanditAuctionSetting):
            raise TypeError(f"expected a BanditAuctionSetting, got {type(setting).__name__}")
        if setting.allocation != "realized":
            raise ValueError(
                "expected allocation='realized' for min-max training (the gradient estimator "
                f"differentiates through drawn winners), got {setting.allocation!r}"
            )
        if not isinstance(mechanism, nn.Module) or not list(mechanism.parameters()):
            raise TypeError(
                f"expected a torch.nn.Module mechanism with parameters, got "
                f"{type(mechanism).__name__}"
            )
        if not isinstance(config, MinMaxConfig):
            raise TypeError(f"expected a MinMaxConfig, got {type(config).__name__}")
        if not isinstance(generator, torch.Generator):
            raise TypeError(f"expected a torch.Generator, got {type(generator).__name__}")
        self.setting = setting
        self.mechanism = mechanism
        self.config = config
        self.generator = generator
        n, T, B = setting.n_buyers, setting.horizon, config.batch
        base = config.ppo
        mb = base.num_minibatches if (B * T) % base.num_minibatches == 0 else 1
        self.ppo = PPOConfig(
            total_steps=B * T, num_envs=B, num_steps=T, update_epochs=base.update_epochs,
            num_minibatches=mb, learning_rate=config.lr_deviator, anneal_lr=False,
            gamma=setting.gamma, gae_lambda=base.gae_lambda, clip_coef=base.clip_coef,
            ent_coef=base.ent_coef, vf_coef=base.vf_coef, max_grad_norm=base.max_grad_norm,
            norm_adv=base.norm_adv, hidden=base.hidden, activation=base.activation,
            init_std=base.init_std)
        self._recorder = _Recorder(mechanism)
        self._truth_env = DeviatorEnv(setting, self._recorder, agent=0, num_envs=B,
                                      critic="state", auto_reset=False, validate=False)
        self._dev_envs = [DeviatorEnv(setting, self._recorder, agent=i, num_envs=B,
                                      critic="state", auto_reset=False, validate=False)
                          for i in range(n)]
        self.deviators: list[ActorCritic] = []
        self.deviator_optimizers: list[torch.optim.Optimizer] = []
        self._reset_deviators()
        self.optimizer = torch.optim.Adam(mechanism.parameters(), lr=config.lr_mechanism)
        self.steps = 0

    def _reset_deviators(self) -> None:
        self.deviators = [
            deviator_policy(env, self.ppo, self.generator, strength=self.config.strength)
            for env in self._dev_envs
        ]
        self.deviator_optimizers = [
            torch.optim.Adam(d.parameters(), lr=self.config.lr_deviator, eps=1e-5)
            for d in self.deviators
        ]

    # ------------------------------------------------------------------ episodes

    def _episodes(
        self, env: DeviatorEnv, deviator: ActorCritic | None, generator: torch.Generator,
        grad: bool, greedy: bool = False,
    ) -> _Episodes:
        s = self.setting
        T, gamma = s.horizon, s.gamma
        rec = self._recorder
        rec.outputs.clear()
        rec.grad = grad
        step = env.reset(generator)
        proc = env.process
        initial = proc.values.clone()
        costs = s.cost_tensor(device=proc.device)
        exp_u: list[Tensor] = []
        exp_r: list[Tensor] = []
        logx: list[Tensor] = []
        flows_u: list[Tensor] = []
        flows_r: list[Tensor] = []
        welfare: list[Tensor] = []
        E = env.num_envs
        obs_l, cobs_l, mask_l, cat_l, cont_l, logp_l, rew_l = [], [], [], [], [], [], []
        for _t in range(T):
            values = proc.values.clone()
            rec.types = values
            if deviator is None:
                action = env.truthful_action()
            else:
                with torch.no_grad():
                    obs = step.obs.to(deviator.dtype)
                    cobs = step.critic_obs.to(deviator.dtype)
                    dist = deviator.distribution(obs, step.masks)
                    if greedy:
                        cat, raw = dist.mode()
                    else:
                        cat, raw = dist.sample(generator)
                    action = Action(categorical=cat, continuous=dist.clip(raw))
                    obs_l.append(obs)
                    cobs_l.append(cobs)
                    mask_l.append(step.masks)
                    cat_l.append(cat)
                    cont_l.append(raw)
                    logp_l.append(dist.log_prob(cat, raw))
            step = env.step(action, generator)
            x, p = rec.outputs[-1]
            won = x[:, 1:, :]  # (E, n, m) allocation probabilities with graph
            eu = (values * won).sum(-1) - p  # (E, n)
            er = p.sum(-1) - (costs * won).sum((1, 2))  # (E,)
            ew = (values * won).sum((1, 2)) - (costs * won).sum((1, 2))
            a = proc.last_allocation  # realised one-hot (E, n + 1, m)
            lx = torch.log((x * a).sum(1).clamp_min(1e-30)).sum(-1)  # (E,)
            exp_u.append(eu)
            exp_r.append(er)
            logx.append(lx)
            flows_u.append(eu.detach())
            flows_r.append(er.detach())
            welfare.append(ew.detach())
            if deviator is not None:
                rew_l.append(step.reward.to(deviator.dtype))
        disc = [gamma**t for t in range(T)]
        u_sur = sum(d * f for d, f in zip(disc, exp_u, strict=True))
        r_sur = sum(d * f for d, f in zip(disc, exp_r, strict=True))
        assert isinstance(u_sur, Tensor) and isinstance(r_sur, Tensor)
        for t in range(T - 1):  # score terms for the winners drawn at t
            later_u = sum(disc[k] * flows_u[k] for k in range(t + 1, T))
            later_r = sum(disc[k] * flows_r[k] for k in range(t + 1, T))
            assert isinstance(later_u, Tensor) and isinstance(later_r, Tensor)
            u_sur = u_sur + (later_u - later_u.mean(0)) * logx[t].unsqueeze(1)
            r_sur = r_sur + (later_r - later_r.mean()) * logx[t]
        u_val = sum(d * f for d, f in zip(disc, flows_u, strict=True))
        r_val = sum(d * f for d, f in zip(disc, flows_r, strict=True))
        w_val = sum(d * f for d, f in zip(disc, welfare, strict=True))
        assert isinstance(u_val, Tensor) and isinstance(r_val, Tensor)
        assert isinstance(w_val, Tensor)
        ppo_batch = None
        if deviator is not None:
            with torch.no_grad():
                cobs_all = torch.stack(cobs_l)  # (T, E, c)
                values_t = deviator.value(cobs_all.reshape(T * E, -1)).reshape(T, E)
                rewards = torch.stack(rew_l)
                dones = torch.zeros(T, E, dtype=torch.bool)
                dones[-1] = True
                adv, ret = gae(rewards, values_t, dones, torch.zeros(E, dtype=rewards.dtype),
                               gamma, self.ppo.gae_lambda)
                N = T * E
                H = len(deviator.action_spec.categorical)
                ppo_batch = PPOBatch(
                    obs=torch.stack(obs_l).reshape(N, -1), critic_obs=cobs_all.reshape(N, -1),
                    masks=tuple(torch.stack([m[h] for m in mask_l]).reshape(N, -1)
                                for h in range(H)),
                    categorical=torch.stack(cat_l).reshape(N, -1),
                    continuous=torch.stack(cont_l).reshape(N, -1),
                    log_prob=torch.stack(logp_l).reshape(N), advantages=adv.reshape(N),
                    returns=ret.reshape(N))
        rec.outputs.clear()
        return _Episodes(u_sur, r_sur, u_val, r_val, w_val, initial, ppo_batch)

    # ------------------------------------------------------------------ losses

    def _ir(self, utility: Tensor, value: Tensor, initial: Tensor) -> tuple[Tensor, Tensor]:
        """Per-buyer shortfalls h_i (surrogate with graph, and value): shape (n,)."""
        n = utility.shape[1]
        if self.config.ir == "ex_ante":
            h = torch.minimum(utility.mean(0), torch.zeros(n, dtype=utility.dtype))
            hv = torch.minimum(value.mean(0), torch.zeros(n, dtype=value.dtype))
            # the surrogate's value differs from the estimate; keep the gradient, report hv
            return h - h.detach() + hv, hv
        E = utility.shape[0]
        key = initial.reshape(E, n, -1)
        hs, hvs = [], []
        for i in range(n):
            if self.setting.discrete:
                _, groups = torch.unique(key[:, i], dim=0, return_inverse=True)
            else:
                order = torch.argsort(key[:, i, 0])
                groups = torch.empty(E, dtype=torch.int64)
                groups[order] = torch.arange(E) * _IR_BINS // E
            G = int(groups.max()) + 1
            cnt = torch.zeros(G, dtype=utility.dtype).index_add_(0, groups,
                                                                  torch.ones_like(utility[:, i]))
            mean_s = torch.zeros(G, dtype=utility.dtype).index_add_(0, groups, utility[:, i]) / cnt
            mean_v = torch.zeros(G, dtype=value.dtype).index_add_(0, groups, value[:, i]) / cnt
            w = cnt / E
            neg = (mean_v < 0).to(utility.dtype)
            hs.append((w * neg * (mean_s - mean_s.detach() + mean_v)).sum())
            hvs.append((w * torch.minimum(mean_v, torch.zeros_like(mean_v))).sum())
        return torch.stack(hs), torch.stack(hvs)

    def _stats(self, truth: _Episodes, devs: list[_Episodes]) -> tuple[Tensor, MinMaxStats]:
        c = self.config
        rev_v = truth.revenue_value.mean()
        rev_s = truth.revenue.mean() - truth.revenue.mean().detach() + rev_v
        gains_v, gains_s = [], []
        for i, d in enumerate(devs):
            dv = d.utility_value[:, i].mean() - truth.utility_value[:, i].mean()
            ds = (d.utility[:, i].mean() - truth.utility[:, i].mean())
            gains_v.append(dv)
            gains_s.append(ds - ds.detach() + dv)
        h_s, h_v = self._ir(truth.utility, truth.utility_value, truth.initial)
        psi_s = sum(torch.relu(g) for g in gains_s)
        psi_v = sum(max(float(g), 0.0) for g in gains_v)
        loss = (smooth_abs(rev_s - c.delta, c.kappa) + c.alpha * psi_s
                + c.beta * smooth_abs(h_s, c.kappa).sum())
        assert isinstance(loss, Tensor)
        ir = float(h_v.abs().sum())
        profit = abs(float(rev_v) - c.delta)
        stats = MinMaxStats(
            revenue=float(rev_v), gains=tuple(float(g) for g in gains_v),
            exploitability=float(psi_v), ir_loss=ir, profit_loss=profit,
            objective=profit + c.alpha * float(psi_v) + c.beta * ir,
            welfare=float(truth.welfare_value.mean()))
        return loss, stats

    # ------------------------------------------------------------------ public

    def step(self) -> MinMaxStats:
        """One alternation: deviator PPO updates, then one mechanism step.

        Returns
        -------
        MinMaxStats
            Measured on this step's episodes (before the mechanism step).
        """
        g, n = self.generator, self.setting.n_buyers
        every = self.config.deviator_reset
        if every and self.steps and self.steps % every == 0:
            self._reset_deviators()
        for i in range(n):  # ascent: the deviators learn against the current mechanism
            for _ in range(self.config.deviator_updates):
                batch = self._episodes(self._dev_envs[i], self.deviators[i], g, grad=False).ppo
                assert batch is not None
                ppo_update(self.deviators[i], self.deviator_optimizers[i], batch, self.ppo, g)
        # descent: the mechanism against the deviators' lies
        # common random numbers: the truthful and every deviating batch replay one stream
        state = g.get_state()
        truth = self._episodes(self._truth_env, None, g, grad=True)
        greedy = self.config.psi_policy == "greedy"
        devs = []
        for i in range(n):
            g.set_state(state)
            devs.append(self._episodes(self._dev_envs[i], self.deviators[i], g, grad=True,
                                       greedy=greedy))
        loss, stats = self._stats(truth, devs)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()  # type: ignore[no-untyped-call]
        torch.nn.utils.clip_grad_norm_(self.mechanism.parameters(), self.config.max_grad_norm)
        self.optimizer.step()
        self.steps += 1
        return stats

    @torch.no_grad()
    def evaluate(self, episodes: int, seed: int) -> MinMaxStats:
        """Held-out estimates on ``episodes`` fresh episodes per player (no updates).

        Parameters
        ----------
        episodes : int
            Rounded up to whole batches.
        seed : int
            Seeds the episodes (and the deviators' sampled actions).

        Returns
        -------
        MinMaxStats
        """
        g = torch.Generator().manual_seed(seed)
        n, B = self.setting.n_buyers, self.config.batch
        parts_t, parts_d = [], []
        for _ in range(max(1, -(-episodes // B))):
            state = g.get_state()
            parts_t.append(self._episodes(self._truth_env, None, g, grad=False))
            row = []
            for i in range(n):
                g.set_state(state)
                row.append(self._episodes(self._dev_envs[i], self.deviators[i], g, grad=False,
                                          greedy=True))
            parts_d.append(row)
        truth = _cat(parts_t)
        devs = [_cat([p[i] for p in parts_d]) for i in range(n)]
        return self._stats(truth, devs)[1]

    def state_dict(self) -> dict[str, Any]:
        """Mechanism, deviators and every optimizer state (tensors and plain data)."""
        return {
            "mechanism": copy.deepcopy(self.mechanism.state_dict()),
            "optimizer": copy.deepcopy(self.optimizer.state_dict()),
            "deviators": [copy.deepcopy(d.state_dict()) for d in self.deviators],
            "deviator_optimizers": [copy.deepcopy(o.state_dict())
                                    for o in self.deviator_optimizers],
            "generator": self.generator.get_state(),
            "steps": self.steps,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` (resuming continues bit-identically)."""
        self.mechanism.load_state_dict(state["mechanism"])
        self.optimizer.load_state_dict(state["optimizer"])
        for d, sd in zip(self.deviators, state["deviators"], strict=True):
            d.load_state_dict(sd)
        for o, sd in zip(self.deviator_optimizers, state["deviator_optimizers"], strict=True):
            o.load_state_dict(sd)
        self.generator.set_state(state["generator"])
        self.steps = int(state["steps"])


def _cat(parts: list[_Episodes]) -> _Episodes:
    return _Episodes(
        utility=torch.cat([p.utility for p in parts]),
        revenue=torch.cat([p.revenue for p in parts]),
        utility_value=torch.cat([p.utility_value for p in parts]),
        revenue_value=torch.cat([p.revenue_value for p in parts]),
        welfare_value=torch.cat([p.welfare_value for p in parts]),
        initial=torch.cat([p.initial for p in parts]),
    )
