"""Reports of Stackelberg leader learning: centralized-critic PPO vs plain PPO vs the optimum.

:func:`compare_critics` trains :class:`~bilevel.stackelberg.StackelbergDesigner` with each
critic (and optionally the basic-POMDP ablation) over several seeds; :func:`stackelberg_report`
writes a markdown table (mean ± standard error over seeds of the final and the best certified
exact leader value, the B-CCE gap, the fraction of certified final leaders, and the known
optimum) and learning-curve PNGs (matplotlib Agg): exact evaluations of the deterministic
leader, and the training objective of the stochastic leader, each averaged over seeds.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np

from bilevel._jsonsafe import to_json
from bilevel.models.stackelberg import MatrixDesignGame, make_game
from bilevel.stackelberg._designer import StackelbergDesigner
from bilevel.stackelberg._result import StackelbergResult

__all__ = ["compare_critics", "dominant_outcome", "stackelberg_report", "summary_rows"]

VARIANTS: dict[str, dict[str, Any]] = {
    "centralized": {"critic": "centralized", "pomdp": "stackelberg"},
    "plain": {"critic": "plain", "pomdp": "stackelberg"},
    "basic": {"critic": "centralized", "pomdp": "basic"},
}


def compare_critics(
    game: str,
    *,
    seeds: Sequence[int] = (0,),
    variants: Sequence[str] = ("centralized", "plain"),
    **designer_kwargs: Any,
) -> dict[str, list[StackelbergResult]]:
    """Train one leader per (variant, seed).

    Parameters
    ----------
    game : str
        Game name.
    seeds : sequence of int
    variants : sequence of {"centralized", "plain", "basic"}
        Centralized-critic PPO, plain PPO, basic POMDP (centralized critic, hidden response).
    **designer_kwargs
        Passed to :class:`StackelbergDesigner` (``steps``, ``num_envs``, ...).

    Returns
    -------
    dict of str to list of StackelbergResult
        Per variant, one result per seed.

    Raises
    ------
    ValueError
        For an unknown variant or no seeds.
    """
    if not seeds:
        raise ValueError("expected at least one seed, got none")
    out: dict[str, list[StackelbergResult]] = {}
    for v in variants:
        if v not in VARIANTS:
            raise ValueError(f"expected variants in {tuple(VARIANTS)}, got {v!r}")
        out[v] = [
            StackelbergDesigner(seed=int(s), **VARIANTS[v], **designer_kwargs).fit(game).result_
            for s in seeds
        ]
    return out


def dominant_outcome(game: MatrixDesignGame, transfers: Any) -> tuple[int, int] | None:
    """The outcome in strictly dominant strategies of a matrix-design leader, if any.

    Parameters
    ----------
    game : MatrixDesignGame
    transfers : array_like of shape (2, 2, 2)
        ``transfers[a1, a2, i]`` in normalised units.

    Returns
    -------
    tuple of int or None
        ``(a1, a2)`` when each follower has a strictly dominant action, else None.

    Examples
    --------
    >>> t = np.zeros((2, 2, 2)); t[0, 0, 0] = 0.5; t[1, 1, 1] = 1.0   # Brero et al. 2022, App. G.2
    >>> dominant_outcome(make_game("matrix_design"), t)
    (0, 1)
    """
    u = game.payoffs_normalised + np.asarray(transfers, dtype=np.float64)
    d1 = [a for a in (0, 1) if all(u[a, b, 0] > u[1 - a, b, 0] for b in (0, 1))]
    d2 = [b for b in (0, 1) if all(u[a, b, 1] > u[a, 1 - b, 1] for a in (0, 1))]
    return (d1[0], d2[0]) if d1 and d2 else None


def _mean_se(x: Sequence[float]) -> tuple[float, float]:
    a = np.asarray(x, dtype=np.float64)
    se = float(a.std(ddof=1) / math.sqrt(a.size)) if a.size > 1 else math.nan
    return float(a.mean()), se


def _fmt(m: float, se: float) -> str:
    return f"{m:.4f}" if math.isnan(se) else f"{m:.4f} ± {se:.4f}"


def summary_rows(results: Mapping[str, Sequence[StackelbergResult]]) -> list[dict[str, Any]]:
    """One summary per variant: means and standard errors over seeds.

    Returns
    -------
    list of dict
        Keys ``variant, seeds, value, value_se, best, best_se, gap, certified, optimum,
        wall_time``.
    """
    rows = []
    for label, rs in results.items():
        if not rs:
            continue
        v, vse = _mean_se([r.value for r in rs])
        b, bse = _mean_se([r.best_value for r in rs])
        rows.append({
            "variant": label, "seeds": len(rs), "value": v, "value_se": vse, "best": b,
            "best_se": bse, "gap": float(np.mean([r.bcce_gap for r in rs])),
            "certified": float(np.mean([r.certified for r in rs])), "optimum": rs[0].optimum,
            "wall_time": float(np.mean([r.wall_time for r in rs])),
        })
    return rows


def _curve(rs: Sequence[StackelbergResult], xkey: str, ykey: str) -> tuple[Any, Any, Any]:
    """Mean and standard error over seeds on the common prefix of the curves."""
    xs = [getattr(r, xkey) for r in rs]
    ys = [getattr(r, ykey) for r in rs]
    n = min(len(x) for x in xs)
    Y = np.stack([y[:n] for y in ys])
    se = Y.std(0, ddof=1) / math.sqrt(len(rs)) if len(rs) > 1 else np.zeros(n)
    return xs[0][:n], Y.mean(0), se


def _plot(results: Mapping[str, Sequence[StackelbergResult]], xkey: str, ykey: str,
          path: Path, title: str, ylabel: str) -> Path:
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    optimum = None
    for label, rs in results.items():
        if not rs:
            continue
        optimum = rs[0].optimum
        x, m, se = _curve(rs, xkey, ykey)
        if len(x) == 0:
            continue
        ax.plot(x, m, label=f"{label} ({len(rs)} seeds)")
        ax.fill_between(x, m - se, m + se, alpha=0.25)
    if optimum is not None:
        ax.axhline(optimum, color="k", linestyle="--", linewidth=1, label="known optimum")
    ax.set_xlabel("leader-environment steps")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def stackelberg_report(
    results: Mapping[str, Sequence[StackelbergResult]], out_dir: str | Path
) -> Path:
    """Write ``report.md``, ``summary.json`` and two learning-curve PNGs into ``out_dir``.

    Parameters
    ----------
    results : mapping of str to sequence of StackelbergResult
        Per variant label, one result per seed (all of one game).
    out_dir : str or Path

    Returns
    -------
    pathlib.Path
        The markdown report.

    Raises
    ------
    ValueError
        If there are no results or they mix games.
    """
    games = {r.game for rs in results.values() for r in rs}
    if len(games) != 1:
        raise ValueError(f"expected results of exactly one game, got {sorted(games)}")
    game = games.pop()
    d = Path(out_dir)
    d.mkdir(parents=True, exist_ok=True)
    rows = summary_rows(results)
    eval_png = _plot(results, "eval_steps", "eval_values", d / "exact_value.png",
                     f"{game}: exact value of the deterministic leader", "leader value")
    train_png = _plot(results, "curve_steps", "curve_objective", d / "training_objective.png",
                      f"{game}: training objective (stochastic leader)", "episode objective")
    opt = rows[0]["optimum"] if rows else None
    lines = [
        f"# Stackelberg leader learning: {game}",
        "",
        "Exact leader value of the final deterministic leader against the selected follower "
        "response after multiplicative weights (certified when its B-CCE gap is at most "
        f"{next(iter(results.values()))[0].config['threshold']}), mean ± standard error over "
        "seeds; *best* is each seed's best certified evaluation during training.",
        "",
        f"Known optimum: {'unknown' if opt is None else f'{opt:.4f}'}",
        "",
        "| variant | seeds | final value | best certified | mean B-CCE gap | certified "
        "| optimum − final | wall time (s) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        diff = "—" if r["optimum"] is None else f"{r['optimum'] - r['value']:.4f}"
        lines.append(
            f"| {r['variant']} | {r['seeds']} | {_fmt(r['value'], r['value_se'])} "
            f"| {_fmt(r['best'], r['best_se'])} | {r['gap']:.4f} | {r['certified']:.0%} "
            f"| {diff} | {r['wall_time']:.1f} |"
        )
    if game == "matrix_design":
        g = make_game("matrix_design")
        assert isinstance(g, MatrixDesignGame)
        lines += ["", "Outcome in dominant strategies under each seed's final transfers "
                  "(welfare-optimal: (0, 1) or (1, 0)):", ""]
        for label, rs in results.items():
            doms = [dominant_outcome(g, r.leader_table[0]) for r in rs]
            lines.append(f"* {label}: " + ", ".join("none" if d is None else str(d)
                                                    for d in doms))
    lines += ["", f"![exact value]({eval_png.name})", "",
              f"![training objective]({train_png.name})", ""]
    report = d / "report.md"
    report.write_text("\n".join(lines))
    (d / "summary.json").write_text(to_json({"game": game, "rows": rows}, indent=1))
    return report
