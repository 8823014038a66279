"""Learn a sequential price mechanism (SPM) with PPO and compare it with its baselines.

Usage (from the repository root, about ten seconds per setting)::

    python examples/spm_quickstart.py [--setting proposition1] [--steps 30000]
"""

from __future__ import annotations

import argparse

from bilevel.spm import SPMDesigner


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--setting", default="proposition1",
                        help="an SPM setting (bilevel.models.spm.list_spm_settings())")
    parser.add_argument("--steps", type=int, default=30_000, help="PPO environment steps")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    d = SPMDesigner(steps=args.steps, seed=args.seed).fit(args.setting)
    res = d.result_
    print(f"{args.setting}: learned {res.learned.value:.4f} "
          f"({d.result_.status})")
    for name, value in sorted(res.baselines.items()):
        print(f"  {name:8s} {value.value:.4f}")
    if res.optimum is not None:
        print(f"  E[OPT]   {res.optimum.value:.4f}")
    if res.target is not None:
        print(f"  target   {res.target:.4f}  (learned / target = {res.ratio:.3f})")
    print(f"  {d.result_.wall_time:.1f} s")


if __name__ == "__main__":
    main()
