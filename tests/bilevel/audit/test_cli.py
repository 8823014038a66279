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
    """The issue-15 benchmark's smoke run: every row judged against its target, one headline."""
    import importlib.util
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[3]
    have_sb3 = importlib.util.find_spec("stable_baselines3") is not None
    proc = subprocess.run(
        [sys.executable, str(root / "benchmarks" / "exploitability.py"), "--quick", "--json",
         *([] if have_sb3 else ["--ours-only"])],
        capture_output=True, text=True, check=True, timeout=120,
        env={**os.environ, "PYTHONPATH": str(root)},
    )
    out = json.loads(proc.stdout)
    rows = out["rows"]
    assert out["quick"] is True and out["sb3"] is have_sb3
    assert [r["mechanism"] for r in rows if r["benchmark"] == "static_audit"] == [
        "vcg", "random-ama"]
    assert out["gains_below_1e-9"] is True
    exact = [(r["mechanism"], r["n"], r["horizon"]) for r in rows if r["benchmark"] == "exact_dp"]
    assert exact == [("posted 1.5", 1, 5), ("dynamic pivot", 1, 5), ("posted 1.5", 2, 3),
                     ("dynamic pivot", 2, 3)]
    assert [(r["n"], r["horizon"]) for r in rows if r["benchmark"] == "pivot_baseline"] == [(2, 4)]
    assert out["pivot_exploitability_below_1e-9"] is True
    assert out["reference_check"]["agrees_1e-6"] is True
    for r in rows:
        if r["benchmark"] == "exact_dp":
            # n = 1: the clairvoyant buyer is the buyer (one MDP); n = 2: an upper bound
            assert r["exploitability"] <= r["clairvoyant_bound"] + 1e-12
            if r["n"] == 1:
                assert r["clairvoyant_bound"] == pytest.approx(r["exploitability"], abs=1e-12)
    posted_two = next(r for r in rows if r["benchmark"] == "exact_dp" and r["n"] == 2
                      and r["mechanism"] == "posted 1.5")
    assert posted_two["exploitability"] > 0.01  # posted 1.5 is exploitable at n = 2 as well
    speed = [r for r in rows if r["benchmark"] == "deviator_throughput"]
    assert [r["metric"] for r in speed] == (["steps_per_second", "speedup"] if have_sb3
                                            else ["steps_per_second"])
    assert speed[0]["env_steps"] == 2 * 1024 * 12 and speed[0]["steps_per_second"] > 0
    if have_sb3:
        assert speed[0]["sb3_env_steps"] == 2048 and speed[0]["sb3_steps_per_second"] > 0
        assert speed[0]["speedup"] == pytest.approx(
            speed[0]["steps_per_second"] / speed[0]["sb3_steps_per_second"], rel=1e-3)
    for r in rows:
        assert isinstance(r["meets_target"], bool) and r["target"] > 0
        assert r["meets_target"] is (r["target_ratio"] <= 1.0)
    # the headline: the worst normalised row, <= 1 exactly when every target holds
    assert isinstance(out["ratio"], float)
    assert out["ratio"] == max(r["target_ratio"] for r in rows)
    assert out["all_targets_met"] is all(r["meets_target"] for r in rows)


def test_bandit_posted_price_exact(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["audit", "bandit-discrete", "--horizon", "3", "--mechanism", "posted:1.5",
                 "--json"])
    d = json.loads(capsys.readouterr().out)
    assert code == 0 and d["kind"] == "exact" and d["estimator"] == "exact"
    assert d["total"] == pytest.approx(0.10931995845, abs=1e-9)


def test_bandit_pivot_both_exact_estimators(capsys: pytest.CaptureFixture[str]) -> None:
    for estimator, kind in (("exact", "exact"), ("clairvoyant", "upper_bound")):
        code = main(["audit", "bandit-discrete", "--n-agents", "2", "--horizon", "3",
                     "--mechanism", "pivot", "--estimator", estimator, "--json"])
        d = json.loads(capsys.readouterr().out)
        assert code == 0 and d["kind"] == kind
        assert max(abs(g) for g in d["per_agent"]) <= 1e-9


def test_bandit_learned_table(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["audit", "bandit-continuous", "--horizon", "2", "--mechanism", "posted:2.4",
                 "--estimator", "learned", "--episodes", "2048", "--seeds", "1",
                 "--eval-episodes", "2048"])
    out = capsys.readouterr().out.splitlines()
    assert code == 0
    assert out[0] == "posted:2.4 on bandit-continuous(horizon=2), estimator learned"
    assert "[lower_bound]" in out[1] and "ppo-deviators(episodes=2048, seeds=1" in out[1]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["bandit-discrete", "--mechanism", "optimal"],
         "expected --mechanism pivot, vcg, posted:P or second_price[:R] for a bandit auction, "
         "got 'optimal'"),
        (["bandit-foo"], "expected ENV bandit-<setting> with setting in ['continuous', "
         "'discrete'], got 'bandit-foo'"),
        (["bandit-continuous", "--mechanism", "posted:2"],
         "expected a discrete one-good setting with realised allocations for the 'exact' "
         "estimator (exact tables), got continuous types; use estimator='learned'"),
        (["bandit-discrete", "--tasks", "3"], "--tasks does not apply to bandit-discrete"),
        (["bandit-continuous", "--mechanism", "pivot"],
         "--mechanism pivot: expected a discrete setting for the exact arrays (exact tables "
         "need a finite type space), got continuous types"),
    ],
)
def test_bandit_errors(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["audit", *argv]) == 2
    assert capsys.readouterr().err.strip() == f"bilevel: error: {message}"
