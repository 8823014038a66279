"""The ``bilevel audit`` subcommand: the exploitability of a static-report mechanism.

::

    bilevel audit ENV [env options] [--mechanism vcg|optimal|first_price|FILE] [--samples K]
                  [--report-grid G] [--notion ex_post|bayes] [--inner dp|lp] [--no-refine]
                  [--seed S] [--json]

prints a table ``agent | gain | se | best deviation`` and the total with its kind (exact or
lower bound); ``--json`` prints :meth:`bilevel.audit.Exploitability.to_dict`. The misreport grid
is ``--report-grid`` because ``--grid`` is the gridworld's side. Exit codes: 0 success, 2 bad
input.
"""

from __future__ import annotations

import argparse
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
    p.set_defaults(func=_cmd_audit)


def _cmd_audit(args: argparse.Namespace) -> int:
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
