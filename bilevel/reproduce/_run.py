"""Reproduce the AMA paper's Tables 1–5: cells, resumable runs.

A *cell* is one (table, row, method): the VCG baseline or a design method on the row's
environment, evaluated unregularised on fresh profiles. Every cell has its own seed derived from
its key, so results do not depend on the order cells run in, on resuming, or on how many cells
ran before. Finished cells are stored in ``OUT/store.sqlite``; re-running the same command
skips them.

Environments use the variants that reproduce the published tables of Curry et al. (AAAI 2024,
§5), where those and the paper's text disagree: asymmetric sales values U[0, 1/i], the authors'
code's un-clamped makespan for Tables 3/4, and the "onecell" gridworld at γ = 0.9 for Table 5.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Executor, as_completed
from pathlib import Path
from typing import Any

from bilevel._bounds import objective_bound
from bilevel._designer import AMADesigner
from bilevel._evaluate import evaluate
from bilevel._jsonsafe import to_json
from bilevel._mechanism import vcg
from bilevel._optimal import optimal_mechanism
from bilevel._store import ResultStore
from bilevel.models import Environment
from bilevel.reproduce._budget import _REFERENCE_CELLS, _RELEVANT, METHODS, QUICK, Budget
from bilevel.reproduce._paper import Row, paper_rows
from bilevel.reproduce._report import write_reports

__all__ = ["cell_key", "reproduce", "run_cell"]


def _seed(key: str) -> int:
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:4], "little")


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
        steps=protocol.iters, eval_samples=protocol.eval_samples,
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
