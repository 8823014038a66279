"""The README's Python example and the benchmark scripts run (at smoke size; the benchmark
smokes are ``integration`` tests)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests import ROOT


def test_readme_python_example_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    text = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert blocks, "the README has a Python example"
    code = blocks[0]
    # Same code at smoke size: fewer candidates and profiles.
    code = code.replace("n_points=10_000", "n_points=16").replace("n_profiles=2_000",
                                                                   "n_profiles=100")
    code = code.replace("n_samples=10_000", "n_samples=500")
    code = code.replace("designer = AMADesigner(", "designer = AMADesigner(eval_samples=500, ")
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "README.md", "exec"), {})
    assert (tmp_path / "ama.json").exists()


@pytest.mark.integration
def test_inner_solver_benchmark_json() -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "inner_solvers.py"), "--profiles", "40",
         "--repeat", "1", "--json"],
        capture_output=True, text=True, check=True, env=env, timeout=300,
    )
    out = json.loads(proc.stdout)
    assert out["values_agree_1e-9"] is True
    assert out["ratio"] > 0


def _run_script(name: str, *args: str) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / name), *args, "--json"],
        capture_output=True, text=True, check=True, env=env, timeout=300,
    )
    out: dict[str, Any] = json.loads(proc.stdout)
    return out


@pytest.mark.integration
def test_regularised_benchmark_json() -> None:
    out = _run_script("regularized.py", "--batch", "2", "--n-agents", "2", "--n-items", "2",
                      "--repeat", "1")
    assert float(out["ratio"]) > 0
    assert float(out["max_abs_x_difference"]) < 1e-6


@pytest.mark.integration
def test_regularised_benchmark_gridworld_agrees_with_cvxpylayers() -> None:
    # the cyclic path (dual Newton, soft-policy-iteration warm start) against the conic layer
    out = _run_script("regularized.py", "--env", "gridworld", "--grid", "3", "--batch", "2",
                      "--n-agents", "2", "--repeat", "1")
    assert str(out["setting"]).startswith("gridworld n=2 G=3")
    assert float(out["max_abs_x_difference"]) < 1e-6
    assert float(out["max_abs_grad_difference"]) < 1e-4


def _spm_benchmark_main(argv: list[str], monkeypatch: pytest.MonkeyPatch) -> int:
    import importlib.util

    path = ROOT / "benchmarks" / "spm_throughput.py"
    spec = importlib.util.spec_from_file_location("spm_throughput", path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    monkeypatch.setattr(sys, "argv", ["spm_throughput.py", *argv])
    code: int = mod.main()
    return code


@pytest.mark.integration
def test_spm_benchmark_ours_only_json(monkeypatch: pytest.MonkeyPatch,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    code = _spm_benchmark_main(["--ours-only", "--steps", "2000", "--n-agents", "4", "--n-items",
                            "2", "--eval-samples", "2000", "--json"], monkeypatch)
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    assert out["ratio"] is None and out["sb3"] is None
    assert out["ours"]["env_steps"] >= 2000 and out["ours"]["steps_per_second"] > 0
    # E[OPT] of 4 i.i.d. U[0,1] agents and 2 items is 4/5 + 3/5 = 1.4: no mechanism beats it
    assert 0.0 < out["ours"]["objective"] <= 1.4 + 4 * out["ours"]["objective_se"]


@pytest.mark.integration
def test_spm_benchmark_says_sb3_missing(monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    import importlib.util

    if importlib.util.find_spec("stable_baselines3") is not None:
        pytest.skip("Stable-Baselines3 is installed")
    assert _spm_benchmark_main(["--steps", "10", "--json"], monkeypatch) == 3
    assert "Stable-Baselines3 is not installed" in capsys.readouterr().err


@pytest.mark.integration
def test_stackelberg_throughput_benchmark_smoke() -> None:
    pytest.importorskip("stable_baselines3")
    out = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "stackelberg_throughput.py"), "--steps",
         "600", "--json", "--game", "simple_allocation:1", "--iterations", "3"],
        capture_output=True, text=True, timeout=240, cwd=ROOT, check=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    r = json.loads(out.stdout)
    assert r["ratio"] > 0 and r["ours"]["env_steps"] >= 600 and r["sb3"]["env_steps"] >= 600
    for side in ("ours", "sb3"):
        assert r[side]["value"] == pytest.approx(1 / 3, abs=1e-9)  # m = 1: every leader 1/3


@pytest.mark.integration
def test_discounted_dp_benchmark_json() -> None:
    out = _run_script("discounted_dp.py", "--grid", "3", "--candidates", "4", "--profiles", "20",
                      "--pool", "50", "--repeat", "1")
    assert out["agree"] is True
    assert out["ratio"] > 0


@pytest.mark.integration
def test_audit_table_example_prints_the_documented_rows() -> None:
    out = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "audit_table.py"), "--samples", "100"],
        capture_output=True, text=True, timeout=240, cwd=ROOT, check=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    ).stdout
    rows = {tuple(c.strip() for c in line.split("|")[1:3]): line.split("|")[3].strip()
            for line in out.splitlines() if line.startswith("| ") and "---" not in line}
    assert rows[("posted price 1.5", "bandit, n=1, T=3")] == "0.1093 (exact)"
    assert rows[("dynamic pivot", "bandit, n=2, T=3")] == "0.0000 (exact)"
    assert rows[("one-period optimum (Myerson)", "bandit, n=2, T=1")] == "0.0000 (exact)"
    assert rows[("VCG", "sales, n=3, m=2, uniform")] == "0.0000 (lower bound)"
    assert rows[("static SPM (prices 2/3, 0)", "SPM proposition1")] == "0.0000 (exact)"
    # the documented table (docs/audits.md) lists every row the script prints
    doc = (ROOT / "docs" / "audits.md").read_text()
    for mech, env in rows:
        if "PPO" not in env:
            assert f"| {mech} | {env} |" in doc, (mech, env)


@pytest.mark.integration
def test_minmax_throughput_benchmark_smoke() -> None:
    pytest.importorskip("stable_baselines3")
    out = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "minmax_throughput.py"), "--quick", "--json"],
        capture_output=True, text=True, timeout=240, cwd=ROOT, check=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    r = json.loads(out.stdout)
    assert r["batch"] == 64 and r["env_steps_per_alternation"] == 768  # n=1, T=3: (1·3 + 1)·64·3
    assert r["ratio"] > 0
    for side in ("ours", "sb3"):
        assert r[side]["alternations_per_second"] > 0
        assert r[side]["env_steps_per_second"] == pytest.approx(
            768 * r[side]["alternations_per_second"], rel=1e-9)
        assert abs(r[side]["last_revenue"]) < 10.0  # bounded values: a finite, sane estimate
