"""The reproduce harness: cells, resuming, order- and worker-independent results, kill-and-resume
(a SIGKILLed process, a Dask cluster with a killed worker), bound and CMA-ES cells."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from bilevel._cli import main
from bilevel._store import ResultStore
from bilevel.reproduce._budget import QUICK, Budget
from bilevel.reproduce._paper import paper_rows
from bilevel.reproduce._run import reproduce
from tests import ROOT

TINY = Budget("tiny", grid_points=16, grid_profiles=50, iters=10, multistart_points=16,
                eval_samples=300, n_validation=100)


def _numbers(ev: dict[str, object]) -> dict[str, object]:
    """An evaluation without its wall time (which differs between runs)."""
    return {k: v for k, v in ev.items() if k != "runtime"}


def test_reproduce_resumes_without_recomputing(tmp_path: Path) -> None:
    calls: list[bool] = []
    first = reproduce([1], protocol=TINY, methods=["vcg", "zeroth_order"], out=tmp_path,
                      rows=["3x2"], on_cell=lambda rec, cached: calls.append(cached))
    assert calls == [False, False]
    again = reproduce([1], protocol=TINY, methods=["vcg", "zeroth_order"], out=tmp_path,
                      rows=["3x2"], on_cell=lambda rec, cached: calls.append(cached))
    assert calls[2:] == [True, True]
    assert [_numbers(r["evaluation"]) for r in first] == [_numbers(r["evaluation"]) for r in again]
    md = (tmp_path / "table1.md").read_text()
    assert "n=3 m=2" in md and "zeroth_order" in md
    rows = json.loads((tmp_path / "table1.json").read_text())
    assert {r["method"] for r in rows} == {"vcg", "zeroth_order"}
    assert (tmp_path / "table1.csv").read_text().startswith("table,row,method")


def test_cell_results_do_not_depend_on_order(tmp_path: Path) -> None:
    a = reproduce([1], protocol=TINY, methods=["zeroth_order"], out=tmp_path / "a",
                  rows=["3x2"])
    b = reproduce([1], protocol=TINY, methods=["vcg", "zeroth_order"], out=tmp_path / "b",
                  rows=["3x2"])
    assert _numbers(a[0]["evaluation"]) == _numbers(b[1]["evaluation"])


def test_bad_tables_and_methods(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"expected a table in 1\.\.5"):
        reproduce([6], protocol=TINY, out=tmp_path)
    with pytest.raises(ValueError, match="expected methods among"):
        reproduce([1], protocol=TINY, methods=["nope"], out=tmp_path)


def test_cli_reproduce_and_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["reproduce", "table1", "--rows", "2x2", "--methods", "vcg", "--out",
                 str(tmp_path), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["protocol"] == QUICK.name and len(out["cells"]) == 1
    (tmp_path / "table1.md").unlink()
    assert main(["report", str(tmp_path)]) == 0
    assert (tmp_path / "table1.md").exists()
    assert main(["reproduce", "table9"]) == 2
    assert "expected table1..table5 or all" in capsys.readouterr().err


def _cli(out: Path) -> list[str]:
    return [sys.executable, "-m", "bilevel._cli", "reproduce", "table1", "--rows", "3x2,4x2",
            "--methods", "vcg,zeroth_order", "--out", str(out), "--json"]


@pytest.mark.integration
def test_sigkill_and_resume_gives_identical_results(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    full = subprocess.run(_cli(tmp_path / "full"), capture_output=True, text=True, env=env,
                          check=True, timeout=600)
    expected = json.loads(full.stdout)["cells"]

    killed = tmp_path / "killed"
    proc = subprocess.Popen(_cli(killed), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env=env)
    store_file = killed / "store.sqlite"
    deadline = time.time() + 300
    while time.time() < deadline:
        if store_file.exists() and len(ResultStore(store_file)) >= 1:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    finished_before = len(ResultStore(store_file))
    assert 1 <= finished_before <= len(expected)

    resumed = subprocess.run(_cli(killed), capture_output=True, text=True, env=env,
                             check=True, timeout=600)
    cells = json.loads(resumed.stdout)["cells"]
    assert [_numbers(c["evaluation"]) for c in cells] == [
        _numbers(c["evaluation"]) for c in expected
    ]
    assert [c["key"] for c in cells] == [c["key"] for c in expected]


def test_results_do_not_depend_on_workers(tmp_path: Path) -> None:
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    kw = {"protocol": TINY, "methods": ["vcg", "grid", "zeroth_order"], "rows": ["2x2", "3x2"]}
    serial = reproduce([1], out=tmp_path / "serial", **kw)  # type: ignore[arg-type]
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(2, mp_context=ctx) as pool:
        parallel = reproduce([1], out=tmp_path / "par", executor=pool, **kw)  # type: ignore[arg-type]
    assert [r["key"] for r in serial] == [r["key"] for r in parallel]
    assert [_numbers(r["evaluation"]) for r in serial] == [
        _numbers(r["evaluation"]) for r in parallel
    ]


def test_cell_keys_change_only_with_the_fields_a_method_depends_on() -> None:
    from dataclasses import replace

    from bilevel.reproduce._budget import FULL
    from bilevel.reproduce._run import cell_key

    row = paper_rows(1)[1]
    sgd, adam = replace(TINY, optimizer="sgd"), replace(TINY, optimizer="adam")
    for method in ("vcg", "grid", "zeroth_order"):
        assert cell_key(row, method, sgd) == cell_key(row, method, adam)
    for method in ("first_order", "multistart"):
        assert cell_key(row, method, sgd) != cell_key(row, method, adam)
    assert FULL.optimizer == "adam" and FULL.estimator == "envelope" and FULL.trials == 5


def test_bound_and_cma_cells_report_the_gap_to_the_optimum(tmp_path: Path) -> None:
    proto = Budget("tiny-cma", grid_points=16, grid_profiles=50, iters=10,
                     multistart_points=16, eval_samples=2000, n_validation=300,
                     cma_evals=40, cma_profiles=(500, 1000), cma_scan=32)
    recs = reproduce([1, 3], protocol=proto, methods=["vcg", "bound", "cma"], out=tmp_path,
                     rows=["3x2", "2x4"])
    by = {(r["table"], r["method"]): r for r in recs}
    opt = by[(1, "bound")]
    assert opt["mechanism"] is not None and opt["mechanism"]["name"] == "optimal"
    assert abs(opt["evaluation"]["mean"] - 0.718) < 4 * opt["evaluation"]["se"]
    sched = by[(3, "bound")]
    assert sched["mechanism"] is None and sched["evaluation"]["bound_kind"] == "first-best"
    cma = by[(1, "cma")]["evaluation"]
    assert cma["bound_kind"] == "optimal" and cma["gap_mean"] >= -3 * cma["gap_se"]
    vo = by[(1, "cma")]["vs_optimal"]  # paired with the optimal mechanism, same profiles
    assert vo["diff_mean"] <= 3 * vo["diff_se"] + 1e-12 and vo["diff_se"] < cma["se"]
    assert by[(3, "cma")]["vs_optimal"] is None  # no closed-form optimum for makespan
    rows = json.loads((tmp_path / "table1.json").read_text())
    row = {r["method"]: r for r in rows}
    assert set(row) == {"vcg", "bound", "cma"}
    assert row["cma"]["pct_of_bound"] == pytest.approx(100 * cma["mean"] / vo["optimal_mean"])
    assert row["cma"]["gap_to_bound"] == pytest.approx(-vo["diff_mean"])
    assert row["vcg"]["pct_of_bound"] < 75  # VCG 0.50 against 0.72 (independent profiles)
    md = (tmp_path / "table1.md").read_text()
    assert "| n=3 m=2 | optimal |" in md and "% of bound" in md
    md3 = (tmp_path / "table3.md").read_text()
    assert "bound (first-best)" in md3
    t3 = {r["method"]: r for r in json.loads((tmp_path / "table3.json").read_text())}
    assert t3["cma"]["gap_to_bound"] >= -3 * t3["cma"]["gap_to_bound_se"]  # makespan >= bound


DASK_BUDGET = Budget("small", grid_points=32, grid_profiles=100, iters=150,
                     multistart_points=16, eval_samples=500, n_validation=200)
DASK_KW: dict[str, Any] = {"protocol": DASK_BUDGET, "methods": ["vcg", "grid", "zeroth_order"],
                           "rows": ["2x2", "3x2", "4x2"]}


@pytest.mark.integration
def test_dask_cluster_with_a_killed_worker_gives_identical_results(tmp_path: Path) -> None:
    """Scale-out on a real Dask cluster (LocalCluster on loopback), including a killed worker."""
    distributed = pytest.importorskip("distributed")
    serial = reproduce([1], out=tmp_path / "serial", **DASK_KW)
    killed: list[int] = []
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
        dashboard_address=None,
    ) as cluster, distributed.Client(cluster) as client:
        pids: dict[str, int] = client.run(os.getpid)

        def kill_one(rec: dict[str, Any], cached: bool) -> None:
            if not killed:  # after the first finished cell, kill a worker mid-run
                pid = sorted(pids.values())[0]
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)

        out = reproduce([1], out=tmp_path / "dask", executor=client.get_executor(),
                        on_cell=kill_one, **DASK_KW)
    assert killed, "a worker was killed during the run"
    assert [r["key"] for r in out] == [r["key"] for r in serial]
    assert [_numbers(r["evaluation"]) for r in out] == [
        _numbers(r["evaluation"]) for r in serial
    ]
