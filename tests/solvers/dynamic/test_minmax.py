"""Min–max training of a mechanism against learned deviators (``_minmax.py``).

Targets: the gradient estimator of the truthful revenue (pathwise flow term plus the score term
of the drawn winners) agrees with a central finite difference of the exact revenue (dynamic
programming over the tabulated mechanism) within 4 standard errors at T = 2, where the score
term matters; a step is deterministic per seed and a restored state continues bit-identically;
against a frozen pay-your-bid rule (exact gain 1/3) the deviator learns ≥ 0.3 of it.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from bilevel.models.dynamic import make_bandit_setting
from bilevel.solvers.dynamic import exact_arrays, tabulate, truthful_value
from bilevel.solvers.dynamic._minmax import MinMaxConfig, MinMaxTrainer, smooth_abs

Tensor = torch.Tensor


class _Smooth(nn.Module):
    """Sell with probability sigmoid(w (report − 1.5 − 0.5 τ)) at price 1 + 0.4 × experience."""

    def __init__(self, w: float = 1.0) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.tensor(w, dtype=torch.float64))

    def forward(self, history: Tensor, cumulative: Tensor) -> tuple[Tensor, Tensor]:
        tau = history.shape[1] - 1
        r = history[:, -1, :, 0]
        sell = torch.sigmoid(self.w * (r - 1.5 - 0.5 * tau))
        x = torch.stack([1 - sell, sell], dim=1)
        return x, sell * (1.0 + 0.4 * cumulative[:, :, 0])


class _PayYourBid(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.zeros((), dtype=torch.float64))

    def forward(self, history: Tensor, cumulative: Tensor) -> tuple[Tensor, Tensor]:
        r = history[:, -1, :, 0]
        win = (r >= 2).to(r.dtype) + 0 * self.w
        return torch.stack([1 - win, win], dim=1), win * r


def test_revenue_gradient_matches_finite_differences() -> None:
    s = make_bandit_setting("discrete", horizon=2)
    arrays = exact_arrays(s)

    def exact(w: float) -> float:
        return truthful_value(tabulate(s, _Smooth(w)), **arrays).revenue

    eps = 1e-5
    fd = (exact(1.0 + eps) - exact(1.0 - eps)) / (2 * eps)
    net = _Smooth(1.0)
    tr = MinMaxTrainer(s, net, MinMaxConfig(delta=0.0, batch=4096),
                       torch.Generator().manual_seed(0))
    grads = []
    for _ in range(25):
        ep = tr._episodes(tr._truth_env, None, tr.generator, grad=True)
        (g,) = torch.autograd.grad(ep.revenue.mean(), [net.w])
        grads.append(float(g))
    mean = sum(grads) / len(grads)
    se = math.sqrt(sum((x - mean) ** 2 for x in grads) / (len(grads) - 1) / len(grads))
    assert abs(mean - fd) <= 4 * se + 1e-9, (mean, fd, se)
    assert se < 0.05 * abs(fd)  # the check is sharp enough to see a missing score term


def test_step_is_seeded_and_resumes_bit_identically() -> None:
    s = make_bandit_setting("discrete", horizon=3)

    def run(k: int, resume_at: int | None = None) -> list[float]:
        net = _Smooth(0.5)
        tr = MinMaxTrainer(s, net, MinMaxConfig(delta=2.0, batch=64, deviator_reset=2),
                           torch.Generator().manual_seed(3))
        out = []
        for i in range(k):
            if resume_at is not None and i == resume_at:
                state = tr.state_dict()
                net2 = _Smooth(0.0)
                tr = MinMaxTrainer(s, net2, MinMaxConfig(delta=2.0, batch=64, deviator_reset=2),
                                   torch.Generator().manual_seed(99))
                tr.load_state_dict(state)
            out.append(tr.step().objective)
        return out

    a = run(4)
    assert a == run(4)
    assert a == run(4, resume_at=3)


def test_deviator_learns_a_frozen_mechanisms_gain() -> None:
    s = make_bandit_setting("discrete", horizon=1)
    tr = MinMaxTrainer(s, _PayYourBid(), MinMaxConfig(delta=1.0, lr_mechanism=1e-12,
                                                      deviator_reset=0),
                       torch.Generator().manual_seed(0))
    for _ in range(60):
        tr.step()
    ev = tr.evaluate(8192, seed=1)
    # value 3 bids 2: gain 1 w.p. 1/3 (8,192 paired episodes: se about 0.005)
    assert 0.3 <= ev.gains[0] <= 1 / 3 + 0.02, ev


def test_smooth_abs_and_bad_input() -> None:
    z = torch.tensor([-2.0, 0.0, 3.0])
    assert torch.allclose(smooth_abs(z, 1e-3), torch.tensor([1.999, 0.0, 2.999]), atol=1e-6)
    with pytest.raises(ValueError, match="expected ir in"):
        MinMaxConfig(delta=1.0, ir="ex_post")
    with pytest.raises(ValueError, match="expected batch as an int >= 1"):
        MinMaxConfig(delta=1.0, batch=0)
    exp = make_bandit_setting("discrete", allocation="expected")
    with pytest.raises(ValueError, match="expected allocation='realized'"):
        MinMaxTrainer(exp, _Smooth(), MinMaxConfig(delta=1.0), torch.Generator())
    with pytest.raises(TypeError, match="with parameters"):
        MinMaxTrainer(make_bandit_setting("discrete"), nn.Identity(), MinMaxConfig(delta=1.0),
                      torch.Generator())
