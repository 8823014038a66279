"""Tables, markdown and curves of a :class:`DynamicMechanismDesigner` run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bilevel.dynamic._designer import DynamicDesignResult

__all__ = ["dynamic_report_markdown", "dynamic_report_rows", "write_dynamic_report"]


def _f(x: Any, digits: int = 4) -> str:
    if x is None:
        return "—"
    v = float(x)
    if abs(v) < 0.5 * 10**-digits:
        v = 0.0
    return f"{v:.{digits}f}"


def dynamic_report_rows(result: DynamicDesignResult) -> list[list[str]]:
    """``mechanism | revenue | welfare | IR violation | exploitability (kind)`` (header first)."""
    rows = [["mechanism", "revenue", "welfare", "IR violation", "exploitability (kind)"]]
    L = result.learned
    if L:
        rows.append([f"learned (δ = {L['delta']:.4f})", _f(L["revenue"]), _f(L["welfare"]),
                     _f(L["ir_loss"]),
                     f"{_f(L['exploitability'])} ({L['exploitability_kind'].replace('_', ' ')})"])
    else:
        rows.append(["learned", "—", "—", "—", "no mechanism retained"])
    for name, b in result.baselines.items():
        rows.append([name, _f(b["revenue"]), _f(b["welfare"]), _f(b["ir_violation"]),
                     f"{_f(b['exploitability'])} ({b['exploitability_kind'].replace('_', ' ')})"])
    return rows


def _trace_rows(result: DynamicDesignResult) -> list[list[str]]:
    rows = [["δ", "retained", "revenue", "exploitability (kind)", "in-training ψ̂",
             "IR loss", "checkpoint", "seconds"]]
    for c in result.cells:
        rows.append([f"{c.delta:.4f}", "yes" if c.retained else "no", _f(c.revenue),
                     f"{_f(c.exploitability)} ({c.exploitability_kind.replace('_', ' ')})",
                     _f(c.estimate), _f(c.ir_loss), f"{c.step}/{c.steps}", f"{c.seconds:.0f}"])
    return rows


def _markdown_table(rows: list[list[str]]) -> str:
    out = ["| " + " | ".join(rows[0]) + " |", "|" + "---|" * len(rows[0])]
    out += ["| " + " | ".join(r) + " |" for r in rows[1:]]
    return "\n".join(out)


def dynamic_report_markdown(result: DynamicDesignResult, title: str = "Learned dynamic mechanism"
                            ) -> str:
    """The report: the comparison table, the δ-search trace and how to read them."""
    L = result.learned
    gap = "" if not L else (
        f"\nIn-training estimate ψ̂ = {_f(L['estimate'])} against the audited exploitability "
        f"{_f(L['exploitability'])} ({L['exploitability_kind'].replace('_', ' ')}): gap "
        f"{_f(L['gap'])} (the learned deviators' estimate is a lower bound and can be "
        "optimistic).\n")
    return (f"# {title}\n\n"
            f"Status: {result.status}; δ found: {_f(result.delta)}; {result.seconds:.0f} s.\n\n"
            + _markdown_table(dynamic_report_rows(result)) + "\n" + gap
            + "\nRevenue and welfare are discounted sums under truthful reports (exact where the "
            "setting is tabular); IR violation is the expected interim shortfall Σ_i "
            "E[min(0, U_i | t_i0)]; exploitability is the summed best deviation gain "
            "(NashConv at truth).\n\n## δ search\n\n" + _markdown_table(_trace_rows(result))
            + "\n")


def write_dynamic_report(result: DynamicDesignResult, out: str | Path) -> list[Path]:
    """Write ``report.md`` and ``curves.png`` (revenue and exploitability per checkpoint and
    cell) into ``out``; returns the paths written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    d = Path(out)
    d.mkdir(parents=True, exist_ok=True)
    paths = [d / "report.md"]
    paths[0].write_text(dynamic_report_markdown(result))
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for c in result.cells:
        steps = [p["step"] for p in c.curve]
        axes[0].plot(steps, [p["revenue"] for p in c.curve], label=f"δ = {c.delta:.3f}")
        ex = [p["exploitability"] if p["exploitability"] is not None else p["estimate"]
              for p in c.curve]
        axes[1].plot(steps, ex, label=f"δ = {c.delta:.3f}")
    axes[0].set_xlabel("min–max step")
    axes[0].set_ylabel("truthful revenue")
    axes[1].set_xlabel("min–max step")
    axes[1].set_ylabel("exploitability (exact where tabular, else ψ̂)")
    for b in result.baselines.values():
        axes[0].axhline(b["revenue"], color="grey", lw=0.6, ls=":")
    axes[1].axhline(0.1, color="red", lw=0.8, ls="--", label="threshold")
    axes[1].legend(fontsize=7)
    fig.tight_layout()
    paths.append(d / "curves.png")
    fig.savefig(paths[1], dpi=110)
    plt.close(fig)
    return paths
