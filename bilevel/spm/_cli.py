"""The ``bilevel spm`` and ``bilevel spm-baselines`` subcommands.

::

    bilevel spm SETTING [--param K=V ...] [--statistic S] [--objective O] [--steps N]
                [--seed S] [--baselines rsd,asp,psp] [--baseline-steps N]
                [--price-grid finite|auto|none|G] [--critic obs|state] [--out DIR] [--json]
    bilevel spm-baselines SETTING [--param K=V ...] [--objective O] [--steps N] [--seed S]
                [--json]

``spm`` learns a mechanism with PPO and compares it with RSD, the learned ASP/PSP baselines,
the best SPM/PSP/ASP values where known and E[OPT]; with ``--out`` it writes ``report.md``,
``result.json``, ``curves.png`` and the policy ``policy.pt``. ``spm-baselines`` prints the
values that need no learning (RSD, E[OPT], best SPM/PSP/ASP by DP or search) and, with
``--steps N``, learned ASP and PSP. Exit codes: 0 success, 2 bad input.
"""

from __future__ import annotations

import argparse
import ast
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bilevel._flags import add_flag

# Only argparse and the standard library are imported here (``bilevel --help`` starts fast);
# each command imports torch and the SPM family when it runs.
if TYPE_CHECKING:
    from bilevel.solvers.spm import SPMValue

__all__ = ["register"]

# The names the help shows, without importing bilevel.models.spm (torch): the registered SPM
# settings (list_spm_settings), OBJECTIVES and STATISTICS of bilevel.models.spm. A test checks
# them against the real ones.
SETTING_NAMES = ("additive_across_types", "colors", "correlated", "id", "inventory",
                 "kitchen_sink", "maxmin_fairness", "proposition1", "proposition2",
                 "proposition4", "revenue", "two_worlds")
OBJECTIVES = ("welfare", "revenue", "maxmin")
STATISTICS = ("none", "agents_left", "items_agents_left", "allocation", "price_allocation")


def _params(items: list[str] | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ValueError(f"expected --param KEY=VALUE, got {item!r}")
        try:
            out[key.replace("-", "_")] = ast.literal_eval(raw)
        except (ValueError, SyntaxError):
            out[key.replace("-", "_")] = raw
    return out


def _grid(raw: str) -> Any:
    if raw in ("auto", "finite"):
        return raw
    if raw == "none":
        return None
    try:
        return int(raw)
    except ValueError:
        raise ValueError(
            f"expected --price-grid finite, auto, none or an int, got {raw!r}"
        ) from None


def _baselines(raw: str) -> tuple[str, ...]:
    names = tuple(b.strip() for b in raw.split(",") if b.strip())
    bad = [b for b in names if b not in ("rsd", "asp", "psp")]
    if bad:
        raise ValueError(f"expected --baselines among rsd,asp,psp, got {raw!r}")
    return names


def _add_common(p: argparse.ArgumentParser) -> None:
    names = ", ".join(SETTING_NAMES)
    p.add_argument("setting", help=f"SPM setting ({names})")
    p.add_argument("--param", action="append", metavar="K=V",
                   help="setting parameter, e.g. --param delta=0.25 (repeatable)")
    p.add_argument("--objective", choices=OBJECTIVES, help="default: the setting's")
    p.add_argument("--seed", type=int, default=0, help="seed of everything random")
    p.add_argument("--json", action="store_true", help="print one JSON object")


def _value(v: SPMValue) -> dict[str, Any]:
    return {"value": v.value, "se": v.se, "method": v.method}


def _cmd_spm(args: argparse.Namespace) -> int:
    import torch

    from bilevel._jsonsafe import to_json
    from bilevel.spm._designer import SPMDesigner
    from bilevel.spm._report import spm_report_markdown, write_spm_report

    try:
        torch.set_num_threads(max(1, args.threads))
        designer = SPMDesigner(
            setting_params=_params(args.param), statistic=args.statistic,
            objective=args.objective, steps=args.steps, seed=args.seed,
            baselines=_baselines(args.baselines), baseline_steps=args.baseline_steps,
            price_grid=_grid(args.price_grid), critic=args.critic,
            learning_rate=args.learning_rate, eval_every=args.eval_every,
            eval_samples=args.eval_samples, max_seconds=args.max_seconds,
            threads=args.threads, progress=not args.json and sys.stderr.isatty())
        designer.fit(args.setting)
    except (ValueError, TypeError) as e:
        print(f"bilevel spm: error: {e}", file=sys.stderr)
        return 2
    result = designer.result_
    files: dict[str, str] = {}
    if args.out is not None:
        out = Path(args.out)
        files = {k: str(v) for k, v in write_spm_report(result, out).items()}
        designer.save(out / "policy.pt")
        files["policy"] = str(out / "policy.pt")
    if args.json:
        print(to_json({**result.to_dict(), "files": files}))
    else:
        print(spm_report_markdown(result), end="")
        for k, v in files.items():
            print(f"{k}: {v}")
    return 0


def _cmd_baselines(args: argparse.Namespace) -> int:
    import torch

    from bilevel._jsonsafe import to_json
    from bilevel.models.spm import make_spm_setting
    from bilevel.solvers.spm import expected_optimum, rsd_value
    from bilevel.spm._designer import SPMDesigner, best_values

    try:
        torch.set_num_threads(max(1, args.threads))
        setting = make_spm_setting(args.setting, **_params(args.param))
        objective = setting.objective if args.objective is None else args.objective
        out: dict[str, Any] = {"setting": setting.name,
                               "params": {k: (list(v) if isinstance(v, tuple) else v)
                                          for k, v in setting.params.items()},
                               "objective": objective}
        gen = torch.Generator().manual_seed(args.seed)
        out["rsd"] = _value(rsd_value(setting, objective=objective, generator=gen))
        out["optimum"] = (_value(expected_optimum(setting, generator=gen))
                          if objective == "welfare" else None)
        out["best"] = {k: _value(v) for k, v in best_values(setting, objective, "strict").items()}
        if args.steps:
            # ASP and PSP are the learned mechanism under the restricted statistics
            out["learned"] = {}
            for key, stat in (("asp", "none"), ("psp", "agents_left")):
                d = SPMDesigner(objective=objective, statistic=stat, steps=args.steps,
                                seed=args.seed, baselines=(), exact_references=False,
                                threads=args.threads,
                                progress=not args.json and sys.stderr.isatty()).fit(setting)
                out["learned"][key] = _value(d.result_.learned)
    except (ValueError, TypeError) as e:
        print(f"bilevel spm-baselines: error: {e}", file=sys.stderr)
        return 2
    if args.json:
        print(to_json(out))
    else:
        print(f"{out['setting']} ({out['objective']})")
        print(f"  RSD      {out['rsd']['value']:.6f} ({out['rsd']['method']})")
        if out["optimum"] is not None:
            print(f"  E[OPT]   {out['optimum']['value']:.6f} ({out['optimum']['method']})")
        for k, v in out["best"].items():
            print(f"  best {k.upper()} {v['value']:.6f} ({v['method']})")
        for k, v in out.get("learned", {}).items():
            print(f"  learned {k.upper()} {v['value']:.6f} ({v['method']})")
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``spm`` and ``spm-baselines`` subcommands to a ``bilevel`` parser.

    Each subparser sets ``func`` to a handler ``(args) -> exit code``.

    Parameters
    ----------
    sub : argparse._SubParsersAction
        The result of ``parser.add_subparsers()``.

    Examples
    --------
    >>> parser = argparse.ArgumentParser(prog="bilevel")
    >>> register(parser.add_subparsers(dest="command"))
    >>> args = parser.parse_args(["spm", "proposition1", "--steps", "1000"])
    >>> args.command, args.steps, args.func.__name__
    ('spm', 1000, '_cmd_spm')
    """
    p = sub.add_parser("spm", help="learn a sequential price mechanism with PPO")
    _add_common(p)
    p.add_argument("--statistic", choices=STATISTICS, default="price_allocation",
                   help="observation statistic (default price_allocation)")
    p.add_argument("--steps", type=int, default=1_000_000, help="PPO environment steps")
    p.add_argument("--baselines", default="rsd,asp,psp",
                   help="comma-separated baselines among rsd,asp,psp ('' for none)")
    p.add_argument("--baseline-steps", type=int, help="ASP/PSP training steps (default --steps)")
    p.add_argument("--price-grid", default="finite",
                   help="finite (default: discrete grid on finite supports, else continuous), "
                        "auto (always the default grid), none (continuous) or a grid size")
    p.add_argument("--critic", choices=("obs", "state"), default="obs",
                   help="critic input: the observation or the full state (centralized)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    add_flag(p, "learning_rate", type=float, help="PPO's Adam step size (default 1e-3)")
    add_flag(p, "eval_every", type=int, default=5,
             help="PPO updates between greedy evaluations of the learning curve (default 5)")
    add_flag(p, "eval_samples", type=int, default=65536,
             help="Monte Carlo episodes of the final evaluation when not enumerated")
    add_flag(p, "max_seconds", type=float, help="wall-time limit of each PPO training")
    p.add_argument("--out", help="directory for report.md, result.json, curves.png, policy.pt")
    p.set_defaults(func=_cmd_spm)

    p = sub.add_parser("spm-baselines",
                       help="RSD, E[OPT] and best SPM/PSP/ASP values of an SPM setting")
    _add_common(p)
    p.add_argument("--steps", type=int, default=0,
                   help="also learn ASP and PSP with this many PPO steps (default 0: no)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    p.set_defaults(func=_cmd_baselines)
