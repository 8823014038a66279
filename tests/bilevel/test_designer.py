"""AMADesigner: reproducible fits, the design result, early stopping, weights and boxes."""

from __future__ import annotations

import json

import numpy as np
import pytest

from bilevel import (
    AMADesigner,
    Intermediate,
    make_env,
)


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
