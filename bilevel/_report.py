"""Reports: console tables and markdown comparing a designed mechanism with VCG."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bilevel._designer import DesignResult
from bilevel._evaluate import Evaluation
from models import Environment

__all__ = ["comparison_rows", "design_report", "format_table", "write_design"]


def _pm(mean: float | None, se: float | None) -> str:
    if mean is None:
        return "—"
    return f"{mean:.4f} ± {se:.4f}" if se is not None else f"{mean:.4f}"


def comparison_rows(ev: Evaluation, name: str, search_time: float) -> list[list[str]]:
    """Table rows (VCG, then the mechanism) of an evaluation paired with VCG."""
    obj = ev.objective
    rows = [["mechanism", f"{obj} (mean ± se)", "revenue", "welfare",
             "paired diff vs VCG", "runtime [s]"]]
    if ev.baseline is not None:
        rows.append(["VCG", _pm(ev.baseline_mean, ev.baseline_se),
                     _pm(ev.baseline_revenue, ev.baseline_revenue_se),
                     _pm(ev.baseline_welfare, ev.baseline_welfare_se), "0", "—"])
    diff = "—"
    if ev.diff_mean is not None:
        sign = "+" if ev.diff_mean >= 0 else ""
        pct = "" if ev.improvement_pct is None else f" ({sign}{ev.improvement_pct:.1f}%)"
        diff = f"{sign}{ev.diff_mean:.4f} ± {ev.diff_se:.4f}{pct}"
    rows.append([name, _pm(ev.mean, ev.se), _pm(ev.revenue, ev.revenue_se),
                 _pm(ev.welfare, ev.welfare_se), diff, f"{search_time:.1f}"])
    return rows


def format_table(rows: list[list[str]], *, markdown: bool = False) -> str:
    """Align rows as a plain-text table (first row = header), or as a markdown table."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    if markdown:
        lines = ["| " + " | ".join(rows[0]) + " |", "|" + "|".join("---" for _ in rows[0]) + "|"]
        lines += ["| " + " | ".join(r) + " |" for r in rows[1:]]
        return "\n".join(lines)
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    lines = [fmt.format(*rows[0]), "  ".join("-" * w for w in widths)]
    lines += [fmt.format(*r) for r in rows[1:]]
    return "\n".join(lines)


def design_report(env: Environment, result: DesignResult) -> str:
    """Markdown report of a design: setting, protocol, comparison with VCG, mechanism.

    Parameters
    ----------
    env : Environment
    result : DesignResult

    Returns
    -------
    str
    """
    mech = result.mechanism
    ev = result.evaluation
    params = ", ".join(f"{k}={v}" for k, v in env.params.items())
    lines = [
        f"# AMA design for `{env.name}` ({params})",
        "",
        f"- states × actions: {env.n_states} × {env.n_actions}; agents: {env.n_agents}; "
        f"type distribution: {env.dist}",
        f"- method: {result.method}; objective: "
        f"{ev.objective if ev else mech.meta.get('objective')}"
        + ("" if ev is None or ev.maximize else " (lower is better)"),
        f"- search: {result.search.message} {result.search.nit} steps in "
        f"{result.search.wall_time:.1f} s; search score {result.search.score:.4f} "
        "(on the search or held-out profiles, optimistically biased by selection)",
    ]
    if "makespan" in env.params:
        lines.append(
            f"- makespan definition: `{env.params['makespan']}` ("
            + ("the reference code's un-clamped remaining work, which produced the paper's "
               "Tables 3/4" if env.params["makespan"] == "reference"
               else "remaining work clamped at 0; the paper's tables used the reference variant")
            + ")"
        )
    if ev is not None:
        lines += [
            f"- evaluation: {ev.n_samples} fresh type profiles, exact (unregularised) inner "
            "solves, common random numbers with VCG",
            "",
            "## Comparison with VCG",
            "",
            format_table(comparison_rows(ev, mech.name, result.search.wall_time),
                         markdown=True),
            "",
            f"Paired difference {'significant' if ev.significant else 'not significant'} at "
            "2 standard errors. Smallest sampled agent utility: "
            f"{ev.min_utility:.3g} (≥ 0 means individually rational on every sample).",
        ]
    lines += [
        "",
        "## Mechanism",
        "",
        f"- weights: {[round(float(w), 6) for w in mech.weights]}",
        f"- boosts (rows = states, columns = actions {list(env.mdp.actions)}):",
        "",
        "| state | " + " | ".join(env.mdp.actions) + " |",
        "|---|" + "---|" * env.n_actions,
    ]
    for s, label in enumerate(env.mdp.states):
        vals = " | ".join(f"{v:.4f}" for v in mech.boosts[s])
        lines.append(f"| {label} | {vals} |")
    return "\n".join(lines) + "\n"


def write_design(out_dir: str | Path, env: Environment, result: DesignResult) -> dict[str, Path]:
    """Write ``mechanism.json``, ``report.md`` and ``result.json`` to ``out_dir``.

    Returns
    -------
    dict of str to pathlib.Path
        The written files.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {
        "mechanism": result.mechanism.save(out / "mechanism.json"),
        "report": out / "report.md",
        "result": out / "result.json",
    }
    from bilevel._plots import (
        plot_gridworld_boosts,
        plot_learning_curves,
        plot_makespan_distribution,
    )

    figures = []
    if result.search.history:
        figures.append(plot_learning_curves(
            {result.method: result.search.history}, out / "learning_curve.png",
            title=f"{result.method} on {env.name}",
            ylabel=result.evaluation.objective if result.evaluation else "objective"))
    if env.name == "gridworld":
        figures.append(plot_gridworld_boosts(env, result.mechanism, out / "boosts.png"))
    if "makespan" in env.costs:
        figures.append(plot_makespan_distribution(env, result.mechanism, out / "makespan.png"))
    report = design_report(env, result)
    if figures:
        report += "\n## Figures\n\n" + "\n".join(f"![{f.stem}]({f.name})" for f in figures)
        report += "\n"
    for f in figures:
        paths[f.stem] = f
    paths["report"].write_text(report)
    paths["result"].write_text(json.dumps(result_dict(env, result), indent=2))
    return paths


def result_dict(env: Environment, result: DesignResult) -> dict[str, Any]:
    """JSON-serialisable summary of a design."""
    return {
        "env": env.name,
        "params": dict(env.params),
        "method": result.method,
        "search_score": result.search.score,
        "search_message": result.search.message,
        "search_time": result.search.wall_time,
        "candidates_scored": len(result.search.history),
        "wall_time": result.wall_time,
        "evaluation": None if result.evaluation is None else result.evaluation.to_dict(),
        "mechanism": result.mechanism.to_dict(),
    }
