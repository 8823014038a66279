"""Per-profile time of the batched exact DP vs the HiGHS occupancy LP, measured side by side.

Setting: sequential sales, n = 5 agents, m = 3 items (43 states × 6 actions), uniform values,
2,000 type profiles, affine welfare of a random AMA (w ~ U[0.5, 2], b ~ U[-1, 1]). Both solvers
solve the same reward arrays; the script checks that their optimal values agree.

Usage::

    python benchmarks/inner_solvers.py [--profiles 2000] [--seed 0] [--json]
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from bilevel import make_env, solve_dp, solve_lp


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profiles", type=int, default=2000)
    parser.add_argument("--n-agents", type=int, default=5)
    parser.add_argument("--n-items", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeat", type=int, default=5, help="DP timing repetitions (best of)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    env = make_env("sales", n_agents=args.n_agents, n_items=args.n_items, dist="uniform")
    rng = np.random.default_rng(args.seed)
    types = env.sample_types(rng, args.profiles)
    R = env.rewards(types)
    w = rng.uniform(0.5, 2.0, env.n_agents)
    b = rng.uniform(-1.0, 1.0, env.mdp.shape)
    c = np.einsum("n,knsa->ksa", w, R) + b

    solve_dp(env.mdp, c[:10])  # warm-up (plan cache)
    dp_times = []
    for _ in range(args.repeat):
        t = time.perf_counter()
        dp = solve_dp(env.mdp, c)
        dp_times.append(time.perf_counter() - t)
    dp_time = min(dp_times)

    solve_lp(env.mdp, c[:2])  # warm-up
    t = time.perf_counter()
    lp = solve_lp(env.mdp, c)
    lp_time = time.perf_counter() - t

    max_diff = float(np.abs(dp.value - lp.value).max())
    per_dp = dp_time / args.profiles
    per_lp = lp_time / args.profiles
    out = {
        "setting": f"sales n={args.n_agents} m={args.n_items} "
        f"({env.n_states}x{env.n_actions}), {args.profiles} profiles",
        "dp_seconds_per_profile": per_dp,
        "lp_highs_seconds_per_profile": per_lp,
        "ratio": per_lp / per_dp,
        "max_abs_value_difference": max_diff,
        "values_agree_1e-9": max_diff <= 1e-9,
    }
    if args.json:
        print(json.dumps(out))
    else:
        print(f"{out['setting']}")
        print(f"  batched DP : {per_dp * 1e6:10.2f} µs / profile  (total {dp_time:.4f} s)")
        print(f"  HiGHS LP   : {per_lp * 1e6:10.2f} µs / profile  (total {lp_time:.2f} s)")
        print(f"  ratio LP/DP: {out['ratio']:.0f}x;  max |value difference| = {max_diff:.2e}")


if __name__ == "__main__":
    main()
