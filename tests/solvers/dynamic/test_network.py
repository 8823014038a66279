"""The learned mechanism network: a valid mechanism at every τ, invariant to true types by
default, deterministic per generator, differentiable, and saved / loaded as weights only."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import torch

from bilevel.models.dynamic import make_bandit_setting
from bilevel.solvers.dynamic._network import MechanismNet, load_mechanism, save_mechanism
from bilevel.solvers.dynamic._tables import tabulate


def _inputs(s: object, E: int, tau: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    n, m = s.n_buyers, s.n_goods  # type: ignore[attr-defined]
    lo, hi = s.bounds  # type: ignore[attr-defined]
    h = lo + (hi - lo) * torch.rand(E, tau + 1, n, m, generator=g, dtype=torch.float64)
    c = torch.randint(0, tau + 1, (E, n, m), generator=g).to(torch.float64)
    return h, c


@pytest.mark.parametrize("kind", ["discrete", "continuous"])
@pytest.mark.parametrize("n", [1, 2])
@pytest.mark.parametrize("m", [1, 2])
@pytest.mark.parametrize("T", [1, 3])
def test_outputs_are_a_valid_mechanism_at_every_period(kind: str, n: int, m: int, T: int) -> None:
    s = make_bandit_setting(kind, n_buyers=n, n_goods=m, horizon=T)
    net = MechanismNet(s, hidden=16, embed=8, hist=4, generator=torch.Generator().manual_seed(1))
    for tau in range(T):
        x, p = net(*_inputs(s, 5, tau, tau))
        assert x.shape == (5, n + 1, m) and p.shape == (5, n)
        assert torch.allclose(x.sum(1), torch.ones(5, m, dtype=x.dtype), atol=1e-12, rtol=0)
        assert bool(((x >= 0) & (x <= 1)).all())
        assert float(p.detach().abs().max()) < 0.5  # near-zero payments at init


def test_true_types_are_ignored_by_default_and_read_by_the_ablation() -> None:
    s = make_bandit_setting("continuous", n_buyers=2, horizon=3)
    h, c = _inputs(s, 6, 2, 0)
    t1, t2 = 5 * torch.rand(2, 6, 2, 1, generator=torch.Generator().manual_seed(3),
                            dtype=torch.float64)
    net = MechanismNet(s, generator=torch.Generator().manual_seed(0))
    for a, b in zip(net(h, c, t1), net(h, c, t2), strict=True):
        assert torch.equal(a, b)
    true = MechanismNet(s, type_stream="true", generator=torch.Generator().manual_seed(0))
    assert float((true(h, c, t1)[1] - true(h, c, t2)[1]).detach().abs().max()) > 1e-8
    with pytest.raises(ValueError, match="expected types"):
        true(h, c)


def test_deterministic_per_generator_and_errors() -> None:
    s = make_bandit_setting("discrete", n_buyers=2, horizon=3)
    h, c = _inputs(s, 4, 0, 0)
    a = MechanismNet(s, generator=torch.Generator().manual_seed(7))(h, c)
    b = MechanismNet(s, generator=torch.Generator().manual_seed(7))(h, c)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    net = MechanismNet(s)
    with pytest.raises(ValueError, match=r"expected history of shape \(E, τ\+1, n, m\)"):
        net(torch.zeros(4, 1, 3, 1), c)
    with pytest.raises(ValueError, match="expected cumulative"):
        net(h, torch.zeros(4, 1, 1))


def test_gradients_reach_every_parameter() -> None:
    s = make_bandit_setting("discrete", n_buyers=2, n_goods=2, horizon=3)
    net = MechanismNet(s, type_stream="reports", generator=torch.Generator().manual_seed(0))
    x, p = net(*_inputs(s, 8, 2, 0))
    (x[:, 1:].pow(2).sum() + p.sum()).backward()
    for name, par in net.named_parameters():
        assert par.grad is not None and bool(torch.isfinite(par.grad).all()), name
        assert float(par.grad.abs().max()) > 0, name


def test_save_load_round_trip_and_pickles_are_refused(tmp_path: Path) -> None:
    s = make_bandit_setting("discrete", n_buyers=2, horizon=2)
    net = MechanismNet(s, hidden=8, generator=torch.Generator().manual_seed(0))
    back = load_mechanism(save_mechanism(net, tmp_path / "mech"))
    h, c = _inputs(s, 4, 1, 0)
    assert torch.equal(net(h, c)[0], back(h, c)[0]) and torch.equal(net(h, c)[1], back(h, c)[1])
    (tmp_path / "mech" / "weights.pt").write_bytes(pickle.dumps(object()))
    with pytest.raises(ValueError) as e:
        load_mechanism(tmp_path / "mech")
    assert "\n" not in str(e.value)
    with pytest.raises(FileNotFoundError):
        load_mechanism(tmp_path / "nothing")


def test_tabulate_a_network() -> None:
    s = make_bandit_setting("discrete", horizon=2)
    tab = tabulate(s, MechanismNet(s, hidden=8, generator=torch.Generator().manual_seed(0)))
    assert [a.shape for a in tab.allocation] == [(1, 3, 2), (6, 3, 2)]
