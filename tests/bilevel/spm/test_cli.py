"""The spm and spm-baselines commands through their own parser: JSON output, written files,
bad input (exit code 2)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from bilevel.spm._cli import register
from bilevel.spm._designer import SPMDesigner


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="bilevel")
    register(p.add_subparsers(dest="command", required=True))
    return p


def _run(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    code: int = args.func(args)
    return code


def test_cli_baselines_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(["spm-baselines", "two_worlds", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    # two worlds (Brero et al. (2021), "Experimental Results"), exact values: E[OPT] =
    # 0.7 − 0.35/1024, best SPM 0.692187, best ASP 0.599805 (tests/solvers/spm/test_exact.py)
    assert out["optimum"]["value"] == pytest.approx(0.7 - 0.35 / 1024, abs=1e-9)
    assert out["best"]["spm"]["value"] == pytest.approx(0.692187, abs=1e-6)
    assert out["best"]["asp"]["value"] == pytest.approx(0.599805, abs=1e-6)
    rsd = out["rsd"]
    # one item, random order, price 0: the first agent buys, E[v] = (0.8 + 0.25) / 2 = 0.525
    assert abs(rsd["value"] - 0.525) <= 4 * rsd["se"] + 1e-12


def test_cli_spm_writes_outputs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = _run(["spm", "proposition1", "--steps", "4000", "--baselines", "",
                 "--out", str(tmp_path), "--json", "--price-grid", "auto"])
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    assert out["setting"] == "proposition1" and out["env_steps"] >= 4000
    for name in ("report.md", "result.json", "curves.png", "policy.pt"):
        assert (tmp_path / name).is_file(), name
    back = SPMDesigner.load(tmp_path / "policy.pt")
    assert back.evaluate().value == pytest.approx(out["learned"]["value"], abs=1e-12)


@pytest.mark.parametrize(
    "argv,match",
    [
        (["spm", "nope", "--steps", "10"], "expected an SPM setting"),
        (["spm", "proposition1", "--steps", "0"], "steps"),
        (["spm", "proposition1", "--baselines", "foo"], "baselines"),
        (["spm", "proposition1", "--price-grid", "fine"], "price-grid"),
        (["spm-baselines", "correlated", "--param", "delta=2.0"], "delta"),
        (["spm-baselines", "correlated", "--param", "delta"], "KEY=VALUE"),
    ],
)
def test_cli_bad_input_exit_code_2(argv: list[str], match: str,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(argv) == 2
    assert match in capsys.readouterr().err
