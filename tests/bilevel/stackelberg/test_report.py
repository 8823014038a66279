"""The Stackelberg report: critic comparison, figures, summary and the dominance diagnostic."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from bilevel.stackelberg._report import compare_critics, stackelberg_report


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


def test_report_and_basic_pomdp(tmp_path: Path) -> None:
    res = compare_critics("simple_allocation:1", seeds=(0, 1), variants=("plain", "basic"),
                          steps=500, num_envs=4, eval_every=1)
    assert [len(v) for v in res.values()] == [2, 2]
    report = stackelberg_report(res, tmp_path)
    text = report.read_text()
    assert "| plain | 2 |" in text and "| basic | 2 |" in text and "0.3333" in text
    assert (tmp_path / "exact_value.png").stat().st_size > 0
    assert (tmp_path / "training_objective.png").stat().st_size > 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert {r["variant"] for r in summary["rows"]} == {"plain", "basic"}
    for r in res["basic"]:  # the basic POMDP only ever shows PPO the 30 reward games
        assert r.env_steps % (4 * 30) == 0


def test_matrix_design_dominance_diagnostic(tmp_path: Path) -> None:
    from bilevel.models.stackelberg import MatrixDesignGame, make_game
    from bilevel.stackelberg._report import dominant_outcome

    g = make_game("matrix_design")
    assert isinstance(g, MatrixDesignGame)
    assert dominant_outcome(g, np.zeros((2, 2, 2))) is None  # the untransferred game
    t = np.zeros((2, 2, 2))
    t[1, 1, 0], t[0, 0, 1] = 1.0, 0.5  # the mirror of Appendix G.2's payments: (1, 0) dominant
    assert dominant_outcome(g, t) == (1, 0)
    t[1, 1, 0] = 0.6  # t1(1,1) − t1(0,1) = 0.6 < 4/6: the threshold τ ≥ 4 is not met
    assert dominant_outcome(g, t) is None
    # coordination transfers (both optimal outcomes are equilibria) are not dominance
    coord = np.zeros((2, 2, 2))
    coord[0, 1], coord[1, 0] = 10.0, 10.0
    assert dominant_outcome(g, coord) is None
    res = compare_critics("matrix_design", seeds=(0,), variants=("plain",), steps=500,
                          num_envs=4, eval_every=0)
    text = stackelberg_report(res, tmp_path).read_text()
    assert "Outcome in dominant strategies" in text and "* plain: " in text
