"""The value kernels of the bandit auction: the paper's Table 2 (Appendix D.2), signs restored."""

from __future__ import annotations

import pytest
import torch

from bilevel.models.dynamic import (
    continuous_sigma,
    continuous_step,
    discrete_kernel,
    logit_box,
    sigmoid_box,
)

V = torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)

# Rows R(. | v; α) from v = 1, 2, 3 over v' = (1, 2, 3), computed by hand from the closed form.
TABLE = {
    0.5: [[0.5065, 0.3072, 0.1863], [0.2741, 0.4519, 0.2741], [0.1863, 0.3072, 0.5065]],
    1.0: [[0.6652, 0.2447, 0.0900], [0.2119, 0.5761, 0.2119], [0.0900, 0.2447, 0.6652]],
    1.5: [[0.7856, 0.1753, 0.0391], [0.1543, 0.6914, 0.1543], [0.0391, 0.1753, 0.7856]],
}


@pytest.mark.parametrize("alpha", sorted(TABLE))
def test_discrete_rows_match_the_table(alpha: float) -> None:
    K = discrete_kernel(V, alpha)
    assert torch.allclose(K, torch.tensor(TABLE[alpha], dtype=torch.float64), atol=1e-4, rtol=0)
    assert torch.allclose(K.sum(-1), torch.ones(3, dtype=torch.float64), atol=1e-12, rtol=0)


def test_alpha_zero_is_uniform_and_batched_alpha_broadcasts() -> None:
    assert torch.allclose(discrete_kernel(V, 0.0), torch.full((3, 3), 1 / 3, dtype=torch.float64),
                          atol=1e-15, rtol=0)
    K = discrete_kernel(V, torch.tensor([[0.5, 1.0], [1.5, 0.0]], dtype=torch.float64))
    assert K.shape == (2, 2, 3, 3)
    assert torch.allclose(K[1, 0], torch.tensor(TABLE[1.5], dtype=torch.float64), atol=1e-4)


def test_discrete_kernel_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="expected alpha >= 0, got -1"):
        discrete_kernel(V, -1.0)
    with pytest.raises(ValueError, match="expected support as a non-empty 1-D tensor"):
        discrete_kernel(V.reshape(3, 1), 0.5)


def test_continuous_sigma_endpoints() -> None:
    zero = torch.tensor(0.0, dtype=torch.float64)
    one = torch.tensor(1.0, dtype=torch.float64)
    assert float(continuous_sigma(zero, zero, 0.01)) == pytest.approx(0.01, abs=1e-15)
    # first consumption (α counts the past only: α = 0) gives a unit-scale step
    assert float(continuous_sigma(one, zero, 0.01)) == pytest.approx(1.0, abs=1e-15)
    assert float(continuous_sigma(one, zero + 0.5, 0.01)) == pytest.approx(2 / 3, abs=1e-15)
    half = float(continuous_sigma(zero + 0.5, zero, 0.01))
    assert half == pytest.approx(0.505, abs=1e-15)


def test_continuous_step_is_a_logit_walk_inside_the_box() -> None:
    v = torch.tensor([0.0, 1.0, 2.5, 4.0, 5.0], dtype=torch.float64)
    z = torch.tensor([-3.0, -1.0, 0.5, 2.0, 3.0], dtype=torch.float64)
    out = continuous_step(v, torch.tensor(0.3, dtype=torch.float64), z, 0.0, 5.0)
    assert bool(((out >= 0) & (out <= 5)).all())
    inner = slice(1, 4)
    step = logit_box(out, 0.0, 5.0)[inner] - logit_box(v, 0.0, 5.0)[inner]
    assert torch.allclose(step, 0.3 * z[inner], atol=1e-12, rtol=0)
    # zero step is the identity (to rounding) and the maps invert each other
    same = continuous_step(v[inner], torch.tensor(0.0, dtype=torch.float64), z[inner], 0.0, 5.0)
    assert torch.allclose(same, v[inner], atol=1e-12, rtol=0)
    assert torch.allclose(sigmoid_box(logit_box(v[inner], 0, 5), 0, 5), v[inner], atol=1e-12)
