"""The README's Python example and the benchmark scripts run (at smoke size)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


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


def _run_script(name: str, *args: str) -> dict[str, object]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / name), *args, "--json"],
        capture_output=True, text=True, check=True, env=env, timeout=300,
    )
    out: dict[str, object] = json.loads(proc.stdout)
    return out


def test_regularised_benchmark_json() -> None:
    out = _run_script("regularized.py", "--batch", "2", "--n-agents", "2", "--n-items", "2",
                      "--repeat", "1")
    assert float(out["ratio"]) > 0  # type: ignore[arg-type]
    assert float(out["max_abs_x_difference"]) < 1e-6  # type: ignore[arg-type]


def test_regularised_benchmark_gridworld_agrees_with_cvxpylayers() -> None:
    # the cyclic path (dual Newton, soft-policy-iteration warm start) against the conic layer
    out = _run_script("regularized.py", "--env", "gridworld", "--grid", "3", "--batch", "2",
                      "--n-agents", "2", "--repeat", "1")
    assert str(out["setting"]).startswith("gridworld n=2 G=3")
    assert float(out["max_abs_x_difference"]) < 1e-6  # type: ignore[arg-type]
    assert float(out["max_abs_grad_difference"]) < 1e-4  # type: ignore[arg-type]
