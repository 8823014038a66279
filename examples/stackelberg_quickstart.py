"""Learn a Stackelberg leader against no-regret followers and check it exactly.

The leader is trained with PPO on the Stackelberg POMDP (multiplicative-weights followers);
its exact value against the certified follower response is printed beside the game's known
optimum, with the Bayesian coarse-correlated-equilibrium gap of the response.

Usage (from the repository root, a few seconds for the default game)::

    python examples/stackelberg_quickstart.py [--game normal_form:game_1] [--steps 20000]
"""

from __future__ import annotations

import argparse

from bilevel.stackelberg import StackelbergDesigner


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--game", default="normal_form:game_1",
                        help="a game name, e.g. simple_allocation:2, mspm:PI:2")
    parser.add_argument("--steps", type=int, default=20_000, help="PPO environment steps")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    d = StackelbergDesigner(steps=args.steps, seed=args.seed).fit(args.game)
    res = d.result_
    print(f"{args.game}: leader value {res.value:.4f}, known optimum {res.optimum}, "
          f"BCCE gap {res.bcce_gap:.2e}; {res.status} in {res.wall_time:.1f} s")


if __name__ == "__main__":
    main()
