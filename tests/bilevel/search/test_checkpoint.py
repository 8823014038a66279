"""Resumable searches: periodic checkpoints, SIGKILL mid-design, identical results."""

from __future__ import annotations

import json
import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bilevel import AMADesigner, ResultStore, make_env
from bilevel._designer import _SLOTS_FORMAT
from bilevel.search import (
    DesignProblem,
    FileCheckpoint,
    FirstOrder,
    GridSearch,
    Intermediate,
    MultiStart,
    Searcher,
    StoreCheckpoint,
    ZerothOrder,
    run_search,
)
from bilevel.search._serialize import dumps

ENV = make_env("sales", n_agents=3, n_items=2)


def _problem() -> DesignProblem:
    return AMADesigner(method="grid")._validate(ENV)


SEARCHERS: dict[str, Searcher[Any]] = {
    "grid": GridSearch(n_points=40, n_profiles=30, batch_candidates=4),
    "first_order": FirstOrder(iters=8, n_profiles=4),
    "zeroth_order": ZerothOrder(iters=12, n_profiles=5, n_perturbations=4),
    "multistart": MultiStart(
        grid=GridSearch(n_points=16, n_profiles=20, batch_candidates=4),
        refine=(ZerothOrder(iters=6, n_profiles=4, n_perturbations=3),
                FirstOrder(iters=6, n_profiles=4)),
        n_starts=2, n_select=50, validate_every=3,
    ),
}


@pytest.mark.parametrize("name", sorted(SEARCHERS))
def test_stopped_search_resumes_to_the_uninterrupted_result(name: str, tmp_path: Path) -> None:
    problem = _problem()
    searcher = SEARCHERS[name]
    full = run_search(searcher, problem, rng=np.random.default_rng(3))
    ck = FileCheckpoint(tmp_path / "ck.pickle")
    part = run_search(searcher, problem, rng=np.random.default_rng(3), max_steps=3,
                      checkpoint=ck, checkpoint_every=0.0)
    assert part.nit == 3 and ck.load() is not None
    # A different generator proves that the state comes from the checkpoint.
    resumed = run_search(searcher, problem, rng=np.random.default_rng(99),
                         checkpoint=ck, checkpoint_every=0.0)
    assert resumed.stats["resumed_at_step"] == 3
    assert resumed.nit == full.nit
    np.testing.assert_array_equal(resumed.mechanism.boosts, full.mechanism.boosts)
    np.testing.assert_array_equal(resumed.mechanism.weights, full.mechanism.weights)
    assert resumed.score == full.score
    assert resumed.history == full.history


def test_validated_search_resumes_on_the_same_schedule(tmp_path: Path) -> None:
    problem = _problem()
    types = ENV.sample_types(np.random.default_rng(5), 60)
    from bilevel._designer import HeldOutScore

    val = HeldOutScore(problem, types)
    s = FirstOrder(iters=10, n_profiles=4)
    kw: dict[str, Any] = {"validate": val, "validate_every": 4}
    full = run_search(s, problem, rng=np.random.default_rng(1), **kw)
    ck = FileCheckpoint(tmp_path / "ck")
    run_search(s, problem, rng=np.random.default_rng(1), max_steps=5, checkpoint=ck,
               checkpoint_every=0.0, **kw)
    resumed = run_search(s, problem, rng=np.random.default_rng(1), checkpoint=ck, **kw)
    assert resumed.stats["validation"] == full.stats["validation"]
    assert resumed.stats["selected_step"] == full.stats["selected_step"]
    np.testing.assert_array_equal(resumed.mechanism.boosts, full.mechanism.boosts)


def test_checkpoint_of_another_format_is_refused(tmp_path: Path) -> None:
    ck = FileCheckpoint(tmp_path / "ck")
    ck.save(dumps({"format": -1}))
    with pytest.raises(ValueError, match="expected a search checkpoint of format 2"):
        run_search(SEARCHERS["grid"], _problem(), rng=np.random.default_rng(0),
                   checkpoint=ck)
    ck.save(dumps({"format": 1, "state": None}))
    with pytest.raises(ValueError, match=r"older version.*delete it to start over"):
        run_search(SEARCHERS["grid"], _problem(), rng=np.random.default_rng(0),
                   checkpoint=ck)


def test_old_pickled_checkpoint_is_refused_not_loaded(tmp_path: Path) -> None:
    # What format 1 wrote: a pickle of the driver's snapshot (here with a harmless payload).
    ck = FileCheckpoint(tmp_path / "ck")
    ck.save(pickle.dumps({"format": 1, "state": None, "nit": 0, "best_val": None,
                          "val_history": [], "elapsed": 0.0}))
    with pytest.raises(ValueError, match=r"older version of bilevel.*delete it to start over"):
        run_search(SEARCHERS["grid"], _problem(), rng=np.random.default_rng(0),
                   checkpoint=ck)


class _Plant:
    """A pickle payload that creates ``marker`` when unpickled (no shell involved)."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return (open, (self.marker, "w"))


def _small_design(path: Path, **kw: object) -> AMADesigner:
    return AMADesigner(**{"method": "zeroth_order", "steps": 4, "n_profiles": 3,
                          "n_perturbations": 2, "n_validation": 20, "eval_every": 2,
                          "eval_samples": 0, "seed": 7, "checkpoint": path,
                          "checkpoint_every": 0.0, **kw})  # type: ignore[arg-type]


@pytest.mark.parametrize("n_trials", [1, 2])
@pytest.mark.parametrize("layout", ["table", "trial"])
def test_planted_pickle_checkpoint_never_runs(n_trials: int, layout: str, tmp_path: Path) -> None:
    """A pickle planted where ``bilevel design --out DIR`` looks is refused, never executed."""
    marker = tmp_path / "pwned"
    store_path = tmp_path / "out" / "store.sqlite"
    design = _small_design(store_path, n_trials=n_trials)
    payload = pickle.dumps(_Plant(marker))
    assert not marker.exists()
    if layout == "table":  # the whole shared record is the payload (as the old code read it)
        planted = payload
    else:  # a well-formed trial table whose trial checkpoint is the payload
        trials = {t: payload for t in range(n_trials)}
        planted = dumps({"format": _SLOTS_FORMAT, "trials": trials})
    ResultStore(store_path).put_blob(design.checkpoint_key(ENV), planted)
    with pytest.raises(ValueError, match=r"pickle.*never loaded.*delete it to start over") as e:
        design.fit(ENV)
    assert "\n" not in str(e.value)
    assert not marker.exists()
    # the old code would have run it: the same bytes, unpickled, create the marker
    pickle.loads(payload).close()
    assert marker.exists()


@pytest.mark.parametrize("n_trials", [1, 2])
def test_garbage_and_truncated_store_checkpoints_are_refused(n_trials: int, tmp_path: Path) -> None:
    store_path = tmp_path / "store.sqlite"
    design = _small_design(store_path, n_trials=n_trials, steps=2)
    key = design.checkpoint_key(ENV)
    design.fit(ENV)
    good = ResultStore(store_path).get_blob(key)
    assert good is not None and good.startswith(b"PK")
    for bad in (b"", b"not a checkpoint", good[: len(good) // 2], good[:-30], b"PK\x03\x04junk"):
        ResultStore(store_path).put_blob(key, bad)
        with pytest.raises(ValueError, match="delete it to start over"):
            _small_design(store_path, n_trials=n_trials, steps=2).fit(ENV)
    # a readable table of another kind
    ResultStore(store_path).put_blob(key, dumps({"format": "other", "trials": {0: b"x"}}))
    with pytest.raises(ValueError, match="expected a table of format"):
        _small_design(store_path, n_trials=n_trials, steps=2).fit(ENV)
    # the good record still resumes (replays the finished search)
    ResultStore(store_path).put_blob(key, good)
    again = _small_design(store_path, n_trials=n_trials, steps=2).fit(ENV)
    assert again.result_.search.stats["resumed_at_step"] == 2


@pytest.mark.parametrize("n_trials", [1, 2])
def test_killed_multi_trial_design_resumes_identically(n_trials: int, tmp_path: Path) -> None:
    ref = _small_design(tmp_path / "ref.sqlite", n_trials=n_trials, steps=6).fit(ENV)
    path = tmp_path / "run.sqlite"

    def stop(info: Intermediate) -> None:
        if info.nit >= 3:
            raise StopIteration

    stopped = _small_design(path, n_trials=n_trials, steps=6, callback=stop).fit(ENV)
    assert stopped.result_.search.nit == 3 * n_trials
    # the callback is not part of the key: the same checkpoint, resumed trial by trial
    d = _small_design(path, n_trials=n_trials, steps=6)
    assert d.checkpoint_key(ENV) == stopped.checkpoint_key(ENV)
    resumed = d.fit(ENV)
    assert resumed.result_.search.stats["resumed_at_step"] == 3
    np.testing.assert_array_equal(resumed.mechanism_.boosts, ref.mechanism_.boosts)
    assert resumed.result_.search.score == ref.result_.search.score


def test_store_checkpoint_is_keyed_by_the_design(tmp_path: Path) -> None:
    path = tmp_path / "store.sqlite"
    a = AMADesigner(method="grid", n_points=8, n_profiles=20, eval_samples=0, seed=1,
                    checkpoint=path)
    b = AMADesigner(method="grid", n_points=8, n_profiles=20, eval_samples=0, seed=2,
                    checkpoint=path)
    assert a.checkpoint_key(ENV) != b.checkpoint_key(ENV)
    a.fit(ENV)
    assert ResultStore(path).get_blob(a.checkpoint_key(ENV)) is not None
    assert ResultStore(path).get_blob(b.checkpoint_key(ENV)) is None
    # A finished fit replays its search from the checkpoint.
    again = AMADesigner(**{**a.get_params()}).fit(ENV)
    assert again.result_.search.stats["resumed_at_step"] == a.result_.search.nit
    np.testing.assert_array_equal(again.mechanism_.boosts, a.mechanism_.boosts)


def test_bad_checkpoint_arguments() -> None:
    with pytest.raises(TypeError, match="checkpoint"):
        AMADesigner(checkpoint=3).fit(ENV)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="checkpoint_every"):
        AMADesigner(checkpoint_every=-1.0).fit(ENV)
    with pytest.raises(ValueError, match="non-empty string key"):
        StoreCheckpoint(":memory:", "")


_SCRIPT = """
import json, sys, time
from bilevel import AMADesigner, make_env
slow = sys.argv[2] == "slow"
def cb(info):
    if slow:
        time.sleep(0.05)
env = make_env("sales", n_agents=3, n_items=2)
d = AMADesigner(method="zeroth_order", steps=60, n_profiles=5, n_perturbations=4,
                n_validation=100, eval_every=10, eval_samples=300, seed=4,
                checkpoint=sys.argv[1], checkpoint_every=0.0, callback=cb).fit(env)
print(json.dumps({"boosts": d.mechanism_.boosts.tolist(), "mean": d.evaluation_.mean,
                  "resumed": d.result_.search.stats.get("resumed_at_step", 0)}))
"""


def _run(store: Path, mode: str) -> dict[str, object]:
    out = subprocess.run([sys.executable, "-c", _SCRIPT, str(store), mode], check=True,
                         capture_output=True, text=True, timeout=300)
    result: dict[str, object] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


@pytest.mark.integration
def test_sigkilled_design_resumes_mid_search_with_identical_results(tmp_path: Path) -> None:
    reference = _run(tmp_path / "ref.sqlite", "fast")
    store = tmp_path / "killed.sqlite"
    proc = subprocess.Popen([sys.executable, "-c", _SCRIPT, str(store), "slow"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 120
        while time.time() < deadline:
            if store.exists():
                try:
                    if any(True for _ in ResultStore(store).items("")) or _has_blob(store):
                        break
                except Exception:
                    pass
            time.sleep(0.1)
        time.sleep(1.0)  # let it advance past the first saves
        assert proc.poll() is None, "the design finished before it could be killed"
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    resumed = _run(store, "fast")
    assert int(resumed["resumed"]) > 0  # type: ignore[call-overload]
    assert resumed["boosts"] == reference["boosts"]
    assert resumed["mean"] == reference["mean"]


def _has_blob(store: Path) -> bool:
    import sqlite3

    con = sqlite3.connect(store)
    try:
        return bool(con.execute("SELECT COUNT(*) FROM blobs").fetchone()[0] > 0)
    finally:
        con.close()
