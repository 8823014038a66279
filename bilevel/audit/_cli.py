"""The ``bilevel audit`` subcommand: the exploitability of a static-report or dynamic mechanism.

::

    bilevel audit ENV [env options] [--mechanism vcg|optimal|first_price|FILE] [--samples K]
                  [--report-grid G] [--notion ex_post|bayes] [--inner dp|lp] [--no-refine]
                  [--seed S] [--json]
    bilevel audit bandit-discrete|bandit-continuous [--n-agents n] [--n-items m] [--horizon T]
                  [--gamma g] [--mechanism pivot|vcg|posted:P|second_price[:R]]
                  [--estimator exact|clairvoyant|learned] [--episodes N] [--seeds S]
                  [--eval-episodes N] [--seed S] [--json]

The second form audits a mechanism of the bandit auction (buyers report every period, values
evolve with consumption; :func:`bilevel.audit.dynamic_exploitability`): ``pivot`` (or ``vcg``)
is the dynamic pivot mechanism (discrete, one good), ``posted:P`` the per-period posted price,
``second_price[:R]`` the myopic second-price auction with reserve R.

prints a table ``agent | gain | se | best deviation`` and the total with its kind (exact or
lower bound); ``--json`` prints :meth:`bilevel.audit.Exploitability.to_dict`. The misreport grid
is ``--report-grid`` because ``--grid`` is the gridworld's side. Exit codes: 0 success, 2 bad
input.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

# Only argparse and the standard library are imported here (``bilevel --help`` starts fast);
# the command imports numpy and the audit when it runs.

__all__ = ["register"]


def register(sub: argparse._SubParsersAction[Any]) -> None:
    """Add the ``audit`` subcommand to the ``bilevel`` parser's subcommands ``sub``."""
    from bilevel._cli import _add_env_args  # bilevel._cli is loaded: it calls this function

    p = sub.add_parser("audit", help="exploitability of a mechanism: the best misreport gains")
    _add_env_args(p)
    p.add_argument("--mechanism", default="vcg",
                   help="'vcg', 'optimal' (Myerson's, where it is an AMA), 'first_price' "
                   "(single-item envs) or a saved mechanism (.json/.npz)")
    p.add_argument("--allow-transfer", action="store_true",
                   help="audit a saved mechanism designed for another environment")
    p.add_argument("--samples", type=int, default=1000, help="type profiles (default 1000)")
    p.add_argument("--report-grid", type=int, default=41, metavar="G",
                   help="misreport candidates per agent (default 41; --grid is the gridworld "
                   "side)")
    p.add_argument("--notion", choices=("ex_post", "bayes"), default="ex_post",
                   help="ex-post regret or the interim (Bayes) gain")
    p.add_argument("--inner", choices=("dp", "lp"), default="dp",
                   help="exact inner solver of an AMA")
    p.add_argument("--no-refine", action="store_true",
                   help="skip the golden-section refinement of the best grid report")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true", help="machine-readable output")
    d = p.add_argument_group("bandit auction (ENV = bandit-discrete or bandit-continuous)")
    d.add_argument("--horizon", type=int, default=3, metavar="T", help="periods (default 3)")
    d.add_argument("--estimator", choices=("exact", "clairvoyant", "learned"), default="exact",
                   help="exact DP of the buyer's own problem, the clairvoyant upper bound, or "
                   "learned PPO deviators (a lower bound; any setting)")
    d.add_argument("--episodes", type=int, default=200_000,
                   help="learned: training episodes per deviator run (default 200000)")
    d.add_argument("--seeds", type=int, default=3,
                   help="learned: runs per buyer, the best kept (default 3)")
    d.add_argument("--eval-episodes", type=int, default=65_536,
                   help="learned: episodes of each paired evaluation (default 65536)")
    p.set_defaults(func=_cmd_audit)


BANDIT_PREFIX = "bandit-"


def _bandit_mechanism(setting: Any, spec: str) -> Any:
    from bilevel._cli import CLIError
    from bilevel.models.dynamic import posted_price, second_price
    from bilevel.solvers.dynamic import dynamic_pivot, exact_arrays

    name, _, arg = spec.partition(":")
    try:
        if name in ("pivot", "vcg") and not arg:
            arrays = exact_arrays(setting)
            return dynamic_pivot(n=setting.n_buyers, horizon=setting.horizon, **arrays)
        if name in ("posted", "posted_price") and arg:
            return posted_price(setting, float(arg))
        if name == "second_price":
            return second_price(setting, float(arg) if arg else 0.0)
    except ValueError as e:
        raise CLIError(f"--mechanism {spec}: {e}") from e
    raise CLIError(
        f"expected --mechanism pivot, vcg, posted:P or second_price[:R] for a bandit auction, "
        f"got {spec!r}"
    )


def _cmd_audit_bandit(args: argparse.Namespace) -> int:
    from bilevel._cli import CLIError
    from bilevel._jsonsafe import to_json
    from bilevel.audit import dynamic_exploitability
    from bilevel.models.dynamic import list_bandit_settings, make_bandit_setting

    kind = args.env[len(BANDIT_PREFIX):]
    names = sorted(spec.name for spec in list_bandit_settings())
    if kind not in names:
        raise CLIError(
            f"expected ENV bandit-<setting> with setting in {names}, got {args.env!r}"
        )
    for flag in ("tasks", "grid", "rounds", "dist", "makespan"):
        if getattr(args, flag) is not None:
            raise CLIError(f"--{flag} does not apply to {args.env}")
    kw: dict[str, Any] = {"horizon": args.horizon}
    if args.n_agents is not None:
        kw["n_buyers"] = args.n_agents
    if args.n_items is not None:
        kw["n_goods"] = args.n_items
    if args.gamma is not None:
        kw["gamma"] = args.gamma
    try:
        setting = make_bandit_setting(kind, **kw)
    except (ValueError, TypeError) as e:
        raise CLIError(str(e)) from e
    mech = _bandit_mechanism(setting, args.mechanism)
    try:
        result = dynamic_exploitability(
            setting, mech, estimator=args.estimator, episodes=args.episodes, seeds=args.seeds,
            eval_episodes=args.eval_episodes, seed=args.seed,
            progress=not args.json and sys.stderr.isatty())
    except (ValueError, TypeError) as e:
        raise CLIError(str(e)) from e
    if args.json:
        out = {"env": args.env, "params": kw, "mechanism": args.mechanism,
               "estimator": args.estimator, **result.to_dict()}
        print(to_json(out, indent=2))
        return 0
    params = ", ".join(f"{k}={v!r}" for k, v in kw.items())
    print(f"{args.mechanism} on {args.env}({params}), estimator {args.estimator}")
    print(result)
    return 0


def _cmd_audit(args: argparse.Namespace) -> int:
    if args.env.startswith(BANDIT_PREFIX):
        return _cmd_audit_bandit(args)
    from bilevel._cli import CLIError, _env_from_args, _mechanism_from_arg
    from bilevel._jsonsafe import to_json
    from bilevel.audit import exploitability, first_price

    env = _env_from_args(args)
    mech: Any
    if args.mechanism in ("first_price", "pay_your_bid"):
        try:
            mech = first_price(env)
        except ValueError as e:
            raise CLIError(str(e)) from e
    else:
        mech = _mechanism_from_arg(env, args.mechanism, allow_transfer=args.allow_transfer)
    try:
        result = exploitability(env, mech, samples=args.samples, seed=args.seed,
                                notion=args.notion, grid=args.report_grid,
                                refine=not args.no_refine, inner=args.inner)
    except (ValueError, TypeError) as e:
        raise CLIError(str(e)) from e
    if args.json:
        out = {"env": env.name, "params": dict(env.params), "mechanism": args.mechanism,
               **result.to_dict()}
        print(to_json(out, indent=2))
        return 0
    params = ", ".join(f"{k}={v!r}" for k, v in env.params.items())
    print(f"{args.mechanism} on {env.name}({params})")
    print(result)
    return 0
