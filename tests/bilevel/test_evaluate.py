"""Tests of evaluation (paired with VCG), Sobol grid candidates, the grid search and AMADesigner.

Known answers: reference §5 (first Sobol candidate is VCG; column-major boosts) and §7 (the
runtests.jl ``weird_boosts`` matrix is the 2nd candidate for gridworld n=2, G=3, gamma=0.9).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.stats import qmc

from bilevel import (
    AMA,
    AMADesigner,
    DesignProblem,
    GridSearch,
    Intermediate,
    evaluate,
    make_env,
    mean_se,
    mechanism_outcomes,
    resolve_objective,
    run_search,
    sobol_candidates,
    vcg,
)
from bilevel._outcomes import exact_inner

# ---------------------------------------------------------------------- Sobol candidates


@pytest.mark.parametrize("n", [2, 3, 5])
def test_first_candidate_is_vcg(n: int) -> None:
    w, b = sobol_candidates(7, n, (5, 4), (-3.0, 3.0), False)
    assert w.shape == (7, n) and b.shape == (7, 5, 4)
    np.testing.assert_array_equal(w, 1.0)
    np.testing.assert_array_equal(b[0], 0.0)
    assert AMA(w[0], b[0]).is_vcg
    # Asymmetric box: the first candidate is the box midpoint.
    _, b2 = sobol_candidates(3, n, (5, 4), (-1.0, 3.0), False)
    np.testing.assert_array_equal(b2[0], 1.0)


@pytest.mark.parametrize("n", [2, 3, 4])
def test_first_candidate_with_weights_is_uniform_simplex(n: int) -> None:
    w, b = sobol_candidates(9, n, (5, 4), (-3.0, 3.0), True)
    np.testing.assert_allclose(w[0], np.full(n, 1.0 / n), rtol=1e-15, atol=0)
    np.testing.assert_allclose(w.sum(axis=1), 1.0, rtol=1e-14, atol=0)
    assert np.all(w > 0)
    np.testing.assert_array_equal(b[0], 0.0)
    assert AMA(w[0], b[0]).is_vcg  # equal weights: VCG up to scaling


# runtests.jl weird_boosts signs, rows in state order (1,1),(2,1),(3,1),(1,2),...,(3,3);
# columns up, down, left, right (reference §7).
WEIRD_SIGNS = np.array(
    [
        [+1, +1, +1, +1],
        [-1, +1, -1, -1],
        [-1, +1, -1, +1],
        [-1, -1, +1, -1],
        [+1, -1, -1, -1],
        [+1, +1, -1, -1],
        [-1, -1, -1, +1],
        [+1, +1, +1, +1],
        [+1, -1, -1, +1],
    ]
)


def test_second_candidate_reproduces_reference_weird_boosts() -> None:
    env = make_env("gridworld", n_agents=2, grid=3, dist="onecell", gamma=0.9)
    assert env.boost_box is not None
    lo, hi = env.boost_box
    np.testing.assert_allclose([lo, hi], [-20.0, 20.0], rtol=1e-14)  # ±n / (1 - gamma)
    w, b = sobol_candidates(2, env.n_agents, env.mdp.shape, env.boost_box, False)
    expected = np.where(WEIRD_SIGNS > 0, 10.000000000000004, -10.000000000000002)
    np.testing.assert_allclose(b[1], expected, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(np.sign(b[1]), WEIRD_SIGNS)
    np.testing.assert_array_equal(w, 1.0)


@pytest.mark.parametrize("shape", [(2, 3), (5, 4), (3, 1)])
def test_boosts_are_column_major(shape: tuple[int, int]) -> None:
    S, A = shape
    n_points = 6
    _, b = sobol_candidates(n_points, 2, shape, (0.0, 1.0), False)
    u = qmc.Sobol(d=S * A, scramble=False).random_base2(3)[1 : n_points + 1]
    for k in range(n_points):
        for s in range(S):
            for a in range(A):
                # The first S coordinates are action 0 for states 0..S-1, etc.
                assert b[k, s, a] == u[k, a * S + s]
    np.testing.assert_array_equal(b, u.reshape(n_points, A, S).transpose(0, 2, 1))


def test_candidates_are_in_the_box_and_distinct() -> None:
    _, b = sobol_candidates(32, 2, (4, 3), (-2.0, 5.0), False)
    assert b.min() >= -2.0 and b.max() <= 5.0
    assert len({bb.tobytes() for bb in b}) == 32


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


# ---------------------------------------------------------------------- AMADesigner


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


def test_grid_search_candidate_zero_is_vcg_on_the_search_profiles() -> None:
    env = make_env("sales", n_agents=3, n_items=2)
    problem = DesignProblem(
        env=env,
        objective=resolve_objective(env, None),
        inner=exact_inner("dp"),
        optimise_weights=False,
        boost_box=env.boost_box,  # type: ignore[arg-type]
    )
    res = run_search(
        GridSearch(n_points=16, n_profiles=200), problem, rng=np.random.default_rng(42)
    )
    # GridSearch.init draws its scoring profiles first from the generator it is given.
    types = env.sample_types(np.random.default_rng(42), 200)
    vcg_score = mechanism_outcomes(env, vcg(env), types).revenue.mean()
    assert res.history[0][1] == pytest.approx(vcg_score, rel=1e-12, abs=1e-12)
    assert res.score >= vcg_score - 1e-12
    # The reported best is the best candidate, re-scored identically.
    best = res.mechanism
    rescored = mechanism_outcomes(env, best, types).revenue.mean()
    assert res.score == pytest.approx(rescored, rel=1e-12, abs=1e-12)


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


def test_scheduling_grid_search_minimises_makespan() -> None:
    env = make_env("scheduling", n_agents=2, n_tasks=4, dist="uniform", makespan="reference")
    d = AMADesigner(
        objective="makespan", n_points=32, n_profiles=150, eval_samples=300, seed=1
    ).fit(env)
    res = d.result_
    vcg_score = d.history_[0][1]
    assert res.search.score <= vcg_score
    assert res.search.score == min(s for _, s in d.history_)
    ev = d.evaluation_
    assert ev is not None and ev.objective == "makespan" and not ev.maximize
    assert ev.baseline_mean is not None and ev.baseline_mean > 0
    assert d.mechanism_.meta["objective"] == "makespan"


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
