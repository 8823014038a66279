"""The SPM design report: markdown, JSON and learning-curve files of a trained designer."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bilevel.spm._designer import SPMDesigner
from bilevel.spm._report import spm_report_markdown, write_spm_report

PROP1_OPT = 2.5 / 3.0  # Proposition 1: E[max(v1, v2)] = 2.5 raw, values normalised by 3


def test_report_files(prop1: SPMDesigner, tmp_path: Path) -> None:
    files = write_spm_report(prop1.result_, tmp_path / "rep")
    assert set(files) == {"markdown", "json", "curves"}
    assert files["curves"].stat().st_size > 1000
    data = json.loads(files["json"].read_text())
    assert data["learned"]["value"] == pytest.approx(PROP1_OPT, abs=1e-12)
    md = spm_report_markdown(prop1.result_)
    assert "| learned (price_allocation) | 0.833333 |" in md
    assert "RSD" in md and "E[OPT]" in md
