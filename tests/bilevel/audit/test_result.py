"""The exploitability result type: fields, validation, JSON form and the printed table."""

from __future__ import annotations

import json

import numpy as np
import pytest

import bilevel
from bilevel.audit import Exploitability


def _result(**kw: object) -> Exploitability:
    args: dict[str, object] = dict(
        total=0.75, per_agent=np.array([0.5, 0.25]), se=0.01,
        per_agent_se=np.array([0.007, 0.007]),
        best_deviation=(np.array([0.1, 0.2]), np.array([0.3, 0.4])), kind="lower_bound",
        method="static-grid(G=41)+golden", resolution=41, n_profiles=2, notion="ex_post",
        truthful_utility=np.array([0.0, 0.0]),
    )
    args.update(kw)
    return Exploitability(**args)  # type: ignore[arg-type]


def test_public_names() -> None:
    assert bilevel.Exploitability is Exploitability


def test_frozen_and_fields() -> None:
    r = _result()
    with pytest.raises(AttributeError):
        r.total = 1.0  # type: ignore[misc]
    assert r.n_agents == 2
    assert r.max_gain == pytest.approx(0.5, abs=1e-15)
    assert not r.per_agent.flags.writeable


def test_to_dict_is_json() -> None:
    d = json.loads(json.dumps(_result().to_dict()))
    assert d["total"] == pytest.approx(0.75, abs=1e-15)
    assert d["per_agent"] == [0.5, 0.25]
    assert d["kind"] == "lower_bound" and d["notion"] == "ex_post"
    assert d["resolution"] == 41 and d["best_deviation"] == [[0.1, 0.2], [0.3, 0.4]]
    exact = _result(se=None, per_agent_se=None, kind="exact", resolution=None).to_dict()
    assert exact["se"] is None and exact["per_agent_se"] is None


def test_str_is_a_table() -> None:
    text = str(_result())
    lines = text.splitlines()
    assert "0.75" in lines[0] and "lower_bound" in lines[0]
    assert lines[1].split() == ["agent", "gain", "se", "best", "deviation"]
    assert lines[-1].split()[:2] == ["total", "0.75"]
    assert "exact" in str(_result(se=None, per_agent_se=None, kind="exact"))


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"kind": "upper"},
         "expected kind in ('exact', 'lower_bound', 'upper_bound'), got 'upper'"),
        ({"notion": "bne"}, "expected notion in ('ex_post', 'bayes', 'clairvoyant'), got 'bne'"),
        ({"per_agent": np.zeros((2, 2))}, "expected per_agent of shape (n,), got (2, 2)"),
        ({"best_deviation": (np.zeros(1),)},
         "expected 2 best deviations (one per agent), got 1"),
    ],
)
def test_bad_fields(kw: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError) as e:
        _result(**kw)
    assert str(e.value) == message
