"""The rows of the paper's Tables 1-5 and their environments."""

from __future__ import annotations

import pytest

from bilevel.reproduce._paper import paper_rows


def test_paper_rows_match_the_tables() -> None:
    assert [len(paper_rows(t)) for t in range(1, 6)] == [8, 8, 4, 4, 8]
    r = next(r for r in paper_rows(1) if (r.n_agents, r.size) == (3, 2))
    assert r.paper["vcg"] == pytest.approx(0.4999) and r.paper["grid"] == pytest.approx(0.6079)
    sched = paper_rows(3)[0].env()
    assert sched.params["makespan"] == "reference"  # the variant that produced Tables 3/4
    assert paper_rows(5)[0].env().params["gamma"] == 0.9
