"""Counter-based streams: draws depend on (salt, slot, row, counter) only."""

from __future__ import annotations

import pytest
import torch

from bilevel.models.dynamic._random import draw_salt, normals, uniforms


def test_rows_are_independent_of_the_batch_size_and_slots_differ() -> None:
    salt = draw_salt(torch.Generator().manual_seed(0))
    big = uniforms(salt, 3, torch.arange(64), 5)
    assert torch.equal(big[:8], uniforms(salt, 3, torch.arange(8), 5))
    assert torch.equal(big[40:41], uniforms(salt, 3, torch.tensor([40]), 5))
    assert not torch.equal(big, uniforms(salt, 4, torch.arange(64), 5))
    assert float(big.min()) > 0.0 and float(big.max()) < 1.0


def test_uniform_and_normal_moments() -> None:
    salt = draw_salt(torch.Generator().manual_seed(1))
    u = uniforms(salt, 0, torch.arange(100_000), 4)
    # SE of the mean: sqrt(1/12 / 4e5) = 4.6e-4; of the lag correlation 1.6e-3
    assert float(u.mean()) == pytest.approx(0.5, abs=2.5e-3)
    assert float(u.var()) == pytest.approx(1 / 12, abs=1e-3)
    corr = torch.corrcoef(torch.stack([u[:, 0], u[:, 1]]))[0, 1]
    assert abs(float(corr)) < 1e-2
    z = normals(salt, 1, torch.arange(100_000), 4)
    assert float(z.mean()) == pytest.approx(0.0, abs=1e-2)
    assert float(z.std()) == pytest.approx(1.0, abs=1e-2)


def test_draw_salt_needs_a_generator() -> None:
    with pytest.raises(TypeError, match=r"expected a torch\.Generator, got NoneType"):
        draw_salt(None)  # type: ignore[arg-type]
