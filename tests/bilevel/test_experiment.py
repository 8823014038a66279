"""``bilevel run CONFIG.toml``: configuration validation, resumable cells, reports."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bilevel import evaluate, make_env, optimal_mechanism, vcg
from bilevel._cli import main
from bilevel._experiment import load_config, run_experiment, run_experiment_report
from bilevel.search._streams import design_streams

CONFIG = """
[env]
name = "sales"
n_agents = 2
n_items = 2

[design]
methods = ["grid", "zeroth_order"]
seeds = [0, 1]
eval_samples = 300

[budgets.grid]
n_points = 16
n_profiles = 50

[budgets.zeroth_order]
steps = 5
n_validation = 0
"""


def test_run_experiment_and_resume(tmp_path: Path) -> None:
    cfg = tmp_path / "exp.toml"
    cfg.write_text(CONFIG)
    recs = run_experiment(cfg, out=tmp_path / "out")
    assert [(r["method"], r["seed"]) for r in recs] == [
        ("grid", 0), ("grid", 1), ("zeroth_order", 0), ("zeroth_order", 1)]
    assert (tmp_path / "out" / "grid-seed0.json").exists()
    report = json.loads((tmp_path / "out" / "experiment.json").read_text())
    rows = report["rows"]
    assert [(r["method"], r["seed"]) for r in rows] == [
        ("VCG", 0), ("optimal", 0), ("grid", 0), ("zeroth_order", 0),
        ("VCG", 1), ("optimal", 1), ("grid", 1), ("zeroth_order", 1)]
    assert all(r["vcg"] is not None and r["bound_kind"] == "optimal" for r in rows)
    assert report["sense"] == "higher is better" and report["bound_sense"] == "upper"
    assert report["optimal_note"] is None
    again = run_experiment(cfg, out=tmp_path / "out")  # from the store
    assert [r["evaluation"] for r in again] == [r["evaluation"] for r in recs]


def test_cli_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "exp.toml"
    cfg.write_text(CONFIG)
    assert main(["run", str(cfg), "--out", str(tmp_path / "o"), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert len(out["cells"]) == 4 and out["optimal_note"] is None
    assert [r["method"] for r in out["references"]] == ["VCG", "optimal"] * 2
    assert main(["run", str(cfg), "--out", str(tmp_path / "o")]) == 0  # from the store
    text = capsys.readouterr().out
    assert "optimal       seed 0" in text and "% of bound" in text and "gap" in text


def _sales_report(tmp_path: Path) -> tuple[Any, list[dict[str, Any]]]:
    cfg = tmp_path / "exp.toml"
    cfg.write_text(CONFIG)
    res = run_experiment_report(cfg, out=tmp_path / "out")
    return res, res.rows


def test_optimal_row_on_the_cells_profiles(tmp_path: Path) -> None:
    res, rows = _sales_report(tmp_path)
    env = make_env("sales", n_agents=2, n_items=2)
    for seed in (0, 1):
        eval_seed = design_streams(seed)[1]
        cells = [c for c in res.cells if c["seed"] == seed]
        assert all(c["evaluation"]["seed"] == eval_seed for c in cells)
        opt = evaluate(env, optimal_mechanism(env), n_samples=300, seed=eval_seed)
        base = evaluate(env, vcg(env), n_samples=300, seed=eval_seed, baseline=None)
        by = {r["method"]: r for r in rows if r["seed"] == seed}
        assert by["optimal"]["mean"] == opt.mean and by["optimal"]["se"] == opt.se
        assert by["optimal"]["diff_vs_vcg"] == opt.diff_mean
        assert by["optimal"]["gap_to_bound"] == opt.gap_mean
        assert by["VCG"]["mean"] == base.mean == opt.baseline_mean
        for c in cells:  # VCG and the bound are those of every cell of the seed
            ev = c["evaluation"]
            assert ev["baseline_mean"] == base.mean and ev["bound"] == opt.bound == base.bound
            row = by[c["method"]]
            assert row["pct_of_bound"] == ev["pct_of_bound"]
            assert row["gap_to_bound"] == ev["gap_mean"] and row["vcg_pct_of_bound"] == (
                base.pct_of_bound)
        # the optimum attains the bound (up to noise), VCG does not
        assert opt.gap_mean is not None and opt.gap_se is not None
        assert abs(opt.gap_mean) <= 3 * opt.gap_se
    md = (tmp_path / "out" / "experiment.md").read_text()
    assert "revenue (higher is better)" in md and "% of bound (optimal)" in md
    assert "gap to bound (bound − mech)" in md and "| optimal | 0 |" in md
    csv_text = (tmp_path / "out" / "experiment.csv").read_text()
    assert csv_text.splitlines()[0].startswith("method,seed") and "pct_of_bound" in csv_text


def test_no_optimal_row_for_scheduling(tmp_path: Path) -> None:
    cfg = tmp_path / "sched.toml"
    cfg.write_text("[env]\nname='scheduling'\nn_agents=2\nn_tasks=3\n[design]\n"
                   "methods=['grid']\neval_samples=200\n[budgets]\ngrid=8\n")
    res = run_experiment_report(cfg, out=tmp_path / "o")
    assert res.optimal_note is not None and "makespan" in res.optimal_note
    assert [r["method"] for r in res.rows] == ["VCG", "grid"]
    assert all(r["bound_kind"] == "first-best" for r in res.rows)
    assert all(r["gap_to_bound"] >= -3 * r["gap_to_bound_se"] for r in res.rows)
    assert all(0 < r["pct_of_bound"] <= 100 + 1e-9 for r in res.rows)
    md = (tmp_path / "o" / "experiment.md").read_text()
    assert "makespan (lower is better)" in md and "lower bound (first-best)" in md
    assert "No optimal-mechanism row" in md and "| optimal |" not in md
    assert "gap to bound (mech − bound)" in md
    report = json.loads((tmp_path / "o" / "experiment.json").read_text())
    assert report["sense"] == "lower is better" and report["bound_sense"] == "lower"
    assert report["optimal_note"] == res.optimal_note


def test_cma_budget(tmp_path: Path) -> None:
    cfg = tmp_path / "cma.toml"
    cfg.write_text("[env]\nname='sales'\nn_agents=2\nn_items=1\n[design]\nmethods=['cma']\n"
                   "eval_samples=200\n[budgets]\ncma=6\n[budgets.grid]\nn_points=4\n")
    cells = run_experiment(cfg, out=tmp_path / "o")
    hp = cells[0]["mechanism"]["meta"]["hyperparameters"]
    assert cells[0]["method"] == "cma" and hp["n_evals"] == 6
    assert load_config(Path(__file__).parents[2] / "examples" / "sales_experiment.toml")[
        "budgets"]["cma"] > 0


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("[env]\nname='sales'\n[design]\nmethods=['grid']\n[extra]\n", r"unknown \['extra'\]"),
        ("[design]\nmethods=['grid']\n", "expected an \\[env\\] section"),
        ("[env]\nname='sales'\n[design]\nmethods=[]\n", "expected \\[design\\] methods"),
        ("[env]\nname='sales'\n[design]\nmethods=['grid']\nseeds=['a']\n", "seeds"),
        ("not toml [", "expected a valid TOML file"),
        ("[env]\nname='sales'\n[design]\nmethods=['nope']\n", r"unknown \['nope'\]"),
        ("[env]\nname='sales'\n[design]\nmethods=['cma']\n[budgets]\ncma='x'\n",
         "expected \\[budgets\\] cma as a table"),
        ("[env]\nname='sales'\n[design]\nmethods=['cma']\n[budgets]\nfoo=3\n",
         "expected \\[budgets\\] for methods"),
    ],
)
def test_bad_configs(text: str, fragment: str, tmp_path: Path) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text(text)
    with pytest.raises(ValueError, match=fragment):
        load_config(cfg)


def test_cli_run_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text("[env]\nname='nope'\n[design]\nmethods=['grid']\n")
    assert main(["run", str(cfg), "--out", str(tmp_path / "o")]) == 2
    assert "expected an environment name" in capsys.readouterr().err


FACTORY_CONFIG = """
[env]
name = "tests.models.factories:auction"
n_agents = 2

[design]
methods = ["grid"]
seeds = [0]
eval_samples = 300

[budgets.grid]
n_points = 32
n_profiles = 100
"""


def test_a_factory_config_runs_alike_with_two_workers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = tmp_path / "custom.toml"
    cfg.write_text(FACTORY_CONFIG)
    means = []
    for workers in ("1", "2"):
        out = tmp_path / f"w{workers}"
        assert main(["run", str(cfg), "--out", str(out), "--workers", workers, "--json"]) == 0
        rows = json.loads(capsys.readouterr().out)["rows"]
        means.append([(r["method"], r["mean"], r["se"]) for r in rows])
        assert (out / "grid-seed0.json").read_text() == (
            (tmp_path / "w1" / "grid-seed0.json").read_text())
    assert means[0] == means[1]
    assert main(["run", str(cfg), "--out", str(tmp_path / "w1")]) == 0
    assert "1 of 1 cell(s) read from" in capsys.readouterr().out


def test_the_custom_experiment_example_names_the_example_factory() -> None:
    from tests import ROOT

    cfg = load_config(ROOT / "examples" / "custom_experiment.toml")
    assert cfg["env"]["name"] == "examples.custom_environment:auction"
    env = make_env(cfg["env"]["name"], n_agents=2)
    assert env.origin is not None and env.n_agents == 2
