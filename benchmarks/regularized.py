"""Per-profile forward+backward time of the fast entropic solver vs the cvxpylayers reference.

Setting: sequential sales, n = 5 agents, m = 3 items (43 states × 6 actions), uniform values
(or ``--env gridworld``: the Table 5 torus, G x G cells, gamma = 0.9, "onecell" types, solved
by the dual Newton method with the soft-policy-iteration warm start), entropy weight
alpha = 0.01, a batch of 20 type profiles with rewards
``sum_i r_i + b`` (b ~ U[0, 1]) and a random upstream gradient. Both solvers
(``bilevel.solvers.EntropicSolver`` and ``bilevel.solvers.CvxpyEntropicLayer`` in its
default exact-gradient mode) solve and differentiate the same batch, side by side; the script
reports their times, the ratio (cvxpy / fast) and the largest deviations of x and of dL/dc.

Usage::

    python benchmarks/regularized.py [--env sales|gridworld] [--batch 20] [--alpha 0.01]
        [--seed 0] [--threads 1] [--json]
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

from bilevel.models import make_env
from bilevel.solvers._entropic import EntropicSolver
from bilevel.solvers._layers import CvxpyEntropicLayer


def _forward_backward(solver: object, C: torch.Tensor, G: torch.Tensor,
                      repeat: int) -> tuple[float, np.ndarray, np.ndarray]:
    """Best-of-``repeat`` seconds of one forward+backward; x (B, S, A) and dL/dc (B, S, A)."""
    best = float("inf")
    x_out = grad_out = np.empty(0)
    for _ in range(repeat):
        c = C.clone().requires_grad_(True)
        t = time.perf_counter()
        x = solver(c)  # type: ignore[operator]
        x.backward(G)
        best = min(best, time.perf_counter() - t)
        assert c.grad is not None
        x_out, grad_out = x.detach().numpy(), c.grad.numpy()
    return best, x_out, grad_out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", choices=("sales", "gridworld"), default="sales")
    parser.add_argument("--batch", type=int, default=20)
    parser.add_argument("--n-agents", type=int, default=5)
    parser.add_argument("--n-items", type=int, default=3, help="sales: items")
    parser.add_argument("--grid", type=int, default=4, help="gridworld: side length G")
    parser.add_argument("--alpha", type=float, default=0.01)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeat", type=int, default=5, help="timing repetitions (best of)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch intra-op threads (0: torch default; erratic under load)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.threads > 0:
        torch.set_num_threads(args.threads)

    if args.env == "sales":
        env = make_env("sales", n_agents=args.n_agents, n_items=args.n_items, dist="uniform")
        size = f"m={args.n_items}"
    else:
        env = make_env("gridworld", n_agents=args.n_agents, grid=args.grid, gamma=0.9)
        size = f"G={args.grid}"
    rng = np.random.default_rng(args.seed)
    R = env.rewards(env.sample_types(rng, args.batch)).sum(axis=1)
    C = torch.from_numpy(R + rng.uniform(0.0, 1.0, env.mdp.shape))
    G = torch.from_numpy(rng.standard_normal(C.shape))

    fast = EntropicSolver(env.mdp, args.alpha)
    ref = CvxpyEntropicLayer(env.mdp, args.alpha)
    _forward_backward(fast, C[:2], G[:2], 1)  # warm-up (compilation, caches)
    _forward_backward(ref, C[:2], G[:2], 1)
    fast_time, x_fast, g_fast = _forward_backward(fast, C, G, args.repeat)
    ref_time, x_ref, g_ref = _forward_backward(ref, C, G, args.repeat)

    per_fast = fast_time / args.batch
    per_ref = ref_time / args.batch
    grad_scale = float(np.abs(g_ref).max())
    out = {
        "setting": f"{args.env} n={args.n_agents} {size} "
        f"({env.n_states}x{env.n_actions}), alpha={args.alpha}, batch {args.batch}",
        "fast_seconds_per_profile": per_fast,
        "cvxpy_seconds_per_profile": per_ref,
        "ratio": per_ref / per_fast,
        "max_abs_x_difference": float(np.abs(x_fast - x_ref).max()),
        "max_abs_grad_difference": float(np.abs(g_fast - g_ref).max()),
        "max_abs_grad": grad_scale,
        "torch_threads": torch.get_num_threads(),
    }
    if args.json:
        print(json.dumps(out))
    else:
        print(f"{out['setting']}  (forward + backward)")
        print(f"  fast (EntropicSolver)      : {per_fast * 1e3:9.3f} ms / profile "
              f"(total {fast_time:.4f} s)")
        print(f"  cvxpylayers (exact backward): {per_ref * 1e3:9.3f} ms / profile "
              f"(total {ref_time:.3f} s)")
        print(f"  ratio cvxpy/fast: {out['ratio']:.1f}x;  max |x diff| = "
              f"{out['max_abs_x_difference']:.2e};  max |grad diff| = "
              f"{out['max_abs_grad_difference']:.2e} (max |grad| = {grad_scale:.2e})")


if __name__ == "__main__":
    main()
