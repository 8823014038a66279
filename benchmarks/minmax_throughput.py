"""Min–max alternations per second: our batched loop vs an SB3-based loop doing the same work.

Setting: the discrete bandit auction, one buyer, three periods
(``make_bandit_setting("discrete", horizon=3)``), the mechanism network
:class:`bilevel.solvers.dynamic.MechanismNet` (same initial weights on both sides) and
:class:`bilevel.solvers.dynamic.MinMaxConfig`'s defaults (``batch`` = 256 episodes,
``deviator_updates`` = 2 PPO updates per buyer, 2 PPO epochs, one minibatch). One alternation
(a "min–max training step") is, on both sides, side by side in one run:

1. per buyer, ``deviator_updates`` PPO updates of its deviator, each on ``batch`` fresh
   episodes (``batch · T`` environment steps) against the current mechanism, frozen;
2. ``batch`` truthful and, per buyer, ``batch`` deviating episodes against the mechanism with
   its autograd graph kept, then one Adam step of the mechanism down the surrogate of
   ``f = |v − δ|_κ + α ψ + β Σ_i |h_i|_κ``.

* **ours** — :meth:`bilevel.solvers.dynamic.MinMaxTrainer.step`: all episodes in lockstep
  (:class:`bilevel.solvers.dynamic.DeviatorEnv`, ``batch`` rows), truthful-init deviators
  updated by :func:`bilevel.solvers.rl.ppo_update`.
* **SB3** — per buyer a ``stable_baselines3.PPO("MlpPolicy")`` deviator on the gymnasium
  wrapper :class:`bilevel.solvers.dynamic.DeviatorGymEnv` (one episode at a time) whose
  mechanism is the same network under ``torch.no_grad`` (frozen for the rollout), with the
  deviator's PPO settings: ``n_steps = batch_size = batch · T`` (one minibatch), ``n_epochs``
  = ``update_epochs``, the deviator learning rate, γ of the setting, GAE λ = 1, entropy
  coefficient 0.01 (clip 0.2, value coefficient 0.5, gradient clip 0.5, normalised advantages
  and 64-64 tanh networks are SB3's defaults and ours); one
  ``model.learn(total_timesteps=deviator_updates · batch · T, reset_num_timesteps=False)`` per
  alternation, i.e. ``deviator_updates`` rollouts each followed by one update. Then the
  mechanism step: ``batch`` truthful and ``batch`` deviating episodes (the SB3 policy's sampled
  actions) played one at a time through ``DeviatorGymEnv`` (episode k of the truthful and of
  each deviating batch reset with the same seed: common random numbers, as ours), the
  mechanism's outputs recorded with their graph at every period; the per-episode flows are
  stacked and assembled into exactly the surrogate that ``MinMaxTrainer`` builds (pathwise
  flows plus the score term of the drawn winners with a batch-mean baseline, the interim IR
  term; ``MinMaxTrainer._stats`` computes the loss), followed by the same clipped Adam step.

Alternations per second are alternations over the wall time of the timed alternations (one
untimed warm-up alternation each first); environment steps per second count every period
played (PPO rollouts and mechanism-step episodes: ``n (U + 1) B T + B T`` per alternation,
``U = deviator_updates``). ``ratio`` = our alternations/s over SB3's (target ≥ 10).
BLAS and torch threads are pinned to ``--threads`` (default 1).

Stable-Baselines3 is an optional dev dependency used only in the benchmarks
(``stable-baselines3>=2.9,<3``); without it the script says so on stderr and exits with
status 3, unless ``--ours-only``.

Usage::

    python benchmarks/minmax_throughput.py [--batch 256] [--ours-steps 30] [--sb3-steps 3]
                                           [--seed 0] [--threads 1] [--quick] [--ours-only]
                                           [--json]
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # BLAS threads: pinned before numpy / torch load

import argparse  # noqa: E402
import importlib.util  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

from bilevel.models.dynamic import BanditAuctionSetting, make_bandit_setting  # noqa: E402
from bilevel.solvers.dynamic import DeviatorGymEnv, MinMaxConfig, MinMaxTrainer  # noqa: E402
from bilevel.solvers.dynamic._minmax import _Episodes  # noqa: E402
from bilevel.solvers.dynamic._network import MechanismNet  # noqa: E402

SB3_REQUIREMENT = "stable-baselines3>=2.9,<3"
DELTA = 1.3  # profit target of the benchmark's training (any value: it does not change cost)

Tensor = torch.Tensor


def _env_steps(setting: BanditAuctionSetting, cfg: MinMaxConfig) -> int:
    """Periods played per alternation: PPO rollouts plus the mechanism step's episodes."""
    n, T, B = setting.n_buyers, setting.horizon, cfg.batch
    return n * cfg.deviator_updates * B * T + (1 + n) * B * T


def _network(setting: BanditAuctionSetting, seed: int) -> MechanismNet:
    return MechanismNet(setting, generator=torch.Generator().manual_seed(seed))


def _ours(setting: BanditAuctionSetting, cfg: MinMaxConfig, steps: int,
          seed: int) -> dict[str, Any]:
    tr = MinMaxTrainer(setting, _network(setting, seed), cfg,
                       torch.Generator().manual_seed(seed))
    tr.step()  # warm-up (untimed)
    t = time.perf_counter()
    for _ in range(steps):
        stats = tr.step()
    wall = time.perf_counter() - t
    return {"alternations": steps, "seconds": wall, "alternations_per_second": steps / wall,
            "env_steps_per_second": steps * _env_steps(setting, cfg) / wall,
            "last_revenue": stats.revenue, "last_exploitability": stats.exploitability}


class _Frozen(nn.Module):
    """The mechanism under ``torch.no_grad``: what an SB3 deviator's rollout sees."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, history: Tensor, cumulative: Tensor) -> tuple[Tensor, Tensor]:
        with torch.no_grad():
            x, p = self.net(history, cumulative)
        return x, p


class _Recording:
    """The mechanism with its graph, each period's outputs kept for the surrogate."""

    def __init__(self, net: nn.Module) -> None:
        self.net = net
        self.outputs: list[tuple[Tensor, Tensor]] = []

    def __call__(self, history: Tensor, cumulative: Tensor) -> tuple[Tensor, Tensor]:
        x, p = self.net(history, cumulative)
        self.outputs.append((x, p))
        return x.detach(), p.detach()


def _play(env: DeviatorGymEnv, rec: _Recording, model: Any, seeds: list[int],
          setting: BanditAuctionSetting) -> _Episodes:
    """``len(seeds)`` episodes one at a time through the gym wrapper; the surrogate of
    ``MinMaxTrainer._episodes`` assembled from the stacked per-episode flows.

    Returns
    -------
    _Episodes
        ``utility`` (E, n) and ``revenue`` (E,) with graph, realised values, initial values
        (E, n, m).
    """
    T, gamma = setting.horizon, setting.gamma
    costs = setting.cost_tensor(device=env.env.process.device)
    eu_l: list[list[Tensor]] = [[] for _ in range(T)]  # per period, per episode (1, n)
    er_l: list[list[Tensor]] = [[] for _ in range(T)]
    ew_l: list[list[Tensor]] = [[] for _ in range(T)]
    lx_l: list[list[Tensor]] = [[] for _ in range(T)]
    initial: list[Tensor] = []
    for seed in seeds:
        obs, _ = env.reset(seed=seed)
        proc = env.env.process
        initial.append(proc.values.clone())
        for t in range(T):
            values = proc.values.clone()
            if model is None:
                action: Any = int(env.env.truthful_action().categorical[0, 0])
            else:
                action, _ = model.predict(obs, deterministic=False)
            rec.outputs.clear()
            obs, _, _, _, _ = env.step(action)
            x, p = rec.outputs[-1]
            won = x[:, 1:, :]
            eu_l[t].append((values * won).sum(-1) - p)
            er_l[t].append(p.sum(-1) - (costs * won).sum((1, 2)))
            ew_l[t].append((values * won).sum((1, 2)) - (costs * won).sum((1, 2)))
            a = proc.last_allocation
            lx_l[t].append(torch.log((x * a).sum(1).clamp_min(1e-30)).sum(-1))
    exp_u = [torch.cat(v) for v in eu_l]
    exp_r = [torch.cat(v) for v in er_l]
    logx = [torch.cat(v) for v in lx_l]
    flows_u = [e.detach() for e in exp_u]
    flows_r = [e.detach() for e in exp_r]
    welfare = [torch.cat(v).detach() for v in ew_l]
    disc = [gamma**t for t in range(T)]
    u_sur: Tensor = sum((d * f for d, f in zip(disc, exp_u, strict=True)),
                        torch.zeros_like(exp_u[0]))
    r_sur: Tensor = sum((d * f for d, f in zip(disc, exp_r, strict=True)),
                        torch.zeros_like(exp_r[0]))
    for t in range(T - 1):
        later_u = sum((disc[k] * flows_u[k] for k in range(t + 1, T)), torch.zeros_like(u_sur))
        later_r = sum((disc[k] * flows_r[k] for k in range(t + 1, T)), torch.zeros_like(r_sur))
        u_sur = u_sur + (later_u - later_u.mean(0)) * logx[t].unsqueeze(1)
        r_sur = r_sur + (later_r - later_r.mean()) * logx[t]
    u_val = sum((d * f for d, f in zip(disc, flows_u, strict=True)), torch.zeros_like(u_sur))
    r_val = sum((d * f for d, f in zip(disc, flows_r, strict=True)), torch.zeros_like(r_sur))
    w_val = sum((d * f for d, f in zip(disc, welfare, strict=True)), torch.zeros_like(r_sur))
    return _Episodes(u_sur, r_sur, u_val, r_val, w_val, torch.cat(initial))


def _sb3(setting: BanditAuctionSetting, cfg: MinMaxConfig, steps: int,
         seed: int) -> dict[str, Any]:
    from stable_baselines3 import PPO

    n, T, B = setting.n_buyers, setting.horizon, cfg.batch
    net = _network(setting, seed)
    # the mechanism's Adam, its loss (``_stats``) and the clip are MinMaxTrainer's own
    tr = MinMaxTrainer(setting, net, cfg, torch.Generator().manual_seed(seed))
    frozen = _Frozen(net)
    rec = _Recording(net)
    warnings.filterwarnings("ignore", category=UserWarning, module="stable_baselines3")
    models = [
        PPO("MlpPolicy", DeviatorGymEnv(setting, frozen, agent=i), n_steps=B * T,
            batch_size=B * T, n_epochs=cfg.ppo.update_epochs, learning_rate=cfg.lr_deviator,
            gamma=setting.gamma, gae_lambda=cfg.ppo.gae_lambda, ent_coef=cfg.ppo.ent_coef,
            clip_range=cfg.ppo.clip_coef, vf_coef=cfg.ppo.vf_coef,
            max_grad_norm=cfg.ppo.max_grad_norm, seed=seed + i, device="cpu", verbose=0)
        for i in range(n)
    ]
    truth_env = DeviatorGymEnv(setting, rec, agent=0)
    dev_envs = [DeviatorGymEnv(setting, rec, agent=i) for i in range(n)]
    rng = np.random.default_rng(seed)

    def alternation() -> Any:
        for model in models:
            model.learn(total_timesteps=cfg.deviator_updates * B * T, reset_num_timesteps=False)
        seeds = [int(s) for s in rng.integers(0, 2**62, size=B)]
        truth = _play(truth_env, rec, None, seeds, setting)
        devs = [_play(dev_envs[i], rec, models[i], seeds, setting) for i in range(n)]
        loss, stats = tr._stats(truth, devs)
        tr.optimizer.zero_grad(set_to_none=True)
        loss.backward()  # type: ignore[no-untyped-call]
        torch.nn.utils.clip_grad_norm_(net.parameters(), cfg.max_grad_norm)
        tr.optimizer.step()
        return stats

    alternation()  # warm-up (untimed)
    t = time.perf_counter()
    for _ in range(steps):
        stats = alternation()
    wall = time.perf_counter() - t
    return {"alternations": steps, "seconds": wall, "alternations_per_second": steps / wall,
            "env_steps_per_second": steps * _env_steps(setting, cfg) / wall,
            "last_revenue": stats.revenue, "last_exploitability": stats.exploitability}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=256, help="episodes per player and step")
    parser.add_argument("--ours-steps", type=int, default=30, help="our timed alternations")
    parser.add_argument("--sb3-steps", type=int, default=3, help="SB3's timed alternations")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch intra-op threads (0: torch default; erratic under load)")
    parser.add_argument("--quick", action="store_true",
                        help="smoke size: batch 64, 5 and 1 timed alternations")
    parser.add_argument("--ours-only", action="store_true",
                        help="skip Stable-Baselines3 (no ratio)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.batch, args.ours_steps, args.sb3_steps = 64, 5, 1
    have_sb3 = importlib.util.find_spec("stable_baselines3") is not None
    if not have_sb3 and not args.ours_only:
        print(f"minmax_throughput: Stable-Baselines3 is not installed; install the optional "
              f"dev dependency ({SB3_REQUIREMENT!r}) or pass --ours-only.", file=sys.stderr)
        return 3
    for name in ("batch", "ours_steps", "sb3_steps"):
        if getattr(args, name) < 1:
            print(f"minmax_throughput: expected --{name.replace('_', '-')} >= 1, got "
                  f"{getattr(args, name)}", file=sys.stderr)
            return 2
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    # torch's first optimizer imports torch._dynamo (~2 s): pay it before either timer starts
    torch.optim.Adam([torch.zeros(1, requires_grad=True)])
    setting = make_bandit_setting("discrete", horizon=3)
    cfg = MinMaxConfig(delta=DELTA, batch=args.batch)
    ours = _ours(setting, cfg, args.ours_steps, args.seed)
    sb3 = None if args.ours_only else _sb3(setting, cfg, args.sb3_steps, args.seed)
    out: dict[str, Any] = {
        "setting": "discrete, n=1, T=3", "batch": cfg.batch,
        "deviator_updates": cfg.deviator_updates, "update_epochs": cfg.ppo.update_epochs,
        "env_steps_per_alternation": _env_steps(setting, cfg), "threads": args.threads,
        "quick": args.quick, "ours": ours, "sb3": sb3,
        "ratio": None if sb3 is None
        else ours["alternations_per_second"] / sb3["alternations_per_second"],
        "target": 10.0,
    }
    if args.json:
        print(json.dumps(out))
    else:
        print(f"min-max alternations, {out['setting']}, batch {cfg.batch}, "
              f"{cfg.deviator_updates} PPO updates x {cfg.ppo.update_epochs} epochs per buyer, "
              f"{out['env_steps_per_alternation']} env steps each (threads={args.threads})")
        print(f"  {'':5s} {'alt/s':>9s} {'env steps/s':>12s} {'timed':>6s} {'seconds':>8s}")
        for name, r in (("ours", ours), ("sb3", sb3)):
            if r is None:
                print(f"  {name:5s} skipped (--ours-only)")
                continue
            print(f"  {name:5s} {r['alternations_per_second']:9.3f} "
                  f"{r['env_steps_per_second']:12.0f} {r['alternations']:6d} "
                  f"{r['seconds']:8.2f}")
        if out["ratio"] is not None:
            met = "meets" if out["ratio"] >= out["target"] else "misses"
            print(f"  ratio {out['ratio']:.1f}x ({met} the {out['target']:.0f}x target)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
