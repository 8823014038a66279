"""Audit mechanisms: how much can an agent gain by lying (exploitability)?

VCG and first price on sequential sales (static reports, scored with the agents' true types),
and a posted price on the bandit auction (buyers report every period and learn their values),
audited exactly by dynamic programming of the buyer's own problem.

Usage (from the repository root, a few seconds)::

    python examples/audit_quickstart.py [--samples 200]

The full table of the docs: ``python examples/audit_table.py``.
"""

from __future__ import annotations

import argparse

from bilevel import exploitability, make_env, vcg
from bilevel.audit import first_price


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=200, help="type profiles")
    args = parser.parse_args(argv)

    env = make_env("sales", n_agents=2, n_items=1)
    for name, mech in [("VCG", vcg(env)), ("first price", first_price(env))]:
        a = exploitability(env, mech, samples=args.samples)
        se = "" if a.se is None else f" ± {a.se:.4f}"
        print(f"{name:12s} sales n=2 m=1: {a.total:.4f}{se} ({a.kind})")

    from bilevel.models.dynamic import make_bandit_setting, posted_price
    from bilevel.solvers.dynamic import dynamic_pivot, exact_arrays

    bandit = make_bandit_setting("discrete", horizon=3)
    a = exploitability(bandit, posted_price(bandit, 1.5))
    print(f"posted 1.5   bandit n=1 T=3: {a.total:.4f} ({a.kind})")   # 0.1093: exploitable
    two = make_bandit_setting("discrete", n_buyers=2, horizon=3)
    a = exploitability(two, dynamic_pivot(n=2, horizon=3, **exact_arrays(two)))
    print(f"pivot        bandit n=2 T=3: {abs(a.total):.4f} ({a.kind})")   # 0: truthful


if __name__ == "__main__":
    main()
