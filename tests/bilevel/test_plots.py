"""Report figures are written as real PNGs; reproduce and design reports link them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bilevel import AMA, make_env, vcg
from bilevel._plots import (
    plot_gridworld_boosts,
    plot_learning_curves,
    plot_makespan_distribution,
)
from bilevel.reproduce._budget import Budget
from bilevel.reproduce._run import reproduce

PNG = b"\x89PNG\r\n\x1a\n"
TINY = Budget("tiny", grid_points=16, grid_profiles=50, iters=20, multistart_points=16,
                eval_samples=300, n_validation=100)


def _is_png(p: Path) -> bool:
    return p.read_bytes()[:8] == PNG and p.stat().st_size > 1000


def test_learning_curves(tmp_path: Path) -> None:
    p = plot_learning_curves({"a": [(i, float(np.sin(i))) for i in range(100)], "b": []},
                             tmp_path / "lc.png")
    assert _is_png(p)


def test_gridworld_boosts_and_errors(tmp_path: Path) -> None:
    env = make_env("gridworld", n_agents=2, grid=3)
    mech = AMA(np.ones(2), np.arange(36.0).reshape(9, 4))
    assert _is_png(plot_gridworld_boosts(env, mech, tmp_path / "b.png"))
    sales = make_env("sales")
    with pytest.raises(ValueError, match="expected a gridworld"):
        plot_gridworld_boosts(sales, vcg(sales), tmp_path / "x.png")


def test_makespan_distribution(tmp_path: Path) -> None:
    env = make_env("scheduling", n_agents=2, n_tasks=3)
    assert _is_png(plot_makespan_distribution(env, vcg(env), tmp_path / "m.png", n_samples=200))
    sales = make_env("sales")
    with pytest.raises(ValueError, match="expected an environment with a makespan"):
        plot_makespan_distribution(sales, vcg(sales), tmp_path / "x.png")


def test_reproduce_reports_link_figures(tmp_path: Path) -> None:
    reproduce([5], protocol=TINY, methods=["vcg", "zeroth_order"], rows=["2x3"], out=tmp_path)
    md = (tmp_path / "table5.md").read_text()
    assert "table5_n2_G3_boosts.png" in md and "table5_n2_G3_learning.png" in md
    assert _is_png(tmp_path / "table5_n2_G3_boosts.png")
    reproduce([3], protocol=TINY, methods=["zeroth_order"], rows=["2x4"], out=tmp_path)
    assert _is_png(tmp_path / "table3_n2_T4_makespan.png")
