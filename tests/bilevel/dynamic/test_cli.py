"""``bilevel dynamic``: one cell from the command line, its JSON and files, one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bilevel._cli import main
from bilevel.dynamic._cli import SETTING_NAMES
from bilevel.models.dynamic import list_bandit_settings


def test_setting_names_match_the_registry() -> None:
    assert sorted(SETTING_NAMES) == sorted(s.name for s in list_bandit_settings())


def test_one_cell_json_and_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["dynamic", "discrete", "--horizon", "1", "--delta", "1.0", "--steps", "10",
                 "--batch", "64", "--threshold", "10", "--out", str(tmp_path), "--json"])
    d = json.loads(capsys.readouterr().out)
    assert code == 0 and d["delta"] == 1.0 and d["status"] == "completed"
    assert d["cells"][0]["exploitability_kind"] == "exact"
    assert d["baselines"]["best posted price (2)"]["revenue"] == pytest.approx(4 / 3, abs=1e-9)
    for name in ("report.md", "curves.png", "result.json", "weights.pt", "config.json"):
        assert (tmp_path / name).is_file(), name


def test_text_report_says_nothing_was_saved(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["dynamic", "--horizon", "1", "--delta", "1.0", "--steps", "5",
                 "--batch", "64"]) == 0
    cap = capsys.readouterr()
    assert "| dynamic pivot |" in cap.out and "(nothing saved: pass --out DIR" in cap.out
    assert "δ=1.0000" in cap.err  # progress on stderr by default, also when not a terminal


def test_quiet_prints_no_progress(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["dynamic", "--horizon", "1", "--delta", "1.0", "--steps", "5",
                 "--batch", "64", "--quiet"]) == 0
    assert capsys.readouterr().err == ""


def test_bad_input(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["dynamic", "--steps", "0", "--delta", "1.0"]) == 2
    assert capsys.readouterr().err.strip() == (
        "bilevel dynamic: error: steps: expected an int >= 1, got 0")
