"""CMA-ES over tied boosts: the evolution strategy, the tyings, the searcher and the designer."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from bilevel import AMA, AMADesigner, make_env, optimal_mechanism
from bilevel.models.typing import FloatArray
from bilevel.search import CMAES, run_search, score_on_profiles
from bilevel.search._cma import (
    EvolutionState,
    _zero_mean_basis,
    evolution_ask,
    evolution_start,
    evolution_tell,
)


def _minimise(f: Callable[[FloatArray], float], x0: FloatArray, sigma: float, gens: int,
              seed: int = 0) -> EvolutionState:
    rng = np.random.default_rng(seed)
    es = evolution_start(np.asarray(x0, dtype=float), sigma)
    for _ in range(gens):
        X = evolution_ask(es, rng)
        es = evolution_tell(es, X, np.array([f(x) for x in X]))
    return es


def test_evolution_strategy_solves_sphere_ellipsoid_and_rosenbrock() -> None:
    es = _minimise(lambda x: float(x @ x), np.full(5, 3.0), 1.0, 200)
    assert np.abs(es.mean).max() < 1e-6
    # a rotated, ill-conditioned ellipsoid (condition 1e4) needs the covariance adaptation
    rng = np.random.default_rng(3)
    Q, _ = np.linalg.qr(rng.standard_normal((4, 4)))
    D = np.diag(10.0 ** np.linspace(0, 4, 4))
    H = Q @ D @ Q.T
    es = _minimise(lambda x: float((x - 1) @ H @ (x - 1)), np.zeros(4), 0.5, 400)
    assert np.abs(es.mean - 1).max() < 1e-5
    ev = np.linalg.eigvalsh(es.C)
    assert ev.max() / ev.min() > 100  # the learned covariance follows the ellipsoid

    def rosen(x: np.ndarray) -> float:
        return float(100 * (x[1] - x[0] ** 2) ** 2 + (1 - x[0]) ** 2)

    es = _minimise(rosen, np.array([-1.2, 1.0]), 0.5, 400)
    assert np.abs(es.mean - 1).max() < 1e-5


def test_evolution_strategy_is_deterministic_per_seed() -> None:
    a = _minimise(lambda x: float(np.abs(x).sum()), np.ones(3), 0.3, 20, seed=4)
    b = _minimise(lambda x: float(np.abs(x).sum()), np.ones(3), 0.3, 20, seed=4)
    c = _minimise(lambda x: float(np.abs(x).sum()), np.ones(3), 0.3, 20, seed=5)
    assert np.array_equal(a.mean, b.mean) and np.array_equal(a.C, b.C)
    assert not np.array_equal(a.mean, c.mean)


def test_zero_mean_basis_is_orthonormal() -> None:
    for n in (1, 2, 5):
        H = _zero_mean_basis(n)
        assert H.shape == (n, n - 1)
        np.testing.assert_allclose(H.T @ H, np.eye(n - 1), atol=1e-12)
        np.testing.assert_allclose(H.sum(axis=0), 0.0, atol=1e-12)


@pytest.mark.parametrize("dist", ["uniform", "asymmetric"])
def test_cma_reaches_myerson_on_a_single_item(dist: str) -> None:
    """One item, three bidders: the search finds the optimal auction from VCG, by search."""
    env = make_env("sales", n_agents=3, n_items=1, dist=dist)
    designer = AMADesigner(method="cma", n_evals=120, n_scan=64, n_profiles=2000,
                           n_validation=500, eval_samples=0, seed=0).fit(env)
    opt = optimal_mechanism(env)
    problem = designer._validate(env)
    fresh = env.sample_types(np.random.default_rng(11), 20_000)
    ours, best, vcg_ = score_on_profiles(
        problem, [designer.mechanism_, opt, AMA(np.ones(3), np.zeros(env.mdp.shape))], fresh)
    assert ours > vcg_ + 0.02  # well above VCG ...
    assert ours > best - 0.006  # ... and within 0.6 % of the optimum's scale (se ≈ 0.003)
    assert ours <= best + 1e-3  # never above the optimum (same profiles)


def test_cma_search_is_deterministic_and_resumes(tmp_path: Path) -> None:
    env = make_env("sales", n_agents=2, n_items=2, dist="asymmetric")
    problem = AMADesigner(method="cma")._validate(env)
    searcher = CMAES(evals=(40, 40), n_scan=32, n_profiles=300)
    a = run_search(searcher, problem, rng=np.random.default_rng(3))
    b = run_search(searcher, problem, rng=np.random.default_rng(3))
    assert a.score == b.score and a.history == b.history
    np.testing.assert_array_equal(a.mechanism.boosts, b.mechanism.boosts)
    assert a.nit == searcher.total_steps(problem)
    from bilevel.search import FileCheckpoint

    ck = FileCheckpoint(tmp_path / "ck.bin")
    part = run_search(searcher, problem, rng=np.random.default_rng(3), max_steps=3,
                      checkpoint=ck, checkpoint_every=0)
    assert part.nit == 3
    rest = run_search(searcher, problem, rng=np.random.default_rng(3), checkpoint=ck)
    assert rest.score == a.score and rest.history == a.history
    np.testing.assert_array_equal(rest.mechanism.weights, a.mechanism.weights)


def test_cma_weights_keep_zero_mean_log() -> None:
    env = make_env("sales", n_agents=3, n_items=2, dist="asymmetric")
    d = AMADesigner(method="cma", n_evals=30, n_scan=16, n_profiles=200, n_validation=0,
                    eval_samples=0).fit(env)
    lw = np.log(d.mechanism_.weights)
    assert abs(lw.mean()) < 1e-12
    assert not np.allclose(lw, 0.0)  # weights were searched


def test_cma_designer_evaluates_and_records() -> None:
    env = make_env("sales", n_agents=2, n_items=1)
    d = AMADesigner(method="cma", n_evals=24, n_scan=16, n_profiles=200, n_validation=200,
                    eval_samples=500, seed=1).fit(env)
    assert d.mechanism_.name == "ama-cma"
    assert d.evaluation_ is not None and d.evaluation_.n_samples == 500
    assert d.result_.search.stats["selected_step"] >= 0
    again = AMADesigner(method="cma", n_evals=24, n_scan=16, n_profiles=200, n_validation=200,
                        eval_samples=500, seed=1).fit(env)
    np.testing.assert_array_equal(again.mechanism_.boosts, d.mechanism_.boosts)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"tyings": ("action", "per_state")}, "expected every tying"),
        ({"tyings": ()}, "non-empty tuple"),
        ({"n_evals": 0}, "evals"),
        ({"n_evals": (10, 10, 10)}, "one evals budget per tying"),
        ({"sigma0": -1.0}, "sigma0"),
        ({"n_scan": -3}, "n_scan"),
    ],
)
def test_cma_bad_input(kwargs: dict[str, object], match: str) -> None:
    env = make_env("sales", n_agents=2, n_items=1)
    with pytest.raises(ValueError, match=match):
        AMADesigner(method="cma", eval_samples=0, **kwargs).fit(env)  # type: ignore[arg-type]


def test_cma_evaluation_beats_vcg_on_a_small_sale() -> None:
    env = make_env("sales", n_agents=3, n_items=2)
    d = AMADesigner(method="cma", n_evals=60, n_scan=64, n_profiles=1000, n_validation=500,
                    eval_samples=4000).fit(env)
    ev = d.evaluation_
    assert ev is not None and ev.diff_mean is not None and ev.diff_se is not None
    assert ev.diff_mean > 5 * ev.diff_se
    assert ev.bound_kind == "optimal" and ev.gap_mean is not None
    assert ev.gap_mean < 0.02  # within 3 % of Myerson's optimum on the same profiles


def test_later_phases_score_on_more_nested_profiles() -> None:
    env = make_env("sales", n_agents=3, n_items=2)
    problem = AMADesigner(method="cma")._validate(env)
    searcher = CMAES(evals=(30, 30), n_scan=16, n_profiles=(300, 900))
    state = searcher.init(problem, np.random.default_rng(0))
    assert state.types.shape[0] == 900
    while not searcher.done(state):
        state = searcher.step(problem, state)
    mech, score = searcher.best(state)
    # the returned score is the exact mean on the last phase's 900 profiles (the first 300 of
    # which scored the first phase), not a first-phase score on fewer profiles
    exact = score_on_profiles(problem, [mech], state.types)[0]
    assert score == pytest.approx(exact, abs=1e-12)
    with pytest.raises(ValueError, match="one n_profiles per tying"):
        CMAES(n_profiles=(100, 200, 300))


def test_cma_refuses_profiles_beyond_the_memory_limit() -> None:
    from bilevel import MemoryLimitError, set_memory_limit

    env = make_env("sales", n_agents=3, n_items=2)
    set_memory_limit("1MiB")
    try:
        with pytest.raises(MemoryLimitError, match=r"CMA-ES on 4000 common profiles needs about"):
            AMADesigner(method="cma", n_profiles=4000, eval_samples=0).fit(env)
    finally:
        set_memory_limit(None)
