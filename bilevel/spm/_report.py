"""Reports of an SPM design: markdown table, JSON record and learning-curve PNG.

The table puts the learned mechanism beside the learned ASP/PSP baselines, RSD, the best
SPM/PSP/ASP values where a dynamic program or a known value gives them, and ``E[OPT]``; each row
shows the value, its standard error (0 when exact), how it was obtained, and its percentage of
the comparison target (the best SPM where known, else ``E[OPT]``).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt

from bilevel._jsonsafe import to_json
from bilevel.solvers.spm import SPMValue
from bilevel.spm._designer import SPMDesignResult

__all__ = ["plot_spm_curves", "spm_report_markdown", "spm_report_rows", "write_spm_report"]

_LABELS = {
    "rsd": "RSD (random order, price 0)",
    "asp": "ASP (learned, no history)",
    "psp": "PSP (learned, agents left)",
}


def spm_report_rows(result: SPMDesignResult) -> list[dict[str, Any]]:
    """One row per mechanism or reference value.

    Parameters
    ----------
    result : SPMDesignResult

    Returns
    -------
    list of dict
        Keys ``name``, ``value``, ``se``, ``method``, ``percent_of_target`` (None without a
        target).
    """
    target = result.target

    def row(name: str, v: SPMValue) -> dict[str, Any]:
        pct = 100.0 * v.value / target if target is not None and target > 0 else None
        return {"name": name, "value": v.value, "se": v.se, "method": v.method,
                "percent_of_target": pct}

    rows = [row(f"learned ({result.statistic})", result.learned)]
    for key in ("asp", "psp", "rsd"):
        if key in result.baselines:
            rows.append(row(_LABELS[key], result.baselines[key]))
    for key in ("spm", "psp", "asp"):
        if key in result.best:
            rows.append(row(f"best {key.upper()}", result.best[key]))
    if result.optimum is not None:
        rows.append(row("E[OPT]", result.optimum))
    return rows


def spm_report_markdown(result: SPMDesignResult, curves_png: str | None = None) -> str:
    """Markdown report of a design.

    Parameters
    ----------
    result : SPMDesignResult
    curves_png : str, optional
        Relative path of the learning-curve figure to link.

    Returns
    -------
    str
    """
    params = ", ".join(f"{k}={v}" for k, v in result.params.items()) or "defaults"
    lines = [
        f"# SPM design: {result.setting} ({params})",
        "",
        f"Objective **{result.objective}**, observation statistic **{result.statistic}**; "
        f"{result.env_steps} environment steps in {result.train_time:.1f} s "
        f"({result.steps_per_second:.0f} steps/s); whole fit {result.wall_time:.1f} s. "
        f"{result.message}.",
        "",
        "| mechanism | value | s.e. | method | % of target |",
        "|---|---:|---:|---|---:|",
    ]
    for r in spm_report_rows(result):
        pct = "" if r["percent_of_target"] is None else f"{r['percent_of_target']:.2f}"
        lines.append(f"| {r['name']} | {r['value']:.6f} | {r['se']:.6f} | {r['method']} | {pct} |")
    lines.append("")
    if result.target is not None and result.ratio is not None:
        which = "best SPM" if "spm" in result.best else "E[OPT]"
        lines += [f"Target: {which} = {result.target:.6f}; learned / target = "
                  f"{result.ratio:.4f}.", ""]
    lines.append("Values are exact (enumeration, DP, closed form) where the method says so, "
                 "otherwise Monte Carlo means with their standard errors; learned mechanisms "
                 "are evaluated greedily (deterministic actions).")
    if curves_png is not None:
        lines += ["", f"![learning curves]({curves_png})"]
    return "\n".join(lines) + "\n"


def plot_spm_curves(result: SPMDesignResult, path: str | Path) -> Path:
    """Learning curves of the trained policies with the comparison values as horizontal lines.

    Parameters
    ----------
    result : SPMDesignResult
    path : str or Path
        PNG to write (directories are created).

    Returns
    -------
    pathlib.Path
    """
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    for label, (x, y) in result.curves.items():
        if x.size:
            ax.plot(x, y, marker="." if x.size < 30 else None, label=label)
    refs: list[tuple[str, float, str]] = []
    if result.optimum is not None:
        refs.append(("E[OPT]", result.optimum.value, "black"))
    if "spm" in result.best:
        refs.append(("best SPM", result.best["spm"].value, "tab:red"))
    if "rsd" in result.baselines:
        refs.append(("RSD", result.baselines["rsd"].value, "tab:gray"))
    for label, v, color in refs:
        if math.isfinite(v):
            ax.axhline(v, color=color, linestyle="--", linewidth=1, label=label)
    ax.set_xlabel("environment steps")
    ax.set_ylabel(f"{result.objective} (greedy policy)")
    ax.set_title(f"SPM {result.setting}: {result.statistic}")
    ax.legend(fontsize=8)
    fig.tight_layout()
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(p, dpi=100)
    plt.close(fig)
    return p


def write_spm_report(result: SPMDesignResult, out_dir: str | Path) -> dict[str, Path]:
    """Write ``report.md``, ``result.json`` and ``curves.png`` into ``out_dir``.

    Parameters
    ----------
    result : SPMDesignResult
    out_dir : str or Path
        Created if missing.

    Returns
    -------
    dict of str to Path
        Keys ``"markdown"``, ``"json"``, ``"curves"``.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    png = plot_spm_curves(result, out / "curves.png")
    md = out / "report.md"
    md.write_text(spm_report_markdown(result, curves_png=png.name))
    js = out / "result.json"
    js.write_text(to_json(result.to_dict(), indent=2) + "\n")
    return {"markdown": md, "json": js, "curves": png}
