"""The memory guard: sizes are estimated before allocation and refused in one line.

Every test uses a small limit, so nothing large is ever allocated.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import scipy.sparse as sp

from bilevel import AMADesigner, evaluate, make_env, mdp_from_successors, vcg
from bilevel._memory import (
    DEFAULT_MEMORY_LIMIT,
    ENV_VAR,
    MemoryLimitError,
    fit_batch,
    limited_memory,
    memory_limit,
    outcome_bytes_per_profile,
    parse_bytes,
    set_memory_limit,
)
from bilevel.search import GridSearch, run_search, sobol_candidates

SALES = make_env("sales", n_agents=3, n_items=2)  # (S, A) = (5, 4)
PER_PROFILE = outcome_bytes_per_profile(3, 5, 4, 2)  # mechanism + VCG


@pytest.fixture(autouse=True)
def _default_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_VAR, raising=False)
    set_memory_limit(None)


def test_limit_sources(monkeypatch: pytest.MonkeyPatch) -> None:
    assert memory_limit() == DEFAULT_MEMORY_LIMIT == 4 * 2**30
    monkeypatch.setenv(ENV_VAR, "512MiB")
    assert memory_limit() == 512 * 2**20
    set_memory_limit("2kB")
    try:
        assert memory_limit() == 2000
    finally:
        set_memory_limit(None)
    with limited_memory("1GiB"):
        assert memory_limit() == 2**30
    assert memory_limit() == 512 * 2**20
    monkeypatch.setenv(ENV_VAR, "lots")
    with pytest.raises(ValueError, match=f"{ENV_VAR}: expected a memory size"):
        memory_limit()


@pytest.mark.parametrize("spec", ["", "-3", "4 parsecs", "0", "nan", True])
def test_bad_sizes(spec: object) -> None:
    with pytest.raises(ValueError, match="expected a memory size"):
        parse_bytes(spec)  # type: ignore[arg-type]


def test_evaluate_refuses_a_problem_whose_single_profile_does_not_fit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(ENV_VAR, str(PER_PROFILE - 1))
    with pytest.raises(MemoryLimitError, match=r"evaluation on Environment\('sales'.*\) needs "
                       r"about .* for a single type profile, more than the memory limit of"):
        evaluate(SALES, vcg(SALES), n_samples=10, seed=0)


def test_evaluate_chunks_its_batches_to_the_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_VAR, str(7 * PER_PROFILE))
    seen: list[int] = []
    ev = evaluate(SALES, vcg(SALES), n_samples=30, seed=0, progress=seen.append)
    assert ev.batch_size == 7 and max(seen) <= 7 and sum(seen) == 30
    assert fit_batch(3, PER_PROFILE, "x") == 3  # a smaller batch is kept


def test_sales_12_by_6_is_refused_before_allocating() -> None:
    """The issue's case: estimate (n + 1)·n·S·A floats per profile, far above 4 GiB."""
    S, A = 402_234, 13  # sales, n = 12, m = 6
    per = outcome_bytes_per_profile(12, S, A, 2)
    assert per > DEFAULT_MEMORY_LIMIT
    with pytest.raises(MemoryLimitError, match=r"needs about \d+\.\d GiB for a single type "
                       r"profile, more than the memory limit of 4\.0 GiB"):
        fit_batch(2000, per, "evaluating")


def test_grid_dimension_beyond_scipy_is_refused_clearly() -> None:
    with pytest.raises(ValueError, match=r"dimension S·A = 5000·5 = 25000, beyond scipy's "
                       r"maximum of 21201; use method='cma'"):
        sobol_candidates(4, 2, (5000, 5), (-1.0, 1.0), False)


def test_grid_candidates_and_profiles_are_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_VAR, "1000")
    with pytest.raises(MemoryLimitError, match=r"100 grid candidates .* use fewer points"):
        sobol_candidates(100, 3, (5, 4), (-1.0, 1.0), False)
    monkeypatch.setenv(ENV_VAR, "20000")
    problem = AMADesigner(method="grid")._validate(SALES)
    with pytest.raises(MemoryLimitError, match=r"rewards of 200 scoring profiles"):
        run_search(GridSearch(n_points=4, n_profiles=200), problem, rng=np.random.default_rng(0))


def test_design_reports_the_memory_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_VAR, "1000")
    with pytest.raises(MemoryLimitError, match="more than the memory limit"):
        AMADesigner(method="grid", n_points=50, n_profiles=10, eval_samples=10).fit(SALES)


def test_infinite_chain_stops_at_max_states() -> None:
    with pytest.raises(ValueError, match=r"expected at most max_states = 1000 states, but the "
                       r"successor function reaches more .*infinite chain"):
        mdp_from_successors(0, lambda t, a: [(t + 1, 1.0)], ["go"], gamma=0.9, max_states=1000)
    mdp = mdp_from_successors(0, lambda t, a: [(t + 1, 1.0)] if t < 9 else [], ["go"],
                              gamma=1.0, max_states=10)
    assert mdp.n_states == 10
    with pytest.raises(ValueError, match=r"expected max_states as an int >= 1, got 0"):
        mdp_from_successors(0, lambda t, a: [], ["go"], gamma=1.0, max_states=0)


def test_gridworld_transitions_are_sparse(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[int, ...]] = []
    real = np.zeros

    def spy(shape: Any, *a: Any, **k: Any) -> Any:
        calls.append(tuple(np.atleast_1d(shape)))
        return real(shape, *a, **k)

    monkeypatch.setattr(np, "zeros", spy)  # the gridworld builder's np.zeros
    env = make_env("gridworld", n_agents=2, grid=30)  # S = 900: a dense P would be 26 MB
    monkeypatch.undo()
    assert isinstance(env.mdp.P, sp.csr_array) and env.mdp.P.nnz == 900 * 4
    assert not any(len(c) == 3 for c in calls)  # no (S, A, S) array
    assert env.mdp.successor is not None
    assert env.mdp.states[env.mdp.successor[0, 0]] == (1, 30)


def test_cli_memory_limit_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from bilevel._cli import main

    code = main(["evaluate", "sales", "--n-agents", "3", "--n-items", "2", "--samples", "5",
                 "--memory-limit", "100"])
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1 and "more than the memory limit of 100 B" in err


def test_cli_reports_numpy_out_of_memory_in_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import bilevel._cli as cli

    def oom(*a: object, **k: object) -> None:
        raise MemoryError("Unable to allocate 935. GiB for an array with shape (2000, 12)")

    monkeypatch.setattr(cli, "evaluate", oom)
    code = cli.main(["evaluate", "sales", "--n-agents", "3", "--n-items", "2"])
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith("bilevel: error: out of memory: Unable to allocate 935. GiB")
