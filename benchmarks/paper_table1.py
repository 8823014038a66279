"""Sequential sales, uniform values (the AMA paper's Table 1): our methods vs the paper's values.

For each row (n, m) and method, designs a mechanism with the paper's default hyperparameters,
evaluates it *unregularised* on 10,000 fresh profiles paired with VCG, and prints it next to the
paper's value and its wall time. Results are appended to a JSON-lines file as they finish, so an
interrupted run can be resumed (finished cells are skipped).

Usage::

    python benchmarks/paper_table1.py [--rows 3x2,4x2,...] [--methods first_order,...]
        [--iters 1000] [--seed 0] [--out table1.jsonl] [--json]
"""

from __future__ import annotations

import argparse
import csv
import json
import time
from pathlib import Path

from bilevel import AMADesigner, make_env

PAPER_CSV = Path(__file__).resolve().parents[2] / "shared" / "reference" / "paper-tables.csv"
COLUMN = {"grid": "grid", "zeroth_order": "zeroth_order", "first_order": "reg_lp"}


def paper_values() -> dict[tuple[int, int], dict[str, float]]:
    """Table 1 rows of the paper (if the shared reference is beside the project)."""
    out: dict[tuple[int, int], dict[str, float]] = {}
    if not PAPER_CSV.exists():
        return out
    with PAPER_CSV.open() as f:
        for row in csv.DictReader(f):
            if row["table"] == "1":
                out[(int(row["n_agents"]), int(row["size"]))] = {
                    k: float(row[k]) for k in ("vcg", "grid", "zeroth_order", "reg_lp")
                }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", default="3x2,4x2,5x2,3x3,4x3,5x3")
    parser.add_argument("--methods", default="zeroth_order,first_order,multistart")
    parser.add_argument("--iters", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="table1.jsonl")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    paper = paper_values()
    out = Path(args.out)
    done = set()
    if out.exists():
        for line in out.read_text().splitlines():
            r = json.loads(line)
            done.add((r["n"], r["m"], r["method"], r["iters"], r["seed"]))
    results = []
    for row in args.rows.split(","):
        n, m = (int(v) for v in row.split("x"))
        env = make_env("sales", n_agents=n, n_items=m, dist="uniform")
        for method in args.methods.split(","):
            key = (n, m, method, args.iters, args.seed)
            if key in done:
                continue
            t = time.perf_counter()
            d = AMADesigner(method=method, iters=args.iters, seed=args.seed).fit(env)
            ev = d.evaluation_
            if ev is None:  # pragma: no cover - eval_samples is 10,000
                raise RuntimeError("no evaluation")
            p = paper.get((n, m), {})
            if method == "multistart":
                ref = max((p[k] for k in ("grid", "zeroth_order", "reg_lp")), default=None)
            else:
                ref = p.get(COLUMN[method])
            rec = {
                "n": n, "m": m, "method": method, "iters": args.iters, "seed": args.seed,
                "ama": ev.mean, "ama_se": ev.se, "vcg": ev.baseline_mean,
                "diff": ev.diff_mean, "diff_se": ev.diff_se, "paper": ref,
                "meets_paper_minus_2se": None if ref is None else ev.mean >= ref - 2 * ev.se,
                "wall_time_s": time.perf_counter() - t,
            }
            results.append(rec)
            with out.open("a") as f:
                f.write(json.dumps(rec) + "\n")
            if not args.json:
                print(f"n={n} m={m} {method:13s} AMA {ev.mean:.4f} ± {ev.se:.4f}  VCG "
                      f"{ev.baseline_mean:.4f}  paper {ref}  ok={rec['meets_paper_minus_2se']}  "
                      f"{rec['wall_time_s']:.0f} s", flush=True)
    if args.json:
        print(json.dumps({"results": results}))


if __name__ == "__main__":
    main()
