"""``--checkpoint-every SECONDS`` for ``bilevel run`` and ``bilevel reproduce``: it reaches the
designer and the store, and neither the results nor the cells' keys depend on it."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from bilevel import AMADesigner
from bilevel._cli import build_parser, main
from bilevel._store import ResultStore
from bilevel.models import Environment
from bilevel.reproduce._budget import QUICK
from bilevel.reproduce._paper import paper_rows
from bilevel.reproduce._run import cell_key, run_cell

_CONFIG = (
    '[env]\nname = "sales"\nn_agents = 2\nn_items = 1\n\n'
    '[design]\nmethods = ["grid", "zeroth_order"]\nseeds = [0]\neval_samples = 40\n\n'
    "[budgets.grid]\nn_points = 4\nn_profiles = 10\n\n"
    "[budgets.zeroth_order]\niters = 3\nn_profiles = 3\nn_perturbations = 2\n"
    "n_validation = 10\nvalidate_every = 1\n"
)
_TINY = QUICK.__class__(
    "quick", grid_points=8, grid_profiles=10, iters=3, multistart_points=8, eval_samples=40,
    n_validation=10, trials=1, estimator="envelope", optimizer="adam")


@pytest.mark.parametrize("command", [["run", "x.toml"], ["reproduce", "table1"]])
def test_the_cli_takes_checkpoint_every(command: list[str]) -> None:
    assert build_parser().parse_args(command).checkpoint_every == 30.0
    assert build_parser().parse_args([*command, "--checkpoint-every", "0"]).checkpoint_every == 0
    with pytest.raises(SystemExit) as e:
        build_parser().parse_args([*command, "--checkpoint-every", "-1"])
    assert e.value.code == 2


@pytest.fixture
def fits(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Each AMADesigner.fit's checkpoint settings and whether its checkpoint was written."""
    seen: list[dict[str, Any]] = []
    fit = AMADesigner.fit

    def spy(self: AMADesigner, env: Environment) -> AMADesigner:
        out = fit(self, env)
        saved = None
        if self.checkpoint is not None:
            saved = ResultStore(self.checkpoint).get_blob(self.checkpoint_key(env)) is not None
        seen.append({"method": self.method, "every": self.checkpoint_every,
                     "store": self.checkpoint, "saved": saved})
        return out

    monkeypatch.setattr(AMADesigner, "fit", spy)
    return seen


def _no_runtime(ev: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in ev.items() if k != "runtime"}


def _run_rows(out: Path) -> list[dict[str, Any]]:
    rows = json.loads((out / "experiment.json").read_text())["rows"]
    return [{k: v for k, v in r.items() if k != "wall_time"} for r in rows]


def test_run_passes_checkpoint_every_and_results_do_not_depend_on_it(
    tmp_path: Path, fits: list[dict[str, Any]], capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = tmp_path / "exp.toml"
    cfg.write_text(_CONFIG)
    outs = {}
    for every in ("0", "30"):
        out = tmp_path / f"every{every}"
        assert main(["run", str(cfg), "--out", str(out), "--checkpoint-every", every]) == 0
        outs[every] = out
    capsys.readouterr()
    assert [(f["method"], f["every"]) for f in fits] == [
        ("grid", 0.0), ("zeroth_order", 0.0), ("grid", 30.0), ("zeroth_order", 30.0)]
    # the search checkpointed into the run's store (then the finished cell superseded it)
    assert all(f["saved"] for f in fits)
    assert {Path(f["store"]).parent for f in fits} == set(outs.values())
    stores = {k: ResultStore(v / "store.sqlite") for k, v in outs.items()}
    for s in stores.values():
        with sqlite3.connect(s.path) as con:
            assert con.execute("SELECT COUNT(*) FROM blobs").fetchone() == (0,)
    keys = {k: [key for key, _ in s.items()] for k, s in stores.items()}
    assert keys["0"] == keys["30"] and len(keys["0"]) == 2
    assert _run_rows(outs["0"]) == _run_rows(outs["30"])
    for name in ("grid-seed0.json", "zeroth_order-seed0.json"):
        assert (outs["0"] / name).read_text() == (outs["30"] / name).read_text()


def test_run_cell_passes_checkpoint_every_and_results_do_not_depend_on_it(
    tmp_path: Path, fits: list[dict[str, Any]]
) -> None:
    row = next(r for r in paper_rows(1) if (r.n_agents, r.size) == (2, 2))
    recs = {}
    for every in (0.0, 30.0):
        store = tmp_path / f"every{every:g}" / "store.sqlite"
        recs[every] = [run_cell(row, m, _TINY, store, checkpoint_every=every)
                       for m in ("grid", "zeroth_order")]
    assert [(f["method"], f["every"], f["saved"]) for f in fits] == [
        (m, e, True) for e in (0.0, 30.0) for m in ("grid", "zeroth_order")]
    for a, b in zip(recs[0.0], recs[30.0], strict=True):
        assert a["key"] == b["key"] == cell_key(row, a["method"], _TINY)
        assert a["checkpoint_key"] == b["checkpoint_key"]
        for field in ("mechanism", "history", "vs_optimal"):
            assert a[field] == b[field], field
        assert _no_runtime(a["evaluation"]) == _no_runtime(b["evaluation"])


def test_reproduce_passes_checkpoint_every(
    tmp_path: Path, fits: list[dict[str, Any]], capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch
) -> None:
    import bilevel.reproduce as rep

    monkeypatch.setattr(rep, "QUICK", _TINY)
    out = tmp_path / "repro"
    assert main(["reproduce", "table1", "--rows", "2x2", "--methods", "grid", "--out", str(out),
                 "--checkpoint-every", "0"]) == 0
    capsys.readouterr()
    assert [(f["method"], f["every"], f["saved"]) for f in fits] == [("grid", 0.0, True)]
    assert Path(fits[0]["store"]) == out / "store.sqlite"
