"""Local worker processes exit with the command that started them (bilevel/_workers.py)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bilevel._workers import process_pool

ROOT = Path(__file__).resolve().parents[2]

_PARENT = """
import os, sys, time
from bilevel._workers import process_pool
pool = process_pool(1)
print(pool.submit(os.getpid).result(), flush=True)
pool.submit(time.sleep, 120)  # a long task, as a cell of a --full run
time.sleep(120)
"""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie still answers kill(0); it no longer runs
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.integration
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="uses /proc")
def test_worker_exits_when_its_parent_is_killed() -> None:
    parent = subprocess.Popen([sys.executable, "-c", _PARENT], cwd=ROOT, stdout=subprocess.PIPE,
                              text=True)
    try:
        assert parent.stdout is not None
        worker = int(parent.stdout.readline())
        assert _alive(worker)
        parent.send_signal(signal.SIGKILL)
        parent.wait(timeout=10)
        deadline = time.monotonic() + 15
        while _alive(worker) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _alive(worker), "the worker outlived its killed parent"
    finally:
        parent.kill()
        parent.wait(timeout=10)
        if parent.stdout is not None:
            parent.stdout.close()


def test_pool_runs_tasks_and_shuts_down_normally() -> None:
    with process_pool(2) as pool:
        assert sorted(pool.map(abs, [-3, 1, -2])) == [1, 2, 3]


@pytest.mark.parametrize("bad, err", [(0, ValueError), (-1, ValueError), (1.5, TypeError),
                                      (True, TypeError)])
def test_bad_worker_counts(bad: object, err: type[Exception]) -> None:
    with pytest.raises(err, match="workers"):
        process_pool(bad)  # type: ignore[arg-type]


def test_a_lambda_environment_reaches_no_worker_but_says_the_fix() -> None:
    import pickle

    import numpy as np

    from bilevel import AMADesigner, make_env
    from bilevel.models import custom_env

    recipe = make_env("tests.models.factories:auction", n_agents=2)
    lam = custom_env(recipe.mdp, n_agents=2, type_shape=(2,), reward_fn=recipe.reward_fn,
                     sampler=lambda rng, k: rng.uniform(size=(k, 2)), boost_box=(0.0, 1.0))
    kw: dict[str, object] = {"method": "grid", "n_points": 32, "n_profiles": 50,
                             "eval_samples": 100, "seed": 0}
    with process_pool(2) as pool:
        with pytest.raises(pickle.PicklingError, match=r"package\.module:function"):
            AMADesigner(**kw, executor=pool).fit(lam)  # type: ignore[arg-type]
        # the same environment as a factory recipe: the workers rebuild it, same result
        two = AMADesigner(**kw, executor=pool).fit(recipe).mechanism_  # type: ignore[arg-type]
    one = AMADesigner(**kw).fit(recipe).mechanism_  # type: ignore[arg-type]
    assert np.array_equal(one.boosts, two.boosts) and np.array_equal(one.weights, two.weights)
