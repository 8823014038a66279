"""GAE and discounted returns against naive loops and closed forms; bad shapes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bilevel.models.typing import BoolArray, FloatArray
from bilevel.solvers.rl._kernels import discounted_returns, gae


def _naive_gae(r: FloatArray, v: FloatArray, d: BoolArray, last: FloatArray, gamma: float,
               lam: float) -> tuple[FloatArray, FloatArray]:
    T, E = r.shape
    adv = np.zeros((T, E))
    for e in range(E):
        a = 0.0
        for t in reversed(range(T)):
            nv = last[e] if t == T - 1 else v[t + 1, e]
            nd = 0.0 if d[t, e] else 1.0
            delta = r[t, e] + gamma * nv * nd - v[t, e]
            a = delta + gamma * lam * nd * a
            adv[t, e] = a
    return adv, adv + v


def _naive_returns(r: FloatArray, d: BoolArray, last: FloatArray, gamma: float) -> FloatArray:
    T, E = r.shape
    out = np.zeros((T, E))
    for e in range(E):
        g = last[e]
        for t in reversed(range(T)):
            g = r[t, e] + gamma * (0.0 if d[t, e] else 1.0) * g
            out[t, e] = g
    return out


@pytest.mark.parametrize("gamma,lam", [(1.0, 0.95), (0.9, 0.5), (0.99, 1.0), (0.5, 0.0)])
def test_gae_and_returns_match_naive_loops(gamma: float, lam: float) -> None:
    rng = np.random.default_rng(3)
    T, E = 7, 5
    r, v, last = rng.normal(size=(T, E)), rng.normal(size=(T, E)), rng.normal(size=E)
    d = rng.random((T, E)) < 0.3
    adv, ret = gae(torch.tensor(r), torch.tensor(v), torch.tensor(d), torch.tensor(last),
                   gamma, lam)
    want_adv, want_ret = _naive_gae(r, v, d, last, gamma, lam)
    np.testing.assert_allclose(adv.numpy(), want_adv, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(ret.numpy(), want_ret, rtol=1e-12, atol=1e-12)
    g = discounted_returns(torch.tensor(r), torch.tensor(d), torch.tensor(last), gamma)
    np.testing.assert_allclose(g.numpy(), _naive_returns(r, d, last, gamma), rtol=1e-12,
                               atol=1e-12)


def test_gae_with_lambda_one_gives_discounted_returns() -> None:
    rng = np.random.default_rng(4)
    r, v = torch.tensor(rng.normal(size=(6, 3))), torch.tensor(rng.normal(size=(6, 3)))
    d, last = torch.tensor(rng.random((6, 3)) < 0.4), torch.tensor(rng.normal(size=3))
    _, ret = gae(r, v, d, last, 0.8, 1.0)
    torch.testing.assert_close(ret, discounted_returns(r, d, last, 0.8), rtol=1e-12, atol=1e-12)


def test_gae_constant_value_closed_form() -> None:
    # reward 1 per step, V ≡ 1, no episode end, γ = 0.5, λ = 1: δ_t = 1 + 0.5 − 1 = 0.5 and
    # A_t = Σ_k 0.5^k δ over the remaining steps; at the last step A = 1 + 0.5·last − 1.
    T = 4
    r, v = torch.ones(T, 1), torch.ones(T, 1)
    adv, _ = gae(r, v, torch.zeros(T, 1, dtype=torch.bool), torch.ones(1), 0.5, 1.0)
    want = [sum(0.5 * 0.5**k for k in range(T - t)) for t in range(T)]
    np.testing.assert_allclose(adv[:, 0].numpy(), want, rtol=1e-6)


def test_kernels_reject_bad_shapes() -> None:
    with pytest.raises(ValueError, match="expected rewards of shape"):
        gae(torch.zeros(3), torch.zeros(3), torch.zeros(3, dtype=torch.bool), torch.zeros(()),
            1.0, 0.9)
    with pytest.raises(ValueError, match="expected last_value of shape"):
        discounted_returns(torch.zeros(3, 2), torch.zeros(3, 2, dtype=torch.bool),
                           torch.zeros(3), 1.0)
    with pytest.raises(ValueError, match="expected lam in"):
        gae(torch.zeros(3, 2), torch.zeros(3, 2), torch.zeros(3, 2, dtype=torch.bool),
            torch.zeros(2), 1.0, 1.5)
