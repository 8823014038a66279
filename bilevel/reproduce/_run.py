"""Reproduce the AMA paper's Tables 1–5: cells, protocols, resumable runs and reports.

A *cell* is one (table, row, method): the VCG baseline or a design method on the row's
environment, evaluated unregularised on fresh profiles. Every cell has its own seed derived from
its key, so results do not depend on the order cells run in, on resuming, or on how many cells
ran before. Finished cells are stored in ``OUT/store.sqlite``; re-running the same command
skips them.

Environments use the table-faithful variants (reference, reconciliation section): asymmetric
sales values U[0, 1/i], the reference's un-clamped makespan for Tables 3/4, and the
"onecell" gridworld at γ = 0.9 for Table 5.
"""

from __future__ import annotations

import csv
import hashlib
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Executor, as_completed
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from bilevel._bounds import objective_bound
from bilevel._designer import AMADesigner
from bilevel._evaluate import evaluate
from bilevel._jsonsafe import to_json
from bilevel._mechanism import vcg
from bilevel._optimal import optimal_mechanism
from bilevel._outdir import atomic_open, atomic_write_text
from bilevel._report import format_table
from bilevel._store import ResultStore
from bilevel.models import Environment, make_env

__all__ = [
    "FULL",
    "METHODS",
    "QUICK",
    "Budget",
    "Row",
    "cell_key",
    "paper_rows",
    "reproduce",
    "table_report",
]

METHODS = ("vcg", "bound", "grid", "zeroth_order", "first_order", "multistart", "cma")
# Cells that are baselines or bounds, not designs.
_REFERENCE_CELLS = ("vcg", "bound")
_TINY = 1e-9
_PAPER_COLUMN = {"grid": "grid", "zeroth_order": "zeroth_order", "first_order": "reg_lp"}


@dataclass(frozen=True)
class Budget:
    """Budgets of a reproduction run.

    Attributes
    ----------
    name : str
    grid_points, grid_profiles : int
        Grid search: Sobol candidates and profiles per candidate.
    iters : int
        Gradient steps (first/zeroth order and each multistart refinement).
    multistart_points : int
        Seeding grid size of multistart.
    eval_samples : int
        Fresh profiles of every final (unregularised) evaluation.
    n_validation : int
        Held-out profiles for checkpoint selection.
    trials : int, default 1
        First/zeroth order: independent runs per cell (the reference's ``num_trials``), the
        best on the held-out profiles kept; multistart: random default starts per refinement
        method beside the grid seeds — they replay the row's stand-alone first- and
        zeroth-order cells (same seeds, trials and steps), so multistart's selection contains
        those cells' runs.
    estimator : {"exact", "envelope"}, default "exact"
        First-order revenue gradient.
    optimizer : {"sgd", "adam"}, default "sgd"
        First-order update rule (the paper gives the learning rate, 0.01, not the rule).
    cma_evals : int, default 300
        CMA-ES: candidate evaluations per phase (tyings "action", then "layer_action").
    cma_profiles : tuple of int, default (4000, 12000)
        CMA-ES: common profiles every candidate of each phase is scored on.
    cma_scan : int, default 256
        CMA-ES: Sobol points of the global scan.
    """

    name: str
    grid_points: int
    grid_profiles: int
    iters: int
    multistart_points: int
    eval_samples: int
    n_validation: int
    trials: int = 1
    estimator: str = "exact"
    optimizer: str = "sgd"
    cma_evals: int = 300
    cma_profiles: tuple[int, ...] = (4000, 12000)
    cma_scan: int = 256


QUICK = Budget("quick", grid_points=500, grid_profiles=200, iters=150, multistart_points=200,
                 eval_samples=2_000, n_validation=500, trials=1, estimator="envelope",
                 optimizer="adam", cma_evals=60, cma_profiles=(1000, 2000), cma_scan=64)
# The paper's protocol. What it leaves open (reference §6: iterations, trials; the paper gives
# first order's learning rate 0.01 but not its update rule) is set so that a table runs in under
# an hour on 2 cores: 2,000 steps per run and the best of 5 trials on held-out profiles (the
# reference's ``num_trials``). First order uses the paper's asw-envelope estimator and Adam at
# the paper's learning rate: plain gradient ascent (the reference's rule) stalls on plateaus of
# the revenue landscape (Table 1, n=3 m=2: all 5 trials at <= 0.643 after 2,000 steps, vs
# 0.694 with Adam; docs/results.md compares the two rules row by row).
FULL = Budget("full", grid_points=10_000, grid_profiles=2_000, iters=2_000,
                multistart_points=1_000, eval_samples=10_000, n_validation=2_000, trials=5,
                estimator="envelope", optimizer="adam")


@dataclass(frozen=True)
class Row:
    """One row of a paper table with the paper's values."""

    table: int
    environment: str
    distribution: str
    objective: str
    n_agents: int
    size: int
    paper: dict[str, float]

    @property
    def label(self) -> str:
        """E.g. ``"n=3 m=2"``."""
        letter = {"sales": "m", "scheduling": "T", "gridworld": "G"}[self.environment]
        return f"n={self.n_agents} {letter}={self.size}"

    @property
    def maximize(self) -> bool:
        """Revenue is maximised, makespan minimised."""
        return self.objective != "makespan"

    def env(self) -> Environment:
        """The table-faithful environment of this row."""
        if self.environment == "sales":
            return make_env("sales", n_agents=self.n_agents, n_items=self.size,
                            dist=self.distribution)
        if self.environment == "scheduling":
            return make_env("scheduling", n_agents=self.n_agents, n_tasks=self.size,
                            dist=self.distribution, makespan="reference")
        return make_env("gridworld", n_agents=self.n_agents, grid=self.size,
                        dist=self.distribution, gamma=0.9)


def paper_rows(table: int | None = None) -> list[Row]:
    """The rows of the paper's Tables 1–5 (all, or one table)."""
    text = resources.files("bilevel.reproduce").joinpath("data/paper_tables.csv").read_text()
    rows = []
    for r in csv.DictReader(text.splitlines()):
        if table is not None and int(r["table"]) != table:
            continue
        paper = {k: float(r[k]) for k in ("vcg", "grid", "zeroth_order", "reg_lp")}
        rows.append(Row(int(r["table"]), r["environment"], r["distribution"], r["objective"],
                        int(r["n_agents"]), int(r["size"]), paper))
    return rows


def _seed(key: str) -> int:
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:4], "little")


# Budget fields that determine each method's cell (the others do not change its result).
_RELEVANT = {
    "vcg": ("eval_samples",),
    "bound": ("eval_samples",),
    "cma": ("cma_evals", "cma_profiles", "cma_scan", "eval_samples", "n_validation"),
    "grid": ("grid_points", "grid_profiles", "eval_samples"),
    "zeroth_order": ("iters", "eval_samples", "n_validation", "trials"),
    "first_order": ("iters", "eval_samples", "n_validation", "trials", "estimator",
                    "optimizer"),
    "multistart": ("multistart_points", "iters", "eval_samples", "n_validation", "trials",
                   "estimator", "optimizer"),
}


# Revisions of a method's computation that change its cells without changing the protocol:
# multistart 2 replays the row's stand-alone first/zeroth-order cells in its default starts;
# 3 makes its final selection on 10,000 fresh held-out profiles.
_REVISION = {"multistart": 3}


def _seed_key(row: Row, method: str, protocol: Budget) -> str:
    """The part of a cell's key its seed is derived from."""
    return (f"table{row.table}/{row.environment}-{row.distribution}/n{row.n_agents}"
            f"-s{row.size}/{method}/{protocol.name}")


def cell_key(row: Row, method: str, protocol: Budget) -> str:
    """Store key: the seed key and a digest of the protocol fields that matter for ``method``,
    so a protocol edited in one respect re-runs only the cells it changes."""
    fields: dict[str, Any] = {f: getattr(protocol, f) for f in _RELEVANT[method]}
    if method in _REVISION:
        fields["revision"] = _REVISION[method]
    digest = hashlib.sha256(to_json(fields, sort_keys=True).encode()).hexdigest()[:8]
    return f"{_seed_key(row, method, protocol)}-{digest}"


def run_cell(
    row: Row, method: str, protocol: Budget, store: str | Path | None = None,
    checkpoint_every: float = 30.0,
) -> dict[str, Any]:
    """Run one cell and return its JSON record.

    Parameters
    ----------
    row : Row
    method : str
    protocol : Budget
    store : str or pathlib.Path, optional
        SQLite store for the design's periodic checkpoints, so a killed cell resumes mid-way
        (the record names the checkpoint under ``"checkpoint_key"``).
    checkpoint_every : float, default 30.0
        Seconds between those checkpoints (the first completed step is always saved); the
        cell's key and result do not depend on it.
    """
    key = cell_key(row, method, protocol)
    seed = _seed(_seed_key(row, method, protocol))
    env = row.env()
    start = time.perf_counter()
    history: list[tuple[int, float]] = []
    mechanism = None
    checkpoint_key = None
    if method == "vcg":
        evd = evaluate(env, vcg(env), n_samples=protocol.eval_samples, seed=seed,
                       baseline=None).to_dict()
    elif method == "bound":
        evd = _bound_cell(env, row, protocol.eval_samples, seed)
        mechanism = evd.pop("mechanism")
    else:
        d = _designer(row, method, protocol, seed, store, checkpoint_every)
        checkpoint_key = None if store is None else d.checkpoint_key(env)
        d.fit(env)
        if d.evaluation_ is None:  # pragma: no cover - eval_samples >= 1
            raise RuntimeError("the design was not evaluated")
        evd = d.evaluation_.to_dict()
        history = d.history_
        mechanism = d.mechanism_.to_dict()
    vs_optimal = None
    if method not in _REFERENCE_CELLS and mechanism is not None:
        vs_optimal = _versus_optimal(env, row, mechanism, evd)
    return {
        "key": key,
        "table": row.table,
        "row": row.label,
        "method": method,
        "protocol": protocol.name,
        "evaluation": evd,
        "wall_time": time.perf_counter() - start,
        "history": history[-2000:],
        "mechanism": mechanism,
        "checkpoint_key": checkpoint_key,
        "vs_optimal": vs_optimal,
    }


def _versus_optimal(
    env: Environment, row: Row, mechanism: dict[str, Any], evd: dict[str, Any]
) -> dict[str, float] | None:
    """The design paired with the optimal mechanism on the design's own evaluation profiles.

    The difference of two nearly equal mechanisms on common profiles has a far smaller
    standard error than either mean, so this is the sharpest test of "reaches the optimum".
    ``None`` where no closed-form optimal mechanism exists.
    """
    from bilevel._mechanism import AMA

    try:
        opt = optimal_mechanism(env, row.objective)
    except ValueError:
        return None
    ev = evaluate(env, AMA.from_dict(mechanism), n_samples=int(evd["n_samples"]),
                  seed=int(evd["seed"]), baseline=opt, bound=False)
    if ev.diff_mean is None or ev.baseline_mean is None:  # pragma: no cover - baseline given
        return None
    return {"diff_mean": ev.diff_mean, "diff_se": float(ev.diff_se or 0.0),
            "optimal_mean": ev.baseline_mean, "optimal_se": float(ev.baseline_se or 0.0)}


def _designer(
    row: Row, method: str, protocol: Budget, seed: int, store: str | Path | None,
    checkpoint_every: float,
) -> AMADesigner:
    """The designer of a design cell, with the protocol's budgets."""
    if method == "cma":
        return AMADesigner(
            method="cma", n_evals=protocol.cma_evals, n_profiles=protocol.cma_profiles,
            n_scan=protocol.cma_scan, eval_samples=protocol.eval_samples,
            n_validation=protocol.n_validation, seed=seed, checkpoint=store,
            checkpoint_every=checkpoint_every,
        )
    points = protocol.grid_points if method == "grid" else protocol.multistart_points
    return AMADesigner(
        method=method, n_points=points,
        n_profiles=protocol.grid_profiles if method == "grid" else None,
        iters=protocol.iters, eval_samples=protocol.eval_samples,
        n_validation=protocol.n_validation, seed=seed,
        n_trials=protocol.trials if method != "grid" else 1,
        estimator=protocol.estimator, optimizer=protocol.optimizer, checkpoint=store,
        checkpoint_every=checkpoint_every,
        # multistart's default starts replay the row's stand-alone gradient cells (same
        # seeds and budgets), so its selection contains their runs
        replay_seeds=None if method != "multistart" else {
            m: _seed(_seed_key(row, m, protocol)) for m in ("first_order", "zeroth_order")
        },
    )


def _bound_cell(env: Environment, row: Row, n_samples: int, seed: int) -> dict[str, Any]:
    """The row's optimal mechanism evaluated (where it is a known AMA), else its bound."""
    try:
        mech = optimal_mechanism(env, row.objective)
    except ValueError:
        b = objective_bound(env, row.objective, n_samples=n_samples, seed=seed)
        return {"objective": b.objective, "mean": b.mean, "se": b.se, "n_samples": b.n,
                "bound": b.mean, "bound_se": b.se, "bound_kind": b.kind, "sense": b.sense,
                "seed": seed, "mechanism": None}
    evd = evaluate(env, mech, n_samples=n_samples, seed=seed, baseline=None).to_dict()
    evd["sense"] = "upper" if row.maximize else "lower"
    return {**evd, "mechanism": mech.to_dict()}


def reproduce(
    tables: Iterable[int],
    *,
    protocol: Budget = QUICK,
    methods: Iterable[str] = METHODS,
    out: str | Path = "reproduce-out",
    rows: Iterable[str] | None = None,
    on_cell: Callable[[dict[str, Any], bool], None] | None = None,
    executor: Executor | None = None,
    checkpoint_every: float = 30.0,
) -> list[dict[str, Any]]:
    """Run (or resume) the cells of the given tables and write the reports.

    Parameters
    ----------
    tables : iterable of int
        Table numbers 1–5.
    protocol : Budget, default QUICK
    methods : iterable of str
        Subset of ``METHODS``.
    out : str or pathlib.Path
        Output directory (store, reports).
    rows : iterable of str, optional
        Row filter such as ``"3x2"`` (n × size).
    on_cell : callable ``(record, cached) -> None``, optional
        Called after each cell (``cached`` is True when it came from the store).
    executor : concurrent.futures.Executor, optional
        Runs the missing cells in parallel (e.g. a ``ProcessPoolExecutor`` or a Dask
        ``Client(...).get_executor()``). Each cell has its own seed, so results do not depend
        on the executor or the number of workers; finished cells are stored as they complete.
    checkpoint_every : float, default 30.0
        Seconds between checkpoints of a design cell's search in the store (the first
        completed step is always saved). Results and cell keys do not depend on it.

    Returns
    -------
    list of dict
        The cell records.
    """
    methods = list(methods)
    unknown = sorted(set(methods) - set(METHODS))
    if unknown:
        raise ValueError(f"expected methods among {METHODS}, got {unknown}")
    tables = list(tables)
    for table in tables:
        if table not in range(1, 6):
            raise ValueError(f"expected a table in 1..5, got {table}")
    wanted = None if rows is None else _check_rows(tables, rows)
    out_dir = Path(out)
    store = ResultStore(out_dir / "store.sqlite")
    todo = [
        (row, method)
        for table in tables
        for row in paper_rows(table)
        if wanted is None or f"{row.n_agents}x{row.size}" in wanted
        for method in methods
    ]
    done: dict[str, dict[str, Any]] = {}
    missing = []
    for row, method in todo:
        key = cell_key(row, method, protocol)
        rec = store.get(key)
        if rec is None:
            missing.append((row, method))
        else:
            done[key] = rec
            if on_cell is not None:
                on_cell(rec, True)
    def finish(rec: dict[str, Any]) -> None:
        store.put(rec["key"], rec)
        if rec.get("checkpoint_key"):
            store.delete_blob(rec["checkpoint_key"])  # the finished cell supersedes it
        done[rec["key"]] = rec
        if on_cell is not None:
            on_cell(rec, False)

    if executor is None:
        for row, method in missing:
            finish(run_cell(row, method, protocol, store.path, checkpoint_every))
    else:
        futures = [executor.submit(run_cell, row, method, protocol, store.path,
                                   checkpoint_every) for row, method in missing]
        for fut in as_completed(futures):
            finish(fut.result())
    records = [done[cell_key(row, method, protocol)] for row, method in todo]
    for table in tables:
        # the report shows every stored cell of this protocol version, not only this run's
        # (a run restricted by --methods or rows must not drop the others from the report)
        current = {cell_key(row, m, protocol) for row in paper_rows(table) for m in METHODS}
        stored = [rec for key, rec in store.items(f"table{table}/") if key in current]
        write_reports(out_dir, table, stored, protocol)
    return records


def _check_rows(tables: list[int], rows: Iterable[str]) -> set[str]:
    """The row filter as a set; a row that is in none of ``tables`` is an error."""
    wanted = [rows] if isinstance(rows, str) else list(rows)
    known: list[str] = []
    for table in tables:
        for row in paper_rows(table):
            if (r := f"{row.n_agents}x{row.size}") not in known:
                known.append(r)
    unknown = [r for r in wanted if r not in known]
    if unknown or not wanted:
        names = ", ".join(f"table{t}" for t in tables)
        got = ", ".join(map(str, unknown)) if unknown else "no rows"
        raise ValueError(f"expected rows among {', '.join(known)} for {names}, got {got}")
    return set(wanted)


def _paper_value(row: Row, method: str) -> float | None:
    if method == "vcg":
        return row.paper["vcg"]
    if method == "bound":
        return None
    if method in ("multistart", "cma"):
        vals = [row.paper[k] for k in ("grid", "zeroth_order", "reg_lp")]
        return max(vals) if row.maximize else min(vals)
    return row.paper[_PAPER_COLUMN[method]]


def _bound_label(cell: dict[str, Any]) -> str:
    ev = cell["evaluation"]
    if cell.get("mechanism") is not None:
        return "optimal"
    return f"bound ({ev.get('bound_kind', '?')})"


def _versus_bound(
    cell: dict[str, Any], ref: dict[str, Any] | None, maximize: bool
) -> tuple[float | None, float | None, float | None]:
    """``(% of bound, gap, gap se)``, the gap ≥ 0 up to noise (bound − ours for maximised
    objectives, ours − bound for minimised ones). Sharpest first: paired with the optimal
    mechanism on the cell's own profiles; paired with the bound on them; against the row's
    bound cell (independent profiles)."""
    ev = cell["evaluation"]
    mean = ev["mean"]
    vo = cell.get("vs_optimal")
    if vo is not None:
        bound, gap, gse = vo["optimal_mean"], -vo["diff_mean"], vo["diff_se"]
        if not maximize:
            gap = -gap
    elif ev.get("bound") is not None and ev.get("gap_mean") is not None:
        bound, gap, gse = ev["bound"], ev["gap_mean"], ev.get("gap_se")
    elif ref is not None:
        bound = ref.get("bound", ref["mean"])
        bse = ref.get("bound_se", ref.get("se")) or 0.0
        gap = (bound - mean) if maximize else (mean - bound)
        gse = float((bse**2 + (ev.get("se") or 0.0) ** 2) ** 0.5)
    else:
        return None, None, None
    if abs(bound) < _TINY or abs(mean) < _TINY:
        return None, gap, gse
    pct = 100 * mean / bound if maximize else 100 * bound / mean
    return pct, gap, gse


def table_report(
    table: int, records: list[dict[str, Any]], protocol: Budget
) -> tuple[list[dict[str, Any]], str]:
    """Rows (for CSV/JSON) and a markdown report of one table."""
    by_row: dict[str, dict[str, dict[str, Any]]] = {}
    for rec in records:
        by_row.setdefault(rec["row"], {})[rec["method"]] = rec
    flat: list[dict[str, Any]] = []
    header = ["row", "method", "ours (mean ± se)", "paper", "Δ/se", "vs VCG (paired)",
              "improvement %", "% of bound", "gap to bound", "wall [s]"]
    lines = [header]
    for row in paper_rows(table):
        cells = by_row.get(row.label)
        if not cells:
            continue
        ref_cell = cells.get("bound")
        ref = None if ref_cell is None else ref_cell["evaluation"]
        for method in METHODS:
            cell = cells.get(method)
            if cell is None:
                continue
            ev = cell["evaluation"]
            paper = _paper_value(row, method)
            se = ev["se"] or 0.0
            # a zero-variance cell (e.g. VCG revenue 0 when n <= m) has no meaningful Δ/se
            z = None if paper is None or se < _TINY else (ev["mean"] - paper) / se
            diff, dse = ev.get("diff_mean"), ev.get("diff_se")
            sig = None if diff is None or dse is None else (
                abs(diff) > 2 * dse and abs(diff) > _TINY)
            if z is None and paper is not None and abs(ev["mean"] - paper) < _TINY:
                z = 0.0
            base = ev.get("baseline_mean")
            imp = (None if diff is None or base is None or abs(base) < _TINY
                   else 100 * diff / abs(base))
            pct, gap, gse = (None, None, None) if method == "bound" else _versus_bound(
                cell, ref, row.maximize)
            entry = {
                "table": table, "row": row.label, "method": method, "mean": ev["mean"],
                "se": ev["se"], "paper": paper, "diff_in_se": z, "diff_vs_vcg": diff,
                "diff_vs_vcg_se": dse, "significant": sig,
                "improvement_pct": imp, "pct_of_bound": pct, "gap_to_bound": gap,
                "gap_to_bound_se": gse,
                "bound_kind": ev.get("bound_kind") if method == "bound" else (
                    None if ref is None else ref.get("bound_kind")),
                "wall_time": cell["wall_time"], "protocol": cell["protocol"],
            }
            flat.append(entry)
            lines.append([
                row.label, _bound_label(cell) if method == "bound" else method,
                f"{ev['mean']:.4f} ± {se:.4f}",
                "—" if paper is None else f"{paper:.4f}", "—" if z is None else f"{z:+.1f}",
                "—" if diff is None else f"{diff:+.4f} ± {dse:.4f}{' *' if sig else ''}",
                "—" if imp is None else f"{imp:+.1f}",
                "—" if pct is None else f"{pct:.1f}",
                "—" if gap is None else f"{gap:+.4f} ± {gse or 0.0:.4f}",
                f"{cell['wall_time']:.1f}",
            ])
    rows0 = paper_rows(table)
    first = rows0[0] if rows0 else None
    notes = []
    if first is not None:
        notes.append(f"environment: {first.environment}, distribution: {first.distribution}, "
                     f"objective: {first.objective}"
                     + ("" if first.maximize else " (lower is better)"))
        if first.environment == "sales" and first.distribution == "asymmetric":
            notes.append("asymmetric values U[0, 1/i] (what the published table used)")
        if first.environment == "scheduling":
            notes.append("makespan definition: the reference code's un-clamped remaining work "
                         "(what produced Tables 3/4)")
        if first.environment == "gridworld":
            notes.append("gridworld: 'onecell' types, γ = 0.9")
    md = "\n".join([
        f"# Table {table} ({protocol.name} protocol)",
        "",
        *[f"- {n}" for n in notes],
        "- every value: unregularised evaluation on fresh profiles; 'vs VCG' is the paired "
        "difference on common profiles (* = beyond 2 standard errors); Δ/se = (ours − paper) "
        "/ our standard error; multistart and cma are compared with the paper's best column",
        "- 'optimal' is the revenue-optimal truthful mechanism (Myerson 1981; an AMA here) and "
        "'bound (kind)' a proven bound where no closed form exists (first-best makespan, "
        "public-information or welfare revenue bounds); '% of bound' and 'gap to bound' "
        "(bound − ours for revenue, ours − bound for makespan; ≥ 0 up to noise) are paired on "
        "the cell's own profiles with the optimal mechanism where it exists, else with the "
        "cell's bound on its profiles, else against the bound row (older cells)",
        "",
        format_table(lines, markdown=True),
        "",
    ])
    return flat, md


def write_reports(
    out_dir: Path, table: int, records: list[dict[str, Any]], protocol: Budget
) -> dict[str, Path]:
    """Write ``tableN.md``, ``tableN.csv`` and ``tableN.json`` to ``out_dir``."""
    flat, md = table_report(table, records, protocol)
    out_dir.mkdir(parents=True, exist_ok=True)
    figures = _figures(out_dir, table, records)
    if figures:
        md += "\n## Figures\n\n" + "\n".join(f"![{f.stem}]({f.name})" for f in figures) + "\n"
    paths = {ext: out_dir / f"table{table}.{ext}" for ext in ("md", "csv", "json")}
    # atomic (temporary file + rename): an interrupted write leaves the old report intact
    atomic_write_text(paths["md"], md)
    atomic_write_text(paths["json"], to_json(flat, indent=2))
    with atomic_open(paths["csv"], "w", newline="") as f:
        if flat:
            w = csv.DictWriter(f, fieldnames=list(flat[0]))
            w.writeheader()
            w.writerows(flat)
    return paths


def _figures(out_dir: Path, table: int, records: list[dict[str, Any]]) -> list[Path]:
    """Learning curves per row; gridworld boost maps and makespan histograms of the best cell."""
    from bilevel._mechanism import AMA
    from bilevel._plots import (
        plot_gridworld_boosts,
        plot_learning_curves,
        plot_makespan_distribution,
    )

    rows = {r.label: r for r in paper_rows(table)}
    paths: list[Path] = []
    for label in sorted({rec["row"] for rec in records}):
        recs = [r for r in records if r["row"] == label and r["method"] not in _REFERENCE_CELLS]
        if not recs:
            continue
        row = rows[label]
        slug = f"table{table}_" + label.replace(" ", "_").replace("=", "")
        hist = {r["method"]: [tuple(h) for h in r.get("history", [])] for r in recs}
        if any(hist.values()):
            paths.append(plot_learning_curves(
                hist, out_dir / f"{slug}_learning.png", title=f"Table {table}, {label}",
                ylabel=row.objective))
        sign = 1.0 if row.maximize else -1.0
        best = max(recs, key=lambda r: sign * r["evaluation"]["mean"])
        if best.get("mechanism") is None:
            continue
        mech = AMA.from_dict(best["mechanism"])
        env = row.env()
        if row.environment == "gridworld":
            paths.append(plot_gridworld_boosts(env, mech, out_dir / f"{slug}_boosts.png"))
        if row.environment == "scheduling":
            paths.append(plot_makespan_distribution(env, mech, out_dir / f"{slug}_makespan.png"))
    return paths
