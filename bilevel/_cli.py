"""The ``bilevel`` command line.

Subcommands::

    bilevel envs [--json]
    bilevel evaluate ENV [env options] [--mechanism vcg|optimal|FILE] [--samples K] [--seed S]
                     [--exploitability K] [--json]
    bilevel bound ENV [env options] [--objective O] [--samples K] [--seed S] [--json]
    bilevel design ENV [env options] --method grid|first_order|zeroth_order|multistart
                   [--points P] [--profiles K] [--steps I] [--learning-rate L] [--alpha A]
                   [--seed S] [--eval-samples N] [--exploitability K] [--out DIR] [--json]

Env options: ``--n-agents``, ``--n-items`` (sales), ``--tasks`` (scheduling), ``--grid``
(gridworld), ``--rounds`` (matching), ``--dist``, ``--gamma``, ``--makespan clamped|reference``.

``evaluate`` and ``design`` tables, JSON and reports carry each mechanism's measured static
ex-post exploitability (:func:`bilevel.audit.exploitability` on ``--exploitability K`` profiles,
200 by default, seeded by ``--seed``; ``--exploitability 0`` skips it).

Errors print one line on stderr, never a traceback (``--debug``, anywhere on the command line,
shows it): exit code 2 for usage errors (bad options, unreadable input files or configs), 1 for
failures (``bilevel bound`` for an objective without a known bound, a problem beyond the memory
limit — ``--memory-limit SIZE`` or ``BILEVEL_MEMORY_LIMIT``, 4 GiB by default — a corrupt
store, an unwritable ``--out``). ``--checkpoint-every SECONDS`` (``design``, ``run``,
``reproduce``) sets how often a search in progress is saved (the first completed step always
is); results do not depend on it.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, cast

from bilevel._flags import add_flag
from bilevel._memory import MemoryLimitError, limited_memory, parse_bytes
from bilevel.audit._cli import register as register_audit
from bilevel.dynamic._cli import register as register_dynamic
from bilevel.spm._cli import register as register_spm
from bilevel.stackelberg._cli import register as register_stackelberg

# Only argparse, the standard library and the light bilevel._memory are imported here, so that
# ``bilevel --help`` starts fast: each command imports the library (torch, cvxpy, ...) when it
# runs.
if TYPE_CHECKING:
    from bilevel._evaluate import Evaluation
    from bilevel._mechanism import AMA
    from bilevel.audit import Exploitability
    from bilevel.models import Environment

__all__ = ["main"]

# CLI option -> (constructor keyword, environments it applies to)
_ENV_OPTIONS: dict[str, tuple[str, tuple[str, ...] | None]] = {
    "n_agents": ("n_agents", None),
    "n_items": ("n_items", ("sales",)),
    "tasks": ("n_tasks", ("scheduling",)),
    "grid": ("grid", ("gridworld",)),
    "rounds": ("rounds", ("matching",)),
    "dist": ("dist", None),
    "gamma": ("gamma", None),
    "makespan": ("makespan", ("scheduling",)),
}


class CLIError(Exception):
    """A user error reported as one line on stderr with exit code ``code`` (default 2)."""

    def __init__(self, message: str, code: int = 2) -> None:
        super().__init__(message)
        self.code = code


class _Parser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line (exit code 2)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def _memory_size(spec: str) -> int:
    try:
        return parse_bytes(spec)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _seconds(spec: str) -> float:
    try:
        v = float(spec)
    except ValueError:
        v = float("nan")
    if not v >= 0 or v == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a number of seconds >= 0, got {spec!r}")
    return v


def _add_checkpoint_every(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument("--checkpoint-every", type=_seconds, default=30.0, metavar="SECONDS",
                   help=f"{what} (default 30; the first completed step is always saved; "
                   "results do not depend on it)")


def _add_exploitability(p: argparse.ArgumentParser) -> None:
    # the default is bilevel._report.AUDIT_SAMPLES (not imported here: the parser stays light)
    p.add_argument("--exploitability", type=int, default=200, metavar="K",
                   help="type profiles of each mechanism's static exploitability audit, the "
                   "'exploitability (kind)' column (default 200; 0: skip)")


def _add_env_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("env", help="environment name (see `bilevel envs`; plugins of the entry-point "
                   "group bilevel.environments too) or a factory 'package.module:function' "
                   "(imported from the current directory or PYTHONPATH), called with the "
                   "environment options given")
    g = p.add_argument_group("environment options")
    g.add_argument("--n-agents", type=int, help="number of agents n")
    g.add_argument("--n-items", type=int, help="sales: number of items m")
    g.add_argument("--tasks", type=int, help="scheduling: number of tasks T")
    g.add_argument("--grid", type=int, help="gridworld: grid side G")
    g.add_argument("--rounds", type=int, help="matching: number of rounds T")
    g.add_argument("--dist", help="type distribution (uniform, asymmetric, onecell, ...)")
    g.add_argument("--gamma", type=float, help="discount factor")
    g.add_argument("--makespan", choices=("clamped", "reference"),
                   help="scheduling: makespan definition (reference = the authors' code's rule, "
                   "behind the paper's Tables 3/4)")
    p.add_argument("--memory-limit", type=_memory_size, metavar="SIZE",
                   help="memory budget of the batched arrays, e.g. 8GiB (default: "
                   "$BILEVEL_MEMORY_LIMIT or 4GiB); larger problems are refused")


_BUILT_IN = ("gridworld", "matching", "sales", "scheduling")


def _importable_cwd() -> None:
    """Let ``package.module:function`` factories be imported from the current directory (as
    ``python -m`` does); spawned workers inherit the path."""
    if "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())


def _env_from_args(args: argparse.Namespace) -> Environment:
    kwargs: dict[str, Any] = {}
    if ":" in args.env:
        _importable_cwd()
    for opt, (kw, applies) in _ENV_OPTIONS.items():
        val = getattr(args, opt)
        if val is None:
            continue
        # a factory or a plugin takes whichever options it declares (it refuses the others)
        if applies is not None and args.env in _BUILT_IN and args.env not in applies:
            flag = "--" + opt.replace("_", "-")
            raise CLIError(f"{flag} applies to {', '.join(applies)} only, got env {args.env!r}")
        kwargs[kw] = val
    from bilevel.models import make_env

    try:
        return make_env(args.env, **kwargs)
    except (ValueError, TypeError) as e:
        raise CLIError(str(e)) from e


def _use_progress(args: argparse.Namespace) -> bool:
    return not args.json and sys.stderr.isatty()


def _cmd_envs(args: argparse.Namespace) -> int:
    from bilevel._jsonsafe import to_json
    from bilevel._report import format_table
    from bilevel.models import list_envs

    specs = list_envs()
    if args.json:
        print(to_json([{"name": s.name, "description": s.description,
                           "parameters": s.parameters} for s in specs], indent=2))
        return 0
    rows = [["name", "description", "parameters (defaults)"]]
    rows += [[s.name, s.description, ", ".join(f"{k}={v!r}" for k, v in s.parameters.items())]
             for s in specs]
    print(format_table(rows))
    return 0


def _mechanism_from_arg(env: Environment, spec: str, objective: str | None = None,
                        allow_transfer: bool = False) -> AMA:
    from bilevel._mechanism import load_mechanism, vcg
    from bilevel._optimal import optimal_mechanism

    if spec == "vcg":
        return vcg(env)
    if spec == "optimal":
        try:
            return optimal_mechanism(env, "revenue" if objective is None else objective)
        except ValueError as e:
            raise CLIError(str(e)) from e
    try:
        mech = load_mechanism(spec)
        mech.check_origin(env, allow_transfer=allow_transfer)
    except FileNotFoundError as e:
        raise CLIError(
            f"expected 'vcg', 'optimal' or a saved mechanism file, got {spec!r} (not found)"
        ) from e
    except ValueError as e:
        raise CLIError(str(e)) from e
    return mech


def evaluate(env: Environment, mechanism: AMA, **kwargs: Any) -> Evaluation:
    """:func:`bilevel.evaluate`, imported when a command first calls it."""
    from bilevel._evaluate import evaluate as evaluate_

    return evaluate_(env, mechanism, **kwargs)


def _check_exploitability(args: argparse.Namespace) -> None:
    if args.exploitability < 0:
        raise CLIError(f"expected --exploitability >= 0, got {args.exploitability}")


def _audits(env: Environment, mech: AMA, ev: Evaluation | None, optimal: Evaluation | None,
            args: argparse.Namespace) -> dict[str, Exploitability] | None:
    """The exploitability audits of a report's rows by role (None with --exploitability 0)."""
    if args.exploitability == 0:
        return None
    from bilevel._mechanism import vcg
    from bilevel._optimal import optimal_mechanism
    from bilevel._report import audit_mechanisms

    mechs = {"mechanism": mech}
    if ev is not None and ev.baseline is not None:
        mechs["vcg"] = vcg(env)
    if optimal is not None and ev is not None:
        # the mechanism optimal_evaluation evaluated (it exists: optimal is not None)
        mechs["optimal"] = optimal_mechanism(
            env, ev.objective if args.objective is None else args.objective)
    try:
        return audit_mechanisms(env, mechs, samples=args.exploitability, seed=args.seed)
    except ValueError as e:
        raise CLIError(str(e)) from e


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from bilevel._jsonsafe import to_json
    from bilevel._optimal import optimal_evaluation
    from bilevel._report import (
        bound_line,
        comparison_rows,
        exploitability_dict,
        exploitability_line,
        format_table,
    )

    env = _env_from_args(args)
    mech = _mechanism_from_arg(env, args.mechanism, args.objective, args.allow_transfer)
    if args.samples < 1:
        raise CLIError(f"expected --samples >= 1, got {args.samples}")
    _check_exploitability(args)
    try:
        ev = evaluate(env, mech, n_samples=args.samples, seed=args.seed,
                      objective=args.objective, allow_transfer=args.allow_transfer,
                      baseline=None if mech.name == "vcg" and args.mechanism == "vcg" else "vcg")
    except ValueError as e:
        raise CLIError(str(e)) from e
    if args.json:
        out = ev.to_dict()
        audits = _audits(env, mech, ev, None, args)
        if audits is not None:
            out["exploitability"] = exploitability_dict(audits)
        print(to_json(out, indent=2))
        return 0
    optimal = None if args.mechanism == "optimal" else optimal_evaluation(env, ev, args.objective)
    audits = _audits(env, mech, ev, optimal, args)
    print(f"{env!r}")
    print(format_table(comparison_rows(ev, mech.name, 0.0, optimal=optimal,
                                       exploitability=audits)))
    print(bound_line(ev))
    if audits:
        print(exploitability_line(audits))
    return 0


def _cmd_bound(args: argparse.Namespace) -> int:
    from bilevel._bounds import NoBoundError, objective_bound
    from bilevel._jsonsafe import to_json

    env = _env_from_args(args)
    if args.samples < 1:
        raise CLIError(f"expected --samples >= 1, got {args.samples}")
    try:
        bound = objective_bound(env, args.objective, n_samples=args.samples, seed=args.seed)
    except NoBoundError as e:
        raise CLIError(str(e), code=1) from e
    except ValueError as e:
        raise CLIError(str(e)) from e
    if args.json:
        print(to_json(bound.to_dict(), indent=2))
    else:
        print(f"{env!r}")
        print(f"{bound} on {bound.n} profiles (seed {args.seed})")
        print(bound.description)
    return 0


def _tyings(spec: str) -> tuple[str, ...]:
    return tuple(t.strip() for t in spec.split(",") if t.strip())


def _evals(spec: str) -> int | tuple[int, ...]:
    try:
        values = tuple(int(v) for v in spec.split(","))
    except ValueError:
        raise CLIError(
            f"expected --evals as an int or comma-separated ints, got {spec!r}"
        ) from None
    return values[0] if len(values) == 1 else values


def _check_out(out: str | None, flag: str = "--out") -> None:
    """Refuse an output path that is a file or cannot be written, before any work is done."""
    if out is None:
        return
    p = Path(out)
    if p.exists() and not p.is_dir():
        raise CLIError(f"expected {flag} to be a directory, got the file {out!r}")
    try:
        p.mkdir(parents=True, exist_ok=True)
        probe = p / f".bilevel-write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        reason = (f"{str(e.filename)!r} is not a directory"
                  if isinstance(e, (FileExistsError, NotADirectoryError)) else e.strerror or e)
        raise CLIError(f"cannot write to {flag} {out!r}: {reason}", code=1) from None


def _cmd_design(args: argparse.Namespace) -> int:
    from bilevel._designer import AMADesigner
    from bilevel._jsonsafe import to_json
    from bilevel._optimal import optimal_evaluation
    from bilevel._report import (
        bound_line,
        comparison_rows,
        exploitability_line,
        format_table,
        result_dict,
        write_design,
    )
    from bilevel._workers import process_pool

    start = time.perf_counter()
    _check_out(args.out)
    _check_exploitability(args)
    env = _env_from_args(args)
    designer = AMADesigner(
        method=args.method,
        objective=args.objective,
        n_points=args.points,
        n_profiles=args.profiles,
        steps=args.steps,
        learning_rate=args.learning_rate,
        eval_every=args.eval_every,
        threads=args.threads,
        alpha=args.alpha,
        optimizer=args.optimizer,
        estimator=args.estimator,
        regularised_solver=args.regularised_solver,
        n_perturbations=args.perturbations,
        sigma=args.sigma,
        n_starts=args.starts,
        refine=args.refine,
        tyings=_tyings(args.tyings),
        n_evals=_evals(args.evals),
        sigma0=args.sigma0,
        n_scan=args.scan,
        n_validation=args.validation,
        eval_samples=args.eval_samples,
        seed=args.seed,
        progress=_use_progress(args),
        n_trials=args.trials,
        checkpoint=None if not args.out else Path(args.out) / "store.sqlite",
        checkpoint_every=args.checkpoint_every,
    )
    if args.workers < 1:
        raise CLIError(f"expected --workers >= 1, got {args.workers}")
    try:
        if args.workers > 1:
            with process_pool(args.workers) as pool:
                designer.set_params(executor=pool)
                designer.fit(env)
        else:
            designer.fit(env)
    except (ValueError, TypeError) as e:
        raise CLIError(str(e)) from e
    result = designer.result_
    optimal = None
    if result.evaluation is not None and result.mechanism.name != "optimal":
        optimal = optimal_evaluation(env, result.evaluation, args.objective)
    audits = _audits(env, result.mechanism, result.evaluation, optimal, args)
    paths = (write_design(args.out, env, result, optimal=optimal, exploitability=audits)
             if args.out else {})
    if args.json:
        out = result_dict(env, result, optimal=optimal, exploitability=audits)
        out["files"] = {k: str(v) for k, v in paths.items()}
        print(to_json(out, indent=2))
        return 0
    print(f"{env!r}: {args.method} search")
    print(_search_line(result.search, time.perf_counter() - start, args.out))
    if result.evaluation is not None:
        ev = result.evaluation
        print(f"evaluation on {ev.n_samples} fresh profiles (common random numbers):")
        print(format_table(comparison_rows(ev, result.mechanism.name, result.search.wall_time,
                                           optimal=optimal, exploitability=audits)))
        print(bound_line(ev))
        if audits:
            print(exploitability_line(audits))
    for k, v in paths.items():
        print(f"wrote {k}: {v}")
    if not args.out:
        print("nothing saved (no --out DIR: pass one to write mechanism.json, report.md, "
              "result.json and a resumable checkpoint)")
    return 0


def _search_line(search: Any, total: float, out: str | None) -> str:
    """The search's message and time, honest about a resumed or replayed search.

    A search resumed from ``--out``'s checkpoint counts the time of earlier runs in its
    ``wall_time``; that is said, and the time of this run never exceeds its total.
    """
    at = search.stats.get("resumed_at_step") if isinstance(search.stats, dict) else None
    if at is None:
        return (f"search: {search.message} ({min(search.wall_time, total):.1f} s); "
                f"total {total:.1f} s")
    store = Path(out) / "store.sqlite" if out else "the checkpoint"
    how = (f"replayed the finished search stored in {store}, nothing recomputed"
           if at >= search.nit else f"resumed at step {at} of {search.nit} from {store}")
    return (f"search: {search.message} ({how}; {search.wall_time:.1f} s of search over all "
            f"runs); total of this run {total:.1f} s")


def _parse_tables(spec: str) -> list[int]:
    if spec == "all":
        return [1, 2, 3, 4, 5]
    if spec.startswith("table") and spec[5:].isdigit() and 1 <= int(spec[5:]) <= 5:
        return [int(spec[5:])]
    raise CLIError(f"expected table1..table5 or all, got {spec!r}")


def _cmd_reproduce(args: argparse.Namespace) -> int:
    from bilevel._jsonsafe import to_json
    from bilevel._workers import process_pool
    from bilevel.reproduce import FULL, QUICK, reproduce

    tables = _parse_tables(args.tables)
    _check_out(args.out)
    protocol = FULL if args.full else QUICK
    methods = args.methods.split(",")
    rows = None if args.rows is None else [r.strip() for r in args.rows.split(",")]

    def summary(rec: dict[str, Any], cached: bool) -> None:
        if args.json:
            return
        ev = rec["evaluation"]
        src = "stored" if cached else f"{rec['wall_time']:.1f} s"
        diff = "" if ev.get("diff_mean") is None else (
            f"  vs VCG {ev['diff_mean']:+.4f} ± {ev['diff_se']:.4f}")
        if ev.get("gap_mean") is not None and rec["method"] != "bound":
            diff += f"  gap to {ev.get('bound_kind')} {ev['gap_mean']:+.4f} ± {ev['gap_se']:.4f}"
        print(f"table{rec['table']} {rec['row']:9s} {rec['method']:13s} "
              f"{ev['mean']:.4f} ± {ev['se']:.4f}{diff}  ({src})", flush=True)

    if args.workers < 1:
        raise CLIError(f"expected --workers >= 1, got {args.workers}")
    try:
        if args.workers > 1:
            with process_pool(args.workers) as pool:
                records = reproduce(tables, protocol=protocol, methods=methods, out=args.out,
                                    rows=rows, on_cell=summary, executor=pool,
                                    checkpoint_every=args.checkpoint_every)
        else:
            records = reproduce(tables, protocol=protocol, methods=methods, out=args.out,
                                rows=rows, on_cell=summary,
                                checkpoint_every=args.checkpoint_every)
    except ValueError as e:
        raise CLIError(str(e)) from e
    if args.json:
        print(to_json({"protocol": protocol.name, "out": args.out,
                          "cells": [{k: v for k, v in r.items() if k != "history"}
                                    for r in records]}, indent=2))
    else:
        print(f"reports written to {args.out}/table*.md|csv|json")
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    from bilevel._experiment import run_experiment_report
    from bilevel._jsonsafe import to_json

    if Path(args.config).is_dir():
        raise CLIError(f"expected a TOML configuration file, got the directory {args.config!r}")
    if not Path(args.config).exists():
        raise CLIError(f"expected a TOML configuration file, got {args.config!r} (not found)")
    _check_out(args.out)
    if args.workers < 1:
        raise CLIError(f"expected --workers >= 1, got {args.workers}")
    _importable_cwd()  # an [env] name may be a 'package.module:function' factory
    try:
        if args.workers > 1:
            from bilevel._workers import process_pool

            with process_pool(args.workers) as pool:
                res = run_experiment_report(args.config, out=args.out,
                                            checkpoint_every=args.checkpoint_every,
                                            executor=pool)
        else:
            res = run_experiment_report(args.config, out=args.out,
                                        checkpoint_every=args.checkpoint_every)
    except UnicodeDecodeError:
        raise CLIError(
            f"expected a TOML configuration file (UTF-8 text), got {args.config!r}, which is not "
            "text"
        ) from None
    except (ValueError, FileNotFoundError) as e:
        raise CLIError(str(e)) from e
    if args.json:
        print(to_json({"cells": res.cells, "references": res.references,
                          "optimal_note": res.optimal_note, "rows": res.rows}, indent=2))
        return 0
    nan = float("nan")
    for row in res.rows:
        if row["mean"] is None:
            continue
        pct = "" if row["pct_of_bound"] is None else f", {row['pct_of_bound']:.1f}% of bound"
        gap = "" if row["gap_to_bound"] is None else (
            f", gap {row['gap_to_bound']:.4f} ± {row['gap_to_bound_se'] or nan:.4f}")
        print(f"{row['method']:13s} seed {row['seed']}: {row['mean']:.4f} ± "
              f"{row['se'] or nan:.4f} (VCG {row['vcg'] if row['vcg'] is not None else nan:.4f}"
              f"{pct}{gap})")
    if res.optimal_note:
        print(res.optimal_note)
    if res.stored:
        cells = ", ".join(f"{m} seed {k}" for m, k in res.stored)
        print(f"{len(res.stored)} of {len(res.cells)} cell(s) read from "
              f"{res.out_dir / 'store.sqlite'}, finished by an earlier run (not recomputed): "
              f"{cells}")
    print(f"report: {res.out_dir / 'experiment.md'}")
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from bilevel._jsonsafe import to_json
    from bilevel._store import ResultStore
    from bilevel.reproduce import FULL, METHODS, QUICK, cell_key, paper_rows
    from bilevel.reproduce._report import write_reports

    store_path = Path(args.dir) / "store.sqlite"
    expected = "expected a reproduce output directory with stored cells, got"
    if not store_path.is_file():
        raise CLIError(f"{expected} {args.dir} (no store.sqlite)")
    if store_path.stat().st_size == 0:
        raise CLIError(f"{expected} {args.dir} (store.sqlite is empty)")
    records = [rec for _, rec in ResultStore(store_path).items() if "table" in rec]
    if not records:
        raise CLIError(f"{expected} {args.dir} (store.sqlite holds no reproduce cells)")
    written = []
    stale = 0
    for table in sorted({r["table"] for r in records}):
        for proto in (QUICK, FULL):
            # only cells of the current protocol (older versions of a protocol are kept apart)
            current = {cell_key(row, m, proto) for row in paper_rows(table) for m in METHODS}
            named = [r for r in records if r["table"] == table and r["protocol"] == proto.name]
            recs = [r for r in named if r["key"] in current]
            stale += len(named) - len(recs)
            if recs:
                written.append(str(write_reports(Path(args.dir), table, recs, proto)["md"]))
    if not written:
        raise CLIError(f"{expected} {args.dir} (store.sqlite holds only {stale} cell(s) of "
                       "earlier versions of a protocol)")
    if stale and not args.json:
        print(f"skipped {stale} stored cell(s) of earlier versions of a protocol")
    if args.json:
        print(to_json({"reports": written}))
    else:
        for w in written:
            print(f"wrote {w}")
    return 0


def _out_dir(args: argparse.Namespace) -> Path | None:
    """The directory a command writes (``--out``; ``bilevel run``: also the config's)."""
    if args.command == "run" and not getattr(args, "out", None):
        from bilevel._experiment import load_config

        try:
            cfg = load_config(args.config)
        except Exception:  # the command itself reports a bad configuration
            return None
        out = cfg.get("output", {}).get("dir") or f"out/{Path(args.config).stem}"
        return Path(out)
    out = getattr(args, "out", None)
    return None if not out else Path(out)


def _holding_out_dir(func: Callable[[argparse.Namespace], int]) -> Callable[..., int]:
    """Run a command that writes ``--out`` while holding that directory's lock."""

    def run(args: argparse.Namespace) -> int:
        from bilevel._outdir import OutDirInUseError, locked_outdir

        out = _out_dir(args)
        if out is None:
            return func(args)
        try:
            with locked_outdir(out):
                return func(args)
        except OutDirInUseError as e:
            raise CLIError(str(e), code=1) from e

    return run


# Commands that write an output directory: one process per directory at a time.
_WRITES_OUT = ("design", "dynamic", "reproduce", "run", "spm", "stackelberg")


def _version() -> str:
    """The installed package's version, read without importing the library (fast start)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("bilevel")
    except PackageNotFoundError:  # a source tree that is not installed
        import re

        init = Path(__file__).with_name("__init__.py").read_text()
        found = re.search(r'^__version__ = "([^"]+)"', init, re.MULTILINE)
        return found.group(1) if found else "unknown"


class _VersionAction(argparse.Action):
    """``--version``: the version is looked up only when asked (the parser starts fast)."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: Any, option_string: str | None = None) -> None:
        print(f"bilevel {_version()}")
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``bilevel`` command."""
    parser = _Parser(
        prog="bilevel",
        description="Automated design of dynamic mechanisms: affine maximizers compared with VCG, "
        "sequential price mechanisms and Stackelberg leaders learned with RL.",
    )
    parser.add_argument("--debug", action="store_true",
                        help="show the traceback of errors (anywhere on the command line)")
    parser.add_argument("--version", action=_VersionAction,
                        help="print the package version and exit")
    # Subcommand parsers are _Parser too (one-line usage errors).
    sub = cast("argparse._SubParsersAction[argparse.ArgumentParser]",
               parser.add_subparsers(dest="command", required=True))

    p = sub.add_parser("envs", help="list the registered environments")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=_cmd_envs)

    p = sub.add_parser("evaluate", help="evaluate a mechanism against VCG on fresh profiles")
    _add_env_args(p)
    p.add_argument("--mechanism", default="vcg",
                   help="'vcg', 'optimal' (Myerson's, where it is an AMA) or a saved mechanism "
                   "(.json/.npz)")
    p.add_argument("--allow-transfer", action="store_true",
                   help="evaluate a saved mechanism designed for another environment")
    p.add_argument("--samples", type=int, default=10_000, help="fresh type profiles")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--objective", help="revenue, welfare, makespan (default: the env's)")
    _add_exploitability(p)
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=_cmd_evaluate)

    p = sub.add_parser("bound", help="the optimum or a bound of an objective on fresh profiles")
    _add_env_args(p)
    p.add_argument("--objective", help="revenue, welfare, makespan (default: the env's)")
    p.add_argument("--samples", type=int, default=10_000, help="fresh type profiles")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=_cmd_bound)

    p = sub.add_parser("design", help="design an AMA and compare it with VCG")
    _add_env_args(p)
    p.add_argument("--method", default="grid",
                   choices=("grid", "first_order", "zeroth_order", "multistart", "cma"),
                   help="outer search method (cma: global scan + CMA-ES over tied boosts)")
    p.add_argument("--points", type=int,
                   help="grid/multistart: Sobol candidates (default 10000 / 1000)")
    p.add_argument("--profiles", type=int,
                   help="profiles per grid candidate (2000) or per gradient step (20)")
    add_flag(p, "steps", old=("--iters",), type=int, default=1000,
             help="gradient steps (first/zeroth order, each multistart refinement)")
    add_flag(p, "learning_rate", old=("--lr",), type=float,
             help="learning rate (first order 0.01, zeroth order 0.1)")
    add_flag(p, "eval_every", old=("--validate-every",), type=int, default=50,
             help="gradient methods and cma: steps between held-out checkpoint evaluations")
    add_flag(p, "threads", type=int, default=1,
             help="torch intra-op threads during the design (default 1: fastest here)")
    p.add_argument("--alpha", type=float, default=0.01,
                   help="first order: entropy regularisation strength")
    p.add_argument("--optimizer", choices=("adam", "sgd"), default="adam",
                   help="first order: update rule (sgd: plain steps, as in the authors' code)")
    p.add_argument("--estimator", choices=("exact", "envelope"), default="exact",
                   help="first order: exact regularised gradient or the paper's asw-envelope")
    p.add_argument("--regularised-solver", choices=("fast", "cvxpy", "soft"), default="fast",
                   help="first order: fast torch solver, the cvxpylayers reference, or the "
                   "causal-entropy (soft Bellman) variant")
    p.add_argument("--perturbations", type=int, default=20, help="zeroth order: N")
    p.add_argument("--sigma", type=float, default=0.05, help="zeroth order: perturbation std")
    p.add_argument("--starts", type=int, default=4, help="multistart: number of seeds")
    p.add_argument("--refine", choices=("both", "zeroth_order", "first_order"), default="both",
                   help="multistart: refinement method(s)")
    p.add_argument("--tyings", default="action,layer_action",
                   help="cma: boost tyings of the phases, coarsest first (action, "
                   "layer_action, state_action)")
    p.add_argument("--evals", default="300",
                   help="cma: candidate evaluations per phase (one number, or one per tying)")
    p.add_argument("--sigma0", type=float, default=0.2,
                   help="cma: initial step size in reward-scale units")
    p.add_argument("--scan", type=int, default=256,
                   help="cma: Sobol points of the global scan before the first phase (0: off)")
    p.add_argument("--validation", type=int, default=2000,
                   help="gradient methods and cma: held-out profiles for checkpoint selection "
                   "(0: off)")
    p.add_argument("--trials", type=int, default=1,
                   help="gradient methods: independent runs, the best on held-out profiles kept")
    p.add_argument("--workers", type=int, default=1,
                   help="local worker processes for grid chunks and trials")
    p.add_argument("--eval-samples", type=int, default=10_000,
                   help="fresh profiles for the final evaluation against VCG")
    _add_exploitability(p)
    p.add_argument("--objective", help="revenue, welfare, makespan (default: the env's)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", help="directory for mechanism.json, report.md, result.json and "
                   "the checkpoint store (a killed run resumes when re-run)")
    _add_checkpoint_every(p, "with --out: seconds between checkpoints of the search")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=_cmd_design)

    p = sub.add_parser("reproduce", help="reproduce the AMA paper's Tables 1-5 (resumable)")
    p.add_argument("tables", help="table1..table5 or all")
    size = p.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="small budgets (default)")
    size.add_argument("--full", action="store_true", help="the paper's protocol")
    p.add_argument("--methods", default="vcg,bound,grid,zeroth_order,first_order,multistart,cma",
                   help="cells to run (default: all; bound = the optimal mechanism or bound)")
    p.add_argument("--rows", help="row filter, e.g. 3x2,4x3 (n x size)")
    p.add_argument("--out", default="reproduce-out", help="output directory (store + reports)")
    p.add_argument("--workers", type=int, default=1, help="local worker processes for cells")
    _add_checkpoint_every(p, "seconds between checkpoints of a cell's search in the store")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=_cmd_reproduce)

    p = sub.add_parser("run", help="run a user experiment from a TOML configuration")
    p.add_argument("config", help="experiment configuration (.toml)")
    p.add_argument("--out", help="output directory (default: [output] dir of the config)")
    _add_checkpoint_every(p, "seconds between checkpoints of a cell's search in the store "
                          "(a budget's checkpoint_every overrides it)")
    p.add_argument("--workers", type=int, default=1,
                   help="local worker processes for each cell's grid chunks and trials "
                   "(results do not depend on it)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=_cmd_run)

    p = sub.add_parser("report", help="rebuild the reports of a reproduce output directory")
    p.add_argument("dir")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=_cmd_report)
    register_spm(sub)  # learned sequential price mechanisms (bilevel.spm._cli)
    register_audit(sub)  # exploitability audits (bilevel.audit._cli)
    register_stackelberg(sub)  # Stackelberg POMDP leaders (bilevel.stackelberg._cli)
    register_dynamic(sub)  # learned dynamic mechanisms (bilevel.dynamic._cli)
    for name in _WRITES_OUT:
        cmd = sub.choices[name]
        cmd.set_defaults(func=_holding_out_dir(cmd.get_default("func")))
    return parser


def _failures() -> tuple[type[Exception], ...]:
    """Failures (exit code 1) rather than usage errors (2), also when wrapped in a CLIError."""
    from bilevel._store import StoreError  # imported on an error only: it loads numpy

    return (MemoryLimitError, StoreError)


def _one_line(text: object) -> str:
    return " ".join(str(text).split())


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``bilevel`` command; returns the exit code.

    Errors print one line on stderr: exit code 2 for usage errors (bad arguments or input
    files), 1 for failures (a problem beyond the memory limit, a corrupt store, an unwritable
    output, an unexpected error). ``--debug`` (anywhere on the command line) shows the
    traceback instead.
    """
    args_list = list(sys.argv[1:] if argv is None else argv)
    cut = args_list.index("--") if "--" in args_list else len(args_list)
    debug = "--debug" in args_list[:cut]
    if debug:
        args_list = [a for i, a in enumerate(args_list) if a != "--debug" or i >= cut]
    parser = build_parser()
    args = parser.parse_args(args_list)
    try:
        with limited_memory(getattr(args, "memory_limit", None)):
            code: int = args.func(args)
    except CLIError as e:
        if debug:
            raise
        code = 1 if isinstance(e.__cause__, _failures()) else e.code
        print(f"bilevel: error: {_one_line(e)}", file=sys.stderr)
        return code
    except KeyboardInterrupt:
        print("bilevel: interrupted", file=sys.stderr)
        return 130
    except MemoryError as e:
        if debug:
            raise
        print(f"bilevel: error: out of memory: {_one_line(e)} (use a smaller problem or fewer "
              "profiles)", file=sys.stderr)
        return 1
    except Exception as e:
        if debug:
            raise
        known = isinstance(e, (*_failures(), OSError, ValueError, TypeError))
        what = _one_line(e) if known else f"{type(e).__name__}: {_one_line(e)}"
        hint = "" if known else " (an unexpected error; run with --debug for the traceback)"
        print(f"bilevel: error: {what}{hint}", file=sys.stderr)
        return 1
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
