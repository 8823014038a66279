"""The first completed step of a search is checkpointed at once (not after 30 s)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bilevel import AMADesigner, make_env
from bilevel.search import (
    FileCheckpoint,
    FirstOrder,
    GridSearch,
    Intermediate,
    Searcher,
    run_search,
)

ENV = make_env("sales", n_agents=3, n_items=2)


class _KilledError(Exception):
    """Stands for a kill: leaves the loop without the driver's final save."""


def _kill_after_first_step(info: Intermediate) -> None:
    if info.nit == 1:
        raise _KilledError


@pytest.mark.parametrize("searcher", [
    GridSearch(n_points=24, n_profiles=20, batch_candidates=4),
    FirstOrder(iters=6, n_profiles=4),
], ids=["grid", "first_order"])
def test_a_search_killed_after_its_first_step_resumes_from_step_1(
    searcher: Searcher[Any], tmp_path: Path
) -> None:
    problem = AMADesigner(method="grid")._validate(ENV)
    full = run_search(searcher, problem, rng=np.random.default_rng(5))
    ck = FileCheckpoint(tmp_path / "ck.bin")
    with pytest.raises(_KilledError):
        run_search(searcher, problem, rng=np.random.default_rng(5),
                   checkpoint=ck, checkpoint_every=3600.0, callback=_kill_after_first_step)
    assert ck.load() is not None  # saved after step 1, long before checkpoint_every
    resumed = run_search(searcher, problem, rng=np.random.default_rng(77),
                         checkpoint=ck, checkpoint_every=3600.0)
    assert resumed.stats["resumed_at_step"] == 1
    assert resumed.nit == full.nit and resumed.history == full.history
    np.testing.assert_array_equal(resumed.mechanism.boosts, full.mechanism.boosts)
