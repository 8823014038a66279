"""Sobol grid candidates and the grid search.

Known answers, from the grid search of Curry et al. (2024), §5, as the authors' code runs it
(grid_search.jl, runtests.jl): the first Sobol candidate is VCG, boosts are filled column-major,
and runtests.jl's ``weird_boosts`` matrix is the 2nd candidate for gridworld n=2, G=3,
gamma=0.9.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import qmc

from bilevel import (
    AMA,
    AMADesigner,
    DesignProblem,
    GridSearch,
    make_env,
    mechanism_outcomes,
    resolve_objective,
    run_search,
    sobol_candidates,
    vcg,
)
from bilevel._outcomes import exact_inner


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
# columns up, down, left, right (the authors' code).
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
