"""Bounds and optima of objectives (objective_bound, bound_values, evaluate's bound fields, CLI)."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest

from bilevel import (
    AMA,
    Bound,
    NoBoundError,
    Objective,
    batch_outcomes,
    bound_values,
    comparison_rows,
    evaluate,
    format_table,
    make_env,
    objective_bound,
    optimal_evaluation,
    optimal_mechanism,
    vcg,
)
from bilevel._cli import main
from bilevel.models._profiles import ProfileStream

ENVS: list[tuple[str, dict[str, Any], str]] = [
    ("sales", {"n_agents": 3, "n_items": 2}, "optimal"),
    ("sales", {"n_agents": 4, "n_items": 2, "dist": "asymmetric"}, "optimal"),
    ("scheduling", {"n_agents": 2, "n_tasks": 3}, "first-best"),
    ("scheduling", {"n_agents": 2, "n_tasks": 3, "makespan": "reference"}, "first-best"),
    ("gridworld", {"n_agents": 2, "grid": 3}, "public-information"),
    ("gridworld", {"n_agents": 2, "grid": 3, "dist": "uniform"}, "welfare"),
    ("matching", {"n_agents": 2, "rounds": 3}, "public-information"),
    ("matching", {"n_agents": 3, "rounds": 3, "dist": "asymmetric"}, "public-information"),
]


def _random_amas(env: Any, k: int, seed: int) -> list[AMA]:
    rng = np.random.default_rng(seed)
    lo, hi = env.boost_box or (-1.0, 1.0)
    return [AMA(rng.uniform(0.5, 1.5, env.n_agents), rng.uniform(lo, hi, env.mdp.shape) / 4,
                name=f"random{j}") for j in range(k)]


@pytest.mark.parametrize(("name", "kwargs", "kind"), ENVS)
def test_no_mechanism_beats_the_bound(name: str, kwargs: dict[str, Any], kind: str) -> None:
    env = make_env(name, **kwargs)
    mechs = [vcg(env), *_random_amas(env, 3, seed=12)]
    try:
        mechs.append(optimal_mechanism(env))
    except ValueError:
        assert name != "sales"
    for mech in mechs:
        ev = evaluate(env, mech, n_samples=1_500, seed=4, baseline=None)
        assert ev.bound_kind == kind, mech.name
        assert ev.gap_mean is not None and ev.gap_se is not None and ev.bound is not None
        assert ev.gap_mean >= -3 * ev.gap_se - 1e-12, (mech.name, ev.gap_mean, ev.gap_se)
        assert ev.pct_of_bound is None or ev.pct_of_bound <= 100 + 300 * ev.gap_se / abs(ev.bound)
    if name == "sales":  # the optimum attains the bound, VCG does not
        assert ev.gap_mean is not None and ev.gap_se is not None
        assert abs(ev.gap_mean) <= 3 * ev.gap_se


@pytest.mark.parametrize(("name", "kwargs", "kind"), ENVS)
def test_bound_draws_the_profiles_of_evaluate(name: str, kwargs: dict[str, Any], kind: str) -> None:
    env = make_env(name, **kwargs)
    b = objective_bound(env, n_samples=1_100, seed=9, batch_size=300)
    ev = evaluate(env, vcg(env), n_samples=1_100, seed=9, batch_size=300, baseline=None)
    assert b.kind == kind == ev.bound_kind
    assert b.n == 1_100
    assert b.mean == ev.bound and b.se == ev.bound_se  # identical profiles, identical numbers
    assert b.sense == ("lower" if name == "scheduling" else "upper")
    assert b.objective == ev.objective == env.objective
    # evaluate's stream: fixed blocks from one generator, whatever the batch size
    vals = bound_values(env, None, ProfileStream(env, 9).take(1_100))[1]
    assert vals.mean() == b.mean
    assert objective_bound(env, n_samples=1_100, seed=9, batch_size=7).mean == b.mean
    assert objective_bound(env, n_samples=1_100, seed=10, batch_size=300).mean != b.mean
    d = b.to_dict()
    assert json.loads(json.dumps(d)) == d and set(d) == {
        "objective", "mean", "se", "n", "kind", "sense", "description"}
    assert isinstance(b, Bound) and b.kind in str(b)


def test_first_best_values() -> None:
    env = make_env("scheduling", n_agents=2, n_tasks=3)
    types = env.sample_types(np.random.default_rng(0), 50)
    kind, low = bound_values(env, "makespan", types)
    assert kind == "first-best"
    # per profile, no policy (here those of random AMAs and VCG) has a smaller makespan
    mechs = [vcg(env), *_random_amas(env, 4, seed=1)]
    out = batch_outcomes(env.mdp, np.stack([m.weights for m in mechs]),
                         np.stack([m.boosts for m in mechs]), env.rewards(types), None)
    cost = np.einsum("cksa,ksa->ck", out.occupancy, env.cost("makespan", types))
    assert np.all(cost >= low - 1e-12)
    assert np.any(np.isclose(cost, low, atol=1e-12))
    ev = evaluate(env, vcg(env), n_samples=2_000, seed=1, baseline=None)
    assert ev.gap_mean is not None and ev.gap_mean >= 0
    assert ev.pct_of_bound is not None and ev.pct_of_bound == pytest.approx(
        100 * ev.bound / ev.mean)  # type: ignore[operator]
    assert np.all(low > 0)
    kind, wel = bound_values(env, "welfare", types)
    ev = evaluate(env, vcg(env), n_samples=500, seed=2, objective="welfare", baseline=None)
    assert kind == "first-best" and ev.gap_mean == pytest.approx(0.0, abs=1e-9)
    assert np.all(wel <= 0)  # scheduling rewards are costs


def test_no_bound() -> None:
    sched = make_env("scheduling", n_agents=2, n_tasks=3)
    with pytest.raises(NoBoundError, match="no revenue bound for 'scheduling'"):
        objective_bound(sched, "revenue", n_samples=10)
    custom = Objective.from_occupancy(lambda x, t: x.sum(axis=(-2, -1)), name="mass")
    sales = make_env("sales", n_agents=2, n_items=1)
    with pytest.raises(ValueError, match="no bound for a custom objective"):
        objective_bound(sales, custom, n_samples=10)
    with pytest.raises(ValueError, match="expected n_samples >= 1"):
        objective_bound(sales, n_samples=0)
    # evaluate never raises for a missing bound
    cases: list[tuple[Any, str | Objective]] = [(sched, "revenue"), (sales, custom)]
    for env, obj in cases:
        ev = evaluate(env, vcg(env), n_samples=50, objective=obj, baseline=None)
        assert ev.bound is None and ev.bound_kind is None and ev.gap_mean is None
        assert ev.pct_of_bound is None
    ev = evaluate(sales, vcg(sales), n_samples=50, bound=False)
    assert ev.bound is None and ev.bound_kind is None


def test_report_rows() -> None:
    env = make_env("sales", n_agents=3, n_items=2)
    ev = evaluate(env, vcg(env), n_samples=1_000, seed=3)
    opt = optimal_evaluation(env, ev)
    assert opt is not None and opt.diff_mean is not None and opt.diff_mean > 0
    rows = comparison_rows(ev, "mine", 1.0, optimal=opt)
    assert rows[0][5] == "% of bound (optimal)"
    assert [r[0] for r in rows[1:]] == ["VCG", "optimal", "mine"]
    assert opt.pct_of_bound is not None and rows[2][5] == f"{opt.pct_of_bound:.1f}%"
    assert "% of bound" in format_table(rows, markdown=True)
    sched = make_env("scheduling")
    ev = evaluate(sched, vcg(sched), n_samples=200, seed=0, objective="revenue")
    assert optimal_evaluation(sched, ev) is None
    assert comparison_rows(ev, "vcg", 0.0)[1][5] == "—"


REFERENCE = [("uniform", 3, 2, 0.718), ("uniform", 4, 3, 0.986), ("uniform", 5, 3, 1.204),
             ("asymmetric", 3, 2, 0.444), ("asymmetric", 5, 3, 0.556)]


@pytest.mark.parametrize(("dist", "n", "m", "ref"), REFERENCE)
def test_reference_values(dist: str, n: int, m: int, ref: float) -> None:
    b = objective_bound(make_env("sales", n_agents=n, n_items=m, dist=dist), n_samples=20_000)
    # the reference is itself a 20,000-profile estimate rounded to 3 digits
    assert abs(b.mean - ref) <= 3 * np.sqrt(2) * b.se + 5e-4


def test_cli_bound(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bound", "sales", "--n-agents", "3", "--n-items", "2", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["kind"] == "optimal" and out["sense"] == "upper" and out["n"] == 10_000
    assert abs(out["mean"] - 0.718) <= 3 * np.sqrt(2) * out["se"] + 5e-4
    assert main(["bound", "gridworld", "--samples", "200"]) == 0
    assert "public-information" in capsys.readouterr().out
    assert main(["bound", "scheduling", "--objective", "revenue", "--samples", "10"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no revenue bound" in err and "Traceback" not in err
    assert main(["bound", "sales", "--samples", "0"]) == 2


def test_cli_evaluate_optimal(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["evaluate", "sales", "--n-agents", "3", "--n-items", "2", "--samples", "1000"]
    assert main([*argv, "--mechanism", "optimal", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["bound_kind"] == "optimal" and out["baseline"] == "vcg"
    assert abs(out["gap_mean"]) <= 3 * out["gap_se"]
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "% of bound (optimal)" in text and "\noptimal " in text
    assert main(["evaluate", "matching", "--mechanism", "optimal"]) == 2
    assert "patience is private information" in capsys.readouterr().err


# Designs of every method never beat their bound: tiny budgets, 2,000 fresh evaluation profiles.
DESIGN_ENVS: dict[str, tuple[str, dict[str, Any], str]] = {
    "sales": ("sales", {"n_agents": 3, "n_items": 2}, "optimal"),
    "sales-asym": ("sales", {"n_agents": 3, "n_items": 2, "dist": "asymmetric"}, "optimal"),
    "scheduling": ("scheduling", {"n_agents": 2, "n_tasks": 3}, "first-best"),
    "grid-onecell": ("gridworld", {"n_agents": 2, "grid": 3}, "public-information"),
    "grid-uniform": ("gridworld", {"n_agents": 2, "grid": 3, "dist": "uniform"}, "welfare"),
    "matching": ("matching", {"n_agents": 2, "rounds": 3}, "public-information"),
}
DESIGN_BUDGETS: dict[str, dict[str, Any]] = {
    "grid": {"n_points": 32, "n_profiles": 100},
    "zeroth_order": {"steps": 20, "n_validation": 100, "eval_every": 10},
    "first_order": {"steps": 20, "n_validation": 100, "eval_every": 10},
    "multistart": {"n_points": 16, "n_profiles": 100, "steps": 10, "n_starts": 2,
                   "n_validation": 100, "eval_every": 5, "n_final": 200},
    "cma": {"n_evals": 30, "n_scan": 16, "n_profiles": 200, "n_validation": 100},
}


# the whole cross product takes ~25 s on one core: it stays in the default run
@pytest.mark.parametrize("method", list(DESIGN_BUDGETS))
@pytest.mark.parametrize("env_id", list(DESIGN_ENVS))
def test_designs_never_beat_their_bound(env_id: str, method: str) -> None:
    from bilevel import AMADesigner

    name, kwargs, kind = DESIGN_ENVS[env_id]
    env = make_env(name, **kwargs)
    budget = dict(DESIGN_BUDGETS[method])
    if env.boost_box is None and method in ("grid", "multistart"):
        budget["boost_box"] = (-float(env.n_agents), float(env.n_agents))  # matching has none
    d = AMADesigner(method=method, eval_samples=0, seed=3, **budget).fit(env)
    ev = evaluate(env, d.mechanism_, n_samples=2_000, seed=11, baseline=None)
    assert ev.bound_kind == kind and ev.bound is not None
    assert ev.gap_mean is not None and ev.gap_se is not None
    # the paired gap in the bound's sense: bound − mechanism (maximised), mechanism − bound
    # (minimised, the makespan)
    gap = ev.bound - ev.mean if ev.maximize else ev.mean - ev.bound
    assert gap == pytest.approx(ev.gap_mean, abs=1e-9)
    assert ev.gap_mean >= -3 * ev.gap_se, (env_id, method, ev.mean, ev.bound, ev.gap_se)
