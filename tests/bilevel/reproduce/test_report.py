"""Reports of reproduce runs: rebuilt from the current protocol's cells and from every stored
method."""

from __future__ import annotations

import json
from pathlib import Path

from bilevel._cli import main
from bilevel.reproduce._budget import QUICK, Budget
from bilevel.reproduce._run import reproduce

TINY = Budget("tiny", grid_points=16, grid_profiles=50, iters=10, multistart_points=16,
                eval_samples=300, n_validation=100)


def test_report_skips_cells_of_an_earlier_protocol_version(tmp_path: Path) -> None:
    from bilevel._store import ResultStore

    out = tmp_path / "r"
    reproduce([1], protocol=QUICK, methods=["vcg"], out=out, rows=["3x2"])
    store = ResultStore(out / "store.sqlite")
    (key, rec), = store.items()
    stale = {**rec, "key": key + "-old", "evaluation": {**rec["evaluation"], "mean": 123.0}}
    store.put(key + "-old", stale)
    # the report is rebuilt from the current protocol's cells only
    assert main(["report", str(out)]) == 0
    assert "123.0" not in (out / "table1.md").read_text()


def test_a_run_restricted_to_some_methods_keeps_the_other_stored_cells_in_the_report(
    tmp_path: Path,
) -> None:
    reproduce([1], protocol=TINY, methods=["vcg"], out=tmp_path, rows=["3x2"])
    reproduce([1], protocol=TINY, methods=["zeroth_order"], out=tmp_path, rows=["3x2"])
    rows = json.loads((tmp_path / "table1.json").read_text())
    assert sorted(r["method"] for r in rows) == ["vcg", "zeroth_order"]
