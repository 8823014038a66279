"""Scale-out on a real Dask cluster (LocalCluster on loopback), including a killed worker."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import pytest

from bilevel.reproduce._budget import Budget
from bilevel.reproduce._run import reproduce

distributed = pytest.importorskip("distributed")

pytestmark = pytest.mark.integration

SMALL = Budget("small", grid_points=32, grid_profiles=100, iters=150, multistart_points=16,
                 eval_samples=500, n_validation=200)
KW: dict[str, Any] = {"protocol": SMALL, "methods": ["vcg", "grid", "zeroth_order"],
                      "rows": ["2x2", "3x2", "4x2"]}


def _numbers(ev: dict[str, object]) -> dict[str, object]:
    return {k: v for k, v in ev.items() if k != "runtime"}


def test_dask_cluster_with_a_killed_worker_gives_identical_results(tmp_path: Path) -> None:
    serial = reproduce([1], out=tmp_path / "serial", **KW)
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
                        on_cell=kill_one, **KW)
    assert killed, "a worker was killed during the run"
    assert [r["key"] for r in out] == [r["key"] for r in serial]
    assert [_numbers(r["evaluation"]) for r in out] == [
        _numbers(r["evaluation"]) for r in serial
    ]
