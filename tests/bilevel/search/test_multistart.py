"""MultiStart: one refined default start per trial, default starts that replay the stand-alone
runs of their seed, bad replay seeds and selection sizes."""

from __future__ import annotations

import numpy as np
import pytest

from bilevel import AMADesigner, make_env

ENV = make_env("sales", n_agents=3, n_items=2)


def test_multistart_refines_one_default_start_per_trial() -> None:
    kw = dict(method="multistart", n_points=16, n_starts=1, steps=6, n_profiles=4,
              n_perturbations=3, n_validation=100, eval_every=3, eval_samples=0, seed=5)
    one = AMADesigner(**kw).fit(ENV)  # type: ignore[arg-type]
    three = AMADesigner(**kw, n_trials=3).fit(ENV)  # type: ignore[arg-type]
    sel = three.mechanism_.meta["selection"]
    labels = [label for label, _ in sel]
    assert sum(" from default start" in lbl for lbl in labels) == 6  # 3 starts x 2 methods
    assert any(" from default start 3 " in lbl for lbl in labels)
    assert three.result_.search.score == max(v for _, v in sel)
    # the first default start replays the single-trial run's stream: same refinement scores
    first = sorted(v for lbl, v in sel if " from default start 1 " in lbl)
    single = sorted(v for lbl, v in one.mechanism_.meta["selection"]
                    if " from default start " in lbl)
    assert first == single


@pytest.mark.parametrize("method", ["first_order", "zeroth_order"])
def test_multistart_default_starts_replay_the_stand_alone_runs_of_their_seed(
    method: str,
) -> None:
    """With ``replay_seeds`` the default starts are exactly the stand-alone trials of that
    seed: the selected stand-alone trial's mechanism is a multistart candidate, bit for bit."""
    iters = 6
    common = dict(steps=iters, n_profiles=4, n_perturbations=3, n_validation=60,
                  eval_every=iters, eval_samples=0, n_trials=3)
    alone = AMADesigner(method=method, seed=23, **common).fit(ENV)  # type: ignore[arg-type]
    t = alone.result_.search.stats["selected_trial"]
    d = AMADesigner(method="multistart", n_points=8, n_starts=1, seed=5,
                    replay_seeds={method: 23}, **common)  # type: ignore[arg-type]
    problem = d._validate(ENV)
    ms = d._searcher()
    state = ms.init(problem, np.random.default_rng(0))
    while not ms.done(state):
        state = ms.step(problem, state)
    names = [type(r).__name__ for r in state.refiners]
    wanted = {"first_order": "FirstOrder", "zeroth_order": "ZerothOrder"}[method]
    runs = [i for i, (n, k) in enumerate(zip(names, state.run_start, strict=True))
            if n == wanted and state.starts[k].name.startswith("default start")]
    assert len(runs) == 3
    replayed = state.best_refined[runs[t]][1]
    np.testing.assert_array_equal(replayed.boosts, alone.mechanism_.boosts)
    np.testing.assert_array_equal(replayed.weights, alone.mechanism_.weights)


def test_bad_replay_seeds_and_final_selection_size() -> None:
    with pytest.raises(ValueError, match="n_final"):
        AMADesigner(method="multistart", n_final=0).fit(ENV)
    with pytest.raises(ValueError, match="replay_seeds"):
        AMADesigner(method="multistart", replay_seeds={"grid": 1}).fit(ENV)
    with pytest.raises(ValueError, match="replay_seeds"):
        AMADesigner(method="multistart", replay_seeds={"first_order": -1}).fit(ENV)
    with pytest.raises(TypeError, match="replay_seeds"):
        AMADesigner(method="multistart", replay_seeds=[1, 2]).fit(ENV)  # type: ignore[arg-type]
