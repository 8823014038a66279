"""The optimal welfare of SPM profiles against brute-force enumeration of assignments."""

from __future__ import annotations

import itertools

import pytest
import torch

from bilevel.models.spm import (
    optimal_welfare,
)

F64 = torch.float64


def _naive_opt(values: torch.Tensor, units: tuple[int, ...]) -> float:
    n, d = values.shape
    best = 0.0
    for a in itertools.product(range(d + 1), repeat=n):
        if all(a.count(j) <= units[j] for j in range(d)):
            best = max(best, sum(float(values[i, a[i]]) for i in range(n) if a[i] < d))
    return best


@pytest.mark.parametrize(("n", "units"), [(5, (2,)), (6, (2, 3)), (7, (1, 2)), (4, (1, 1, 1))])
def test_optimal_welfare_matches_brute_force(n: int, units: tuple[int, ...]) -> None:
    g = torch.Generator().manual_seed(n)
    values = torch.rand(40, n, len(units), generator=g, dtype=F64)
    values[values < 0.2] = 0.0
    got = optimal_welfare(values, units, "unit_demand")
    want = [_naive_opt(v, units) for v in values]
    assert got.tolist() == pytest.approx(want, abs=1e-12)
