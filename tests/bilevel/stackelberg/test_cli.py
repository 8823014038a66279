"""The stackelberg command through its own parser: JSON output, written files, Q-learning
followers, bad input (exit code 2)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest
import torch

from bilevel.stackelberg._cli import register


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bilevel")
    register(parser.add_subparsers(dest="command", required=True))
    return parser


def test_cli_json_and_out(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = _parser().parse_args(["stackelberg", "simple_allocation:1", "--steps", "500",
                                 "--envs", "4", "--eval-every", "0", "--out", str(tmp_path),
                                 "--json"])
    assert args.func(args) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["game"] == "simple_allocation:1"
    assert out["summary"][0]["value"] == pytest.approx(1 / 3)
    assert (tmp_path / "centralized_seed0" / "result.json").is_file()
    assert (tmp_path / "report.md").is_file()


def test_cli_bad_input(capsys: pytest.CaptureFixture[str]) -> None:
    args = _parser().parse_args(["stackelberg", "no_such_game", "--steps", "10"])
    assert args.func(args) == 2
    assert "bilevel: error: expected" in capsys.readouterr().err
    args = _parser().parse_args(["stackelberg", "matrix_design", "--steps", "0"])
    assert args.func(args) == 2
    assert "expected steps as an int >= 1" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        _parser().parse_args(["stackelberg", "matrix_design", "--critic", "bogus"])


def test_cli_q_learning(capsys: pytest.CaptureFixture[str]) -> None:
    args = _parser().parse_args(["stackelberg", "simple_allocation:1", "--followers",
                                 "q-learning", "--steps", "1000", "--envs", "4", "--eval-every",
                                 "0", "--json"])
    assert args.func(args) == 0
    out = json.loads(capsys.readouterr().out)
    r = out["results"]["centralized"][0]
    assert r["config"]["followers"] == "q-learning"
    assert r["value"] == pytest.approx(1 / 3, abs=1e-9)  # m = 1: every leader earns 1/3
