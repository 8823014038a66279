"""Proximal policy optimisation over a batched environment, written to be read like CleanRL.

:func:`train_ppo` trains an :class:`~bilevel.solvers.rl.ActorCritic` on any
:class:`~bilevel.solvers.rl.BatchedEnv`. One *update* is:

1. **Rollout** — ``num_steps`` lockstep steps of all ``E`` rows (no Python loop over rows);
   the environment resets finished rows itself. Actions the environment overrode
   (``EnvStep.executed``) are stored and scored instead of the proposals.
2. **Advantages** — GAE(γ, λ) (:func:`bilevel.solvers.rl.gae`), bootstrapped with the critic's
   value of the last observation; nothing is bootstrapped across an episode end.
3. **Update** — ``update_epochs`` passes over ``num_minibatches`` shuffled minibatches of the
   clipped surrogate ``−min(ρ A, clip(ρ, 1 ± ε) A)`` with per-minibatch advantage
   normalisation, ``vf_coef`` · ½ (V − target)², minus ``ent_coef`` · entropy; Adam (eps 1e-5)
   with linearly annealed learning rate and global gradient-norm clipping.

Everything random (initial weights, sampling, minibatch order and the environment's own draws)
comes from the ``torch.Generator`` passed in, so a run is reproducible for a seed.

References
----------
Schulman, Wolski, Dhariwal, Radford, Klimov (2017), *Proximal policy optimization algorithms*;
Huang et al. (2022), *The 37 implementation details of proximal policy optimization*.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import torch

from bilevel.solvers.rl._kernels import gae
from bilevel.solvers.rl._policy import ActorCritic
from bilevel.solvers.rl._protocol import Action, BatchedEnv, EnvStep

__all__ = [
    "PPOBatch",
    "PPOConfig",
    "PPOResult",
    "PPOUpdate",
    "ppo_update",
    "rollout_objective",
    "train_ppo",
]

Tensor = torch.Tensor
FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class PPOConfig:
    """Hyperparameters of :func:`train_ppo` (validated on construction).

    Examples
    --------
    >>> PPOConfig(total_steps=10_000, num_envs=64, num_steps=8).batch_size
    512
    """

    total_steps: int = 1_000_000
    """Environment steps (rows × lockstep steps) to train for; rounded up to whole updates."""
    num_envs: int = 256
    """Rows ``E`` of the batched environment; ``train_ppo`` checks ``env.num_envs`` equals it."""
    num_steps: int = 32
    """Lockstep steps per rollout (the batch holds ``num_envs * num_steps`` transitions)."""
    update_epochs: int = 4
    """Passes over each rollout batch."""
    num_minibatches: int = 8
    """Minibatches per pass; must divide the batch size."""
    learning_rate: float = 3e-4
    """Adam step size at the start."""
    anneal_lr: bool = True
    """Decay the step size linearly to 0 over training."""
    gamma: float = 1.0
    """Discount (1: undiscounted episodic return, as in the SPM and Stackelberg papers)."""
    gae_lambda: float = 0.95
    """GAE parameter λ."""
    clip_coef: float = 0.2
    """Surrogate clipping ε."""
    ent_coef: float = 0.01
    """Entropy bonus weight."""
    vf_coef: float = 0.5
    """Value loss weight."""
    max_grad_norm: float = 0.5
    """Global gradient-norm clip."""
    norm_adv: bool = True
    """Normalise advantages within each minibatch."""
    hidden: tuple[int, ...] = (64, 64)
    """Hidden widths of the actor and critic MLPs."""
    activation: str = "tanh"
    """Hidden activation: "tanh" or "relu"."""
    init_std: float = 0.5
    """Initial Gaussian standard deviation as a fraction of ``high - low``."""
    device: str = "cpu"
    """Torch device of the networks (observations are moved to it)."""
    dtype: str = "float32"
    """Network dtype: "float32" or "float64"."""

    def __post_init__(self) -> None:
        for name in ("total_steps", "num_envs", "num_steps", "update_epochs", "num_minibatches"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"expected {name} to be an int >= 1, got {v!r}")
        if self.batch_size % self.num_minibatches:
            raise ValueError(
                f"expected num_minibatches to divide num_envs * num_steps = {self.batch_size}, "
                f"got {self.num_minibatches}"
            )
        for name, lo, hi in (("gamma", 0.0, 1.0), ("gae_lambda", 0.0, 1.0)):
            v = getattr(self, name)
            if not lo <= v <= hi:
                raise ValueError(f"expected {name} in [{lo}, {hi}], got {v!r}")
        for name in ("learning_rate", "clip_coef", "max_grad_norm", "init_std"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
                raise ValueError(f"expected {name} > 0, got {v!r}")
        for name in ("ent_coef", "vf_coef"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v >= 0):
                raise ValueError(f"expected {name} >= 0, got {v!r}")
        if not self.hidden or any(int(h) < 1 for h in self.hidden):
            raise ValueError(f"expected non-empty hidden widths >= 1, got {self.hidden!r}")
        if self.activation not in ("tanh", "relu"):
            raise ValueError(f"expected activation 'tanh' or 'relu', got {self.activation!r}")
        if self.dtype not in ("float32", "float64"):
            raise ValueError(f"expected dtype 'float32' or 'float64', got {self.dtype!r}")

    @property
    def batch_size(self) -> int:
        """Transitions per rollout, ``num_envs * num_steps``."""
        return self.num_envs * self.num_steps

    @property
    def minibatch_size(self) -> int:
        """Transitions per gradient step."""
        return self.batch_size // self.num_minibatches

    @property
    def num_updates(self) -> int:
        """Rollout/update iterations, ``ceil(total_steps / batch_size)``."""
        return -(-self.total_steps // self.batch_size)

    @property
    def torch_dtype(self) -> torch.dtype:
        """:attr:`dtype` as a ``torch.dtype``."""
        return torch.float64 if self.dtype == "float64" else torch.float32


@dataclass(frozen=True)
class PPOUpdate:
    """What the callback of :func:`train_ppo` receives after each update."""

    update: int
    """1-based index of the update just finished."""
    env_steps: int
    """Environment steps taken so far."""
    mean_objective: float
    """Mean episode objective (``info["objective"]``, else the return) of the episodes that
    finished in this rollout; NaN when none finished."""
    mean_return: float
    """Mean undiscounted episode return of those episodes; NaN when none finished."""
    episodes: int
    """Number of episodes that finished in this rollout."""
    losses: dict[str, float]
    """Last minibatch's ``policy``, ``value``, ``entropy``, ``approx_kl``, ``clipfrac``."""
    policy: ActorCritic
    """The policy being trained (do not modify it)."""


@dataclass(frozen=True)
class PPOResult:
    """Outcome of :func:`train_ppo`.

    Attributes
    ----------
    policy : ActorCritic
        The trained actor-critic (use ``policy.act(obs, masks)`` for the greedy mechanism).
    curve_steps : ndarray of shape (U,)
        Environment steps at the end of each update in which some episode finished.
    curve_objective : ndarray of shape (U,)
        Mean episode objective of the episodes that finished in that update's rollout
        (stochastic policy).
    curve_return : ndarray of shape (U,)
        Mean episode return of the same episodes.
    env_steps : int
        Environment steps taken.
    updates : int
        Updates performed.
    wall_time : float
        Seconds spent in training.
    steps_per_second : float
        ``env_steps / wall_time``.
    message : str
        Why training stopped.
    losses : dict of str to float
        Last minibatch's loss terms.
    status : str
        Why training stopped, as a code shared by every outer result of the library:
        ``"completed"`` (the step budget), ``"time_limit"`` (``max_seconds``) or
        ``"callback"``.

    The outer-result vocabulary also has ``success`` (always True: training that runs does
    not fail, it raises), ``nit`` (``updates``) and ``stats``.
    """

    policy: ActorCritic
    curve_steps: FloatArray
    curve_objective: FloatArray
    curve_return: FloatArray
    env_steps: int
    updates: int
    wall_time: float
    steps_per_second: float
    message: str = "completed the step budget"
    losses: dict[str, float] = field(default_factory=dict)
    status: str = "completed"

    @property
    def success(self) -> bool:
        """True: a training run that returns has not failed."""
        return True

    @property
    def nit(self) -> int:
        """PPO updates performed."""
        return self.updates

    @property
    def stats(self) -> dict[str, Any]:
        """Environment steps, throughput and the last minibatch's losses."""
        return {"env_steps": self.env_steps, "steps_per_second": self.steps_per_second,
                "losses": dict(self.losses)}


def _check_step(step: EnvStep, env: BatchedEnv) -> None:
    E = env.num_envs
    if step.obs.shape != (E, env.obs_dim):
        raise ValueError(f"expected obs of shape {(E, env.obs_dim)}, got {tuple(step.obs.shape)}")
    if step.critic_obs.shape != (E, env.critic_obs_dim):
        raise ValueError(
            f"expected critic_obs of shape {(E, env.critic_obs_dim)}, "
            f"got {tuple(step.critic_obs.shape)}"
        )


def _executed(proposal_cat: Tensor, proposal_raw: Tensor, clipped: Tensor,
              step: EnvStep) -> tuple[Tensor, Tensor]:
    """The (categorical, unclipped continuous) actions to store after an override."""
    ex = step.executed
    if ex is None:
        return proposal_cat, proposal_raw
    cat = ex.categorical.to(proposal_cat.device, torch.long).reshape(proposal_cat.shape)
    cont_ex = ex.continuous.to(proposal_raw.device, proposal_raw.dtype).reshape(
        proposal_raw.shape)
    # keep the unclipped sample where the environment executed the (clipped) proposal
    same = (cont_ex - clipped).abs() <= 1e-6 * (1.0 + clipped.abs())
    return cat, torch.where(same, proposal_raw, cont_ex)


@dataclass(frozen=True)
class PPOBatch:
    """One rollout, flattened to ``N`` transitions, ready for :func:`ppo_update`.

    Attributes
    ----------
    obs : Tensor, shape (N, obs_dim)
    critic_obs : Tensor, shape (N, critic_obs_dim)
    masks : tuple of Tensor, each shape (N, k_h), bool
    categorical : Tensor, shape (N, H), int64
    continuous : Tensor, shape (N, C)
        The unclipped Gaussian samples.
    log_prob : Tensor, shape (N,)
        Log-probabilities under the policy that acted.
    advantages, returns : Tensor, shape (N,)
        From :func:`gae`.
    """

    obs: Tensor
    critic_obs: Tensor
    masks: tuple[Tensor, ...]
    categorical: Tensor
    continuous: Tensor
    log_prob: Tensor
    advantages: Tensor
    returns: Tensor


def ppo_update(
    policy: ActorCritic,
    optimizer: torch.optim.Optimizer,
    batch: PPOBatch,
    config: PPOConfig,
    generator: torch.Generator,
) -> dict[str, float]:
    """One PPO update: ``update_epochs`` passes of clipped-surrogate minibatch steps.

    The body of :func:`train_ppo`'s loop, factored out so that a caller that collects its own
    rollouts (e.g. a min–max loop alternating two players) keeps one optimizer and its state
    across updates. The learning rate is whatever ``optimizer`` holds.

    Parameters
    ----------
    policy : ActorCritic
    optimizer : torch.optim.Optimizer
        Over ``policy.parameters()``.
    batch : PPOBatch
        ``N`` transitions; ``N`` must be a multiple of ``config.num_minibatches``.
    config : PPOConfig
        ``update_epochs``, ``num_minibatches``, ``clip_coef``, ``ent_coef``, ``vf_coef``,
        ``max_grad_norm``, ``norm_adv``.
    generator : torch.Generator
        Draws the minibatch permutations.

    Returns
    -------
    dict of str to float
        The last minibatch's ``policy``, ``value``, ``entropy``, ``approx_kl``, ``clipfrac``.
    """
    N = int(batch.log_prob.shape[0])
    if N < 1 or N % config.num_minibatches:
        raise ValueError(
            f"expected a batch of N transitions with N a multiple of num_minibatches = "
            f"{config.num_minibatches}, got N = {N}"
        )
    dev = batch.obs.device
    M = N // config.num_minibatches
    for _epoch in range(config.update_epochs):
        perm = torch.randperm(N, generator=generator).to(dev)
        for s in range(0, N, M):
            idx = perm[s : s + M]
            dist = policy.distribution(batch.obs[idx], [m[idx] for m in batch.masks])
            new_logp = dist.log_prob(batch.categorical[idx], batch.continuous[idx])
            log_ratio = new_logp - batch.log_prob[idx]
            ratio = log_ratio.exp()
            adv = batch.advantages[idx]
            if config.norm_adv and adv.numel() > 1:
                adv = (adv - adv.mean()) / (adv.std() + 1e-8)
            pg_loss = torch.max(
                -adv * ratio,
                -adv * ratio.clamp(1 - config.clip_coef, 1 + config.clip_coef),
            ).mean()
            v_loss = 0.5 * (policy.value(batch.critic_obs[idx]) - batch.returns[idx]).pow(2).mean()
            entropy = dist.entropy().mean()
            loss = pg_loss + config.vf_coef * v_loss - config.ent_coef * entropy
            optimizer.zero_grad(set_to_none=True)
            loss.backward()  # type: ignore[no-untyped-call]
            torch.nn.utils.clip_grad_norm_(policy.parameters(), config.max_grad_norm)
            optimizer.step()
    with torch.no_grad():
        return {
            "policy": float(pg_loss.detach()), "value": float(v_loss.detach()),
            "entropy": float(entropy.detach()),
            "approx_kl": float(((ratio - 1) - log_ratio).mean().detach()),
            "clipfrac": float(((ratio - 1).abs() > config.clip_coef).float().mean()),
        }


def train_ppo(
    env: BatchedEnv,
    config: PPOConfig,
    generator: torch.Generator,
    callback: Callable[[PPOUpdate], None] | None = None,
    progress: bool = False,
    policy: ActorCritic | None = None,
    max_seconds: float | None = None,
) -> PPOResult:
    """Train an actor-critic with PPO on a batched environment.

    Parameters
    ----------
    env : BatchedEnv
        The environment, with ``env.num_envs == config.num_envs``.
    config : PPOConfig
        Hyperparameters.
    generator : torch.Generator
        The only source of randomness (weights, actions, minibatches, environment draws).
    callback : callable, optional
        Called with a :class:`PPOUpdate` after every update; raising ``StopIteration`` ends
        training early (recorded in ``message``).
    progress : bool, default False
        Print one line per update to stderr.
    policy : ActorCritic, optional
        Continue training this network instead of a fresh one.
    max_seconds : float, optional
        Stop after the first update that ends past this many seconds (``status
        "time_limit"``).

    Returns
    -------
    PPOResult

    Raises
    ------
    TypeError, ValueError
        On a non-conforming environment, config or generator.

    Examples
    --------
    A masked contextual bandit (tiny budget, so only a smoke run):

    >>> from bilevel.solvers.rl._toys import MaskedBandit
    >>> env = MaskedBandit(num_envs=16)
    >>> res = train_ppo(env, PPOConfig(total_steps=256, num_envs=16, num_steps=4,
    ...                                num_minibatches=2), torch.Generator().manual_seed(0))
    >>> res.env_steps, res.updates
    (256, 4)
    """
    if not isinstance(env, BatchedEnv):
        raise TypeError(f"expected a BatchedEnv, got {type(env).__name__}")
    if not isinstance(config, PPOConfig):
        raise TypeError(f"expected a PPOConfig, got {type(config).__name__}")
    if not isinstance(generator, torch.Generator):
        raise TypeError(f"expected a torch.Generator, got {type(generator).__name__}")
    if env.num_envs != config.num_envs:
        raise ValueError(
            f"expected env.num_envs == config.num_envs = {config.num_envs}, got {env.num_envs}"
        )
    spec = env.action_spec
    dev = torch.device(config.device)
    dt = config.torch_dtype
    if policy is None:
        policy = ActorCritic(env.obs_dim, env.critic_obs_dim, spec, config.hidden,
                             config.activation, config.init_std, generator=generator, dtype=dt)
    elif (policy.obs_dim, policy.critic_obs_dim, policy.action_spec) != (
        env.obs_dim, env.critic_obs_dim, spec):
        raise ValueError("expected a policy with the environment's dimensions and action spec")
    policy.to(dev)
    optimizer = torch.optim.Adam(policy.parameters(), lr=config.learning_rate, eps=1e-5)

    E, T, H, C = config.num_envs, config.num_steps, len(spec.categorical), spec.continuous
    # --- rollout storage -----------------------------------------------------------------
    obs_buf = torch.zeros((T, E, env.obs_dim), dtype=dt, device=dev)
    cobs_buf = torch.zeros((T, E, env.critic_obs_dim), dtype=dt, device=dev)
    mask_bufs = [torch.zeros((T, E, k), dtype=torch.bool, device=dev) for k in spec.categorical]
    cat_buf = torch.zeros((T, E, H), dtype=torch.long, device=dev)
    cont_buf = torch.zeros((T, E, C), dtype=dt, device=dev)
    logp_buf = torch.zeros((T, E), dtype=dt, device=dev)
    rew_buf = torch.zeros((T, E), dtype=dt, device=dev)
    done_buf = torch.zeros((T, E), dtype=torch.bool, device=dev)

    curve_steps: list[float] = []
    curve_obj: list[float] = []
    curve_ret: list[float] = []
    losses: dict[str, float] = {}
    message = "completed the step budget"
    status = "completed"
    ep_return = torch.zeros(E, dtype=torch.float64, device=dev)

    start = time.perf_counter()
    step = env.reset(generator)
    _check_step(step, env)
    env_steps = 0
    update = 0
    for update in range(1, config.num_updates + 1):
        if config.anneal_lr:
            frac = 1.0 - (update - 1) / config.num_updates
            optimizer.param_groups[0]["lr"] = frac * config.learning_rate

        # --- 1. rollout ------------------------------------------------------------------
        fin_obj: list[Tensor] = []
        fin_ret: list[Tensor] = []
        with torch.no_grad():
            for t in range(T):
                obs = step.obs.to(dev, dt)
                cobs = step.critic_obs.to(dev, dt)
                masks = tuple(m.to(dev) for m in step.masks)
                dist = policy.distribution(obs, masks)
                cat, raw = dist.sample(generator)
                clipped = dist.clip(raw)
                nxt = env.step(Action(categorical=cat, continuous=clipped), generator)
                cat, raw = _executed(cat, raw, clipped, nxt)
                obs_buf[t], cobs_buf[t] = obs, cobs
                for h in range(H):
                    mask_bufs[h][t] = masks[h]
                cat_buf[t], cont_buf[t] = cat, raw
                logp_buf[t] = dist.log_prob(cat, raw)
                reward = nxt.reward.to(dev)
                done = nxt.done.to(dev, torch.bool)
                rew_buf[t], done_buf[t] = reward, done
                ep_return += reward.to(torch.float64)
                if bool(done.any()):
                    obj = nxt.info.get("objective")
                    fin_ret.append(ep_return[done])
                    fin_obj.append(ep_return[done] if obj is None
                                   else obj.to(dev, torch.float64)[done])
                    ep_return = torch.where(done, torch.zeros_like(ep_return), ep_return)
                step = nxt
            # one batched critic pass over the whole rollout instead of T small ones
            val_buf = policy.value(cobs_buf.reshape(T * E, -1)).reshape(T, E)
            last_value = policy.value(step.critic_obs.to(dev, dt))
        env_steps += E * T

        # --- 2. advantages ----------------------------------------------------------------
        advantages, returns = gae(rew_buf, val_buf, done_buf, last_value,
                                  config.gamma, config.gae_lambda)

        # --- 3. update --------------------------------------------------------------------
        N = E * T
        batch = PPOBatch(
            obs=obs_buf.reshape(N, -1), critic_obs=cobs_buf.reshape(N, -1),
            masks=tuple(m.reshape(N, -1) for m in mask_bufs),
            categorical=cat_buf.reshape(N, H), continuous=cont_buf.reshape(N, C),
            log_prob=logp_buf.reshape(N), advantages=advantages.reshape(N),
            returns=returns.reshape(N),
        )
        losses = ppo_update(policy, optimizer, batch, config, generator)

        # --- learning curve, progress, callback ------------------------------------------
        n_fin = sum(int(x.numel()) for x in fin_ret)
        mean_obj = float(torch.cat(fin_obj).mean()) if n_fin else math.nan
        mean_ret = float(torch.cat(fin_ret).mean()) if n_fin else math.nan
        if n_fin:
            curve_steps.append(float(env_steps))
            curve_obj.append(mean_obj)
            curve_ret.append(mean_ret)
        if progress:
            import sys

            print(f"ppo update {update}/{config.num_updates} steps {env_steps} "
                  f"objective {mean_obj:.4f} return {mean_ret:.4f} "
                  f"kl {losses['approx_kl']:.4f}", file=sys.stderr)
        if callback is not None:
            try:
                callback(PPOUpdate(update, env_steps, mean_obj, mean_ret, n_fin, losses, policy))
            except StopIteration:
                message = f"stopped by the callback after update {update}"
                status = "callback"
                break
        if max_seconds is not None and time.perf_counter() - start >= max_seconds:
            message = f"stopped by max_seconds = {max_seconds} after update {update}"
            status = "time_limit"
            break
    wall = time.perf_counter() - start
    return PPOResult(
        policy=policy,
        curve_steps=np.asarray(curve_steps, dtype=np.float64),
        curve_objective=np.asarray(curve_obj, dtype=np.float64),
        curve_return=np.asarray(curve_ret, dtype=np.float64),
        env_steps=env_steps,
        updates=update,
        wall_time=wall,
        steps_per_second=env_steps / wall if wall > 0 else math.inf,
        message=message,
        losses=losses,
        status=status,
    )


def rollout_objective(
    env: BatchedEnv,
    act: Callable[[EnvStep], Action],
    episodes_per_row: int,
    generator: torch.Generator,
    max_steps: int = 100_000,
) -> tuple[float, float, int]:
    """Monte Carlo estimate of a fixed policy's mean episode objective on a batched env.

    Runs the environment until every row has finished ``episodes_per_row`` episodes and
    averages ``info["objective"]`` (else the episode return) over the first
    ``episodes_per_row`` episodes of every row — whole episodes per row, so short episodes are
    not over-represented.

    Parameters
    ----------
    env : BatchedEnv
    act : callable
        Maps the current :class:`EnvStep` to an :class:`Action` (e.g. a deterministic
        ``lambda s: policy.act(s.obs, s.masks)``).
    episodes_per_row : int
        Episodes per row (>= 1); ``E * episodes_per_row`` >= 2 episodes are averaged.
    generator : torch.Generator
        Source of the environment's draws.
    max_steps : int, default 100000
        Lockstep steps after which a ``RuntimeError`` is raised (episodes never end).

    Returns
    -------
    mean, standard_error : float
        Mean objective and its standard error.
    episodes : int
        Number of episodes averaged, ``E * episodes_per_row``.

    Raises
    ------
    ValueError
        If ``episodes_per_row < 1`` or only one episode would be averaged.
    RuntimeError
        If some row does not finish its episodes within ``max_steps`` lockstep steps.

    Examples
    --------
    >>> from bilevel.solvers.rl._toys import MaskedBandit
    >>> env = MaskedBandit(num_envs=8)
    >>> zeros = lambda s: Action(torch.zeros(8, 1, dtype=torch.long), torch.zeros(8, 0))
    >>> m, se, n = rollout_objective(env, zeros, 50, torch.Generator().manual_seed(0))
    >>> n, abs(m - 0.5) < 4 * se + 1e-12   # arm 0 pays 0 or 1 with equal probability
    (400, True)
    """
    if not isinstance(episodes_per_row, int) or episodes_per_row < 1:
        raise ValueError(f"expected episodes_per_row to be an int >= 1, got {episodes_per_row!r}")
    E, k = env.num_envs, episodes_per_row
    if E * k < 2:
        raise ValueError(f"expected at least 2 episodes in total, got {E * k}")
    step = env.reset(generator)
    ep_return = torch.zeros(E, dtype=torch.float64)
    values = torch.zeros((E, k), dtype=torch.float64)
    count = torch.zeros(E, dtype=torch.long)
    rows = torch.arange(E)
    for _ in range(max_steps):
        nxt = env.step(act(step), generator)
        done = nxt.done.cpu().bool()
        ep_return += nxt.reward.cpu().to(torch.float64)
        if bool(done.any()):
            obj = nxt.info.get("objective")
            val = ep_return if obj is None else obj.cpu().to(torch.float64)
            keep = done & (count < k)
            values[rows[keep], count[keep]] = val[keep]
            count += keep.long()
            ep_return = torch.where(done, torch.zeros_like(ep_return), ep_return)
            if bool((count >= k).all()):
                flat = values.reshape(-1)
                return float(flat.mean()), float(flat.std() / math.sqrt(E * k)), E * k
        step = nxt
    raise RuntimeError(f"expected {k} episodes per row within {max_steps} steps, got "
                       f"{int(count.min())} in some row")
