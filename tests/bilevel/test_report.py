"""Reports' exploitability column: audits by role, the table cell, the JSON form, the markdown.

AMAs (VCG, Myerson's optimum, any designed AMA) are truthful with an exact inner solver, so the
measured static ex-post exploitability is 0 up to rounding (≤ 1e-9); a first-price rule is not
(its row would show a positive gain), which the cell formatting test uses as a known answer.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from bilevel import AMA, evaluate, make_env, optimal_evaluation, optimal_mechanism, vcg
from bilevel._report import (
    AUDIT_SAMPLES,
    audit_mechanisms,
    comparison_rows,
    design_report,
    exploitability_cell,
    exploitability_dict,
    exploitability_line,
    format_table,
    result_dict,
)
from bilevel.audit import Exploitability, exploitability, first_price

TOL = 1e-9


def _designed(env_n: int = 3) -> AMA:
    rng = np.random.default_rng(4)
    env = make_env("sales", n_agents=env_n, n_items=2)
    return AMA(rng.uniform(0.5, 2.0, env.n_agents), rng.uniform(-0.5, 0.5, env.mdp.shape))


def test_audits_of_vcg_optimal_and_a_designed_ama_are_zero() -> None:
    env = make_env("sales", n_agents=3, n_items=2)
    audits = audit_mechanisms(env, {"vcg": vcg(env), "optimal": optimal_mechanism(env),
                                    "mechanism": _designed()}, samples=60, seed=2)
    assert set(audits) == {"vcg", "optimal", "mechanism"}
    for r in audits.values():
        assert isinstance(r, Exploitability) and r.n_profiles == 60
        assert r.kind == "lower_bound" and r.resolution == 41  # the default grid search
        assert r.max_gain <= TOL
    assert AUDIT_SAMPLES == 200


def test_cell_line_and_json() -> None:
    env = make_env("sales", n_agents=2, n_items=1)
    zero = exploitability(env, vcg(env), samples=20)
    assert exploitability_cell(zero) == "0.0000 (lower bound)"
    assert exploitability_cell(None) == "—"
    # first price, values U[0, 1]: ex-post gain 1/3 in total (a bound from below: the grid)
    fp = exploitability(env, first_price(env), samples=4000, grid=101)
    assert abs(fp.total - 1 / 3) <= 0.02
    assert exploitability_cell(fp) == f"{fp.total:.4f} (lower bound)"
    d = exploitability_dict({"mechanism": zero})
    assert "best_deviation" not in d["mechanism"]
    assert d["mechanism"]["kind"] == "lower_bound" and d["mechanism"]["n_profiles"] == 20
    json.dumps(d)
    line = exploitability_line({"mechanism": zero})
    assert "20 profiles" in line and zero.method in line


def test_rows_gain_the_column_only_when_audited() -> None:
    env = make_env("sales", n_agents=3, n_items=2)
    mine = _designed()
    ev = evaluate(env, mine, n_samples=500, seed=3)
    opt = optimal_evaluation(env, ev)
    assert opt is not None
    plain = comparison_rows(ev, "mine", 1.0, optimal=opt)
    audits = audit_mechanisms(env, {"vcg": vcg(env), "optimal": optimal_mechanism(env),
                                    "mechanism": mine}, samples=30)
    rows = comparison_rows(ev, "mine", 1.0, optimal=opt, exploitability=audits)
    assert [r[:-1] for r in rows] == plain  # the other columns are unchanged
    assert rows[0][-1] == "exploitability (kind)"
    assert [r[0] for r in rows[1:]] == ["VCG", "optimal", "mine"]
    assert [r[-1] for r in rows[1:]] == ["0.0000 (lower bound)"] * 3
    # a row without an audit shows a dash; VCG alone (no baseline) is the mechanism's row
    partial = comparison_rows(ev, "mine", 1.0, exploitability={"mechanism": audits["mechanism"]})
    assert [r[-1] for r in partial[1:]] == ["—", "0.0000 (lower bound)"]
    alone = evaluate(env, vcg(env), n_samples=200, seed=0, baseline=None)
    rows = comparison_rows(alone, "vcg", 0.0, exploitability={"mechanism": audits["vcg"]})
    assert rows[1][0] == "vcg" and rows[1][-1] == "0.0000 (lower bound)"
    assert "| exploitability (kind) |" in format_table(rows, markdown=True)


def test_design_report_and_result_dict() -> None:
    from bilevel import AMADesigner

    env = make_env("sales", n_agents=2, n_items=1)
    d = AMADesigner(method="grid", n_points=8, n_profiles=50, eval_samples=300).fit(env)
    audits = audit_mechanisms(env, {"vcg": vcg(env), "mechanism": d.result_.mechanism},
                              samples=40)
    md = design_report(env, d.result_, exploitability=audits)
    assert "exploitability (kind)" in md and "Exploitability: summed best misreport gain" in md
    assert "exploitability" not in design_report(env, d.result_)
    out = result_dict(env, d.result_, exploitability=audits)
    assert out["exploitability"]["mechanism"]["total"] <= TOL
    assert "exploitability" not in result_dict(env, d.result_)


@pytest.mark.parametrize("samples", [0, -3])
def test_bad_audit_sizes_fail(samples: int) -> None:
    env = make_env("sales", n_agents=2, n_items=1)
    with pytest.raises(ValueError, match="expected samples as an int >= 1"):
        audit_mechanisms(env, {"vcg": vcg(env)}, samples=samples)
