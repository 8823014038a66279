"""Leader-environment steps per second of the Stackelberg POMDP: our batched PPO vs SB3 PPO.

Both learners train a leader on the same POMDP (same game, response phase, reward phase and
commitment; the settings :class:`bilevel.StackelbergDesigner` resolves for the game) with the
same budget of leader-environment steps, side by side in one run:

* **ours** — :class:`bilevel.stackelberg.StackelbergDesigner` (our batched PPO,
  :func:`bilevel.solvers.rl.train_ppo`, on :class:`bilevel.solvers.stackelberg.StackelbergPOMDP`:
  ``--envs`` leader episodes in lockstep, 32 by default — twice the designer's default of 16
  for the small games, and still reaching the optimum of ``simple_allocation:3`` within 200 k
  steps (measured, seeds 0 and 1) —, centralized critic, no evaluation during training);
* **SB3** — ``stable_baselines3.PPO("MlpPolicy")`` on the gymnasium interface
  :class:`bilevel.solvers.stackelberg.StackelbergGymEnv` (one episode at a time, the papers' stack:
  Brero et al., *Stackelberg POMDP*, §5) with SP-B's settings (``docs/references.md``): SB3
  defaults except γ = 1, the game's entropy coefficient and ``n_steps = ⌈2048 / H⌉ · H``
  (whole episodes per rollout; H = episode length).

Steps per second are the training budget over the training wall time. Each final leader is
then evaluated exactly in the same way (:func:`bilevel.stackelberg.evaluate_leader`: its
deterministic committed table, multiplicative weights answered against it, the leader's exact
value against the selected response and that response's B-CCE gap). ``ratio`` = our steps/s
over SB3's.

Stable-Baselines3 is an optional dev dependency used only here (``stable-baselines3>=2.9,<3``);
without it the script says so on stderr and exits with status 3, unless ``--ours-only``.

Usage::

    python benchmarks/stackelberg_throughput.py [--game simple_allocation:3] [--steps 200000]
                                                [--seed 0] [--envs 32] [--iterations I]
                                                [--threads 1] [--ours-only] [--json]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import sys
import time
import warnings
from typing import Any

import numpy as np
import torch

from bilevel.models.stackelberg import make_game
from bilevel.solvers.rl._protocol import Action
from bilevel.solvers.stackelberg._gym import StackelbergGymEnv, decode_actions
from bilevel.stackelberg import StackelbergDesigner, evaluate_leader

SB3_REQUIREMENT = "stable-baselines3>=2.9,<3"


def _ours(game: str, steps: int, seed: int, envs: int | None,
          iterations: int | None) -> tuple[dict[str, Any], dict[str, Any]]:
    d = StackelbergDesigner(steps=steps, seed=seed, num_envs=envs, iterations=iterations,
                            eval_every=0, threads=None)
    r = d.fit(game).result_
    out = {"env_steps": r.env_steps, "train_seconds": r.env_steps / r.steps_per_second,
           "steps_per_second": r.steps_per_second, "value": r.value, "bcce_gap": r.bcce_gap,
           "certified": r.certified, "num_envs": r.config["num_envs"]}
    return out, r.config


def _sb3(game: str, steps: int, cfg: dict[str, Any]) -> dict[str, Any]:
    from stable_baselines3 import PPO

    flavour = cfg["followers"].removeprefix("mw-")
    env = StackelbergGymEnv(game, iterations=cfg["iterations"], flavour=flavour,
                            reward=cfg["reward"], reward_games=cfg["reward_games"],
                            response=cfg["response"])
    n_steps = math.ceil(2048 / env.horizon) * env.horizon
    warnings.filterwarnings("ignore", message=".*mini-batch size of 64.*")  # SB3's default
    model = PPO("MlpPolicy", env, gamma=1.0, ent_coef=cfg["ent_coef"], n_steps=n_steps,
                seed=cfg["seed"], device="cpu", verbose=0)
    t = time.perf_counter()
    model.learn(total_timesteps=steps)
    train = time.perf_counter() - t
    env_steps = int(model.num_timesteps)
    spec = env.pomdp.action_spec

    def leader(obs: torch.Tensor, masks: tuple[torch.Tensor, ...]) -> Action:
        act, _ = model.predict(obs.numpy().astype(np.float32), deterministic=True)
        return decode_actions(spec, act, masks)

    ev = evaluate_leader(game, leader, iterations=cfg["iterations"], flavour=flavour,
                         response=cfg["response"], threshold=cfg["threshold"],
                         seed=cfg["seed"] + 7919)
    return {"env_steps": env_steps, "train_seconds": train,
            "steps_per_second": env_steps / train, "value": ev.value, "bcce_gap": ev.gap,
            "certified": ev.certified, "n_steps": n_steps}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--game", default="simple_allocation:3", help="a game name of bilevel.models.stackelberg"
    )
    parser.add_argument("--steps", type=int, default=200_000, help="leader steps each")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--envs", type=int, default=32,
                        help="our lockstep leader episodes (0: the designer's default per game)")
    parser.add_argument("--iterations", type=int,
                        help="MW iterations of the response phase (default per game)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch intra-op threads (0: torch default; erratic under load)")
    parser.add_argument("--ours-only", action="store_true",
                        help="skip Stable-Baselines3 (no ratio)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    have_sb3 = importlib.util.find_spec("stable_baselines3") is not None
    if not have_sb3 and not args.ours_only:
        print(f"stackelberg_throughput: Stable-Baselines3 is not installed; install the "
              f"optional dev dependency ({SB3_REQUIREMENT!r}) or pass --ours-only.",
              file=sys.stderr)
        return 3
    if args.steps < 1:
        print(f"stackelberg_throughput: expected --steps >= 1, got {args.steps}",
              file=sys.stderr)
        return 2
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    # torch's first optimizer imports torch._dynamo (~2 s): pay it before either timer starts
    torch.optim.Adam([torch.zeros(1, requires_grad=True)])
    ours, cfg = _ours(args.game, args.steps, args.seed, args.envs or None, args.iterations)
    sb3 = None if args.ours_only else _sb3(args.game, args.steps, cfg)
    out: dict[str, Any] = {
        "game": args.game, "steps": args.steps, "threads": args.threads,
        "optimum": make_game(args.game).optimum,
        "iterations": cfg["iterations"], "reward": cfg["reward"],
        "reward_games": cfg["reward_games"], "ours": ours, "sb3": sb3,
        "ratio": None if sb3 is None else ours["steps_per_second"] / sb3["steps_per_second"],
    }
    if args.json:
        print(json.dumps(out))
    else:
        print(f"{args.game}: {args.steps} leader steps each (threads={args.threads}, "
              f"{cfg['iterations']} MW iterations, optimum {out['optimum']})")
        for name, r in (("ours", ours), ("sb3", sb3)):
            if r is None:
                print(f"  {name:5s} skipped (--ours-only)")
                continue
            print(f"  {name:5s} {r['steps_per_second']:10.0f} steps/s  value "
                  f"{r['value']:.4f} (B-CCE gap {r['bcce_gap']:.4f})  "
                  f"({r['train_seconds']:.1f} s)")
        if out["ratio"] is not None:
            print(f"  ratio {out['ratio']:.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
