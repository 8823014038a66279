"""The ``bilevel stackelberg`` subcommand: learn a leader against no-regret followers.

::

    bilevel stackelberg GAME [--followers mw-exact|mw-sampled|q-learning]
                        [--critic centralized|plain]
                        [--pomdp stackelberg|basic] [--compare] [--seeds K] [--envs E]
                        [--learning-rate LR] [--threads N] [--iterations I]
                        [--objective response|worst-certified] [--eval-every U]
                        [--max-seconds T]
                        [--steps N] [--seed S] [--out DIR] [--json]

``GAME`` is a name of :mod:`bilevel.models.stackelberg` (``normal_form:game_2:randomized``,
``matrix_design``, ``simple_allocation:3``, ``mspm:PI:2``, ``mspm:MSGSpace:3:2``). With
``--compare`` both critics are trained (``--seeds`` seeds each) and compared in a report.
For matrix design the output also names the outcome in dominant strategies under the returned
transfers (``dominant_outcome``; None when there is none). ``--out DIR`` saves every result
(``result.json``, ``policy.pt``) and writes the report (``report.md``, learning-curve PNGs).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from bilevel._flags import add_flag

# Only argparse and the standard library are imported here (``bilevel --help`` starts fast);
# the command imports torch and the Stackelberg family when it runs.
if TYPE_CHECKING:
    from bilevel.stackelberg._result import StackelbergResult

__all__ = ["register"]


def _dominant(r: StackelbergResult) -> list[int] | None:
    from bilevel.models.stackelberg import MatrixDesignGame, make_game
    from bilevel.stackelberg._report import dominant_outcome

    g = make_game(r.game)
    if not isinstance(g, MatrixDesignGame):
        return None
    d = dominant_outcome(g, r.leader_table[0])
    return None if d is None else list(d)


def _summary_line(label: str, r: StackelbergResult) -> str:
    from bilevel.models.stackelberg import MatrixDesignGame, make_game

    opt = "unknown" if r.optimum is None else f"{r.optimum:.4f}"
    final = r.value if r.final_value is None else r.final_value
    line = (f"{label}: value {r.value:.4f} (final {final:.4f}, optimum {opt}), "
            f"B-CCE gap {r.bcce_gap:.4f} ({'certified' if r.certified else 'NOT certified'}, "
            f"{r.response_kind}), {r.env_steps} steps in {r.wall_time:.1f} s")
    if r.worst_value is not None:
        line += f", worst certified value {r.worst_value:.4f}"
    if isinstance(make_game(r.game), MatrixDesignGame):
        line += f", dominant outcome {_dominant(r)}"
    return line


def _cmd_stackelberg(args: argparse.Namespace) -> int:
    from bilevel._jsonsafe import to_json
    from bilevel.stackelberg._report import compare_critics, stackelberg_report, summary_rows

    kwargs = {"followers": args.followers, "steps": args.steps, "num_envs": args.envs,
              "learning_rate": args.learning_rate, "iterations": args.iterations,
              "threads": args.threads,
              "objective": args.objective,
              "eval_every": args.eval_every, "max_seconds": args.max_seconds}
    if args.compare:
        variants: tuple[str, ...] = ("centralized", "plain")
        if args.critic != "centralized" or args.pomdp != "stackelberg":
            print("bilevel: error: expected --compare without --critic/--pomdp, got both",
                  file=sys.stderr)
            return 2
    else:
        variants = ("basic",) if args.pomdp == "basic" else (args.critic,)
    if args.seeds < 1:
        print(f"bilevel: error: expected --seeds >= 1, got {args.seeds}", file=sys.stderr)
        return 2
    seeds = [args.seed + k for k in range(args.seeds)]
    try:
        results = compare_critics(args.game, seeds=seeds, variants=variants, **kwargs)
    except (ValueError, TypeError) as e:
        print(f"bilevel: error: {e}", file=sys.stderr)
        return 2
    report = None
    if args.out is not None:
        out = Path(args.out)
        for label, rs in results.items():
            for r in rs:
                r.save(out / f"{label}_seed{r.config['seed']}")
        report = stackelberg_report(results, out)
    if args.json:
        payload = {
            "game": next(iter(results.values()))[0].game,
            "summary": summary_rows(results),
            "results": {k: [{**r.to_dict(), "dominant_outcome": _dominant(r)} for r in rs]
                        for k, rs in results.items()},
            "report": None if report is None else str(report),
        }
        print(to_json(payload, indent=1))
    else:
        for label, rs in results.items():
            for r in rs:
                print(_summary_line(f"{label} seed {r.config['seed']}", r))
        if report is not None:
            print(f"report: {report}")
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``stackelberg`` subcommand to the ``bilevel`` parser's subparsers.

    Examples
    --------
    >>> parser = argparse.ArgumentParser(prog="bilevel")
    >>> register(parser.add_subparsers(dest="command"))
    >>> parser.parse_args(["stackelberg", "matrix_design", "--steps", "10"]).steps
    10
    """
    p = sub.add_parser("stackelberg",
                       help="learn a Stackelberg leader (mechanism) against no-regret followers")
    p.add_argument("game", help="game name, e.g. normal_form:game_2:randomized, matrix_design, "
                                "simple_allocation:3, mspm:PI:2, mspm:MSGSpace:3:2")
    p.add_argument("--followers", choices=("mw-exact", "mw-sampled", "q-learning"),
                   default="mw-exact",
                   help="follower dynamics (multiplicative weights flavour, or tabular "
                        "Q-learning)")
    p.add_argument("--critic", choices=("centralized", "plain"), default="centralized",
                   help="centralized critic (MAPPO) or plain PPO")
    p.add_argument("--pomdp", choices=("stackelberg", "basic"), default="stackelberg",
                   help="basic: response transitions hidden from PPO (ablation)")
    p.add_argument("--compare", action="store_true",
                   help="train both critics and write a comparison report")
    p.add_argument("--seeds", type=int, default=1, help="seeds per variant (S, S+1, ...)")
    p.add_argument("--envs", type=int,
                   help="leader episodes in lockstep (default 16; 64 for randomised normal forms)")
    add_flag(p, "learning_rate", old=("--lr",), type=float,
             help="PPO learning rate (default per game)")
    add_flag(p, "threads", type=int, default=1, help="torch threads during training (default 1)")
    p.add_argument("--iterations", type=int, help="MW iterations of the response phase")
    p.add_argument("--objective", choices=("response", "worst-certified"),
                   help="training reward: against the learned response, or the worst certified "
                        "response (complete-information games; default for matrix_design)")
    p.add_argument("--eval-every", type=int, default=10,
                   help="exact evaluation every U PPO updates (0: only at the end)")
    p.add_argument("--max-seconds", type=float, help="stop each training run after T seconds")
    p.add_argument("--steps", type=int, default=200_000, help="leader-environment steps")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", help="directory for results, report and learning curves")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=_cmd_stackelberg)
