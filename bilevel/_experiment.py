"""A user's own experiment from a TOML file: ``bilevel run CONFIG.toml``.

Example configuration::

    [env]                       # any registered environment and its parameters
    name = "sales"
    n_agents = 3
    n_items = 2
    dist = "uniform"

    [design]
    methods = ["grid", "zeroth_order"]   # any AMADesigner methods
    seeds = [0, 1]
    objective = "revenue"               # optional; default: the environment's
    eval_samples = 10000

    [budgets.grid]              # keyword arguments of AMADesigner for one method
    n_points = 2000
    n_profiles = 500

    [budgets.zeroth_order]
    iters = 500

    [output]
    dir = "out/my-experiment"

Every (method, seed) is a cell stored in ``DIR/store.sqlite`` as soon as it finishes (a killed
run resumes without redoing finished cells); ``DIR/experiment.md|csv|json`` compare each cell
with VCG (paired, on common profiles) and ``DIR/<method>-seed<k>.json`` hold the mechanisms.
"""

from __future__ import annotations

import csv
import json
import time
import tomllib
from pathlib import Path
from typing import Any

from bilevel._designer import AMADesigner
from bilevel._report import format_table
from bilevel._store import ResultStore
from models import make_env

__all__ = ["load_config", "run_experiment"]

_SECTIONS = {"env", "design", "budgets", "output"}


def load_config(path: str | Path) -> dict[str, Any]:
    """Read and validate an experiment configuration (TOML).

    Raises
    ------
    ValueError
        For unknown sections, a missing environment name or methods, or bad types.
    """
    p = Path(path)
    try:
        cfg = tomllib.loads(p.read_text())
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
    seeds = design.get("seeds", [0])
    if not isinstance(seeds, list) or not all(isinstance(s, int) for s in seeds):
        raise ValueError(f"expected [design] seeds as a list of ints, got {seeds!r}")
    return cfg


def run_experiment(path: str | Path, *, out: str | Path | None = None) -> list[dict[str, Any]]:
    """Run (or resume) the experiment of a configuration file and write its report.

    Parameters
    ----------
    path : str or pathlib.Path
        The TOML configuration.
    out : str or pathlib.Path, optional
        Output directory (default: ``[output] dir``, else ``out/<config stem>``).

    Returns
    -------
    list of dict
        One record per (method, seed).
    """
    cfg = load_config(path)
    env_kwargs = dict(cfg["env"])
    name = env_kwargs.pop("name")
    try:
        env = make_env(name, **env_kwargs)
    except TypeError as e:
        raise ValueError(str(e)) from e
    design = cfg["design"]
    budgets = cfg.get("budgets", {})
    out_dir = Path(out or cfg.get("output", {}).get("dir") or f"out/{Path(path).stem}")
    store = ResultStore(out_dir / "store.sqlite")
    records = []
    for method in design["methods"]:
        for seed in design.get("seeds", [0]):
            key = f"{method}/seed{seed}"
            rec = store.get(key)
            if rec is None:
                kwargs = {
                    "method": method,
                    "seed": seed,
                    "eval_samples": design.get("eval_samples", 10_000),
                    "objective": design.get("objective"),
                    **budgets.get(method, {}),
                }
                start = time.perf_counter()
                try:
                    d = AMADesigner(**kwargs).fit(env)
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
                d.mechanism_.save(out_dir / f"{method}-seed{seed}.json")
            records.append(rec)
    _write(out_dir, env.name, dict(env.params), records)
    return records


def _write(out_dir: Path, env_name: str, params: dict[str, Any],
           records: list[dict[str, Any]]) -> None:
    flat = []
    lines = [["method", "seed", "objective (mean ± se)", "VCG", "paired diff vs VCG",
              "improvement %", "wall [s]"]]
    for rec in records:
        ev = rec["evaluation"] or {}
        flat.append({"method": rec["method"], "seed": rec["seed"], "mean": ev.get("mean"),
                     "se": ev.get("se"), "vcg": ev.get("baseline_mean"),
                     "diff_vs_vcg": ev.get("diff_mean"), "diff_vs_vcg_se": ev.get("diff_se"),
                     "improvement_pct": ev.get("improvement_pct"),
                     "wall_time": rec["wall_time"]})
        if not ev:
            continue
        lines.append([
            rec["method"], str(rec["seed"]), f"{ev['mean']:.4f} ± {ev['se']:.4f}",
            f"{ev['baseline_mean']:.4f}",
            f"{ev['diff_mean']:+.4f} ± {ev['diff_se']:.4f}",
            "—" if ev.get("improvement_pct") is None else f"{ev['improvement_pct']:+.1f}",
            f"{rec['wall_time']:.1f}",
        ])
    ps = ", ".join(f"{k}={v}" for k, v in params.items())
    md = f"# Experiment: {env_name} ({ps})\n\n" + format_table(lines, markdown=True) + "\n"
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "experiment.md").write_text(md)
    (out_dir / "experiment.json").write_text(json.dumps(flat, indent=2))
    with (out_dir / "experiment.csv").open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(flat[0]) if flat else ["method"])
        w.writeheader()
        w.writerows(flat)
