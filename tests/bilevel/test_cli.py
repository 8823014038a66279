"""The ``bilevel`` command line: every subcommand, JSON output, files, errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from bilevel import load_mechanism
from bilevel._cli import main


def _json(capsys: pytest.CaptureFixture[str], argv: list[str]) -> object:
    assert main(argv) == 0
    return json.loads(capsys.readouterr().out)


def test_envs_json(capsys: pytest.CaptureFixture[str]) -> None:
    out = _json(capsys, ["envs", "--json"])
    assert isinstance(out, list)
    assert {e["name"] for e in out} == {"sales", "scheduling", "gridworld", "matching"}


def test_evaluate_vcg_json_has_required_keys(capsys: pytest.CaptureFixture[str]) -> None:
    out = _json(capsys, ["evaluate", "sales", "--n-agents", "3", "--n-items", "2",
                         "--samples", "4000", "--seed", "3", "--json"])
    assert isinstance(out, dict)
    for key in ("objective", "mean", "se", "revenue", "revenue_se", "welfare", "welfare_se",
                "n_samples"):
        assert key in out
    assert out["n_samples"] == 4000
    # analytic VCG revenue m(n - m)/(n + 1) = 0.5
    assert abs(out["mean"] - 0.5) < 4 * out["se"]


def test_design_writes_loadable_mechanism(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out_dir = tmp_path / "out"
    out = _json(capsys, ["design", "sales", "--n-agents", "3", "--n-items", "2", "--method",
                         "grid", "--points", "32", "--profiles", "200", "--eval-samples",
                         "1000", "--seed", "1", "--out", str(out_dir), "--json"])
    assert isinstance(out, dict)
    assert (out_dir / "mechanism.json").exists()
    report = (out_dir / "report.md").read_text()
    assert "Comparison with VCG" in report
    mech = load_mechanism(out_dir / "mechanism.json")
    assert mech.boosts.shape == (5, 4)
    np.testing.assert_allclose(mech.boosts, np.asarray(out["mechanism"]["boosts"]), rtol=0,
                               atol=0)
    ev = _json(capsys, ["evaluate", "sales", "--n-agents", "3", "--n-items", "2",
                        "--mechanism", str(out_dir / "mechanism.json"), "--samples", "500",
                        "--json"])
    assert isinstance(ev, dict) and ev["baseline"] == "vcg"


def test_design_table_output(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["design", "scheduling", "--n-agents", "2", "--tasks", "3", "--makespan",
                 "reference", "--points", "16", "--profiles", "100", "--eval-samples",
                 "500"]) == 0
    text = capsys.readouterr().out
    assert "VCG" in text and "makespan (mean ± se)" in text


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["evaluate", "sales", "--tasks", "3"], "--tasks applies to scheduling only"),
        (["evaluate", "nope"], "expected an environment name"),
        (["evaluate", "sales", "--dist", "normal"], "expected dist"),
        (["evaluate", "sales", "--mechanism", "missing.json"], "not found"),
        (["evaluate", "sales", "--samples", "0"], "expected --samples >= 1"),
        (["design", "sales", "--points", "0"], "n_points"),
    ],
)
def test_cli_errors(argv: list[str], fragment: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    assert fragment in capsys.readouterr().err


def test_mechanism_for_other_env_is_rejected(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["design", "sales", "--n-agents", "2", "--n-items", "2", "--points", "4",
                 "--profiles", "20", "--eval-samples", "0", "--out", str(tmp_path),
                 "--json"]) == 0
    capsys.readouterr()
    assert main(["evaluate", "sales", "--n-agents", "3", "--mechanism",
                 str(tmp_path / "mechanism.json")]) == 2
    assert "expected a mechanism for 3 agents" in capsys.readouterr().err
