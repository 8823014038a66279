"""A user's own experiment from a TOML file: ``bilevel run CONFIG.toml``.

Example configuration::

    [env]                       # an environment and its parameters
    name = "sales"              # registered, a plugin's, or a factory "package.module:function"
    n_agents = 3
    n_items = 2
    dist = "uniform"

    [design]
    methods = ["grid", "zeroth_order", "cma"]   # any AMADesigner methods
    seeds = [0, 1]
    objective = "revenue"               # optional; default: the environment's
    eval_samples = 10000

    [budgets]
    cma = 300                   # an int: the method's main budget (here n_evals)

    [budgets.grid]              # a table: keyword arguments of AMADesigner for one method
    n_points = 2000
    n_profiles = 500

    [budgets.zeroth_order]
    steps = 500

    [output]
    dir = "out/my-experiment"

A budget given as an int sets the method's main budget: ``n_points`` (grid), ``steps``
(zeroth_order, first_order, multistart) or ``n_evals`` (cma, candidate evaluations per phase).

Every (method, seed) is a cell stored in ``DIR/store.sqlite`` as soon as it finishes (a killed
run resumes without redoing finished cells), keyed by a digest of everything it depends on
(:func:`cell_key`: environment recipe and content, objective, method, budgets and
hyper-parameters, evaluation settings, library version), so an edited configuration re-runs
into the same directory without mixing in the old cells; ``DIR/<method>-seed<k>.json`` hold the
mechanisms. A cell in progress checkpoints its search in the store after its first completed
step and then every ``checkpoint_every`` seconds (``bilevel run --checkpoint-every SECONDS``,
not part of the key), so a killed cell resumes mid-search with the same result.
``DIR/experiment.md|csv|json`` compare, seed by seed on the same evaluation profiles (the cells
of one seed share them: same evaluation seed, sample count and batch size), VCG, the optimal
mechanism where :func:`bilevel.optimal_mechanism` knows it (Myerson's optimum as an AMA) and
every cell, each with its paired difference to VCG and its percentage of, and paired gap to,
the objective's bound on the same profiles (:func:`bilevel.objective_bound`).
"""

from __future__ import annotations

import csv
import hashlib
import time
import tomllib
from concurrent.futures import Executor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bilevel._bounds import NoBoundError, bound_kind, describe
from bilevel._designer import _METHODS, AMADesigner
from bilevel._evaluate import evaluate
from bilevel._jsonsafe import to_json
from bilevel._mechanism import AMA, vcg
from bilevel._objectives import resolve_objective
from bilevel._optimal import optimal_mechanism
from bilevel._outdir import atomic_open, atomic_write_text
from bilevel._report import format_table
from bilevel._store import ResultStore
from bilevel.models import Environment, make_env

__all__ = ["ExperimentResult", "cell_key", "load_config", "run_experiment", "run_experiment_report"]

_SECTIONS = {"env", "design", "budgets", "output"}

# the keyword an int budget sets, per method
MAIN_BUDGET = {
    "grid": "n_points",
    "zeroth_order": "steps",
    "first_order": "steps",
    "multistart": "steps",
    "cma": "n_evals",
}


def load_config(path: str | Path) -> dict[str, Any]:
    """Read and validate an experiment configuration (TOML).

    Raises
    ------
    ValueError
        For unknown sections, a missing environment name or methods, unknown methods, or bad
        types.
    """
    p = Path(path)
    try:
        cfg = tomllib.loads(p.read_text())
    except UnicodeDecodeError:  # binary, e.g. a pickle: read as data only, never unpickled
        raise ValueError(
            f"expected a TOML configuration file (UTF-8 text), got {str(p)!r}, which is not text"
        ) from None
    except tomllib.TOMLDecodeError as e:
        raise ValueError(f"expected a valid TOML file, got {p}: {e}") from e
    unknown = sorted(set(cfg) - _SECTIONS)
    if unknown:
        raise ValueError(f"expected sections among {sorted(_SECTIONS)}, got unknown {unknown}")
    env = cfg.get("env", {})
    if not isinstance(env, dict) or "name" not in env:
        raise ValueError("expected an [env] section with a 'name', got none")
    design = cfg.get("design", {})
    methods = design.get("methods")
    if not isinstance(methods, list) or not methods or not all(isinstance(m, str) for m in methods):
        raise ValueError(f"expected [design] methods as a non-empty list of names, got {methods!r}")
    bad = sorted(set(methods) - set(_METHODS))
    if bad:
        raise ValueError(f"expected [design] methods among {list(_METHODS)}, got unknown {bad}")
    seeds = design.get("seeds", [0])
    if not isinstance(seeds, list) or not all(isinstance(s, int) for s in seeds):
        raise ValueError(f"expected [design] seeds as a list of ints, got {seeds!r}")
    budgets = cfg.get("budgets", {})
    if not isinstance(budgets, dict):
        raise ValueError(f"expected a [budgets] section of tables or ints, got {budgets!r}")
    for method, spec in budgets.items():
        _budget_kwargs(method, spec)
    return cfg


def _budget_kwargs(method: str, spec: Any) -> dict[str, Any]:
    """AMADesigner keyword arguments of one method's budget (a table or an int)."""
    if method not in _METHODS:
        raise ValueError(f"expected [budgets] for methods among {list(_METHODS)}, got {method!r}")
    if isinstance(spec, dict):
        return dict(spec)
    if isinstance(spec, int) and not isinstance(spec, bool):
        return {MAIN_BUDGET[method]: spec}
    raise ValueError(
        f"expected [budgets] {method} as a table of AMADesigner arguments or an int "
        f"({MAIN_BUDGET[method]}), got {spec!r}"
    )


@dataclass
class ExperimentResult:
    """Everything ``bilevel run`` reports.

    Attributes
    ----------
    cells : list of dict
        One record per (method, seed), in configuration order.
    references : list of dict
        Per evaluation profile set (one per seed unless a budget changes ``eval_samples``):
        a ``"vcg"`` record and, where it exists, an ``"optimal"`` record, evaluated on exactly
        the profiles of those cells.
    optimal_note : str or None
        Why there is no optimal row (None when there is one).
    rows : list of dict
        The report's rows (also ``experiment.json``'s ``"rows"`` and ``experiment.csv``).
    out_dir : pathlib.Path
    stored : list of tuple of (str, int)
        The (method, seed) cells read from the store (finished by an earlier run), not run.
    """

    cells: list[dict[str, Any]]
    references: list[dict[str, Any]] = field(default_factory=list)
    optimal_note: str | None = None
    rows: list[dict[str, Any]] = field(default_factory=list)
    out_dir: Path = Path(".")
    stored: list[tuple[str, int]] = field(default_factory=list)


def run_experiment(path: str | Path, *, out: str | Path | None = None,
                   checkpoint_every: float = 30.0,
                   executor: Executor | None = None) -> list[dict[str, Any]]:
    """Run (or resume) the experiment of a configuration file and write its report.

    Parameters
    ----------
    path : str or pathlib.Path
        The TOML configuration.
    out : str or pathlib.Path, optional
        Output directory (default: ``[output] dir``, else ``out/<config stem>``).
    checkpoint_every : float, default 30.0
        Seconds between checkpoints of a cell's search in ``DIR/store.sqlite`` (the first
        completed step is always saved); a budget table's ``checkpoint_every`` overrides it.
        Results do not depend on it, nor do the cells' keys.
    executor : concurrent.futures.Executor, optional
        Fan each cell's grid chunks and trials out over it (``bilevel run --workers N``). An
        ``[env] name`` given as a factory ``"package.module:function"`` reaches the workers
        as that recipe. Results do not depend on it, nor do the cells' keys.

    Returns
    -------
    list of dict
        One record per (method, seed); :func:`run_experiment_report` also returns the VCG and
        optimal rows.
    """
    return run_experiment_report(path, out=out, checkpoint_every=checkpoint_every,
                                 executor=executor).cells


def run_experiment_report(path: str | Path, *, out: str | Path | None = None,
                          checkpoint_every: float = 30.0,
                          executor: Executor | None = None) -> ExperimentResult:
    """As :func:`run_experiment`, returning the cells, the reference rows and the report rows."""
    cfg = load_config(path)
    env_kwargs = dict(cfg["env"])
    name = env_kwargs.pop("name")
    try:
        env = make_env(name, **env_kwargs)
    except TypeError as e:
        raise ValueError(str(e)) from e
    design = cfg["design"]
    budgets = {m: _budget_kwargs(m, s) for m, s in cfg.get("budgets", {}).items()}
    out_dir = Path(out or cfg.get("output", {}).get("dir") or f"out/{Path(path).stem}")
    store = ResultStore(out_dir / "store.sqlite")
    records = []
    stored: list[tuple[str, int]] = []
    for method in design["methods"]:
        for seed in design.get("seeds", [0]):
            kwargs = {
                "method": method,
                "seed": seed,
                "eval_samples": design.get("eval_samples", 10_000),
                "objective": design.get("objective"),
                # execution only (not in the cell's key): a killed cell resumes mid-search
                "checkpoint": store.path,
                "checkpoint_every": checkpoint_every,
                "executor": executor,
                **budgets.get(method, {}),
            }
            try:
                designer = AMADesigner(**kwargs)
            except TypeError as e:
                raise ValueError(f"bad budget for {method!r}: {e}") from e
            key = cell_key(env, designer)
            rec = store.get(key)
            if rec is not None:
                stored.append((method, seed))
            else:
                start = time.perf_counter()
                try:
                    d = designer.fit(env)
                except TypeError as e:
                    raise ValueError(f"bad budget for {method!r}: {e}") from e
                rec = {
                    "key": key,
                    "method": method,
                    "seed": seed,
                    "evaluation": None if d.evaluation_ is None else d.evaluation_.to_dict(),
                    "wall_time": time.perf_counter() - start,
                    "mechanism": d.mechanism_.to_dict(),
                }
                store.put(key, rec)
                if isinstance(designer.checkpoint, (str, Path)):
                    # the finished cell supersedes its search checkpoint
                    store.delete_blob(designer.checkpoint_key(env))
            # from the record, also for a stored cell: the file is always this config's
            AMA.from_dict(rec["mechanism"]).save(out_dir / f"{method}-seed{seed}.json")
            records.append(rec)
    objective = design.get("objective")
    refs, note = _references(env, objective, records)
    result = ExperimentResult(cells=records, references=refs, optimal_note=note, out_dir=out_dir,
                              stored=stored)
    result.rows = _write(out_dir, env, objective, result)
    return result


# Designer parameters that never change a cell's result (execution and reporting only).
_NOT_RESULTS = frozenset({"callback", "progress", "checkpoint", "checkpoint_every", "executor",
                          "threads"})


def cell_key(env: Environment, designer: AMADesigner) -> str:
    """Store key of one (method, seed) cell: ``"<method>/seed<k>/<digest>"``.

    The digest covers everything the cell's result depends on: the environment (name,
    parameters and content identity, :meth:`bilevel.models.Environment.identity`), every designer
    parameter (objective, method, seed, budgets and hyper-parameters with their defaults, the
    evaluation's ``eval_samples``), and the library version; an edited configuration re-runs
    exactly the cells it changes.
    """
    from bilevel import __version__

    params = {k: v for k, v in designer.get_params().items() if k not in _NOT_RESULTS}
    if params.get("objective") is None or isinstance(params["objective"], str):
        # the environment's default objective spelled out or not: the same cells
        params["objective"] = resolve_objective(env, params.get("objective")).name
    fields_ = {"env": {"name": env.name, "params": dict(env.params), "identity": env.identity()},
               "designer": params, "version": __version__}
    digest = hashlib.sha256(to_json(fields_, sort_keys=True, default=repr).encode()).hexdigest()
    return f"{designer.method}/seed{designer.seed}/{digest[:16]}"


Profiles = tuple[int, int, int]


def _profiles(ev: dict[str, Any]) -> Profiles:
    """(evaluation seed, number of profiles, batch size): what determines the profiles."""
    return int(ev["seed"]), int(ev["n_samples"]), int(ev.get("batch_size") or 2_000)


def _references(
    env: Environment, objective: str | None, records: list[dict[str, Any]]
) -> tuple[list[dict[str, Any]], str | None]:
    """VCG and optimal records on each distinct evaluation profile set of the cells."""
    obj = resolve_objective(env, objective)
    try:
        opt = optimal_mechanism(env, obj)
        note = None
    except ValueError as e:
        opt = None
        note = f"No optimal-mechanism row: {e}"
    sets: dict[Profiles, list[dict[str, Any]]] = {}
    for rec in records:
        ev = rec["evaluation"]
        if ev is not None and ev.get("seed") is not None:
            sets.setdefault(_profiles(ev), []).append(rec)
    refs = []
    for (ev_seed, n, batch), recs in sets.items():
        common = {"seed": recs[0]["seed"], "profiles": [ev_seed, n, batch], "wall_time": None}
        base = evaluate(env, vcg(env), n_samples=n, seed=ev_seed, objective=obj,
                        batch_size=batch, baseline=None)
        refs.append({"method": "VCG", "evaluation": base.to_dict(), **common})
        if opt is not None:
            ev = evaluate(env, opt, n_samples=n, seed=ev_seed, objective=obj, batch_size=batch)
            refs.append({"method": "optimal", "evaluation": ev.to_dict(),
                         "mechanism": opt.to_dict(), **common})
    return refs, note


def _ordered(result: ExperimentResult) -> list[tuple[dict[str, Any], dict[str, Any] | None]]:
    """Report order, profile set by profile set: VCG, optimal, then the cells evaluated on
    those profiles; each with the VCG evaluation of its profiles."""
    groups: dict[Profiles, list[dict[str, Any]]] = {}
    vcg_of: dict[Profiles, dict[str, Any]] = {}
    for ref in result.references:
        p = _profiles(ref["evaluation"])
        groups.setdefault(p, []).append(ref)
        if ref["method"] == "VCG":
            vcg_of[p] = ref["evaluation"]
    rest = []
    for rec in result.cells:
        ev = rec["evaluation"]
        if ev is not None and ev.get("seed") is not None and _profiles(ev) in groups:
            groups[_profiles(ev)].append(rec)
        else:
            rest.append(rec)
    out = [(rec, vcg_of.get(p)) for p, recs in groups.items() for rec in recs]
    return out + [(rec, None) for rec in rest]


def _pm(mean: float | None, se: float | None, sign: bool = False) -> str:
    if mean is None:
        return "—"
    mean = 0.0 if abs(mean) < 1e-12 else mean  # no "-0.0000" for rounding noise
    m = f"{mean:+.4f}" if sign else f"{mean:.4f}"
    return m if se is None else f"{m} ± {se:.4f}"


def _row(rec: dict[str, Any], vcg_ev: dict[str, Any] | None) -> dict[str, Any]:
    """One flat report row (JSON / CSV) of a cell or reference record."""
    ev = rec["evaluation"] or {}
    is_vcg = rec["method"] == "VCG" and bool(ev)
    return {
        "method": rec["method"],
        "seed": rec["seed"],
        "n_samples": ev.get("n_samples"),
        "mean": ev.get("mean"),
        "se": ev.get("se"),
        "vcg": ev.get("mean") if is_vcg else ev.get("baseline_mean"),
        "diff_vs_vcg": 0.0 if is_vcg else ev.get("diff_mean"),
        "diff_vs_vcg_se": 0.0 if is_vcg else ev.get("diff_se"),
        "improvement_pct": None if is_vcg else ev.get("improvement_pct"),
        "bound": ev.get("bound"),
        "bound_se": ev.get("bound_se"),
        "bound_kind": ev.get("bound_kind"),
        "pct_of_bound": ev.get("pct_of_bound"),
        "gap_to_bound": ev.get("gap_mean"),
        "gap_to_bound_se": ev.get("gap_se"),
        "vcg_pct_of_bound": (vcg_ev or {}).get("pct_of_bound"),
        "wall_time": rec.get("wall_time"),
    }


def _write(out_dir: Path, env: Environment, objective: str | None,
           result: ExperimentResult) -> list[dict[str, Any]]:
    obj = resolve_objective(env, objective)
    try:
        kind: str | None = bound_kind(env, obj)
    except NoBoundError:
        kind = None
    flat = [_row(rec, v) for rec, v in _ordered(result)]
    bound_head = "% of bound" if kind is None else f"% of bound ({kind})"
    gap_head = "gap to bound" if kind is None else (
        "gap to bound (bound − mech)" if obj.maximize else "gap to bound (mech − bound)")
    lines = [["method", "seed", f"{obj.name} (mean ± se)", "VCG", "paired diff vs VCG",
              "improvement %", bound_head, gap_head, "wall [s]"]]
    for row in flat:
        if row["mean"] is None:
            continue
        lines.append([
            row["method"], str(row["seed"]), _pm(row["mean"], row["se"]),
            _pm(row["vcg"], None),
            "0" if row["method"] == "VCG" else _pm(row["diff_vs_vcg"], row["diff_vs_vcg_se"], True),
            "—" if row["improvement_pct"] is None else f"{row['improvement_pct']:+.1f}",
            "—" if row["pct_of_bound"] is None else f"{row['pct_of_bound']:.1f}%",
            _pm(row["gap_to_bound"], row["gap_to_bound_se"]),
            "—" if row["wall_time"] is None else f"{row['wall_time']:.1f}",
        ])
    sense = "higher is better" if obj.maximize else "lower is better"
    if kind is None:
        bound_text = f"no bound is known for {obj.name} in {env.name}"
    else:
        which = "upper" if obj.maximize else "lower"
        bound_text = (
            f"bound: {which} bound ({kind}), {describe(env, obj, kind)}; on each row's own "
            "evaluation profiles. "
            + ("% of bound = 100 · mean / bound, gap = bound − mechanism"
               if obj.maximize else "% of bound = 100 · bound / mean, gap = mechanism − bound")
            + " (≥ 0 up to noise, paired standard error)"
        )
    opt_text = result.optimal_note or (
        "optimal: Myerson's (1981) optimal mechanism as an AMA (`bilevel.optimal_mechanism`), "
        "evaluated on the same profiles as VCG and the cells of its seed")
    ps = ", ".join(f"{k}={v}" for k, v in env.params.items())
    md = (
        f"# Experiment: {env.name} ({ps})\n\n"
        f"- objective: {obj.name} ({sense})\n"
        "- rows of one seed share their evaluation profiles (common random numbers): VCG, the "
        "optimal mechanism where known, then each method's cell\n"
        f"- {bound_text}\n- {opt_text}\n\n"
        + format_table(lines, markdown=True) + "\n"
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out_dir / "experiment.md", md)
    meta = {
        "env": env.name,
        "params": dict(env.params),
        "objective": obj.name,
        "maximize": obj.maximize,
        "sense": sense,
        "bound_kind": kind,
        "bound_sense": None if kind is None else ("upper" if obj.maximize else "lower"),
        "optimal_note": result.optimal_note,
        "rows": flat,
    }
    atomic_write_text(out_dir / "experiment.json", to_json(meta, indent=2))
    with atomic_open(out_dir / "experiment.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(flat[0]) if flat else ["method"])
        w.writeheader()
        w.writerows(flat)
    return flat
