"""Reports: console tables and markdown comparing a designed mechanism with VCG."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bilevel._designer import DesignResult
from bilevel._evaluate import Evaluation
from bilevel._jsonsafe import to_json
from bilevel._mechanism import AMA
from bilevel._outdir import atomic_write_text
from bilevel.models import Environment

if TYPE_CHECKING:
    from bilevel.audit import Exploitability

__all__ = [
    "AUDIT_SAMPLES",
    "audit_mechanisms",
    "bound_line",
    "comparison_rows",
    "design_report",
    "exploitability_cell",
    "exploitability_dict",
    "exploitability_line",
    "format_table",
    "write_design",
]

#: Default number of type profiles of the exploitability audit behind the reports' column.
AUDIT_SAMPLES = 200

#: Gains below this print as 0 (rounding of the inner solves, ~1e-15).
_ZERO = 5e-13


def _pm(mean: float | None, se: float | None) -> str:
    if mean is None:
        return "—"
    return f"{mean:.4f} ± {se:.4f}" if se is not None else f"{mean:.4f}"


def _pct_cell(pct: float | None) -> str:
    return "—" if pct is None else f"{pct:.1f}%"


def _diff_cell(ev: Evaluation) -> str:
    if ev.diff_mean is None:
        return "—"
    sign = "+" if ev.diff_mean >= 0 else ""
    pct = "" if ev.improvement_pct is None else f" ({sign}{ev.improvement_pct:.1f}%)"
    return f"{sign}{ev.diff_mean:.4f} ± {ev.diff_se:.4f}{pct}"


def audit_mechanisms(
    env: Environment, mechanisms: Mapping[str, AMA], *, samples: int = AUDIT_SAMPLES,
    seed: int = 0,
) -> dict[str, Exploitability]:
    """Static ex-post exploitability of each mechanism of a report.

    Runs :func:`bilevel.audit.exploitability` with its default misreport search (41-point grid
    plus breakpoints and golden-section refinement for scalar types, 41 prior draws otherwise)
    on ``samples`` profiles drawn with ``seed``, the same profiles for every mechanism.

    Parameters
    ----------
    env : Environment
    mechanisms : mapping of str to AMA
        The report's rows by role (``"vcg"``, ``"optimal"``, ``"mechanism"``).
    samples : int, default :data:`AUDIT_SAMPLES`
        Type profiles of the audit.
    seed : int, default 0

    Returns
    -------
    dict of str to Exploitability
        Same keys as ``mechanisms``.
    """
    from bilevel.audit import exploitability

    return {k: exploitability(env, m, samples=samples, seed=seed) for k, m in mechanisms.items()}


def exploitability_cell(r: Exploitability | None) -> str:
    """A table cell ``"0.0000 (lower bound)"``: the total gain and its kind ("—" if None)."""
    if r is None:
        return "—"
    total = 0.0 if abs(r.total) < _ZERO else r.total
    return f"{total:.4f} ({r.kind.replace('_', ' ')})"


def exploitability_dict(audits: Mapping[str, Exploitability]) -> dict[str, Any]:
    """JSON form of the audits by role: each result's ``to_dict()`` without the per-profile
    best deviations (``bilevel audit`` prints them)."""
    return {k: {f: v for f, v in r.to_dict().items() if f != "best_deviation"}
            for k, r in audits.items()}


def exploitability_line(audits: Mapping[str, Exploitability]) -> str:
    """One sentence saying how the exploitability column was measured."""
    r = next(iter(audits.values()))
    return (f"Exploitability: summed best misreport gain at truth ({r.notion.replace('_', '-')}, "
            f"{r.method}, {r.n_profiles} profiles); 0 up to rounding for AMAs (truthful).")


def comparison_rows(
    ev: Evaluation, name: str, search_time: float, *, optimal: Evaluation | None = None,
    exploitability: Mapping[str, Exploitability] | None = None,
) -> list[list[str]]:
    """Table rows (VCG, the optimal mechanism if given, then the mechanism) of an evaluation.

    Parameters
    ----------
    ev : Evaluation
        The mechanism's evaluation, usually paired with VCG.
    name : str
        The mechanism's label.
    search_time : float
        Seconds spent designing it (runtime column).
    optimal : Evaluation, optional
        The optimal mechanism evaluated on the same profiles (see
        :func:`bilevel.optimal_evaluation`); adds an ``"optimal"`` row.
    exploitability : mapping of str to Exploitability, optional
        Audits by role (``"vcg"``, ``"optimal"``, ``"mechanism"``, see
        :func:`audit_mechanisms`); adds an "exploitability (kind)" column ("—" for a row
        without an audit).

    Returns
    -------
    list of list of str
        A header and one row per mechanism (without a baseline the mechanism comes first);
        the "% of bound (kind)" column gives each
        objective as a percentage of the bound on the same profiles ("—" without a bound).
    """
    obj = ev.objective
    bound_head = "% of bound" if ev.bound_kind is None else f"% of bound ({ev.bound_kind})"
    rows = [["mechanism", f"{obj} (mean ± se)", "revenue", "welfare",
             "paired diff vs VCG", bound_head, "runtime [s]"]]
    if ev.baseline is not None:
        rows.append(["VCG", _pm(ev.baseline_mean, ev.baseline_se),
                     _pm(ev.baseline_revenue, ev.baseline_revenue_se),
                     _pm(ev.baseline_welfare, ev.baseline_welfare_se), "0",
                     _pct_cell(ev.baseline_pct_of_bound()), "—"])
    mech = [name, _pm(ev.mean, ev.se), _pm(ev.revenue, ev.revenue_se),
            _pm(ev.welfare, ev.welfare_se), _diff_cell(ev), _pct_cell(ev.pct_of_bound),
            f"{search_time:.1f}"]
    if ev.baseline is None:  # the mechanism is the reference (e.g. VCG alone): it comes first
        rows.append(mech)
    if optimal is not None:
        rows.append(["optimal", _pm(optimal.mean, optimal.se),
                     _pm(optimal.revenue, optimal.revenue_se),
                     _pm(optimal.welfare, optimal.welfare_se), _diff_cell(optimal),
                     _pct_cell(optimal.pct_of_bound), "—"])
    if ev.baseline is not None:
        rows.append(mech)
    if exploitability is not None:
        rows[0].append("exploitability (kind)")
        for r in rows[1:]:  # the other rows are the VCG baseline and the optimal mechanism
            role = "mechanism" if r is mech else ("vcg" if r[0] == "VCG" else "optimal")
            r.append(exploitability_cell(exploitability.get(role)))
    return rows


def bound_line(ev: Evaluation) -> str:
    """One sentence giving the bound of an evaluation and the mechanism's paired gap to it."""
    if ev.bound is None:
        return f"No bound is known for {ev.objective}."
    sense = "upper" if ev.maximize else "lower"
    return (f"{sense.capitalize()} bound ({ev.bound_kind}) on the same profiles: "
            f"{_pm(ev.bound, ev.bound_se)}; paired gap {_pm(ev.gap_mean, ev.gap_se)}.")


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


def design_report(
    env: Environment, result: DesignResult, *, optimal: Evaluation | None = None,
    exploitability: Mapping[str, Exploitability] | None = None,
) -> str:
    """Markdown report of a design: setting, protocol, comparison with VCG, mechanism.

    Parameters
    ----------
    env : Environment
    result : DesignResult
    optimal : Evaluation, optional
        The optimal mechanism on the evaluation's profiles (an extra table row).
    exploitability : mapping of str to Exploitability, optional
        Audits of the rows by role (an "exploitability (kind)" column and a sentence on how
        it was measured).

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
            + ("the authors' code's un-clamped remaining work, which produced the paper's "
               "Tables 3/4" if env.params["makespan"] == "reference"
               else "remaining work clamped at 0; the paper's tables used the `reference` variant")
            + ")"
        )
    if ev is not None:
        lines += [
            f"- evaluation: {ev.n_samples} fresh type profiles, exact (unregularised) inner "
            "solves, common random numbers with VCG",
            "",
            "## Comparison with VCG",
            "",
            format_table(comparison_rows(ev, mech.name, result.search.wall_time,
                                         optimal=optimal, exploitability=exploitability),
                         markdown=True),
            "",
            bound_line(ev),
            "",
            *([exploitability_line(exploitability), ""] if exploitability else []),
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


def write_design(
    out_dir: str | Path,
    env: Environment,
    result: DesignResult,
    *,
    optimal: Evaluation | None = None,
    exploitability: Mapping[str, Exploitability] | None = None,
) -> dict[str, Path]:
    """Write ``mechanism.json``, ``report.md`` and ``result.json`` to ``out_dir``.

    ``optimal`` (the optimal mechanism evaluated on the same profiles) adds a row to the report
    and an ``"optimal"`` entry to ``result.json``; ``exploitability`` (audits by role, see
    :func:`audit_mechanisms`) adds the report's "exploitability (kind)" column and an
    ``"exploitability"`` entry to ``result.json``.

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
    report = design_report(env, result, optimal=optimal, exploitability=exploitability)
    if figures:
        report += "\n## Figures\n\n" + "\n".join(f"![{f.stem}]({f.name})" for f in figures)
        report += "\n"
    for f in figures:
        paths[f.stem] = f
    atomic_write_text(paths["report"], report)
    summary = result_dict(env, result, optimal=optimal, exploitability=exploitability)
    atomic_write_text(paths["result"], to_json(summary, indent=2))
    return paths


def result_dict(
    env: Environment, result: DesignResult, *, optimal: Evaluation | None = None,
    exploitability: Mapping[str, Exploitability] | None = None,
) -> dict[str, Any]:
    """JSON-serialisable summary of a design (with ``"optimal"`` when ``optimal`` is given and
    ``"exploitability"``, the audits by role, when ``exploitability`` is)."""
    out: dict[str, Any] = {
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
    if optimal is not None:
        out["optimal"] = optimal.to_dict()
    if exploitability is not None:
        out["exploitability"] = exploitability_dict(exploitability)
    return out
