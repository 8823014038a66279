"""The designer contract (bilevel/_contract.py), checked on every designer of the library."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import sklearn.base

import bilevel
from bilevel import GLOSSARY, AMADesigner, Designer, OuterResult, RunStatus
from bilevel._contract import RULES, bad_parameter, check_parameters
from bilevel.search import FirstOrder, GridSearch, SearchResult, ZerothOrder
from bilevel.solvers.rl import PPOResult
from bilevel.spm import SPMDesigner, SPMDesignResult
from bilevel.stackelberg import StackelbergDesigner

DESIGNERS: list[type[Any]] = [AMADesigner, SPMDesigner, StackelbergDesigner]


def _small(cls: type[Any]) -> Any:
    if cls is AMADesigner:
        return AMADesigner(n_points=8, n_profiles=20, eval_samples=50)
    if cls is SPMDesigner:
        return SPMDesigner(steps=1024, baselines=(), eval_every=1, exact_references=False)
    return StackelbergDesigner(steps=2_000, num_envs=32, eval_every=1)


PROBLEMS: dict[type[Any], str] = {
    AMADesigner: "sales",
    SPMDesigner: "proposition1",
    StackelbergDesigner: "normal_form:game_2",
}


@pytest.mark.parametrize("cls", DESIGNERS, ids=lambda c: c.__name__)
def test_every_designer_is_a_designer_and_clones(cls: type[Any]) -> None:
    d = _small(cls)
    assert isinstance(d, Designer)
    c = sklearn.base.clone(d)
    assert type(c) is cls and c is not d
    assert c.get_params(deep=False).keys() == d.get_params(deep=False).keys()
    for k, v in d.get_params(deep=False).items():
        assert repr(getattr(c, k)) == repr(v), k
    # the repr shows the non-default parameters only, in name order
    shown = repr(d)
    assert shown.startswith(f"{cls.__name__}(") and "seed=" not in shown
    assert repr(cls()) == f"{cls.__name__}()"


@pytest.mark.parametrize("cls", DESIGNERS, ids=lambda c: c.__name__)
def test_every_designer_fit_returns_self_with_the_fitted_attributes(cls: type[Any]) -> None:
    d = _small(cls)
    out = d.fit(PROBLEMS[cls])  # a registry name is a problem
    assert out is d
    for attr in ("result_", "history_", "evaluation_"):
        assert hasattr(d, attr), attr
    assert hasattr(d, "mechanism_") or hasattr(d, "policy_")
    result = d.result_
    assert isinstance(result, OuterResult)
    assert result.success is True
    assert RunStatus(result.status) is RunStatus.COMPLETED
    assert isinstance(result.message, str) and result.message
    assert isinstance(result.nit, int) and result.nit >= 1
    assert result.wall_time > 0
    assert isinstance(result.stats, dict)
    # a clone of a fitted designer is unfitted
    assert not hasattr(sklearn.base.clone(d), "result_")


@pytest.mark.parametrize("cls", DESIGNERS, ids=lambda c: c.__name__)
def test_set_params_and_unknown_names(cls: type[Any]) -> None:
    d = cls()
    assert d.set_params(seed=3) is d and d.get_params()["seed"] == 3
    with pytest.raises(ValueError, match=rf"^{cls.__name__}: expected a parameter among .*, "
                                         r"got 'no_such'$"):
        d.set_params(no_such=1)
    with pytest.raises(TypeError, match=rf"^{cls.__name__}: expected a parameter among"):
        cls(no_such=1)


@pytest.mark.parametrize("cls", DESIGNERS, ids=lambda c: c.__name__)
def test_shared_names_mean_one_thing(cls: type[Any]) -> None:
    names = set(cls._param_names())
    for shared in ("seed", "steps", "eval_every", "threads", "learning_rate"):
        assert shared in names, (cls.__name__, shared)
    assert names & set(GLOSSARY) >= {"seed", "steps", "eval_every", "threads", "learning_rate"}
    for old, new in cls._renamed.items():
        assert new in names and old not in names
        assert new in GLOSSARY or new in names


@pytest.mark.parametrize(
    ("cls", "old", "new", "value"),
    [
        (AMADesigner, "iters", "steps", 7),
        (AMADesigner, "lr", "learning_rate", 0.5),
        (AMADesigner, "torch_threads", "threads", 2),
        (AMADesigner, "validate_every", "eval_every", 9),
        (SPMDesigner, "eval_episodes", "eval_samples", 123),
    ],
)
def test_old_names_are_deprecated_aliases(cls: type[Any], old: str, new: str,
                                          value: Any) -> None:
    with pytest.warns(DeprecationWarning, match=rf"'{old}' is now '{new}'"):
        d = cls(**{old: value})
    assert getattr(d, new) == value
    with pytest.warns(DeprecationWarning, match=rf"'{old}' is now '{new}'"):
        d.set_params(**{old: value + 1})
    assert getattr(d, new) == value + 1
    assert old not in d.get_params()


@pytest.mark.parametrize(
    ("cls", "params", "message"),
    [
        (AMADesigner, {"steps": 0}, "AMADesigner: expected steps as an int >= 1, got 0"),
        (AMADesigner, {"seed": -1}, "AMADesigner: expected seed as an int >= 0, got -1"),
        (AMADesigner, {"learning_rate": -0.1},
         "AMADesigner: expected learning_rate as a finite float > 0 or None, got -0.1"),
        (SPMDesigner, {"steps": 0}, "SPMDesigner: expected steps as an int >= 1, got 0"),
        (SPMDesigner, {"eval_every": 0}, "SPMDesigner: expected eval_every as an int >= 1, got 0"),
        (StackelbergDesigner, {"steps": 0},
         "StackelbergDesigner: expected steps as an int >= 1, got 0"),
        (StackelbergDesigner, {"threads": 0},
         "StackelbergDesigner: expected threads as an int >= 1 or None, got 0"),
    ],
)
def test_one_validation_table_and_one_error_template(cls: type[Any],
                                                     params: dict[str, Any],
                                                     message: str) -> None:
    d = cls(**params)  # __init__ stores, fit checks
    with pytest.raises(ValueError) as info:
        d.fit(PROBLEMS[cls])
    assert str(info.value) == message


def test_check_parameters_uses_the_shared_table() -> None:
    check_parameters("X", {"seed": 0, "steps": 1, "progress": True, "unlisted": object()})
    with pytest.raises(TypeError, match=r"^X: expected progress as a bool, got 1$"):
        check_parameters("X", {"progress": 1})
    assert set(RULES) <= set(GLOSSARY) | {"max_steps", "executor"}
    err = bad_parameter("X", "y", "as z", np.arange(100))
    assert str(err) == "X: expected y as z, got a ndarray"


def test_amadesigner_takes_a_searcher_object_and_method_is_an_alias() -> None:
    searcher = ZerothOrder(iters=3, n_profiles=10)
    d = AMADesigner(searcher=searcher, eval_samples=0, seed=1).fit("sales")
    assert d.result_.method == "zeroth_order" and d.result_.nit == 3
    e = AMADesigner(method="zeroth_order", steps=3, n_profiles=10, learning_rate=0.1,
                    eval_samples=0, seed=1).fit("sales")
    np.testing.assert_allclose(d.mechanism_.boosts, e.mechanism_.boosts, rtol=0, atol=1e-12)
    assert set(bilevel.METHODS) == {"grid", "first_order", "zeroth_order", "multistart", "cma"}
    assert isinstance(bilevel.METHODS["grid"](AMADesigner()), GridSearch)
    assert isinstance(bilevel.METHODS["first_order"](AMADesigner()), FirstOrder)
    with pytest.raises(TypeError, match=r"^AMADesigner: expected searcher as a searcher of "
                                        r"bilevel\.search .*, got int$"):
        AMADesigner(searcher=3).fit("sales")


def test_results_speak_one_vocabulary() -> None:
    for kind in (SearchResult, PPOResult, SPMDesignResult, bilevel.DesignResult):
        fields = set(dir(kind)) | set(getattr(kind, "__dataclass_fields__", {}))
        for name in ("success", "status", "message", "nit", "wall_time", "stats"):
            assert name in fields, (kind.__name__, name)


def test_a_stopped_search_says_so() -> None:
    def stop(_: Any) -> None:
        raise StopIteration

    d = AMADesigner(method="zeroth_order", steps=5, n_profiles=10, eval_samples=0,
                    callback=stop).fit("sales")
    assert d.result_.status is RunStatus.CALLBACK and d.result_.nit == 1
    d = AMADesigner(method="zeroth_order", steps=5, n_profiles=10, eval_samples=0,
                    max_steps=2).fit("sales")
    assert d.result_.status is RunStatus.STEP_LIMIT and d.result_.nit == 2


def test_one_save_and_load_verb(tmp_path: Path) -> None:
    ama = AMADesigner(n_points=8, n_profiles=20, eval_samples=0).fit("sales")
    back = bilevel.load(ama.save(tmp_path / "ama.json"))
    np.testing.assert_array_equal(back.boosts, ama.mechanism_.boosts)
    spm = SPMDesigner(steps=1024, baselines=(), eval_every=1,
                      exact_references=False).fit("proposition1")
    again = bilevel.load(spm.save(tmp_path / "spm.pt"))
    assert isinstance(again, SPMDesigner)
    assert again.evaluate().value == pytest.approx(spm.evaluate().value, abs=1e-12)
    leader = StackelbergDesigner(steps=2_000, num_envs=32, eval_every=1).fit("normal_form:game_2")
    result = bilevel.load(leader.save(tmp_path / "leader"))
    assert result.value == pytest.approx(leader.result_.value, abs=1e-12)
    with pytest.raises(FileNotFoundError, match="expected a saved mechanism"):
        bilevel.load(tmp_path / "missing.json")


def test_spm_setting_in_init_is_deprecated() -> None:
    with pytest.warns(DeprecationWarning, match="pass the setting to fit"):
        d = SPMDesigner("proposition1", steps=1024, baselines=(), eval_every=1,
                        exact_references=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert d.fit().result_.setting == "proposition1"
