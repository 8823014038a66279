"""``bilevel run CONFIG.toml``: configuration validation, resumable cells, reports."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bilevel._cli import main
from bilevel._experiment import load_config, run_experiment

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
iters = 5
n_validation = 0
"""


def test_run_experiment_and_resume(tmp_path: Path) -> None:
    cfg = tmp_path / "exp.toml"
    cfg.write_text(CONFIG)
    recs = run_experiment(cfg, out=tmp_path / "out")
    assert [(r["method"], r["seed"]) for r in recs] == [
        ("grid", 0), ("grid", 1), ("zeroth_order", 0), ("zeroth_order", 1)]
    assert (tmp_path / "out" / "grid-seed0.json").exists()
    rows = json.loads((tmp_path / "out" / "experiment.json").read_text())
    assert len(rows) == 4 and all(r["vcg"] is not None for r in rows)
    again = run_experiment(cfg, out=tmp_path / "out")  # from the store
    assert [r["evaluation"] for r in again] == [r["evaluation"] for r in recs]


def test_cli_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "exp.toml"
    cfg.write_text(CONFIG)
    assert main(["run", str(cfg), "--out", str(tmp_path / "o"), "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)["cells"]) == 4


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("[env]\nname='sales'\n[design]\nmethods=['grid']\n[extra]\n", r"unknown \['extra'\]"),
        ("[design]\nmethods=['grid']\n", "expected an \\[env\\] section"),
        ("[env]\nname='sales'\n[design]\nmethods=[]\n", "expected \\[design\\] methods"),
        ("[env]\nname='sales'\n[design]\nmethods=['grid']\nseeds=['a']\n", "seeds"),
        ("not toml [", "expected a valid TOML file"),
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
