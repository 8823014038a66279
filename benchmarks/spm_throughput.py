"""Environment steps per second and final objective: our batched PPO vs Stable-Baselines3 PPO.

Setting: the SPM paper's correlated-value setting (n = 20 agents, k = 5 identical items,
δ = 0 by default; welfare objective, welfare-loss reward, price-allocation statistic). Both
learners get the same budget of environment steps, side by side in one run:

* **ours** — :func:`bilevel.solvers.rl.train_ppo` on :class:`bilevel.solvers.spm.SPMBatchedEnv`
  (512 lockstep episodes, a masked categorical agent head and a Gaussian price head; the
  hyperparameters of :class:`bilevel.spm.SPMDesigner`);
* **SB3** — ``stable_baselines3.PPO("MlpPolicy")`` on the gymnasium
  :class:`bilevel.models.spm.SPMGymEnv` (one episode at a time, the paper's Box action: agent scores
  then prices), with SB3's defaults except γ = 1 and ``ent_coef = 0.01`` (SP-B's settings for
  the authors' standard-SPM baseline; ``docs/references.md``).

Steps per second are the training budget over the training wall time (evaluations excluded).
Each final policy is evaluated greedily on the same fresh Monte Carlo profiles
(``bilevel.solvers.spm.evaluate_mechanism``). ``ratio`` = our steps/s over SB3's.

Stable-Baselines3 is an optional dev dependency used only here (``stable-baselines3>=2.9,<3``);
without it the script says so on stderr and exits with status 3, unless ``--ours-only``.

Usage::

    python benchmarks/spm_throughput.py [--steps 200000] [--delta 0.0] [--seed 0]
                                        [--eval-samples 100000] [--threads 1] [--ours-only]
                                        [--json]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import time
from typing import Any

import numpy as np
import torch

from bilevel.models.spm import make_spm_setting
from bilevel.solvers.rl._ppo import train_ppo
from bilevel.solvers.spm import SPMGymEnv
from bilevel.solvers.spm._env import SPMBatchedEnv
from bilevel.solvers.spm._exact import evaluate_mechanism
from bilevel.spm._designer import default_ppo_config, mechanism_of

SB3_REQUIREMENT = "stable-baselines3>=2.9,<3"


def _ours(setting: Any, steps: int, seed: int, eval_samples: int) -> dict[str, Any]:
    cfg = default_ppo_config(setting, steps)
    env = SPMBatchedEnv(setting, statistic="price_allocation", num_envs=cfg.num_envs)
    t = time.perf_counter()
    res = train_ppo(env, cfg, torch.Generator().manual_seed(seed))
    train = time.perf_counter() - t
    value = evaluate_mechanism(setting, mechanism_of(res.policy, None),
                               statistic="price_allocation", samples=eval_samples,
                               generator=torch.Generator().manual_seed(seed + 1))
    return {"env_steps": res.env_steps, "train_seconds": train,
            "steps_per_second": res.env_steps / train, "objective": value.value,
            "objective_se": value.se}


def _sb3(setting: Any, steps: int, seed: int, eval_samples: int) -> dict[str, Any]:
    from stable_baselines3 import PPO

    n = setting.n_agents
    model = PPO("MlpPolicy", SPMGymEnv(setting), gamma=1.0, ent_coef=0.01, seed=seed,
                device="cpu", verbose=0)
    t = time.perf_counter()
    model.learn(total_timesteps=steps)
    train = time.perf_counter() - t
    env_steps = int(model.num_timesteps)

    def mechanism(obs: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        act, _ = model.policy.predict(obs.numpy().astype(np.float32), deterministic=True)
        a = torch.as_tensor(np.asarray(act, dtype=np.float64))
        scores = a[:, :n].masked_fill(~mask, -torch.inf)  # the gym env's agent rule
        return scores.argmax(dim=1), a[:, n:].clamp(0.0, 1.0)

    value = evaluate_mechanism(setting, mechanism, statistic="price_allocation",
                               samples=eval_samples,
                               generator=torch.Generator().manual_seed(seed + 1))
    return {"env_steps": env_steps, "train_seconds": train,
            "steps_per_second": env_steps / train, "objective": value.value,
            "objective_se": value.se}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200_000, help="environment steps each")
    parser.add_argument("--n-agents", type=int, default=20)
    parser.add_argument("--n-items", type=int, default=5)
    parser.add_argument("--delta", type=float, default=0.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--eval-samples", type=int, default=100_000)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch intra-op threads (0: torch default; erratic under load)")
    parser.add_argument("--ours-only", action="store_true",
                        help="skip Stable-Baselines3 (no ratio)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    have_sb3 = importlib.util.find_spec("stable_baselines3") is not None
    if not have_sb3 and not args.ours_only:
        print(f"spm_throughput: Stable-Baselines3 is not installed; install the optional dev "
              f"dependency ({SB3_REQUIREMENT!r}) or pass --ours-only.", file=sys.stderr)
        return 3
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    setting = make_spm_setting("correlated", n_agents=args.n_agents, n_items=args.n_items,
                               delta=args.delta)
    ours = _ours(setting, args.steps, args.seed, args.eval_samples)
    sb3 = None if args.ours_only else _sb3(setting, args.steps, args.seed, args.eval_samples)
    out: dict[str, Any] = {
        "setting": "correlated", "n_agents": args.n_agents, "n_items": args.n_items,
        "delta": args.delta, "steps": args.steps, "threads": args.threads,
        "ours": ours, "sb3": sb3,
        "ratio": None if sb3 is None else ours["steps_per_second"] / sb3["steps_per_second"],
        "objective_difference": None if sb3 is None else ours["objective"] - sb3["objective"],
    }
    if args.json:
        print(json.dumps(out))
    else:
        print(f"correlated n={args.n_agents} k={args.n_items} delta={args.delta}, "
              f"{args.steps} steps each (threads={args.threads})")
        for name, r in (("ours", ours), ("sb3", sb3)):
            if r is None:
                print(f"  {name:5s} skipped (--ours-only)")
                continue
            print(f"  {name:5s} {r['steps_per_second']:10.0f} steps/s  "
                  f"objective {r['objective']:.4f} ± {r['objective_se']:.4f}  "
                  f"({r['train_seconds']:.1f} s)")
        if out["ratio"] is not None:
            print(f"  ratio {out['ratio']:.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
