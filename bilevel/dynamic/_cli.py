"""The ``bilevel dynamic`` subcommand: learn a dynamic mechanism of the bandit auction.

::

    bilevel dynamic [SETTING] [--n-buyers N] [--n-goods M] [--horizon T] [--gamma G]
                    [--delta D | --bracket LO HI] [--width W] [--threshold X] [--steps N]
                    [--batch B] [--alpha A] [--beta B] [--seed S] [--store FILE]
                    [--out DIR] [--json] [--quiet]

trains a mechanism network min–max against learned deviators, searches the profit target δ
(or trains the one cell at ``--delta``), and prints the comparison with the dynamic pivot
mechanism, the best posted price and (one period) the optimum, each with revenue, welfare, IR
violation and its exploitability (exact where the setting is tabular), then the δ-search trace.
``--store`` keeps finished cells: rerunning after a kill resumes. With ``--out`` it writes
``report.md``, ``curves.png``, ``result.json`` and the mechanism (``weights.pt`` +
``config.json``, loaded with ``bilevel.solvers.dynamic.load_mechanism``). Progress, one line
per checkpoint and per δ cell, goes to stderr unless ``--quiet``. Exit codes: 0 success, 2 bad
input.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

__all__ = ["register"]

# The registered bandit settings (bilevel.models.dynamic.list_bandit_settings), without
# importing torch; a test checks them against the registry.
SETTING_NAMES = ("continuous", "discrete")


def _cmd_dynamic(args: argparse.Namespace) -> int:
    from bilevel._jsonsafe import to_json
    from bilevel.dynamic._designer import DynamicMechanismDesigner
    from bilevel.dynamic._report import dynamic_report_markdown, write_dynamic_report

    params: dict[str, Any] = {"horizon": args.horizon}
    for flag, key in (("n_buyers", "n_buyers"), ("n_goods", "n_goods"), ("gamma", "gamma")):
        if getattr(args, flag) is not None:
            params[key] = getattr(args, flag)
    try:
        designer = DynamicMechanismDesigner(
            delta=args.delta, bracket=None if args.bracket is None else tuple(args.bracket),
            width=args.width, threshold=args.threshold, steps=args.steps, batch=args.batch,
            alpha=args.alpha, beta=args.beta, seed=args.seed, store=args.store,
            threads=args.threads, progress=not args.quiet)
        designer.fit(args.setting, **params)
    except (ValueError, TypeError) as e:
        print(f"bilevel dynamic: error: {e}", file=sys.stderr)
        return 2
    result = designer.result_
    files: dict[str, str] = {}
    if args.out is not None:
        out = Path(args.out)
        designer.save(out)
        files = {p.name: str(p) for p in write_dynamic_report(result, out)}
        files["result.json"] = str(out / "result.json")
    if args.json:
        print(to_json({"setting": args.setting, "params": params, **result.to_dict(),
                       "files": files}))
    else:
        print(dynamic_report_markdown(result), end="")
        if args.out is None:
            print("(nothing saved: pass --out DIR to keep the mechanism and the report)")
        for k, v in files.items():
            print(f"{k}: {v}")
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``dynamic`` subcommand to a ``bilevel`` parser's subcommands ``sub``.

    Examples
    --------
    >>> parser = argparse.ArgumentParser(prog="bilevel")
    >>> register(parser.add_subparsers(dest="command"))
    >>> args = parser.parse_args(["dynamic", "discrete", "--horizon", "1", "--delta", "1.3"])
    >>> args.command, args.horizon, args.delta, args.func.__name__
    ('dynamic', 1, 1.3, '_cmd_dynamic')
    """
    p = sub.add_parser("dynamic", help="learn a dynamic mechanism (bandit auction) min-max "
                       "against learned deviators")
    p.add_argument("setting", nargs="?", default="discrete", choices=SETTING_NAMES,
                   help="bandit-auction setting (default discrete)")
    p.add_argument("--n-buyers", type=int, help="buyers n (default 1)")
    p.add_argument("--n-goods", type=int, help="goods m (default 1)")
    p.add_argument("--horizon", type=int, default=3, help="periods T (default 3)")
    p.add_argument("--gamma", type=float, help="discount (default 1)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--delta", type=float, help="train one cell at this profit target")
    g.add_argument("--bracket", type=float, nargs=2, metavar=("LO", "HI"),
                   help="initial δ bracket (default: best posted price, efficient welfare)")
    p.add_argument("--width", type=float, default=0.1, help="stop width of the δ search")
    p.add_argument("--threshold", type=float, default=0.1,
                   help="retention threshold of exploitability, profit loss and IR loss")
    p.add_argument("--steps", type=int, default=2000, help="min-max steps per δ (default 2000)")
    p.add_argument("--batch", type=int, default=256, help="episodes per player and step")
    p.add_argument("--alpha", type=float, default=1.0, help="exploitability weight")
    p.add_argument("--beta", type=float, default=10.0, help="IR-loss weight")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--store", help="run store (sqlite file): finished cells are kept")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    p.add_argument("--out", help="directory for the report, curves and mechanism")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--quiet", action="store_true",
                   help="no progress lines on stderr (one per checkpoint and per δ cell)")
    p.set_defaults(func=_cmd_dynamic)
