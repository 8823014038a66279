"""``bilevel audit``: the table, the JSON form and one-line errors."""

from __future__ import annotations

import json

import pytest

from bilevel._cli import main


def test_table(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["audit", "sales", "--n-agents", "2", "--n-items", "1", "--mechanism",
                 "first_price", "--samples", "500", "--report-grid", "51"])
    out = capsys.readouterr().out.splitlines()
    assert code == 0
    assert out[0] == "first_price on sales(n_agents=2, n_items=1, dist='uniform', gamma=1.0)"
    assert "[lower_bound]" in out[1] and "static-grid(G=51)+breakpoints+golden" in out[1]
    assert out[2].split() == ["agent", "gain", "se", "best", "deviation"]
    total = out[-1].split()
    assert total[0] == "total" and total[-1] == "(lower_bound)"
    assert float(total[1]) == pytest.approx(1 / 3, abs=0.05)  # 500 profiles: SE about 0.012


def test_json_vcg(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["audit", "sales", "--n-agents", "3", "--n-items", "2", "--samples", "50",
                 "--report-grid", "11", "--notion", "bayes", "--json"])
    d = json.loads(capsys.readouterr().out)
    assert code == 0
    assert d["env"] == "sales" and d["mechanism"] == "vcg" and d["notion"] == "bayes"
    assert d["kind"] == "lower_bound" and d["resolution"] == 11 and d["n_profiles"] == 50
    assert max(d["per_agent"]) <= 1e-9 and len(d["best_deviation"]) == 3


def test_optimal_lp(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["audit", "sales", "--n-agents", "2", "--n-items", "1", "--mechanism",
                 "optimal", "--inner", "lp", "--samples", "3", "--report-grid", "3",
                 "--no-refine", "--json"])
    d = json.loads(capsys.readouterr().out)
    assert code == 0 and max(d["per_agent"]) <= 1e-9
    assert d["method"] == "static-grid(G=3)+breakpoints"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--mechanism", "first_price"],
         "expected a single-item environment (1 state, type shape (3,), 3 or 4 actions), got 5 "
         "states, type shape (3,) and 4 actions"),
        (["--report-grid", "1"], "expected grid >= 2 points, got 1"),
        (["--samples", "0"], "expected samples as an int >= 1, got 0"),
        (["--mechanism", "nope.json"],
         "expected 'vcg', 'optimal' or a saved mechanism file, got 'nope.json' (not found)"),
    ],
)
def test_bad_input(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["audit", "sales", *argv])
    err = capsys.readouterr().err
    assert code == 2
    assert err == f"bilevel: error: {message}\n"


def test_benchmark_quick_json() -> None:
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[3]
    proc = subprocess.run(
        [sys.executable, str(root / "benchmarks" / "exploitability.py"), "--quick", "--json"],
        capture_output=True, text=True, check=True, timeout=120,
        env={**os.environ, "PYTHONPATH": str(root)},
    )
    out = json.loads(proc.stdout)
    assert [r["mechanism"] for r in out["rows"]] == ["vcg", "random-ama"]
    assert out["gains_below_1e-9"] is True and float(out["ratio"]) > 0
