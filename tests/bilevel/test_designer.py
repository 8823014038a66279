"""AMADesigner: reproducible fits, the design result, early stopping, weights and boxes; trials
and executors (best-of-trials selection, worker-independent results); the gradient methods
beat VCG; bad parameters."""

from __future__ import annotations

import json
import multiprocessing
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import numpy as np
import pytest

from bilevel import AMADesigner, Intermediate, make_env


@pytest.fixture(scope="module")
def sales_fit() -> tuple[AMADesigner, AMADesigner]:
    env = make_env("sales", n_agents=3, n_items=2)
    kw = dict(n_points=64, n_profiles=300, eval_samples=2000, seed=0)
    return AMADesigner(**kw).fit(env), AMADesigner(**kw).fit(env)  # type: ignore[arg-type]


def test_designer_is_reproducible(sales_fit: tuple[AMADesigner, AMADesigner]) -> None:
    a, b = sales_fit
    np.testing.assert_array_equal(a.mechanism_.weights, b.mechanism_.weights)
    np.testing.assert_array_equal(a.mechanism_.boosts, b.mechanism_.boosts)
    assert a.history_ == b.history_
    assert a.evaluation_ is not None and b.evaluation_ is not None
    assert a.evaluation_.mean == b.evaluation_.mean
    assert a.mechanism_.meta["sobol_index"] == b.mechanism_.meta["sobol_index"]


def test_designer_result(sales_fit: tuple[AMADesigner, AMADesigner]) -> None:
    d, _ = sales_fit
    res = d.result_
    assert res.success and res.method == "grid"
    assert res.mechanism is d.mechanism_
    assert len(d.history_) == 64
    assert [i for i, _ in d.history_] == list(range(64))
    ev = res.evaluation
    assert ev is d.evaluation_ and ev is not None
    assert ev.baseline == "vcg" and ev.n_samples == 2000
    assert ev.diff_mean is not None and ev.diff_se is not None and ev.diff_se > 0
    assert ev.baseline_mean is not None
    assert ev.diff_mean == pytest.approx(ev.mean - ev.baseline_mean, abs=1e-12)
    # The search score beats (or ties) VCG, candidate 0, on the same profiles.
    assert res.search.score >= d.history_[0][1]
    assert res.search.score == max(s for _, s in d.history_)
    d.mechanism_.check_compatible(make_env("sales", n_agents=3, n_items=2))
    assert d.mechanism_.meta["search_score"] == res.search.score
    json.dumps(d.mechanism_.to_dict())


def test_callback_stop_iteration_stops_early() -> None:
    env = make_env("sales", n_agents=3, n_items=2)
    seen: list[Intermediate] = []

    def cb(info: Intermediate) -> None:
        seen.append(info)
        if info.nit >= 2:
            raise StopIteration

    d = AMADesigner(
        n_points=40, n_profiles=50, eval_samples=0, batch_candidates=8, callback=cb
    ).fit(env)
    res = d.result_
    assert res.search.nit == 2 and len(seen) == 2
    assert "callback" in res.message.lower()
    assert res.success
    assert len(d.history_) == 16
    assert d.evaluation_ is None and res.evaluation is None
    assert seen[-1].best_score == res.search.score


def test_max_steps() -> None:
    env = make_env("sales", n_agents=3, n_items=2)
    d = AMADesigner(
        n_points=40, n_profiles=50, eval_samples=0, batch_candidates=8, max_steps=3
    ).fit(env)
    assert d.result_.search.nit == 3
    assert "max_steps" in d.result_.message
    assert len(d.history_) == 24
    full = AMADesigner(n_points=40, n_profiles=50, eval_samples=0, batch_candidates=8).fit(env)
    assert full.result_.search.nit == 5
    assert "finished" in full.result_.message
    assert len(full.history_) == 40


def test_designer_weights_on_simplex_for_asymmetric() -> None:
    env = make_env("sales", n_agents=3, n_items=2, dist="asymmetric")
    assert env.optimise_weights
    d = AMADesigner(n_points=16, n_profiles=60, eval_samples=0).fit(env)
    np.testing.assert_allclose(d.mechanism_.weights.sum(), 1.0, rtol=1e-14)


def test_designer_get_params_and_repr() -> None:
    d = AMADesigner(n_points=5, seed=3)
    p = d.get_params()
    assert p["n_points"] == 5 and p["seed"] == 3 and p["method"] == "grid"
    assert "n_points=5" in repr(d)


def test_designer_needs_box_for_matching() -> None:
    env = make_env("matching", n_agents=2, rounds=2)
    with pytest.raises(ValueError, match=r"no default boost box"):
        AMADesigner(n_points=4, n_profiles=10, eval_samples=0).fit(env)
    d = AMADesigner(n_points=4, n_profiles=10, eval_samples=0, boost_box=(-1.0, 1.0)).fit(env)
    assert d.mechanism_.boosts.shape == env.mdp.shape


# ---------------------------------------------------------------------- trials and executors

ENV = make_env("sales", n_agents=3, n_items=2)
KW = dict(method="zeroth_order", steps=20, n_profiles=5, n_perturbations=4, n_validation=200,
          eval_every=5, eval_samples=0, seed=11)


@pytest.fixture(scope="module")
def pool() -> Iterator[ProcessPoolExecutor]:
    with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")) as p:
        yield p


def test_trials_keep_the_best_held_out_run_and_the_first_is_the_single_run() -> None:
    single = AMADesigner(**KW).fit(ENV)  # type: ignore[arg-type]
    multi = AMADesigner(**KW, n_trials=3).fit(ENV)  # type: ignore[arg-type]
    stats = multi.result_.search.stats
    scores = stats["trial_scores"]
    assert len(scores) == 3
    assert scores[0] == single.result_.search.score
    assert stats["selected_trial"] == int(np.argmax(scores))
    assert multi.result_.search.score == max(scores)
    assert len({round(s, 12) for s in scores}) > 1  # trials start from different points


def test_trials_on_an_executor_match_the_sequential_run(pool: ProcessPoolExecutor) -> None:
    seq = AMADesigner(**KW, n_trials=3).fit(ENV)  # type: ignore[arg-type]
    par = AMADesigner(**KW, n_trials=3, executor=pool).fit(ENV)  # type: ignore[arg-type]
    assert par.result_.search.stats["trial_scores"] == seq.result_.search.stats["trial_scores"]
    np.testing.assert_array_equal(par.mechanism_.boosts, seq.mechanism_.boosts)


def test_grid_chunks_on_an_executor_match_the_sequential_search(
    pool: ProcessPoolExecutor,
) -> None:
    kw = dict(method="grid", n_points=48, n_profiles=40, batch_candidates=5, eval_samples=0,
              seed=2)
    seq = AMADesigner(**kw).fit(ENV)  # type: ignore[arg-type]
    par = AMADesigner(**kw, executor=pool).fit(ENV)  # type: ignore[arg-type]
    assert [s for _, s in par.history_] == [s for _, s in seq.history_]
    np.testing.assert_array_equal(par.mechanism_.boosts, seq.mechanism_.boosts)
    assert par.result_.search.nit < seq.result_.search.nit  # 8 chunks per step in parallel


def test_bad_trial_and_executor_arguments() -> None:
    with pytest.raises(ValueError, match="n_trials"):
        AMADesigner(method="first_order", n_trials=0).fit(ENV)
    with pytest.raises(ValueError,
                       match="expected n_validation as an int >= 1 to choose between n_trials"):
        AMADesigner(method="first_order", n_trials=2, n_validation=0).fit(ENV)
    with pytest.raises(TypeError, match="Executor"):
        AMADesigner(executor=object()).fit(ENV)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="expected a parameter among"):
        AMADesigner().set_params(n_trails=3)


# ---------------------------------------------------------------------- gradient methods


@pytest.mark.parametrize("method", ["first_order", "zeroth_order", "multistart"])
def test_designer_gradient_methods_improve_on_vcg(method: str) -> None:
    env = make_env("sales", n_agents=3, n_items=2)
    extra: dict[str, Any] = {"n_points": 256} if method == "multistart" else {}
    d = AMADesigner(method=method, steps=100, n_validation=500, eval_every=20,
                    eval_samples=3000, seed=1, n_starts=2, **extra).fit(env)
    ev = d.evaluation_
    assert ev is not None and ev.diff_mean is not None and ev.diff_se is not None
    # VCG revenue is 0.5; every method must beat it clearly on fresh profiles
    assert ev.diff_mean > 4 * ev.diff_se, (method, ev.diff_mean, ev.diff_se)
    assert np.all(d.mechanism_.weights > 0)


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"method": "first_order", "alpha": -1.0}, "expected alpha as"),
        ({"method": "first_order", "learning_rate": 0.0}, "expected learning_rate as"),
        ({"method": "multistart", "refine": "grid"}, "expected refine as"),
        ({"method": "zeroth_order", "steps": 0}, "expected steps as"),
    ],
)
def test_bad_designer_parameters(kwargs: dict[str, object], fragment: str) -> None:
    env = make_env("sales", n_agents=2, n_items=2)
    with pytest.raises(ValueError, match=fragment):
        AMADesigner(**kwargs).fit(env)  # type: ignore[arg-type]
