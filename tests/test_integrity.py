"""Issue 13, silent wrong or mixed results: every stored or saved result is tied to what it
depends on (experiment cells, checkpoints, saved mechanisms), custom rewards are checked for
the individual rationality they claim, and every JSON the library writes is strict JSON."""

from __future__ import annotations

import ast
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import bilevel._experiment as experiment
from bilevel import AMA, AMADesigner, evaluate, load_mechanism, vcg
from bilevel._cli import main
from bilevel._jsonsafe import finite_or_none, to_json
from bilevel.models import custom_env, make_env, mdp_from_arrays
from bilevel.stackelberg._result import StackelbergResult, load_stackelberg
from tests import ROOT

# --------------------------------------------------------------------------- item 1


def _config(n_items: int = 1, n_points: int = 4) -> str:
    return f"""
[env]
name = "sales"
n_agents = 2
n_items = {n_items}

[design]
methods = ["grid"]
seeds = [0]
eval_samples = 40

[budgets.grid]
n_points = {n_points}
n_profiles = 20
"""


def test_run_cells_are_keyed_by_everything_they_depend_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fits: list[tuple[str, int]] = []
    fit = AMADesigner.fit

    def counting_fit(self: AMADesigner, env: Any) -> AMADesigner:
        fits.append((env.name, env.mdp.n_states))
        return fit(self, env)

    monkeypatch.setattr(AMADesigner, "fit", counting_fit)
    cfg, out = tmp_path / "exp.toml", tmp_path / "out"
    cfg.write_text(_config(n_items=1))
    first = experiment.run_experiment(cfg, out=out)
    assert len(fits) == 1
    assert experiment.run_experiment(cfg, out=out) == first  # unchanged config: from the store
    assert len(fits) == 1

    # an edited environment re-runs the cell: no old cell under the new environment's report
    cfg.write_text(_config(n_items=2))
    second = experiment.run_experiment(cfg, out=out)
    assert len(fits) == 2
    shape = make_env("sales", n_agents=2, n_items=2).mdp.shape
    assert np.asarray(second[0]["mechanism"]["boosts"]).shape == shape
    assert second[0]["key"] != first[0]["key"]
    assert load_mechanism(out / "grid-seed0.json").boosts.shape == shape

    # an edited budget re-runs it too
    cfg.write_text(_config(n_items=2, n_points=8))
    experiment.run_experiment(cfg, out=out)
    assert len(fits) == 3

    # back to the first configuration: its own cell, and its own mechanism file
    cfg.write_text(_config(n_items=1))
    again = experiment.run_experiment(cfg, out=out)
    assert len(fits) == 3
    assert again == first
    assert load_mechanism(out / "grid-seed0.json").boosts.shape == (
        make_env("sales", n_agents=2, n_items=1).mdp.shape)


def test_cell_key_covers_objective_version_and_environment_content(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    env = make_env("sales", n_agents=2, n_items=1)
    d = AMADesigner(method="grid", n_points=4, seed=0)
    key = experiment.cell_key(env, d)
    assert key.startswith("grid/seed0/")
    assert experiment.cell_key(make_env("sales", n_agents=2, n_items=1, dist="uniform"), d) == key
    assert experiment.cell_key(env, AMADesigner(method="grid", n_points=4, seed=0,
                                                objective="welfare")) != key
    assert experiment.cell_key(env, AMADesigner(method="grid", n_points=4, seed=0,
                                                objective="revenue")) == key
    assert experiment.cell_key(env, AMADesigner(method="grid", n_points=4, seed=1)) != key
    assert experiment.cell_key(env, AMADesigner(method="grid", n_points=4, seed=0,
                                                eval_samples=7)) != key
    assert experiment.cell_key(make_env("sales", n_agents=2, n_items=1, gamma=0.5), d) != key
    import bilevel

    monkeypatch.setattr(bilevel, "__version__", "999.0")
    assert experiment.cell_key(env, d) != key


# --------------------------------------------------------------------------- item 2


def _auction(scale: float, **kw: Any) -> Any:
    """A static two-agent auction; ``scale`` multiplies the values."""
    P = np.zeros((1, 2, 1))

    def rewards(v: np.ndarray) -> np.ndarray:
        R = np.zeros((v.shape[0], 2, 1, 2))
        R[:, 0, 0, 0] = v[:, 0]
        R[:, 1, 0, 1] = v[:, 1]
        return R

    return custom_env(mdp_from_arrays(P, [1.0], 1.0), n_agents=2, type_shape=(2,),
                      sampler=lambda rng, k: scale * rng.uniform(size=(k, 2)),
                      reward_fn=rewards, boost_box=(-1.0, 1.0), **kw)


def test_custom_envs_with_one_name_do_not_share_a_checkpoint(tmp_path: Path) -> None:
    store = tmp_path / "store.sqlite"
    small, large = _auction(1.0), _auction(10.0)
    assert (small.name, dict(small.params)) == (large.name, dict(large.params))

    def design(env: Any, checkpoint: Path | None) -> AMADesigner:
        return AMADesigner(method="grid", n_points=8, n_profiles=50, eval_samples=0, seed=0,
                           checkpoint=checkpoint).fit(env)

    design(small, store)
    got = design(large, store)
    fresh = design(large, None)
    assert got.result_.search.score == fresh.result_.search.score
    np.testing.assert_array_equal(got.mechanism_.boosts, fresh.mechanism_.boosts)
    assert design(small, None).result_.search.score != fresh.result_.search.score


def test_environment_identity() -> None:
    sales = make_env("sales", n_agents=3, n_items=2)
    # registry recipe with the defaults filled in; stable and cached
    assert sales.identity() == make_env("sales", n_agents=3).identity()
    assert sales.identity() == make_env("sales", n_agents=3, n_items=2, dist="uniform").identity()
    assert sales.identity() != make_env("sales", n_agents=3, n_items=2,
                                        dist="asymmetric").identity()
    assert sales.identity() != make_env("matching", n_agents=3, rounds=1).identity()
    assert len(sales.identity()) == 20
    # custom: the MDP and a fingerprint of the callables, or the user's recipe
    assert _auction(1.0).identity() == _auction(1.0).identity()
    assert _auction(1.0).identity() != _auction(2.0).identity()
    assert _auction(1.0, recipe="auction/v1").identity() == _auction(
        2.0, recipe="auction/v1").identity()
    assert _auction(1.0, recipe="auction/v1").identity() != _auction(
        1.0, recipe="auction/v2").identity()
    assert _auction(1.0, objective="welfare").identity() != _auction(1.0).identity()
    P2 = np.zeros((1, 2, 1))
    other_mdp = custom_env(mdp_from_arrays(P2, [1.0], 0.5), n_agents=2, type_shape=(2,),
                           sampler=lambda rng, k: rng.uniform(size=(k, 2)),
                           reward_fn=_auction(1.0).reward_fn, recipe="auction/v1")
    assert other_mdp.identity() != _auction(1.0, recipe="auction/v1").identity()


def test_unidentifiable_environment_refuses_a_checkpoint(tmp_path: Path) -> None:
    state = {"calls": 0}

    def drifting(rng: np.random.Generator, k: int) -> np.ndarray:
        state["calls"] += 1
        return rng.uniform(size=(k, 2)) + 0.01 * state["calls"]

    env = custom_env(_auction(1.0).mdp, n_agents=2, type_shape=(2,), sampler=drifting,
                     reward_fn=_auction(1.0).reward_fn)
    with pytest.raises(ValueError, match=r"cannot identify environment 'custom'.*recipe="):
        AMADesigner(method="grid", n_points=4).checkpoint_key(env)
    assert "env_identity" not in vcg(env).meta  # mechanisms: shape checks only


# --------------------------------------------------------------------------- item 3


def test_cli_refuses_a_mechanism_designed_for_another_environment(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    m = tmp_path / "m"
    assert main(["design", "sales", "--n-agents", "3", "--method", "grid", "--points", "4",
                 "--profiles", "10", "--eval-samples", "20", "--out", str(m), "--json"]) == 0
    capsys.readouterr()
    argv = ["evaluate", "matching", "--n-agents", "3", "--rounds", "1", "--mechanism",
            str(m / "mechanism.json"), "--samples", "20", "--json"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert err.startswith("bilevel: error: mechanism designed for sales(n_agents=3, n_items=2")
    assert "got matching(n_agents=3, rounds=1" in err
    assert "pass allow_transfer=True / --allow-transfer to evaluate it anyway" in err
    saved = load_mechanism(m / "mechanism.json")
    assert saved.meta["env_identity"] == make_env("sales", n_agents=3).identity()
    assert main([*argv, "--allow-transfer"]) == 0
    assert json.loads(capsys.readouterr().out)["n_samples"] == 20
    # the environment it was designed for, spelled differently
    assert main(["evaluate", "sales", "--n-agents", "3", "--n-items", "2", "--dist", "uniform",
                 "--mechanism", str(m / "mechanism.json"), "--samples", "20", "--json"]) == 0


def test_evaluate_refuses_another_environment_unless_allowed(tmp_path: Path) -> None:
    sales, matching = make_env("sales", n_agents=3), make_env("matching", n_agents=3, rounds=1)
    mech = AMA(np.ones(3), np.zeros(sales.mdp.shape), meta={"env": "sales"} | {
        "params": dict(sales.params), "env_identity": sales.identity()})
    for path in (tmp_path / "m.json", tmp_path / "m.npz"):
        loaded = load_mechanism(mech.save(path))
        assert loaded.meta["env_identity"] == sales.identity()
        with pytest.raises(ValueError, match=r"^mechanism designed for sales\(.*\), got "
                           r"matching\(.*\); pass allow_transfer=True"):
            evaluate(matching, loaded, n_samples=5, bound=False)
        evaluate(matching, loaded, n_samples=5, bound=False, allow_transfer=True)
        evaluate(sales, loaded, n_samples=5, bound=False)
    # as baseline too
    with pytest.raises(ValueError, match="mechanism designed for sales"):
        evaluate(matching, vcg(matching), baseline=vcg(sales), n_samples=5, bound=False)
    # same name and parameters, other content: the identities are named
    a, b = _auction(1.0), _auction(3.0)
    with pytest.raises(ValueError, match=r"custom\(n_agents=2\) \[identity \w+\], got "
                       r"custom\(n_agents=2\) \[identity \w+\]"):
        evaluate(b, vcg(a), n_samples=5, bound=False)


def test_mechanisms_without_identity_are_checked_by_shape_only(tmp_path: Path) -> None:
    sales, matching = make_env("sales", n_agents=3), make_env("matching", n_agents=3, rounds=1)
    evaluate(matching, AMA(np.ones(3), np.zeros(sales.mdp.shape)), n_samples=5, bound=False)
    old = vcg(sales).to_dict()
    del old["meta"]["env_identity"]  # a file written before identities were saved
    (tmp_path / "old.json").write_text(json.dumps(old))
    evaluate(matching, load_mechanism(tmp_path / "old.json"), n_samples=5, bound=False)
    with pytest.raises(ValueError, match="expected a mechanism for 2 agents"):
        evaluate(make_env("sales", n_agents=2), load_mechanism(tmp_path / "old.json"),
                 n_samples=5, allow_transfer=True)


# --------------------------------------------------------------------------- item 7


def test_nonnegative_rewards_are_checked() -> None:
    P = np.zeros((1, 2, 1))

    def rewards(v: np.ndarray) -> np.ndarray:
        R = np.zeros((v.shape[0], 2, 1, 2))
        R[:, 0, 0, 0] = v[:, 0]
        R[:, 1, 0, 1] = v[:, 1] - 0.5  # agent 1 can lose
        return R

    kw: dict[str, Any] = dict(n_agents=2, type_shape=(2,), reward_fn=rewards,
                              sampler=lambda rng, k: rng.uniform(size=(k, 2)))
    env = custom_env(mdp_from_arrays(P, [1.0], 1.0), **kw)
    types = env.sample_types(0, 50)
    with pytest.raises(ValueError) as info:
        env.rewards(types)
    msg = str(info.value)
    assert msg.startswith("expected non-negative rewards (nonnegative_rewards=True), got min -0.")
    assert msg.endswith("for agent 1; pass nonnegative_rewards=False") and "\n" not in msg
    with pytest.raises(ValueError, match="expected non-negative rewards"):
        evaluate(env, vcg(env), n_samples=10, bound=False)
    ok = custom_env(mdp_from_arrays(P, [1.0], 1.0), nonnegative_rewards=False, **kw)
    assert ok.rewards(types).min() < 0


@pytest.mark.parametrize("name, kwargs", [
    ("sales", {}), ("sales", {"dist": "asymmetric", "n_agents": 4, "n_items": 3}),
    ("scheduling", {}), ("gridworld", {}), ("gridworld", {"dist": "uniform"}),
    ("matching", {}), ("matching", {"rounds": 1}),
])
def test_builtin_environments_keep_their_nonnegativity_claim(
    name: str, kwargs: dict[str, Any]
) -> None:
    env = make_env(name, **kwargs)
    types = env.sample_types(3, 200)
    R = env.rewards(types)  # raises if a declared non-negative environment is not
    for i in range(env.n_agents):
        env.rewards(env.counterfactual(types, i))
    if name == "scheduling":
        assert not env.nonnegative_rewards and R.min() < 0
    else:
        assert env.nonnegative_rewards


# --------------------------------------------------------------------------- item 8


def _strict(text: str) -> Any:
    def refuse(const: str) -> None:
        raise AssertionError(f"not JSON: {const}")

    return json.loads(text, parse_constant=refuse)


def test_to_json_writes_null_for_non_finite_floats() -> None:
    obj = {"a": float("nan"), "b": [1.5, float("inf"), np.float64("-inf")],
           "c": np.array([np.nan, 2.0]), "d": (np.int64(3), True, None, "x")}
    assert _strict(to_json(obj)) == {"a": None, "b": [1.5, None, None], "c": [None, 2.0],
                                     "d": [3, True, None, "x"]}
    assert finite_or_none(2.0) == 2.0
    assert _strict(to_json({"x": float("nan")}, allow_nan=True)) == {"x": None}


def _stackelberg_result(**over: Any) -> StackelbergResult:
    fields: dict[str, Any] = dict(
        game="g", config={"seed": 0}, value=float("nan"), bcce_gap=float("nan"),
        certified=False, response_kind="none", leader_table=(np.zeros(2),), best_value=1.0,
        best_table=(np.zeros(2),), optimum=None, curve_steps=np.arange(2.0),
        curve_objective=np.array([np.nan, 1.0]), eval_steps=np.arange(1.0),
        eval_values=np.array([np.inf]), eval_gaps=np.array([np.nan]), env_steps=10,
        wall_time=0.5, steps_per_second=20.0, message="m")
    fields.update(over)
    return StackelbergResult(**fields)


def test_stackelberg_result_with_nan_is_strict_json(tmp_path: Path) -> None:
    r = _stackelberg_result()
    text = to_json(r.to_dict(), indent=1)
    assert "NaN" not in text and "Infinity" not in text
    data = _strict(text)
    assert data["value"] is None and data["bcce_gap"] is None
    assert data["curve_objective"] == [None, 1.0] and data["eval_values"] == [None]
    r.save(tmp_path / "r")
    saved = (tmp_path / "r" / "result.json").read_text()
    assert _strict(saved)["bcce_gap"] is None
    back = load_stackelberg(tmp_path / "r")  # null reads back as NaN
    assert math.isnan(back.value) and math.isnan(back.bcce_gap)
    assert np.isnan(back.curve_objective[0]) and back.curve_objective[1] == 1.0


def test_evaluation_with_nan_standard_error_is_strict_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # one sample: the standard errors are NaN
    assert main(["evaluate", "sales", "--n-agents", "2", "--samples", "1", "--json"]) == 0
    assert _strict(capsys.readouterr().out)["se"] is None
    env = make_env("sales", n_agents=2)
    ev = evaluate(env, vcg(env), n_samples=1)
    assert math.isnan(ev.se)
    mech = AMA(np.ones(2), np.zeros(env.mdp.shape), meta={"score": float("nan")})
    assert _strict(mech.save(tmp_path / "m.json").read_text())["meta"]["score"] is None


# Internal data formats allowed to write non-finite floats, with the reason.
_EXEMPT = {
    # the search-state tree of a checkpoint: optimiser states hold ±inf/NaN that must resume
    # bit-identically; read only by bilevel.search._serialize, never a user-facing JSON file
    "bilevel/search/_serialize.py",
}


def _json_writes(tree: ast.AST) -> list[tuple[int, str, bool]]:
    """(line, call, has allow_nan=False) of every json.dump/json.dumps call."""
    out = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        f = node.func
        name = None
        if (isinstance(f, ast.Attribute) and f.attr in {"dump", "dumps"}
                and isinstance(f.value, ast.Name) and f.value.id == "json"):
            name = f"json.{f.attr}"
        if name is None:
            continue
        strict = any(k.arg == "allow_nan" and isinstance(k.value, ast.Constant)
                     and k.value.value is False for k in node.keywords)
        out.append((node.lineno, name, strict))
    return out


def test_every_json_write_of_the_library_is_strict() -> None:
    offenders, aliases = [], []
    for package in ("bilevel", "models", "solvers"):
        for path in sorted((ROOT / package).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            tree = ast.parse(path.read_text(), filename=rel)
            for node in ast.walk(tree):  # no way around the check: no aliases of json.dump(s)
                if isinstance(node, ast.ImportFrom) and node.module == "json":
                    aliases += [f"{rel}:{node.lineno}" for a in node.names
                                if a.name in {"dump", "dumps", "JSONEncoder"}]
                if isinstance(node, ast.Import):
                    aliases += [f"{rel}:{node.lineno}" for a in node.names
                                if a.name == "json" and a.asname not in (None, "json")]
            if rel in _EXEMPT:
                continue
            for line, call, strict in _json_writes(tree):
                if not strict:
                    offenders.append(f"{rel}:{line} {call}")
    assert not offenders, f"json writes without allow_nan=False (use bilevel._jsonsafe.to_json): " \
        f"{offenders}"
    assert not aliases, f"json imported around the check: {aliases}"
    # outside the helper and the models package (which imports nothing from bilevel), writes
    # go through to_json
    direct = []
    for path in sorted((ROOT / "bilevel").rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        if rel in _EXEMPT or rel == "bilevel/_jsonsafe.py":
            continue
        direct += [f"{rel}:{line}" for line, _, _ in _json_writes(ast.parse(path.read_text()))]
    assert not direct, f"json.dump(s) around bilevel._jsonsafe.to_json: {direct}"
