"""Design an affine maximizer mechanism (AMA) for sequential sales and compare it with VCG.

A small Sobol grid and a short CMA-ES run on sales with 3 agents, 2 items and uniform values,
each evaluated on the same fresh profiles as VCG and Myerson's optimal mechanism.

Usage (from the repository root, a few seconds)::

    python examples/ama_quickstart.py [--points 256] [--samples 2000] [--out DIR]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from bilevel import AMADesigner, evaluate, load, make_env, optimal_mechanism


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=256, help="grid candidates")
    parser.add_argument("--samples", type=int, default=2000, help="evaluation profiles")
    parser.add_argument("--out", type=Path, default=None, help="where to save the mechanism")
    args = parser.parse_args(argv)

    env = make_env("sales", n_agents=3, n_items=2, dist="uniform")
    rows = []
    for name, designer in [
        ("grid", AMADesigner(method="grid", n_points=args.points, n_profiles=500,
                             eval_samples=args.samples, seed=0)),
        ("cma", AMADesigner(method="cma", n_evals=40, n_scan=64, n_profiles=500,
                            eval_samples=args.samples, seed=0)),
    ]:
        ev = designer.fit(env).evaluation_
        rows.append((name, ev.mean, ev.se, ev.baseline_mean, ev.pct_of_bound,
                     designer.result_.wall_time))
    # the designers' evaluation profiles (same seed), so every row is paired with the same VCG
    opt = evaluate(env, optimal_mechanism(env), n_samples=args.samples, seed=ev.seed)
    print("| method | revenue | VCG | % of optimum | wall time (s) |")
    print("|---|---|---|---|---|")
    for name, mean, se, base, pct, wall in rows:
        print(f"| {name} | {mean:.4f} ± {se:.4f} | {base:.4f} | {pct:.1f} | {wall:.1f} |")
    print(f"| optimal (Myerson) | {opt.mean:.4f} ± {opt.se:.4f} | {opt.baseline_mean:.4f} | "
          f"{opt.pct_of_bound:.1f} | — |")

    out = args.out or Path(tempfile.mkdtemp())
    out.mkdir(parents=True, exist_ok=True)
    designer.save(out / "mechanism.json")
    again = evaluate(env, load(out / "mechanism.json"), n_samples=args.samples, seed=ev.seed)
    print(f"saved {out / 'mechanism.json'}; reloaded revenue {again.mean:.4f}")


if __name__ == "__main__":
    main()
