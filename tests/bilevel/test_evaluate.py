"""Evaluation of a mechanism paired with VCG on the same profiles: differences, seeds, JSON."""

from __future__ import annotations

import json

import numpy as np
import pytest

from bilevel import (
    AMA,
    evaluate,
    make_env,
    mean_se,
    mechanism_outcomes,
    vcg,
)

# ---------------------------------------------------------------------- evaluate


def test_evaluate_paired_difference_and_reproducibility() -> None:
    env = make_env("sales", n_agents=3, n_items=2)
    rng = np.random.default_rng(0)
    mech = AMA(np.ones(3), rng.normal(0, 0.3, size=env.mdp.shape))
    a = evaluate(env, mech, n_samples=600, seed=5, batch_size=250)
    b = evaluate(env, mech, n_samples=600, seed=5, batch_size=600)
    for ev in (a, b):
        assert ev.baseline == "vcg" and ev.n_samples == 600 and ev.seed == 5
        assert ev.diff_mean is not None and ev.baseline_mean is not None
        assert ev.diff_mean == pytest.approx(ev.mean - ev.baseline_mean, abs=1e-12)
        assert ev.diff_se is not None and ev.diff_se > 0
        assert ev.improvement_pct == pytest.approx(
            100 * ev.diff_mean / abs(ev.baseline_mean), rel=1e-12
        )
    # Batching does not change the profiles (one stream) nor the estimates.
    assert a.mean == pytest.approx(b.mean, abs=1e-12)
    assert a.baseline_mean == pytest.approx(b.baseline_mean, abs=1e-12)
    # Independent recomputation on the same profiles.
    types = env.sample_types(np.random.default_rng(5), 600)
    rev = mechanism_outcomes(env, mech, types).revenue[0]
    rev_vcg = mechanism_outcomes(env, vcg(env), types).revenue[0]
    assert a.mean == pytest.approx(rev.mean(), abs=1e-12)
    assert a.se == pytest.approx(mean_se(rev).se, abs=1e-12)
    assert a.diff_se == pytest.approx(mean_se(rev - rev_vcg).se, abs=1e-12)


def test_evaluate_vcg_against_itself_has_zero_difference() -> None:
    env = make_env("gridworld", n_agents=2, grid=3)
    ev = evaluate(env, vcg(env), n_samples=200, seed=1)
    assert ev.diff_mean == 0.0 and ev.diff_se == 0.0
    assert not ev.significant
    assert ev.min_utility >= -1e-9


def test_evaluation_to_dict_is_json_serialisable() -> None:
    env = make_env("sales", n_agents=3, n_items=2)
    for baseline in ("vcg", None):
        ev = evaluate(env, vcg(env), n_samples=50, seed=2, baseline=baseline)
        d = ev.to_dict()
        back = json.loads(json.dumps(d, allow_nan=False))
        assert back["objective"] == "revenue"
        assert back["n_samples"] == 50
        assert back["mean"] == pytest.approx(ev.mean, rel=1e-15)
        if baseline is None:
            assert back["baseline"] is None and back["diff_mean"] is None
    # A single sample has an undefined standard error; it is exported as null, not NaN.
    d = evaluate(env, vcg(env), n_samples=1, seed=2).to_dict()
    assert d["se"] is None
    json.dumps(d, allow_nan=False)


def test_evaluate_seeds() -> None:
    env = make_env("sales", n_agents=3, n_items=2)
    a = evaluate(env, vcg(env), n_samples=100, seed=1, baseline=None)
    b = evaluate(env, vcg(env), n_samples=100, seed=1, baseline=None)
    c = evaluate(env, vcg(env), n_samples=100, seed=2, baseline=None)
    assert a.mean == b.mean and a.mean != c.mean
    g = evaluate(env, vcg(env), n_samples=100, seed=np.random.default_rng(1), baseline=None)
    assert g.mean == a.mean and g.seed is None


def test_zero_vcg_baseline_reports_no_relative_improvement() -> None:
    env = make_env("sales", n_agents=2, n_items=2)  # VCG revenue is 0 when n <= m
    b = np.zeros(env.mdp.shape)
    b[:, 0] = 0.4  # a reserve-like boost on "skip"
    ev = evaluate(env, AMA(np.ones(2), b), n_samples=500, seed=0)
    assert ev.baseline_mean is not None and abs(ev.baseline_mean) < 1e-9
    assert ev.improvement_pct is None
    assert ev.diff_mean is not None and ev.diff_mean > 0 and ev.significant
