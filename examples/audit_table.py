"""The audit table of the docs: exploitability (kind), revenue and welfare of many mechanisms.

Static-report mechanisms on the MDP environments (VCG, Myerson's optimum, a random AMA, first
price), sequential price mechanisms, and dynamic mechanisms of the bandit auction (buyers report
every period and learn their values by consuming: the dynamic pivot mechanism, posted prices, the
myopic second-price auction, the one-period optimum) — each audited by
:func:`bilevel.exploitability`. Bandit-auction revenues and welfare are exact (dynamic
programming, discounted sums over the horizon); the others are means over sampled profiles.

Usage (from the repository root; ``--learned`` adds the PPO-deviator rows, about a minute)::

    python examples/audit_table.py [--learned] [--samples 1000]
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def _fmt(x: float, se: float | None = None, digits: int = 4) -> str:
    if abs(x) < 10 ** -(digits + 5):
        x = 0.0
    s = f"{x:.{digits}f}" if abs(x) >= 10**-digits or x == 0 else f"{x:.1e}"
    s = s.replace("-0.0000", "0.0000")
    return s if se is None else f"{s} ± {se:.{digits}f}"


def _kind(r: object) -> str:
    from bilevel.audit import Exploitability

    assert isinstance(r, Exploitability)
    kind = r.kind.replace("_", " ")
    se = None if r.se is None or (abs(r.total) < 5e-5 and r.se < 5e-5) else r.se
    return f"{_fmt(r.total, se)} ({kind})"


def static_rows(samples: int) -> list[list[str]]:
    """VCG, the optimum, a random AMA and first price on the MDP environments."""
    from bilevel import AMA, evaluate, exploitability, make_env, optimal_mechanism, vcg
    from bilevel.audit import first_price

    rows = []
    env = make_env("sales", n_agents=3, n_items=2)
    rng = np.random.default_rng(0)
    ama = AMA(rng.uniform(0.5, 2.0, 3), rng.uniform(-1.0, 1.0, env.mdp.shape), name="random AMA")
    for label, mech in (("VCG", vcg(env)), ("optimal (Myerson)", optimal_mechanism(env)),
                        ("random AMA", ama)):
        r = exploitability(env, mech, samples=samples)
        ev = evaluate(env, mech, n_samples=10_000)
        rows.append([label, "sales, n=3, m=2, uniform", _kind(r), _fmt(ev.revenue, ev.revenue_se),
                     _fmt(ev.welfare, ev.welfare_se)])
    others = (("scheduling", {"n_agents": 2, "n_tasks": 3}, "scheduling, n=2, 3 tasks"),
              ("gridworld", {}, "gridworld (default)"), ("matching", {}, "matching (default)"))
    for name, kw, where in others:
        env = make_env(name, **kw)
        mech = vcg(env)
        r = exploitability(env, mech, samples=min(samples, 300))
        ev = evaluate(env, mech, n_samples=5_000)
        rows.append(["VCG", where, _kind(r), _fmt(ev.revenue, ev.revenue_se),
                     _fmt(ev.welfare, ev.welfare_se)])
    env = make_env("sales", n_agents=2, n_items=1)
    r = exploitability(env, first_price(env), samples=2000, grid=201)
    rows.append(["first price", "sales, n=2, m=1, uniform", _kind(r) + "; theory 1/3", "—", "—"])
    return rows


def spm_rows() -> list[list[str]]:
    """Sequential price mechanisms: every bundle forced at every visit."""
    from bilevel.audit import exploitability
    from bilevel.models.spm import make_spm_setting
    from bilevel.solvers.spm import evaluate_mechanism, static_mechanism

    setting = make_spm_setting("proposition1")
    mech = static_mechanism([0, 1], [[2 / 3], [0.0]])
    r = exploitability(setting, mech)
    rev = evaluate_mechanism(setting, mech, objective="revenue").value
    wel = evaluate_mechanism(setting, mech, objective="welfare").value
    return [["static SPM (prices 2/3, 0)", "SPM proposition1", _kind(r), _fmt(rev), _fmt(wel)]]


def bandit_rows(learned: bool) -> list[list[str]]:
    """Dynamic mechanisms of the discrete bandit auction (values {1, 2, 3}, uniform)."""
    from bilevel.audit import exploitability
    from bilevel.models.dynamic import make_bandit_setting, posted_price, second_price
    from bilevel.solvers.dynamic import (
        best_posted_price,
        dynamic_pivot,
        exact_arrays,
        myopic_second_price,
        one_period_optimum,
        tabulate,
        truthful_value,
    )

    rows = []

    def add(label: str, setting: object, mech: object, where: str, **kw: object) -> None:
        from bilevel.models.dynamic import BanditAuctionSetting
        from bilevel.solvers.dynamic import HistoryMechanism, TabularMechanism

        assert isinstance(setting, BanditAuctionSetting)
        r = exploitability(setting, mech, **kw)
        table = mech if isinstance(mech, (TabularMechanism, HistoryMechanism)) else tabulate(
            setting, mech)  # type: ignore[arg-type]
        v = truthful_value(table, **exact_arrays(setting))
        rows.append([label, where, _kind(r), _fmt(v.revenue), _fmt(v.welfare)])

    s1 = make_bandit_setting("discrete", horizon=3)
    a1 = exact_arrays(s1)
    add("posted price 1.5", s1, posted_price(s1, 1.5), "bandit, n=1, T=3")
    if learned:
        t0 = time.perf_counter()
        add("posted price 1.5", s1, posted_price(s1, 1.5),
            "bandit, n=1, T=3 (PPO deviators, 3 seeds × 2e5 episodes)", estimator="learned")
        print(f"(learned row: {time.perf_counter() - t0:.0f} s)")
    add("posted price 2", s1, posted_price(s1, 2.0), "bandit, n=1, T=3")
    best = best_posted_price(n=1, horizon=3, support=a1["support"])
    add(f"best posted price ({best.price:g})", s1, posted_price(s1, best.price), "bandit, n=1, T=3")
    s2 = make_bandit_setting("discrete", n_buyers=2, horizon=3)
    a2 = exact_arrays(s2)
    pivot = dynamic_pivot(n=2, horizon=3, **a2)
    add("dynamic pivot", s2, pivot, "bandit, n=2, T=3")
    add("dynamic pivot", s2, pivot, "bandit, n=2, T=3 (clairvoyant bound)",
        estimator="clairvoyant")
    add("myopic second price", s2, myopic_second_price(n=2, horizon=3, support=a2["support"]),
        "bandit, n=2, T=3 (ties split)")
    add("myopic second price", s2, second_price(s2), "bandit, n=2, T=3 (ties: lowest index)")
    add("posted price 1.5", s2, posted_price(s2, 1.5), "bandit, n=2, T=3 (highest report wins)")
    s3 = make_bandit_setting("discrete", n_buyers=2, horizon=1)
    a3 = exact_arrays(s3)
    add("one-period optimum (Myerson)", s3, one_period_optimum(n=2, support=a3["support"]),
        "bandit, n=2, T=1")
    add("second price (VCG)", s3, myopic_second_price(n=2, horizon=1, support=a3["support"]),
        "bandit, n=2, T=1")
    if learned:
        import torch

        from bilevel.models.dynamic import BanditAuctionProcess

        sc = make_bandit_setting("continuous", horizon=3)
        r = exploitability(sc, posted_price(sc, 2.4), estimator="learned")
        proc = BanditAuctionProcess(sc)
        g = torch.Generator().manual_seed(0)
        proc.reset(65_536, g)
        mech = posted_price(sc, 2.4)
        while not proc.finished:
            x, p = mech(proc.history_with(proc.values), proc.experience)
            proc.step(proc.values, x, p, g)
        rev, wel = proc.total_revenue.numpy(), proc.total_welfare.numpy()
        rows.append(["posted price 2.4", "bandit continuous, n=1, T=3 (PPO deviators)",
                     _kind(r), _fmt(float(rev.mean()), float(rev.std() / np.sqrt(rev.size))),
                     _fmt(float(wel.mean()), float(wel.std() / np.sqrt(wel.size)))])
    return rows


def main(argv: list[str] | None = None) -> int:
    """Print the table as markdown."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--learned", action="store_true", help="add the PPO-deviator rows")
    p.add_argument("--samples", type=int, default=1000, help="profiles of the static audits")
    args = p.parse_args(argv)
    rows = static_rows(args.samples) + spm_rows() + bandit_rows(args.learned)
    print("| mechanism | environment | exploitability (kind) | revenue | welfare |")
    print("|---|---|---|---|---|")
    for r in rows:
        print("| " + " | ".join(r) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
