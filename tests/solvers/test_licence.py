"""The MOSEK licence check and the list of available LP solvers."""

from __future__ import annotations

from bilevel.solvers._licence import available_lp_solvers, mosek_licensed
from bilevel.solvers._lp import LP_SOLVERS


def test_mosek_licensed_is_a_bool() -> None:
    assert isinstance(mosek_licensed(), bool)
    assert mosek_licensed() is mosek_licensed()  # cached
    names = available_lp_solvers()
    assert names[:2] == ("highs", "cvxpy")
    assert ("mosek" in names) == mosek_licensed()
    assert set(names) <= set(LP_SOLVERS)
